"""Assembling and running the proxy: options in, a listening server out."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import httpcore
import trio

from ..config import BridgeConfig, ServeOptions
from ..errors import ConfigError, McpUnavailable, TargetUnreachable
from ..interception import Recorder
from ..mcp_tools.config import mcp_servers
from ..tools import ToolServers, ToolSet, ToolsFile, load_tools_file
from .breaker import Breakers, Listener, log_transition
from .bridge import Environment, ProviderUpstream, ToolRunner, run_tool
from .chaos import Chaos
from .guard import Guard, exposes_pool
from .keypool import KeyPool
from .metrics import Metrics
from .routes import ROUTES, BridgeApp
from .server import Server
from .target_probe import HEALTH_REQUEST, probe_http
from .upstream_client import make_client
from .ws_upstream import WebSocketDialer

log = logging.getLogger("aibridge.server")

# How long a --target proxy gets to accept a connection before a replay or a black-box
# campaign is called off.
TARGET_CONNECT_TIMEOUT = 5.0


def build_app(
    options: ServeOptions,
    *,
    tools: ToolSet | None = None,
    recorder: Recorder | None = None,
    settle: Callable[[], Awaitable[None]] | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    run_tool: ToolRunner = run_tool,
    wall_clock: Callable[[], float] = time.time,
    trace: Callable[[str], None] | None = None,
    chaos: Chaos | None = None,
    breaker_listeners: Sequence[Listener] = (),
) -> BridgeApp:
    """The proxy app for these options (the upstream client is created here, once). The
    simulation passes its own network backend, tool runner, wall clock and trace, and
    listens to the circuit breakers' decisions; ``settle``: awaited after each response
    (``FixtureWriter.settled``)."""
    servers: ToolServers | None = None
    if tools is None:
        found = load_tools_file(options.tools_path) if options.tools_path else ToolsFile()
        tools = found.tools
        if found.mcp:
            specs = mcp_servers(found)
            # imported only here: the mcp SDK is an extra, and heavy to load
            from ..mcp_tools.servers import McpServers

            servers = McpServers(specs)
    if options.max_iterations < 1:
        raise ConfigError(f"--max-iterations must be at least 1, not {options.max_iterations}")
    network = network_backend or httpcore.TrioBackend()
    upstreams = {
        "anthropic": ProviderUpstream(
            options.anthropic_base_url, KeyPool.from_secrets(list(options.anthropic_keys))
        ),
        "openai": ProviderUpstream(
            options.openai_base_url, KeyPool.from_secrets(list(options.openai_keys)), auth="bearer"
        ),
    }
    metrics = Metrics(upstreams)
    env = Environment(
        client=make_client(options.timeouts, network),
        dialer=WebSocketDialer(network, options.timeouts),
        tools=tools,
        config=BridgeConfig(
            stream_initiation=options.stream_initiation, max_iterations=options.max_iterations
        ),
        run_tool=run_tool,
        wall_clock=wall_clock,
        trace=trace,
        servers=servers,
        chaos=chaos or Chaos(),
        breakers=Breakers(options.breaker, (log_transition, metrics.on_breaker, *breaker_listeners))
        if options.breaker is not None
        else None,
        metrics=metrics,
    )
    return BridgeApp(
        env,
        upstreams,
        recorder=recorder,
        settle=settle,
        redact=tuple(options.redact),
        websocket=options.websocket,
    )


def proxy_guard(options: ServeOptions) -> Guard:
    """The guard in front of the proxy (proxy/guard.py). A ``ConfigError`` when the options
    would serve a key pool beyond loopback to anyone, or allow a malformed host or origin."""
    pooled = bool(options.anthropic_keys or options.openai_keys)
    if exposes_pool(options.host, pooled, options.guard):
        where = options.host or "every interface"
        if not options.guard.insecure_open:
            raise ConfigError(
                f"--host {where} is reachable from other machines and the key pool would be "
                "open to them: give --auth-token (or AIBRIDGE_AUTH_TOKEN) for clients to send, "
                "or --insecure-open if that is what you mean"
            )
        log.warning(
            "serving the key pool on %s without a token (--insecure-open): anyone who can "
            "reach it spends your keys",
            where,
        )
    if "*" in options.guard.allowed_origins:
        # A page cannot know the token, so only a pool without one is open to every page.
        if pooled and not options.guard.auth_token and not options.guard.insecure_open:
            raise ConfigError(
                "--allow-origin '*' would let every web page you open spend the key pool",
                hint="name the pages' origins, give --auth-token, or add --insecure-open "
                "if that is what you mean",
            )
        log.warning(
            "--allow-origin '*': every web page you open may %s",
            "spend your keys" if pooled else "use this proxy",
        )
    # JSON only on the intercepted APIs (ROUTES); the pass-through takes any body.
    return Guard(options.guard, json_routes=ROUTES)


async def serve_proxy(
    app: BridgeApp,
    options: ServeOptions,
    *,
    guard: Guard | None = None,
    announce: bool = True,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the proxy until SIGINT/SIGTERM, then shut down gracefully. ``guard``: the one
    :func:`proxy_guard` makes of ``options`` unless given.

    The MCP servers, if any, live in a nursery of this run: they start before the proxy
    listens and are stopped (cancelled) once it has drained its requests.
    """
    if guard is None:
        guard = proxy_guard(options)
    failed: list[str] = []
    async with app.env.client, trio.open_nursery() as tool_servers:
        if app.env.servers is not None:
            failed = await tool_servers.start(app.env.servers.serve)
            if not options.mcp_required:
                for line in failed:
                    log.warning("mcp server %s: serving without its tools", line)
        if not (failed and options.mcp_required):
            server = Server(app, options.server, guard)
            await serve_until_signalled(
                server, options.host, options.port, announce=announce, task_status=task_status
            )
        tool_servers.cancel_scope.cancel()
    if failed and options.mcp_required:
        # raised out here: inside the nursery it would come wrapped in an exception group
        raise McpUnavailable(f"mcp server {failed[0]} (--mcp-required)")


