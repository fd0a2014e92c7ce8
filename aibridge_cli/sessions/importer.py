"""Importing the Go gateway's txtar fixtures as JSONL fixtures.

A txtar holds the client's request and the upstream's replies (``streaming``,
``non-streaming``, and ``.../tool-call`` for the follow-up after an injected tool ran),
but not what the gateway answered its client. So each variant is run through aibridge's
own proxy against those replies (``scenario.record_session``) and recorded: the upstream
side is the txtar's, the client side is aibridge's. Injected tools are the ``bmcp_*``
names the replies call, each given a canned result.

A txtar without a ``request`` section is a pass-through fixture (``fallthrough.txtar``):
the Go gateway's test of its reverse proxy, a ``GET /v1/models`` whose upstream answer is
the ``non-streaming`` section. It becomes a pass-through record the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio

from ..errors import FixtureError
from ..fakes.scripted_upstream import Reply
from ..tools import InjectedTool
from .fixture import Fixture
from .recording import read_text
from .scripted_sessions import Session, Step, record_session, split_sse
from .txtar import Txtar, parse_http_section, parse_txtar

_INJECTED = re.compile(r'"name"\s*:\s*"(bmcp_[A-Za-z0-9_\-]+)"')
_DROP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


def api_for(path: Path) -> str:
    """The API a txtar belongs to, from its folder names."""
    parts = {p.lower() for p in path.parts}
    if "chatcompletions" in parts:
        return "openai-chat"
    if "responses" in parts:
        return "openai-responses"
    if "anthropic" in parts:
        return "anthropic"
    raise FixtureError(
        f"{path}: cannot tell the API from the path (expected an anthropic/, "
        "openai/chatcompletions/ or openai/responses/ folder)"
    )


def _reply(section: str, streaming: bool) -> Reply:
    http = parse_http_section(section)
    headers = [(k, v) for k, v in http.headers if k not in _DROP_HEADERS]
    if http.status != 200 or not streaming:
        body = http.body.strip().encode()
        if not any(k == "content-type" for k, _ in headers):
            headers.append(("content-type", "application/json"))
        return Reply(http.status, headers, [body])
    return Reply(200, [("content-type", "text/event-stream")], split_sse(http.body))


def injected_tools(archive: Txtar) -> list[InjectedTool]:
    names = sorted({m for text in archive.sections.values() for m in _INJECTED.findall(text)})
    return [
        InjectedTool(
            name=name,
            description=f"{name} (imported; answers a canned result)",
            input_schema={"type": "object"},
            result=f"canned result of {name}",
        )
        for name in names
    ]


def txtar_session(path: Path, text: str) -> Session:
    """The session a txtar describes: a streaming and/or a blocking variant."""
    archive = parse_txtar(text)
    api = api_for(path)
    if "request" not in archive.sections:
        return _pass_through_session(path, archive, api)
    try:
        request = json.loads(archive.sections["request"])
    except ValueError as exc:
        raise FixtureError(f"{path}: the request section is not JSON: {exc}") from None
    steps = []
    for section, streaming in (("streaming", True), ("non-streaming", False)):
        if section not in archive.sections:
            continue
        replies = [_reply(archive.sections[section], streaming)]
        if f"{section}/tool-call" in archive.sections:
            replies.append(_reply(archive.sections[f"{section}/tool-call"], streaming))
        body = {**request, "stream": streaming}
        steps.append(Step(api, body, replies, section))
    if not steps:
        raise FixtureError(f"{path}: no 'streaming' or 'non-streaming' section")
    return Session(steps, injected_tools(archive))


def _pass_through_session(path: Path, archive: Txtar, api: str) -> Session:
    """A fixture of the Go gateway's reverse proxy: ``GET /v1/models`` and its answer."""
    if "non-streaming" not in archive.sections:
        raise FixtureError(f"{path}: a pass-through fixture needs a 'non-streaming' section")
    provider = "openai" if api.startswith("openai") else "anthropic"
    models = "/v1/models" if provider == "anthropic" else "/models"  # under .../openai/v1
    reply = _reply(archive.sections["non-streaming"], streaming=False)
    step = Step(f"{provider}-passthrough", None, [reply], "non-streaming", "GET", models)
    return Session([step])


async def import_txtar(path: Path) -> Fixture:
    """One txtar as a fixture, recorded through aibridge's proxy."""
    text = await trio.to_thread.run_sync(read_text, path, " (is it a txtar file?)")
    return await record_session(txtar_session(path, text), str(path))


def output_name(path: Path) -> str:
    """A file name that keeps the txtar's folder context: ``openai-responses-streaming-simple``."""
    api = api_for(path)
    parts = list(path.with_suffix("").parts)
    tail = [p for p in parts[-2:] if p.lower() not in ("anthropic", "chatcompletions", "responses")]
    return "-".join([api, *tail]) + ".jsonl"
