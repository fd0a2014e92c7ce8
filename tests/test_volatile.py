"""The built-in normalizers (sessions/volatile.py): each makes two requests of the same
command, as its client sent them on two runs, one request, and each is needed for it.

The request pairs are built from what two recordings of each real client showed
(Claude Code 2.1.332, Codex CLI 0.171.0, once with the clock a day on), shortened, with
made-up ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aibridge_cli.errors import ConfigError
from aibridge_cli.sessions.matching import MatchRules, differences, matches, request_shape
from aibridge_cli.sessions.volatile import NORMALIZER_NAMES, detect_client

CLAUDE_HEADERS = [("user-agent", "claude-cli/2.1.332 (external, sdk-cli)"), ("x-app", "cli")]
CODEX_HEADERS = [
    ("user-agent", "codex_exec/0.171.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.171.0)"),
    ("originator", "codex_exec"),
]
SDK_HEADERS = [("user-agent", "Anthropic/Python 0.75.0")]


def claude_body(
    day: str, session: str, version: str = "2.1.332.0c0", cwd: str = "/home/ann/agent"
) -> dict[str, Any]:
    user_id = {"device_id": "d" * 64, "account_uuid": "", "session_id": session}
    home = cwd.rsplit("/", 1)[0]
    memory = f"{home}/.claude/projects/{cwd.replace('/', '-')}/memory/"
    environment = f"# Environment\n - Primary working directory: {cwd}\n - Platform: linux"
    return {
        "model": "claude-opus-5-5",
        "system": [
            {"type": "text", "text": f"x-anthropic-billing-header: cc_version={version}; "},
            {"type": "text", "text": "You are a Claude agent."},
            {"type": "text", "text": f"# Memory\n\nYou have a memory at `{memory}`."},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is the weather?"}]},
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": environment},
                    {"type": "text", "text": f"# Skills\n\nToday's date is {day}."},
                ],
            },
        ],
        "metadata": {"user_id": json.dumps(user_id)},
        "max_tokens": 128000,
        "stream": True,
    }


def codex_body(
    day: str, session: str, started_ms: int, created: float, cwd: str = "/home/ann/agent"
) -> dict[str, Any]:
    skills = f"### Skill roots\n- `r0` = `{cwd.rsplit('/', 1)[0]}/.codex/skills/.system`"
    return {
        "type": "response.create",
        "model": "gpt-6.2-sol",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": skills}],
            },
            {
                "type": "message",
                "id": f"msg_{session}-1",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": f"<environment_context>\n  <cwd>{cwd}</cwd>\n"
                        f"  <current_date>{day}</current_date>\n"
                        f"  <workspace_roots><root>{cwd}</root></workspace_roots>\n"
                        "</environment_context>",
                    }
                ],
                "internal_chat_message_metadata_passthrough": {
                    "turn_id": f"{session}-turn",
                    "create_time": created,
                    "content_item_kinds": ["user.text"],
                },
            },
        ],
        "prompt_cache_key": session,
        "client_metadata": {
            "session_id": session,
            "x-codex-window-id": f"{session}:0",
            "x-codex-ws-stream-request-start-ms": str(started_ms),
            "x-codex-turn-metadata": json.dumps({"session_id": session, "turn_started_at": 1}),
        },
        "stream": True,
    }


CLAUDE_PAIR = (
    claude_body("2026-12-07", "4bc95690-8608"),
    claude_body("2026-12-08", "e370a366-d80a", "2.1.333.5f1", "/builds/ci/agent"),
)
CODEX_PAIR = (
    codex_body("2026-12-07", "01a251cd-46d5", 1796668737280, 1796668737.30),
    codex_body("2026-12-08", "01a251cd-49d1", 1796755138027, 1796755138.04, "/builds/ci/agent"),
)
PAIRS: dict[str, tuple[Any, Any, list[tuple[str, str]]]] = {
    "ids": (*CLAUDE_PAIR, CLAUDE_HEADERS),
    "claude-code-date": (*CLAUDE_PAIR, CLAUDE_HEADERS),
    "claude-code-billing": (*CLAUDE_PAIR, CLAUDE_HEADERS),
    "claude-code-paths": (*CLAUDE_PAIR, CLAUDE_HEADERS),
    "codex-prompt-cache-key": (*CODEX_PAIR, CODEX_HEADERS),
    "codex-client-metadata": (*CODEX_PAIR, CODEX_HEADERS),
    "codex-date": (*CODEX_PAIR, CODEX_HEADERS),
    "codex-paths": (*CODEX_PAIR, CODEX_HEADERS),
    "codex-message-times": (*CODEX_PAIR, CODEX_HEADERS),
}


def same(
    recorded: Any, seen: Any, rules: MatchRules, headers: list[tuple[str, str]]
) -> tuple[bool, list[str]]:
    a = request_shape("POST", "/v1/messages", json.dumps(recorded).encode(), rules, headers)
    b = request_shape("POST", "/v1/messages", json.dumps(seen).encode(), rules, headers)
    return matches(a, b, rules), differences(a, b, rules)


def test_every_normalizer_has_a_pair() -> None:
    assert set(PAIRS) == set(NORMALIZER_NAMES)


@pytest.mark.parametrize("name", NORMALIZER_NAMES)
def test_two_runs_of_a_client_match_and_each_normalizer_is_needed(name: str) -> None:
    recorded, seen, headers = PAIRS[name]
    assert same(recorded, seen, MatchRules(), headers) == (True, [])
    matched, found = same(recorded, seen, MatchRules.of(no_normalize=[name]), headers)
    assert not matched, f"{name} is switched off, yet the two runs still match"
    assert found


def test_paths_are_replaced_whole_and_never_a_bare_root() -> None:
    """A working directory is replaced where it stands, not inside a longer name; "/" as
    a working directory is left alone rather than replaced in every path."""
    rules = MatchRules.of(match_on=["body"])

    def shape(cwd: str, text: str) -> Any:
        body = claude_body("2026-12-07", "s", cwd=cwd)
        body["messages"][0]["content"][0]["text"] = text
        return request_shape(
            "POST", "/v1/messages", json.dumps(body).encode(), rules, CLAUDE_HEADERS
        )

    one = shape("/w/a", "see /w/a/x.py and /w/ab/y.py")
    assert one.body["messages"][0]["content"][0]["text"] == "see <cwd>/x.py and /w/ab/y.py"
    root = shape("/", "see /etc/hosts")
    assert root.body["messages"][0]["content"][0]["text"] == "see /etc/hosts"


def test_a_client_s_normalizers_apply_to_its_own_requests_only() -> None:
    # the same date line from a plain SDK is the user's own prompt: it is compared
    matched, found = same(*CLAUDE_PAIR, MatchRules(), SDK_HEADERS)
    assert not matched
    assert any("Today's date is 2026-12-07" in line for line in found), found
    assert not same(*CODEX_PAIR, MatchRules(), CLAUDE_HEADERS)[0]


def test_the_clients_are_recognised_by_their_headers() -> None:
    assert detect_client(CLAUDE_HEADERS) == "claude-code"
    assert detect_client(CODEX_HEADERS) == "codex"
    assert detect_client([("Originator", "codex_cli_rs")]) == "codex"
    assert detect_client(SDK_HEADERS) is None
    assert detect_client([]) is None


def test_normalizers_switch_off_by_name_comma_separated_too() -> None:
    rules = MatchRules.of(no_normalize=["codex-date,codex-client-metadata", "ids"])
    assert rules.normalize_off == {"codex-date", "codex-client-metadata", "ids"}
    with pytest.raises(ConfigError, match=r"unknown normalizer 'claude-date' \(known: ids, "):
        MatchRules.of(no_normalize=["claude-date"])


def test_ignore_takes_jsonpath_or_dotted_paths() -> None:
    rules = MatchRules.of(
        match_on=["method,path", "body"],
        ignore=["$.max_tokens", "$.messages[*].content[0]['text']", "system.0"],
    )
    assert rules.match_on == {"method", "path", "body"}
    assert rules.ignore == ("max_tokens", "messages.*.content.0.text", "system.0")
    one, other = claude_body("2026-12-07", "a"), claude_body("2026-12-07", "a")
    other["max_tokens"] = 1
    other["messages"][0]["content"][0]["text"] = "Something else"
    assert same(one, other, rules, SDK_HEADERS)[0]
    assert one["max_tokens"] == 128000  # the bodies themselves are left as they were
    with pytest.raises(ConfigError, match="match_on: no field given"):
        MatchRules.of(match_on=[" , "])
    descent = MatchRules.of(ignore=["$..cache_control", "system..type"])
    assert descent.ignore == ("**.cache_control", "system.**.type")
    cached = claude_body("2026-12-07", "a")
    cached["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
    cached["system"][1]["cache_control"] = {"type": "ephemeral"}
    plain = claude_body("2026-12-07", "a")
    assert same(cached, plain, descent, SDK_HEADERS)[0]
    assert not same(cached, plain, MatchRules(), SDK_HEADERS)[0]
    shape = request_shape("POST", "/", json.dumps(cached).encode(), descent)
    assert all("type" not in block for block in shape.body["system"])
    assert shape.body["messages"][1]["content"][0]["type"] == "text"  # outside system: kept
    for bad in ("$", "$.", "$..", "a..", ""):
        with pytest.raises(ConfigError, match="is not a field path"):
            MatchRules.of(ignore=[bad])


def test_the_docs_list_every_normalizer() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "fixture-format.md").read_text()
    listed = {line.split("`")[1] for line in docs.splitlines() if line.startswith("| `")}
    assert set(NORMALIZER_NAMES) <= listed
