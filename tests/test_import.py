"""Importing the Go gateway's txtar fixtures (skipped when the reference folder is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from aibridge_cli.errors import FixtureError
from aibridge_cli.proxy.routes import ROUTES, Intercept
from aibridge_cli.sessions.importer import api_for, import_txtar, txtar_session
from aibridge_cli.sessions.replay import replay_fixture

from .cli_process import run_cli


def reference_dir() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "reference" / "aibridge-fixtures"
        if candidate.is_dir():
            return candidate
    return None


REFERENCE = reference_dir()
TXTARS = sorted(REFERENCE.rglob("*.txtar")) if REFERENCE else []
needs_reference = pytest.mark.skipif(REFERENCE is None, reason="no shared/reference folder")


def routed(api: str) -> bool:
    return any(isinstance(r, Intercept) and r.api.name == api for r in ROUTES.values())


@needs_reference
@pytest.mark.parametrize("path", TXTARS, ids=lambda p: str(p.relative_to(REFERENCE)))
async def test_every_reference_txtar_imports_and_replays(path: Path) -> None:
    api = api_for(path)
    if not routed(api) and path.stem != "fallthrough":
        with pytest.raises(FixtureError, match=f"did not intercept {api}"):
            await import_txtar(path)
        return
    fixture = await import_txtar(path)
    sections = txtar_session(path, await trio.Path(path).read_text()).steps
    assert len(fixture.interceptions) == len(sections)
    for record, step in zip(fixture.interceptions, sections, strict=True):
        assert len(record.upstream) == len(step.replies)
    result = await replay_fixture(fixture)
    assert [(r.status, r.problems) for r in result.results] == [
        ("match", []) for _ in fixture.interceptions
    ]


@needs_reference
async def test_injected_tool_txtar_becomes_a_second_exchange_with_a_canned_result() -> None:
    assert REFERENCE is not None
    fixture = await import_txtar(REFERENCE / "anthropic" / "single_injected_tool.txtar")
    streaming, blocking = fixture.interceptions
    assert fixture.labels == ["streaming", "non-streaming"]
    for record in (streaming, blocking):
        assert [t["name"] for t in record.tools] == ["bmcp_coder_coder_list_workspaces"]
        assert [(c.name, c.input, c.result) for c in record.tool_calls] == [
            (
                "bmcp_coder_coder_list_workspaces",
                {"owner": "admin"},
                "canned result of bmcp_coder_coder_list_workspaces",
            )
        ]
        assert len(record.upstream) == 2
    assert len(streaming.upstream[0].response.chunks) > 10  # one chunk per SSE event


@needs_reference
async def test_import_command_writes_fixtures_that_replay(tmp_path: Path) -> None:
    assert REFERENCE is not None
    sources = [
        REFERENCE / "anthropic" / "simple.txtar",
        REFERENCE / "anthropic" / "fallthrough.txtar",
        REFERENCE / "openai" / "chatcompletions" / "fallthrough.txtar",
    ]
    done = await run_cli("import", *map(str, sources), "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr.decode()
    written = sorted(await trio.Path(tmp_path).glob("*.jsonl"))
    assert [p.name for p in written] == [
        "anthropic-fallthrough.jsonl",
        "anthropic-simple.jsonl",
        "openai-chat-fallthrough.jsonl",
    ]
    done = await run_cli("replay", *map(str, written))
    assert done.returncode == 0, done.stdout.decode()


@needs_reference
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_a_fallthrough_txtar_becomes_a_pass_through_record(provider: str) -> None:
    assert REFERENCE is not None
    folder = (
        REFERENCE / provider if provider == "anthropic" else REFERENCE / "openai/chatcompletions"
    )
    fixture = await import_txtar(folder / "fallthrough.txtar")
    (record,) = fixture.interceptions
    assert record.api == f"{provider}-passthrough"
    path = {"anthropic": "/anthropic/v1/models", "openai": "/openai/v1/models"}[provider]
    assert (record.request.method, record.request.path) == ("GET", path)
    assert record.response.status == 200
    assert record.upstream[0].response.body == record.response.body
    assert b'"data"' in record.response.body
