"""The plugin's habits users know from pytest-recording / vcrpy, each used as a user would
with ``pytester``: a cassette folder, ini-level matching rules, ``rewrite``, one clear
error for a missing recording, and no silent live call from a client built too early."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from aibridge_cli.sessions.recording import load_fixture

from .test_pytest_plugin import Upstream, gone, run, user_module

pytest_plugins = ("pytester", "tests.plugin_upstream")

ASK_MODULE = """
import anthropic
import pytest


def ask(url, max_tokens):
    with anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as client:
        reply = client.messages.create(
            model="claude-test", max_tokens=max_tokens,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        )
    return reply.content[0].name


@pytest.mark.aibridge(fixture="shared.jsonl")
def test_first(aibridge_anthropic_url):
    assert ask(aibridge_anthropic_url, MAX_TOKENS) == "get_weather"


@pytest.mark.aibridge(fixture="shared.jsonl")
def test_second(aibridge_anthropic_url):
    assert ask(aibridge_anthropic_url, MAX_TOKENS + 1) == "get_weather"
"""


def ask_module(max_tokens: int) -> str:
    return ASK_MODULE.replace("MAX_TOKENS", str(max_tokens))


def record_first_then_go_offline(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``shared.jsonl`` holds ``test_first``'s one exchange (max_tokens 100); then CI."""
    pytester.makepyfile(test_ask=ask_module(100))
    run(pytester, "--aibridge-record=once", *upstream.options(), "-k", "first")
    gone(upstream, monkeypatch)


def test_the_cassette_folder_comes_from_the_ini_file_or_the_option(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\naibridge_cassette_dir = recordings/ai\n")
    pytester.mkdir("suite")
    pytester.makepyfile(**{"suite/test_agent": user_module()})
    run(pytester, "--aibridge-record=once", *upstream.options()).assert_outcomes(passed=3)
    folder = pytester.path / "recordings" / "ai" / "test_agent"
    assert sorted(p.name for p in folder.iterdir()) == [
        "test_agent_answers_with_the_weather.jsonl",
        "test_openai_async.jsonl",
        "test_trio_streaming.jsonl",
    ]
    assert not (pytester.path / "suite" / "aibridge").exists()
    # the option wins, relative to where pytest runs
    option = "--aibridge-cassette-dir=elsewhere"
    run(pytester, option, "--aibridge-record=once", *upstream.options(), "-k", "trio")
    assert (pytester.path / "elsewhere" / "test_agent" / "test_trio_streaming.jsonl").exists()
    gone(upstream, monkeypatch)
    run(pytester).assert_outcomes(passed=3)


def test_ini_rules_apply_to_every_test_and_the_marker_adds_to_them(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_first_then_go_offline(pytester, upstream, monkeypatch)
    pytester.makepyfile(test_ask=ask_module(200))
    failed = run(pytester, "-k", "first")
    failed.assert_outcomes(failed=1, deselected=1)
    failed.stdout.fnmatch_lines(["*request body max_tokens: expected 100, got 200"])
    pytester.makeini("[pytest]\naibridge_ignore = $.max_tokens $.metadata\n")
    run(pytester).assert_outcomes(passed=2)  # both tests, one recorded exchange each in turn
    pytester.makeini("[pytest]\naibridge_ignore = $.\n")
    bad = run(pytester, "-k", "first")
    bad.assert_outcomes(errors=1, deselected=1)
    bad.stdout.fnmatch_lines(["*ini aibridge_ignore: '$.' is not a field path*"])


def test_rewrite_records_afresh_and_tests_sharing_a_file_keep_each_other_s_lines(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_ask=ask_module(100))
    first = run(pytester, "--aibridge-record=once", *upstream.options(), "-k", "first")
    first.assert_outcomes(passed=1, deselected=1)
    shared = pytester.path / "shared.jsonl"
    assert len(load_fixture(shared).interceptions) == 1
    served = len(upstream.app.seen)
    for mode in ("rewrite", "all"):
        result = run(pytester, f"--aibridge-record={mode}", *upstream.options())
        result.assert_outcomes(passed=2)
        # replaced once for the session, then both tests' requests appended
        assert [r.request.body["max_tokens"] for r in load_fixture(shared).interceptions] == [
            100,
            101,
        ]
    assert len(upstream.app.seen) == served + 4
    gone(upstream, monkeypatch)
    run(pytester).assert_outcomes(passed=2)


def test_a_missing_recording_is_one_error_shown_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ask=ask_module(100))
    result = run(pytester, "-k", "first")
    result.assert_outcomes(errors=1, deselected=1)
    out = result.stdout.str()
    # the short summary repeats it (in full where CI is set: pytest cuts it elsewhere)
    report = out.split("short test summary info")[0]
    assert report.count("no recording at shared.jsonl: record it once") == 1
    assert "During handling of the above exception" not in out
    assert "ConfigError" not in out


EARLY_CLIENT = """
import anthropic
import pytest

# built at import: it reads ANTHROPIC_BASE_URL before the plugin sets it
CLIENT = anthropic.Anthropic(api_key="sk-test-not-a-key", max_retries=0)


def ask():
    reply = CLIENT.messages.create(
        model="claude-test", max_tokens=100,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    return reply.content[0].name


@pytest.mark.aibridge(fixture="shared.jsonl")
def test_early_client():
    assert ask() == "get_weather"


@pytest.mark.aibridge(fixture="shared.jsonl")
def test_early_client_whose_error_is_swallowed():
    try:
        ask()
    except anthropic.APIConnectionError:
        pass


def test_the_guard_is_off_outside_aibridge_tests():
    import socket
    assert socket.getaddrinfo.__module__ == "socket"
"""


def test_a_client_built_at_import_fails_the_test_naming_the_host(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_first_then_go_offline(pytester, upstream, monkeypatch)
    pytester.makepyfile(test_early=EARLY_CLIENT)
    originals = (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)
    result = run(pytester, "test_early.py")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*aibridge: the test tried to reach api.anthropic.com:443 outside aibridge's "
            "server; the connection was refused (no live call from a test using aibridge)",
            "*a client built before the test (at import, say) keeps the base URL*",
        ]
    )
    report = result.stdout.str().split("short test summary info")[0]  # CI: in full there too
    assert report.count("tried to reach api.anthropic.com:443") == 2
    assert (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex) == originals


