"""Black-box campaigns against targets that are wrong before any fault: the canary, and
a target's declared configuration (which scenarios apply to it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from aibridge_cli.errors import ConfigError
from aibridge_cli.fuzz.blackbox import run_campaign
from aibridge_cli.fuzz.catalog import builtin, builtin_scenarios
from aibridge_cli.fuzz.oracles import Profile, profile_oracles
from aibridge_cli.fuzz.target import BlackBoxSettings, called_tools
from aibridge_cli.tools import InjectedTool, ToolSet

from .cli_process import run_cli
from .passthrough_relay import PassThroughRelay, serve_relay
from .test_fuzz_blackbox import free_port, open_aibridge, scenarios

GENERIC = profile_oracles(Profile.GENERIC, black_box=True)


@pytest.mark.parametrize(
    ("token", "prefix", "answered"),
    [
        ("the-gateway-token", "", "401"),  # a master-key check refuses us
        (None, "/wrong", "404"),  # a wrong route prefix
    ],
)
async def test_a_target_that_never_calls_the_upstream_fails_the_canary(
    token: str | None, prefix: str, answered: str
) -> None:
    upstream_port = free_port()
    async with open_aibridge(upstream_port, token) as url:
        settings = BlackBoxSettings(
            url + prefix, upstream_port, scenarios(("anthropic/simple",)), 1, 200, GENERIC
        )
        with pytest.raises(ConfigError) as caught:
            await run_campaign(settings)
    message = str(caught.value)
    assert "the canary (POST " in message
    assert "never reached the upstream" in message
    assert f"the target answered {answered} (application/json)" in message
    assert "--client-header" in message


async def test_the_canary_failure_is_one_error_line_and_exit_2() -> None:
    upstream_port = free_port()
    async with open_aibridge(upstream_port, "the-gateway-token") as url:
        done = await run_cli(
            "fuzz", "--target", url, "--upstream-port", str(upstream_port),
            "--iterations", "200", "--scenario", "openai-chat/simple", "--seed", "1",
        )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: --target ")
    assert "the target answered 401" in lines[0]


async def test_a_target_with_the_right_token_passes_the_canary() -> None:
    # The control: the same guarded target, told the token through --client-header.
    from aibridge_cli.fuzz.target import ClientConfig

    upstream_port = free_port()
    client = ClientConfig(headers=(("x-api-key", "the-gateway-token"),))
    async with open_aibridge(upstream_port, "the-gateway-token") as url:
        settings = BlackBoxSettings(
            url, upstream_port, scenarios(("anthropic/simple",)), 1, 5, GENERIC, client=client
        )
        run = await run_campaign(settings)
    assert [o.violations for o in run.outcomes if o.violations] == []


def repro_files(directory: Path, pattern: str = "repro-*.jsonl") -> list[Path]:
    """The files written, each repro file with its page beside it."""
    found = sorted(directory.glob(pattern))
    for path in found:
        page = path.with_suffix(".html")
        assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>"), page
    return found


async def test_a_black_box_finding_gets_a_repro_file_and_page_and_reruns(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream_port = free_port()
    relay = PassThroughRelay(("127.0.0.1", upstream_port), "drop-stop")
    port = await nursery.start(serve_relay, relay)
    target = ["--target", f"http://127.0.0.1:{port}", "--upstream-port", str(upstream_port)]
    done = await run_cli(
        "fuzz", *target, "--iterations", "3", "--seed", "7", "--target-tools", "none",
        "--scenario", "anthropic/simple#streaming", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    # one signature per behaviour: no scenario in it (the scenarios are counted apart)
    signatures = {(s["oracle"], s["scenario"]) for f in report["failures"] for s in f["signatures"]}
    assert signatures == {("malformed-body", ""), ("differential", "")}
    repros = repro_files(tmp_path)
    assert len(repros) == 2
    header = json.loads(repros[0].read_text().splitlines()[0])
    assert header["mode"] == "black-box"
    assert header["target"] == f"http://127.0.0.1:{port}"
    # the rerun: that iteration against the target once more, judged the same way
    again = await run_cli("fuzz", "--repro", str(repros[0]), "--html", str(tmp_path / "again.html"))
    assert again.returncode == 1, again.stderr
    assert b"FAIL malformed-body" in again.stdout
    assert repro_files(tmp_path, "again.html")


# The tools of every built-in scenario that has one, as `aibridge serve --tools` would run
# them (one file for all: the same names, the same canned results).
BUILTIN_TOOLS = ToolSet.of(
    [
        InjectedTool("bmcp_weather", "Current weather", {"type": "object"}, result="sunny, 21 C"),
        InjectedTool(
            "bmcp_weather_forecast", "Forecast", {"type": "object"}, result="sunny, 21 C in Paris"
        ),
    ]
)


@pytest.mark.parametrize("offered", [None, BUILTIN_TOOLS])
async def test_one_configuration_passes_every_scenario_that_applies_and_skips_the_rest(
    offered: ToolSet | None,
) -> None:
    upstream_port = free_port()
    names = frozenset(tool.name for tool in offered or ())
    async with open_aibridge(upstream_port, tools=offered) as url:
        settings = BlackBoxSettings(
            url, upstream_port, builtin_scenarios(), 3, 40, GENERIC, target_tools=names
        )
        run = await run_campaign(settings)
    assert [(o.iteration, o.scenario, o.violations) for o in run.outcomes if o.violations] == []
    skipped = dict(run.skipped)
    for scenario in builtin_scenarios():
        if scenario.transport == "websocket":
            assert "WebSocket" in skipped[scenario.name]
        elif scenario.requests > 1:
            assert "a load" in skipped[scenario.name]
        elif called_tools(scenario) and offered is None:
            assert "which the target does not offer" in skipped[scenario.name]
        else:
            assert scenario.name not in skipped
    # which scenarios 40 iterations draw depends on the catalog's size: judge the kinds
    by_name = {scenario.name: scenario for scenario in builtin_scenarios()}
    played_tools = {o.scenario for o in run.outcomes if called_tools(by_name[o.scenario])}
    assert bool(played_tools) == (offered is not None), played_tools
    # a scenario that offers a tool its upstream never calls still applies without it
    assert "anthropic/client-tool" not in skipped


def test_the_client_takes_the_target_s_routes_model_and_headers() -> None:
    from aibridge_cli.fuzz.target import client_config

    client = client_config(
        ["openai-chat=/v1/chat/completions", "/everything"],
        "gateway-model",
        ["X-Gateway-Key: sk-gw-1", "anthropic-beta:  tools-2"],
    )
    chat, messages = builtin("openai-chat/simple")[0], builtin("anthropic/simple")[0]
    assert client.path(chat) == "/v1/chat/completions"
    assert client.path(messages) == "/everything"
    assert json.loads(client.body(messages))["model"] == "gateway-model"
    assert client.headers == (("x-gateway-key", "sk-gw-1"), ("anthropic-beta", "tools-2"))
    assert client_config([], None, []).body(messages) == messages.body


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--client-header", "no-colon", "give it as 'Name: value'"),
        ("--client-path", "openai=/v1/x", "'openai' is not an API"),
        ("--client-path", "v1/messages", "the path must start with /"),
        ("--target-tools", "/nonexistent/tools.toml", "cannot read tools file"),
        ("--stall-past", "60", "at most 15 s"),
    ],
)
async def test_a_malformed_target_option_is_one_error_line(
    flag: str, value: str, said: str
) -> None:
    done = await run_cli(
        "fuzz", "--target", "http://127.0.0.1:1", "--upstream-port", "1", flag, value
    )
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert said in lines[0]


async def test_show_scenario_prints_the_request_and_each_exchange_s_bytes() -> None:
    done = await run_cli("fuzz", "--show-scenario", "anthropic/failover-after-429")
    assert done.returncode == 0
    text = done.stdout.decode()
    assert "POST /anthropic/v1/messages" in text
    assert "## exchange 0: 429" in text
    assert "retry-after: 0" in text  # as a black-box campaign plays it
    assert 'event: message_stop\ndata: {"type":"message_stop"}' in text


async def test_list_shows_the_scenario_files_given() -> None:
    done = await run_cli("fuzz", "--list", "tests/scenarios/401-after-tool-turn.toml")
    assert done.returncode == 0
    text = done.stdout.decode()
    assert "401-after-tool-turn" in text
    assert "anthropic/simple#streaming" not in text  # the files given, not the built-ins


async def test_stalls_past_a_declared_read_timeout_are_drawn_and_a_correct_target_passes() -> None:
    from aibridge_cli.config import UpstreamTimeouts
    from aibridge_cli.fuzz.plan import FaultKind

    upstream_port = free_port()
    stall = frozenset({FaultKind.STALL})
    async with open_aibridge(upstream_port, timeouts=UpstreamTimeouts(read=0.5)) as url:
        settings = BlackBoxSettings(
            url, upstream_port, scenarios(("anthropic/simple",)), 1, 6, GENERIC, stall,
            stall_past=0.5,
        )  # fmt: skip
        run = await run_campaign(settings)
    stalled = [o for o in run.outcomes if any(f.kind is FaultKind.STALL for f in o.plan.faults)]
    assert stalled
    assert [(o.iteration, o.violations) for o in run.outcomes if o.violations] == []
    # each stalled answer reached the client as an error: a 504, or an error event
    assert all(b"error" in o.client.body for o in stalled)
