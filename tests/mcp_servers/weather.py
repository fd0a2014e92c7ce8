"""An MCP server for the tests, written with the ``mcp`` SDK.

``python weather.py stdio`` serves over stdin/stdout; ``python weather.py http`` serves
streamable HTTP on a loopback port it picks and prints as ``port N``. Every call's input
is appended as a JSON line to the file named by ``MCP_CALL_LOG``, so a test sees what
the tool received. ``MCP_SILENT=1`` makes a server that never answers ``initialize``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("weather", log_level="ERROR")


def _log(tool: str, arguments: dict[str, Any]) -> None:
    path = os.environ.get("MCP_CALL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"tool": tool, "input": arguments}) + "\n")


@server.tool()
def forecast(city: str) -> str:
    """The weather in a city."""
    _log("forecast", {"city": city})
    return f"sunny, 21 C in {city}"


@server.tool()
def humidity(city: str) -> dict[str, Any]:
    """Humidity as structured content."""
    _log("humidity", {"city": city})
    return {"city": city, "percent": 40}


@server.tool(structured_output=False)
def radar(city: str) -> list[Any]:
    """A radar picture."""
    _log("radar", {"city": city})
    return [f"radar for {city}", Image(data=b"\x89PNG\r\n\x1a\nfake", format="png")]


@server.tool()
def broken(city: str) -> str:
    """Always fails: an isError result."""
    _log("broken", {"city": city})
    raise ToolError(f"no station near {city}")


@server.tool()
def secret_admin(city: str) -> str:
    """Denied by the tests' filters."""
    _log("secret_admin", {"city": city})
    return "should never be offered"


@server.tool()
def crash(city: str) -> str:
    """The server dies mid-call."""
    _log("crash", {"city": city})
    os._exit(3)


def tide(city: str) -> str:
    """Tide times; offered only after ``grow`` ran."""
    _log("tide", {"city": city})
    return f"high tide at noon in {city}"


@server.tool()
async def grow(city: str, ctx: Context) -> str:
    """Adds the ``tide`` tool and says so with notifications/tools/list_changed."""
    _log("grow", {"city": city})
    server.add_tool(tide)
    await ctx.session.send_tool_list_changed()
    return "tide added"


def _serve_http() -> None:
    import anyio
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    print(f"port {sock.getsockname()[1]}", flush=True)
    app = server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    anyio.run(uvicorn.Server(config).serve, [sock])


if __name__ == "__main__":
    if os.environ.get("MCP_SILENT"):
        time.sleep(3600)  # reads nothing, answers nothing
    elif sys.argv[1:] == ["http"]:
        _serve_http()
    else:
        server.run()