async def serve_until_signalled(
    server: Server,
    host: str,
    port: int,
    *,
    announce: bool = True,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on ``host:port`` until SIGINT/SIGTERM; the first signal shuts down gracefully
    (the server's grace period), a second one ends the grace period at once (cut streams
    still get their error event), a third stops without a word. With ``announce``, print the
    one line ``listening on http://HOST:PORT`` on stdout when ready."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, server)
        bound_host, bound_port = await nursery.start(server.serve_tcp, host, port)
        if announce:
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            sys.stdout.write(f"listening on http://{shown}:{bound_port}\n")
            sys.stdout.flush()
        task_status.started((bound_host, bound_port))
        await server.stopped.wait()
        log.info("stopped")
        nursery.cancel_scope.cancel()


async def _watch_signals(server: Server) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if server.grace_deadline <= trio.current_time():
                log.warning("third signal: stopping without a word")
                raise KeyboardInterrupt  # the cut itself is stuck: stop now
            if server.shutting_down:
                # Cut now, as the grace period's end would: cut streams get their error
                # event (bounded by SHUTDOWN_NOTICE_TIMEOUT), then the server stops.
                log.warning("second signal: cutting in-flight requests now")
                server.end_grace()
                continue
            busy = sum(1 for c in server.connections if not c.idle)
            log.info(
                "%s: shutting down; %d request(s) in flight get %g s to finish",
                signal.Signals(signum).name,
                busy,
                server.config.grace_period,
            )
            server.shutdown()


async def check_target(url: str) -> None:
    """Fail at once, not with every request, when nothing listens at the proxy ``url``
    (replay's --target) or what listens there does not speak HTTP."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with trio.fail_after(TARGET_CONNECT_TIMEOUT):
            stream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        why = "timed out" if isinstance(exc, trio.TooSlowError) else exc.strerror or str(exc)
        raise TargetUnreachable(
            f"cannot reach --target {url} ({why})",
            hint="start the proxy there first (or leave out --target)",
        ) from None
    async with stream:
        authority = f"{host}:{port}" if parts.port else host
        problem = await probe_http(
            stream, HEALTH_REQUEST.format(authority=authority), TARGET_CONNECT_TIMEOUT
        )
    if problem is not None:
        raise TargetUnreachable(
            f"--target {url} {problem}",
            hint="is the proxy on that port? check --target (or leave it out)",
        )
