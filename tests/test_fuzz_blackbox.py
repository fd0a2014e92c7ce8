"""Black-box mode over real loopback sockets against an in-process proxy."""

from __future__ import annotations

import socket

import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.fuzz.blackbox import BlackBoxSettings, _iterate
from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.tools import ToolSet, tool_from_mapping

SEED_CASE = "anthropic/rate-limit-after-tool-turn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_eager_proxy_passes_black_box_iterations(nursery: trio.Nursery) -> None:
    scenarios = builtin(SEED_CASE)
    upstream_port = free_port()
    tools = ToolSet.of(tool_from_mapping(t, "tool") for t in scenarios[0].to_json()["tools"])
    app = build_app(
        ServeOptions(
            anthropic_base_url=f"http://127.0.0.1:{upstream_port}",
            anthropic_keys=["sk-ant-test-key-0000", "sk-ant-test-key-1111"],
        ),
        tools=tools,
    )
    server = Server(app)
    host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    settings = BlackBoxSettings(f"http://{host}:{port}", upstream_port, scenarios, 5, 12)
    outcomes = await _iterate(settings)
    assert len(outcomes) == 12
    assert [o.violations for o in outcomes if o.violations] == []
    server.shutdown()
    await app.env.client.aclose()
