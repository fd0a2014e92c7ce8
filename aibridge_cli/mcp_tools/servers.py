"""Live MCP servers, through the official ``mcp`` SDK, run by ``serve``.

Theory of operation: each ``McpServer`` is one task that loops: connect (stdio: start the
command; URL: streamable HTTP), ``initialize`` within ``connect_timeout``, list the tools,
then serve calls until the connection is lost. A lost connection shows as a call or a
ping failing (an idle server is pinged every ``PING_INTERVAL`` seconds, so one that died
between calls is found) or as anything the SDK's tasks raise; the task then leaves the
SDK's context (which stops a stdio server: stdin closed, then SIGTERM, SIGKILL), waits its
backoff (1 s doubling to 30 s, back to 1 s after a good start) and starts again. While it
is not ``ready`` its tools are not offered and a call already in flight to it ends as a
tool error: the agentic loop goes on. A ``notifications/tools/list_changed`` makes it
list again.

The SDK is built on anyio and runs on trio as it is (both transports were checked under
``trio.run`` with mcp 2.3.0), so the servers live in a nursery of ``serve_proxy`` and
stop when it is cancelled.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal

import trio

from ..child_env import tool_environment
from ..errors import ConfigError
from ..tools import InjectedTool, McpOrigin, ToolOutcome
from .config import McpServerSpec, offered_name
from .results import outcome_from_result, server_down, timed_out

try:
    import httpx2
    import mcp_types
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError
except ImportError:  # pragma: no cover - the extra is in the test install
    raise ConfigError(
        "[[mcp]] servers need the mcp extra: pip install 'aibridge-cli[mcp]'"
    ) from None

log = logging.getLogger("aibridge.mcp")

PING_INTERVAL = 15.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# The streamable-HTTP client's own timeouts; each call is bounded by the server's timeout.
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)

ServerState = Literal["starting", "ready", "down"]


class McpServer:
    """One configured MCP server, restarted when it dies; see the module docstring."""

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self.state: ServerState = "starting"
        self.error: str | None = None
        self.restarts = 0
        self.tried = trio.Event()  # set once the first start has worked or failed
        self._client: Client | None = None
        self._tools: list[InjectedTool] = []
        self._lost = trio.Event()
        self._relist = trio.Event()

    def tools(self) -> list[InjectedTool]:
        return list(self._tools) if self.state == "ready" else []

    def status(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "transport": self.spec.transport,
            "target": self.spec.target,
            "state": self.state,
            "error": self.error,
            "restarts": self.restarts,
            "tools": [tool.name for tool in self.tools()],
        }

    async def run(self) -> None:
        """Keep the server connected until cancelled."""
        delay = BACKOFF_FIRST
        while True:
            try:
                await self._connected()
                delay = BACKOFF_FIRST
                self.error = "connection lost"
            except Exception as exc:  # whatever a transport raised: name it, start again
                self.error = _describe(exc)
            self.state = "down"
            if self.tried.is_set():  # a failed first start is reported by serve
                log.warning(
                    "mcp server %s down (%s): retry in %g s", self.spec.name, self.error, delay
                )
            self.tried.set()
            await trio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            self.restarts += 1
            self.state = "starting"

    async def _connected(self) -> None:
        """One connection, from ``initialize`` until it is lost."""
        self._lost, self._relist = trio.Event(), trio.Event()
        with trio.CancelScope(deadline=trio.current_time() + self.spec.connect_timeout) as start:
            async with self._open() as client:
                await self._list(client)
                start.deadline = math.inf
                self._client, self.state, self.error = client, "ready", None
                self.tried.set()
                log.info("mcp server %s ready: %d tools", self.spec.name, len(self._tools))
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._watch, client)
                        await self._lost.wait()
                        nursery.cancel_scope.cancel()
                finally:
                    self._client, self.state = None, "down"
        if start.cancelled_caught:
            raise TimeoutError(f"no answer to initialize in {self.spec.connect_timeout:g} s")

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Client]:
        spec = self.spec
        # "legacy" is the initialize handshake every MCP server answers (the SDK's "auto"
        # probes the 2026 discovery first); no response cache, so a re-list is fresh.
        options: dict[str, Any] = {
            "message_handler": self._on_message,
            "cache": None,
            "mode": "legacy",
        }
        if spec.command is not None:
            params = StdioServerParameters(
                command=spec.command[0], args=list(spec.command[1:]), env=tool_environment(spec.env)
            )
            async with Client(params, **options) as client:
                yield client
            return
        assert spec.url is not None
        async with (
            httpx2.AsyncClient(headers=spec.http_headers(), timeout=HTTP_TIMEOUT) as http,
            Client(streamable_http_client(spec.url, http_client=http), **options) as client,
        ):
            yield client

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._relist.set()  # listed by _watch: the SDK's reader must not wait on a request

    async def _list(self, client: Client) -> None:
        with trio.fail_after(self.spec.timeout):
            listing = await client.list_tools()
        tools = []
        for tool in listing.tools:
            if self.spec.offers(tool.name):
                tools.append(
                    InjectedTool(
                        name=offered_name(self.spec.name, tool.name),
                        description=tool.description or "",
                        input_schema=dict(tool.input_schema),
                        timeout=self.spec.timeout,
                        mcp=McpOrigin(self.spec.name, tool.name),
                        call=partial(self.call, tool.name),
                    )
                )
        self._tools = tools

    async def _watch(self, client: Client) -> None:
        """List again on ``list_changed``; ping while idle, so a dead server is noticed."""
        while True:
            with trio.move_on_after(PING_INTERVAL):
                await self._relist.wait()
            try:
                if self._relist.is_set():
                    self._relist = trio.Event()
                    await self._list(client)
                else:
                    with trio.fail_after(self.spec.timeout):
                        await client.send_ping()
            except Exception as exc:  # any failure here means the session is unusable
                self.error = _describe(exc)
                self._lost.set()
                return

    async def call(self, tool: str, arguments: Any) -> ToolOutcome:
        """Call ``tool``; every failure is a tool error for the model, never an exception."""
        # this connection's own event: a late failure must not end a newer connection
        client, lost, name = self._client, self._lost, self.spec.name
        limit = self.spec.timeout
        if not isinstance(arguments, dict):
            arguments = {}  # MCP takes an object; the model sent something else
        if client is None:
            return ToolOutcome(f"mcp server {name} is {self.state}: {tool} was not called", True)
        try:
            with trio.fail_after(limit):
                result = await client.call_tool(tool, arguments)
        except trio.TooSlowError:
            return timed_out(name, tool, limit)
        except MCPError as exc:
            if exc.error.code == mcp_types.CONNECTION_CLOSED:
                lost.set()
                return server_down(name, tool)
            return ToolOutcome(f"mcp server {name}: {tool} failed: {exc.error.message}", True)
        except Exception as exc:  # a transport failure: the connection is no good any more
            lost.set()
            return ToolOutcome(f"mcp server {name} failed during {tool}: {_describe(exc)}", True)
        return outcome_from_result(result.model_dump(by_alias=True, mode="json", exclude_none=True))


def _describe(exc: BaseException) -> str:
    """One line for a failure, looking inside the exception groups anyio's tasks raise."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class McpServers:
    """The configured MCP servers as the proxy sees them (``tools.ToolServers``)."""

    def __init__(self, specs: tuple[McpServerSpec, ...]) -> None:
        for spec in specs:
            if spec.url is not None:
                spec.http_headers()  # a missing bearer variable is a config error, now
        self.servers = [McpServer(spec) for spec in specs]

    def tools(self) -> list[InjectedTool]:
        return [tool for server in self.servers for tool in server.tools()]

    def status(self) -> list[dict[str, Any]]:
        return [server.status() for server in self.servers]

    async def serve(
        self,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run every server; started, with those whose first start failed, once each has
        answered ``initialize`` or failed to."""
        async with trio.open_nursery() as nursery:
            for server in self.servers:
                nursery.start_soon(server.run)
            for server in self.servers:
                await server.tried.wait()
            task_status.started(
                [f"{s.spec.name}: {s.error}" for s in self.servers if s.state != "ready"]
            )
