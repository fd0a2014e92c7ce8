"""Conformance with the Go gateway's Anthropic fixtures (txtar), streaming and blocking.

Each fixture's upstream replies are played by the scripted upstream; the client (the
official SDK) must get what the Go gateway gives: the text, the client-facing tool blocks,
the stop reason, the errors. Injected tools are the ``bmcp_*`` ones, answered with a
canned result. The fixtures are AGPL reference data outside the project: read in place,
skipped when absent.
"""

from __future__ import annotations

import inspect
import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pytest

from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.sessions.txtar import HTTPSection, Txtar, parse_http_section, parse_txtar
from aibridge_cli.sse import SSEDecoder
from aibridge_cli.tools import InjectedTool, ToolSet

from .conftest import StackFactory
from .sdkutil import collect_sdk_garbage

CANNED = "canned result for the injected tool"


def _fixtures_dir() -> pathlib.Path | None:
    for parent in pathlib.Path(__file__).resolve().parents:
        candidate = parent / "shared" / "reference" / "aibridge-fixtures" / "anthropic"
        if candidate.is_dir():
            return candidate
    return None


FIXTURES = _fixtures_dir()
pytestmark = pytest.mark.skipif(FIXTURES is None, reason="the Go gateway's fixtures are absent")


def _load(name: str) -> Txtar:
    assert FIXTURES is not None
    return parse_txtar((FIXTURES / name).read_text(encoding="utf-8"))


def _cases(section: str) -> list[str]:
    if FIXTURES is None:
        return []
    return sorted(
        p.name
        for p in FIXTURES.glob("*.txtar")
        if section in parse_txtar(p.read_text(encoding="utf-8")).sections
        and "request" in parse_txtar(p.read_text(encoding="utf-8")).sections
    )