DIRECT_CLIENT = """
import anthropic
import pytest


def ask(url):
    with anthropic.Anthropic(base_url=url, api_key="sk-test-not-a-key", max_retries=0) as c:
        reply = c.messages.create(
            model="claude-test", max_tokens=100,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        )
    return reply.content[0].name


@pytest.mark.aibridge
def test_through_aibridge(aibridge_anthropic_url):
    assert ask(aibridge_anthropic_url) == "get_weather"


@pytest.mark.aibridge
def test_straight_to_the_api():
    assert ask("UPSTREAM") == "get_weather"
"""


def test_while_recording_only_the_plugin_s_proxy_reaches_the_upstream(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream under a name that is not loopback (resolved to it by a fake resolver):
    the plugin's proxy records through it, a client going there by itself is refused."""
    resolve = socket.getaddrinfo

    def fake_dns(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return resolve("127.0.0.1" if host == "api.upstream.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    port = upstream.url.rsplit(":", 1)[1]
    named = f"http://api.upstream.test:{port}"
    pytester.makepyfile(test_direct=DIRECT_CLIENT.replace("UPSTREAM", named))
    result = run(pytester, "--aibridge-record=once", f"--aibridge-anthropic-upstream={named}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [f"*aibridge: the test tried to reach api.upstream.test:{port} outside aibridge's*"]
    )
    assert "test_through_aibridge" not in result.stdout.str().split("short test summary")[1]


CLAUDE_CODE_LIKE = """
import anthropic
import pytest


@pytest.mark.aibridge
def test_a_claude_code_like_request(aibridge_anthropic_url):
    headers = {"user-agent": "claude-cli/2.1.332 (external, sdk-cli)"}
    with anthropic.Anthropic(
        base_url=aibridge_anthropic_url, api_key="k", max_retries=0, default_headers=headers
    ) as client:
        reply = client.messages.create(
            model="claude-test", max_tokens=100, system="Today's date is DAY.",
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        )
    assert reply.content[0].name == "get_weather"
"""


def test_the_plugin_applies_a_client_s_normalizers_and_the_ini_switches_them_off(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_cc=CLAUDE_CODE_LIKE.replace("DAY", "2026-12-07"))
    run(pytester, "--aibridge-record=once", *upstream.options()).assert_outcomes(passed=1)
    gone(upstream, monkeypatch)
    pytester.makepyfile(test_cc=CLAUDE_CODE_LIKE.replace("DAY", "2026-12-08"))
    run(pytester).assert_outcomes(passed=1)
    pytester.makeini("[pytest]\naibridge_no_normalize = claude-code-date\n")
    failed = run(pytester)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        ['*request body system: expected "Today\'s date is 2026-12-07.", got*']
    )
