"""Client and session attribution: what the real clients send, how recordings keep it, and
that replay's matching never looks at it."""

from __future__ import annotations

import json

import pytest

from aibridge_cli.attribution import Attribution, identify
from aibridge_cli.interception import REDACTED
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.fixture import encode_interception, parse_fixture
from aibridge_cli.sessions.mock import MockUpstream

# What Claude Code 2.1.332 and Codex CLI 0.171.0 sent to a recording upstream (the
# headers that matter; tests/test_real_clients_attribution.py runs them for real).
CLAUDE_CODE = [
    ("user-agent", "claude-cli/2.1.332 (external, sdk-cli)"),
    ("x-claude-code-session-id", "8aa5afc3-6c98-493e-9d0c-69198d4ec345"),
    ("x-stainless-lang", "js"),
    ("x-app", "cli"),
]
CLAUDE_BODY = {
    "metadata": {
        "user_id": json.dumps(
            {
                "device_id": "a54302a1ec78f707",
                "account_uuid": "",
                "session_id": "8aa5afc3-6c98-493e-9d0c-69198d4ec345",
            }
        )
    }
}
CODEX = [
    ("session-id", "01a251db-539c-7d41-b583-7161b7589260"),
    ("thread-id", "01a251db-539c-7d41-b583-7161b7589260"),
    ("originator", "codex_exec"),
    ("user-agent", "codex_exec/0.171.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.171.0)"),
]


def test_claude_code_and_its_session_header() -> None:
    assert identify(CLAUDE_CODE) == Attribution(
        "claude-code", "8aa5afc3-6c98-493e-9d0c-69198d4ec345"
    )


def test_claude_codes_session_from_metadata_when_the_header_is_absent() -> None:
    headers = [h for h in CLAUDE_CODE if h[0] != "x-claude-code-session-id"]
    assert identify(headers).session is None  # the body is not known yet
    assert identify(headers, CLAUDE_BODY).session == "8aa5afc3-6c98-493e-9d0c-69198d4ec345"
    legacy = {"metadata": {"user_id": "user_ab12_account_cd34_session_5f6e-77aa"}}
    assert identify(headers, legacy).session == "5f6e-77aa"
    assert identify(headers, {"metadata": {"user_id": "plain-user"}}).session is None


def test_codex_and_its_session_headers_old_and_new() -> None:
    assert identify(CODEX) == Attribution("codex", "01a251db-539c-7d41-b583-7161b7589260")
    older = [("user-agent", "codex_cli_rs/0.38.0 (Ubuntu)"), ("session_id", "8f1f0b18")]
    assert identify(older) == Attribution("codex", "8f1f0b18")
    # no user agent, but Codex's originator header
    assert identify([("originator", "codex_cli_rs")]).client == "codex"
    assert identify([("originator", "someone-else")]).client == "unknown"


@pytest.mark.parametrize(
    ("agent", "client"),
    [
        ("AsyncAnthropic/Python 0.75.0", "anthropic-sdk-python"),
        ("Anthropic/JS 0.60.0", "anthropic-sdk-js"),
        ("OpenAI/Python 2.8.1", "openai-sdk-python"),
        ("OpenAI/JS 6.1.0", "openai-sdk-js"),
        ("Cursor/1.7.0", "cursor"),
        ("GitHubCopilotChat/0.32.0", "copilot"),
        ("Zed/0.210.4 (macos; aarch64)", "zed"),
        ("opencode/0.15.0", "opencode"),
        ("curl/8.5.0", "curl"),
        ("my-own-tool/1.0", "other"),
    ],
)
def test_clients_by_user_agent(agent: str, client: str) -> None:
    assert identify([("User-Agent", agent)]).client == client


def test_unknown_redacted_and_overlong_sessions() -> None:
    assert identify([]) == Attribution("unknown", None)
    assert identify([("x-stainless-lang", "go")]).client == "stainless-sdk"
    redacted = [("user-agent", "claude-cli/2.1"), ("x-claude-code-session-id", REDACTED)]
    assert identify(redacted).session is None  # --redact keeps it out of the record too
    long = identify([("x-session-id", "s" * 500)])
    assert long.session == "s" * 128


def test_recordings_keep_client_and_session_beside_the_request() -> None:
    (fixture,) = load_builtin("anthropic/simple")
    record = fixture.interceptions[0]
    plain = encode_interception(record)
    record.client, record.session = "claude-code", "sess-1"
    line = json.loads(encode_interception(record))
    assert (line["client"], line["session"]) == ("claude-code", "sess-1")
    assert line["request"] == json.loads(plain)["request"]  # the request is untouched
    assert "client" not in json.loads(plain)  # unknown: not written, older files read so
    header = '{"aibridge_fixture":4}\n'
    again = parse_fixture(header + json.dumps(line) + "\n", "f.jsonl").interceptions[0]
    assert (again.client, again.session) == ("claude-code", "sess-1")
    old = parse_fixture(header + plain + "\n", "f.jsonl").interceptions[0]
    assert (old.client, old.session) == ("unknown", None)


def test_replay_matches_the_same_with_or_without_attribution() -> None:
    fixtures = load_builtin()  # every one
    plain = [e.shape for e in MockUpstream(fixtures).expected]
    for fixture in fixtures:
        for record in fixture.interceptions:
            record.client, record.session = "codex", "another-session"
    assert [e.shape for e in MockUpstream(fixtures).expected] == plain