@dataclass
class Expected:
    """What a client must end up with."""

    texts: list[str] = field(default_factory=list)
    tools: list[tuple[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    error: tuple[int, Any] | None = (
        None  # (status, body) before the stream; in-stream: (200, error)
    )
    injected: set[str] = field(default_factory=set)


def _replies(fixture: Txtar, base: str) -> list[HTTPSection]:
    names = [base, f"{base}/tool-call"]
    return [parse_http_section(fixture.sections[n]) for n in names if n in fixture.sections]


def _as_reply(section: HTTPSection, streaming: bool) -> Reply:
    headers = [(k, v) for k, v in section.headers if k != "content-length"]
    if section.status != 200:
        return Reply(section.status, headers, [section.body.strip().encode()])
    if streaming:
        frames = [e.raw for e in SSEDecoder().feed(section.body.encode())]
        return Reply(200, [("content-type", "text/event-stream")], frames)
    return Reply(200, [("content-type", "application/json")], [section.body.strip().encode()])


def _expected_streaming(sections: list[HTTPSection]) -> Expected:
    out = Expected()
    for section in sections:
        if section.status != 200:
            out.error = (section.status, json.loads(section.body))
            return out
        blocks: dict[int, dict[str, Any]] = {}
        for event in SSEDecoder().feed(section.body.encode()):
            data = json.loads(event.data)
            kind = data.get("type")
            if kind == "content_block_start":
                blocks[data["index"]] = {**data["content_block"], "json": ""}
            elif kind == "content_block_delta":
                delta = data["delta"]
                block = blocks[data["index"]]
                block["text"] = block.get("text", "") + delta.get("text", "")
                block["json"] += delta.get("partial_json", "")
            elif kind == "message_delta":
                out.stop_reason = data["delta"]["stop_reason"]
            elif kind == "error":
                out.error = (200, data)
        _collect(out, list(blocks.values()), from_stream=True)
    return out


def _expected_blocking(sections: list[HTTPSection]) -> Expected:
    out = Expected()
    for section in sections:
        body = json.loads(section.body)
        if section.status != 200:
            out.error = (section.status, body)
            return out
        out.stop_reason = body["stop_reason"]
        _collect(out, body["content"], from_stream=False)
    return out


def _collect(out: Expected, blocks: list[dict[str, Any]], *, from_stream: bool) -> None:
    for block in blocks:
        if block["type"] == "text":
            out.texts.append(block["text"])
        elif block["type"] == "tool_use":
            arguments = json.loads(block["json"] or "{}") if from_stream else block["input"]
            if block["name"].startswith("bmcp_"):
                out.injected.add(block["name"])
            else:
                out.tools.append((block["name"], arguments))


def _sdk_arguments(client: anthropic.AsyncAnthropic, body: dict[str, Any]) -> dict[str, Any]:
    """The request as SDK keyword arguments; fields it does not know go in ``extra_body``."""
    known = set(inspect.signature(client.messages.create).parameters)
    kwargs = {k: v for k, v in body.items() if k in known and k != "stream"}
    extra = {k: v for k, v in body.items() if k not in known and k != "stream"}
    return {**kwargs, "extra_body": extra} if extra else kwargs


async def _start(stack: StackFactory, name: str, base: str) -> tuple[Any, dict[str, Any], Expected]:
    fixture = _load(name)
    sections = _replies(fixture, base)
    streaming = base == "streaming"
    expected = _expected_streaming(sections) if streaming else _expected_blocking(sections)
    tools = ToolSet.of(
        InjectedTool(n, "injected", {"type": "object", "properties": {}}, result=CANNED)
        for n in sorted(expected.injected)
    )
    s = await stack(
        [_as_reply(section, streaming) for section in sections],
        keys=["sk-ant-conformance-key-0000"],
        tools=tools,
    )
    return s, json.loads(fixture.sections["request"]), expected


@dataclass
class Outcome:
    texts: list[str] = field(default_factory=list)
    tools: list[tuple[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    error: tuple[int, Any] | None = None


def _outcome(message: anthropic.types.Message) -> Outcome:
    return Outcome(
        [b.text for b in message.content if b.type == "text"],
        [(b.name, b.input) for b in message.content if b.type == "tool_use"],
        message.stop_reason,
    )


async def _via_sdk(url: str, body: dict[str, Any], streaming: bool) -> Outcome:
    async with anthropic.AsyncAnthropic(base_url=url, api_key="client", max_retries=0) as client:
        # An explicit timeout: the SDK refuses large max_tokens without one when blocking.
        arguments = {**_sdk_arguments(client, body), "timeout": 60}
        try:
            if streaming:
                async with client.messages.stream(**arguments) as st:
                    return _outcome(await st.get_final_message())
            return _outcome(await client.messages.create(**arguments))
        except anthropic.APIStatusError as exc:
            # In a stream, the SDK raises with the 200 of the response that carried it.
            return Outcome(error=(exc.status_code, exc.body))


@pytest.mark.parametrize("base", ["streaming", "non-streaming"])
@pytest.mark.parametrize("name", sorted(set(_cases("streaming")) | set(_cases("non-streaming"))))
async def test_fixture(stack: StackFactory, name: str, base: str) -> None:
    if base not in _load(name).sections:
        pytest.skip(f"{name} has no {base} section")
    s, body, expected = await _start(stack, name, base)
    got = await collect_sdk_garbage(_via_sdk(s.proxy_url + "/anthropic", body, base == "streaming"))
    assert got.error == expected.error
    assert (got.texts, got.tools, got.stop_reason) == (
        ([], [], None) if expected.error else (expected.texts, expected.tools, expected.stop_reason)
    )
    if not expected.error:
        _check_injected_turns(s, expected)


def _check_injected_turns(s: Any, expected: Expected) -> None:
    """One upstream request per reply; each follow-up carries the canned tool result."""
    assert len(s.upstream.seen) == 1 + (1 if expected.injected else 0)
    if expected.injected:
        last = s.upstream.seen[-1].json()["messages"][-1]
        assert last["role"] == "user"
        assert [r["content"] for r in last["content"]] == [CANNED]


async def test_fallthrough_models_pass_through(stack: StackFactory) -> None:
    if FIXTURES is None or not (FIXTURES / "fallthrough.txtar").exists():
        pytest.skip("no fallthrough fixture")
    section = parse_http_section(_load("fallthrough.txtar").sections["non-streaming"])
    s = await stack([_as_reply(section, False)], keys=["sk-ant-conformance-key-0000"])
    async with anthropic.AsyncAnthropic(
        base_url=s.proxy_url + "/anthropic", api_key="client", max_retries=0
    ) as client:
        page = await client.models.list()
    listed = json.loads(section.body)
    assert [m.id for m in page.data] == [m["id"] for m in listed["data"]]
    assert s.upstream.seen[0].path == "/v1/models"
