"""Black-box campaigns against targets that are wrong before any fault: the canary, and
a target's declared configuration (which scenarios apply to it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from aibridge_cli.config import GuardConfig, ServeOptions
from aibridge_cli.errors import ConfigError
from aibridge_cli.fuzz.blackbox import run_campaign
from aibridge_cli.fuzz.oracles import Profile, profile_oracles
from aibridge_cli.fuzz.target import BlackBoxSettings
from aibridge_cli.proxy.run import build_app, proxy_guard
from aibridge_cli.proxy.server import Server
from aibridge_cli.tools import ToolSet

from .cli_process import run_cli
from .test_fuzz_blackbox import free_port, scenarios

GENERIC = profile_oracles(Profile.GENERIC, black_box=True)


@asynccontextmanager
async def open_aibridge(upstream_port: int, token: str | None = None) -> AsyncIterator[str]:
    """``aibridge serve`` (guarded as the command is, ``token``: its ``--auth-token``) in
    front of our upstream port; yields its URL."""
    base = f"http://127.0.0.1:{upstream_port}"
    options = ServeOptions(
        anthropic_base_url=base,
        openai_base_url=base + "/v1",
        anthropic_keys=["sk-ant-test-key-0000"],
        openai_keys=["sk-openai-test-key-0000"],
        guard=GuardConfig(auth_token=token),
    )
    app = build_app(options, tools=ToolSet())
    server = Server(app, guard=proxy_guard(options))
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
        yield f"http://{host}:{port}"
        server.shutdown()
        nursery.cancel_scope.cancel()
    await app.env.client.aclose()


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
