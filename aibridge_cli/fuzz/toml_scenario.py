"""Scenarios users write: a short TOML file, accepted wherever a built-in name is.

    api = "anthropic"            # anthropic | openai-chat | openai-responses
    stream = true                # the client's kind: streaming (true) or blocking (false)
    keys = 2                     # pool keys the proxy has for this provider
    prompt = "Weather in Paris?" # the client's one user message

    [[tool]]                     # injected tools, as in `aibridge serve --tools`
    name = "get_weather"
    result = "sunny"

    [[turn]]                     # the upstream's answers, one per request, in order
    tool_call = { name = "get_weather", input = { city = "Paris" } }
    [[turn]]
    status = 401                 # an error answer in the API's shape; retry_after = "5"
    [[turn]]
    text = "It is sunny."        # reset_after = N / stall_after = N: cut after N body bytes

    requests = 8                 # a load: 8 clients send the request, gap seconds apart
    gap = 0.5                    # (the turns answer the upstream requests as they come)
    starts = [0, 0, 3]           # or: when each client starts (seconds), instead of a gap
    [breaker]                    # the proxy runs with `serve --breaker` and these settings
    threshold = 3                # interval, open_time (seconds), probes: coder's defaults

    transport = "websocket"      # the Responses API's WebSocket mode: one socket, on which
    responses = 3                # the client sends 3 response.create, each once the previous
                                 # response ended; the turns answer the upstream in order
    fixtures = ["openai-responses-ws/simple", "openai-responses-ws/mid-stream-error"]
                                 # or: built-in WebSocket scenarios played one after another

Each turn is exactly one of ``text``, ``tool_call`` or ``status``; a text or tool-call turn
may add ``reset_after`` or ``stall_after``. The scenario's name is the file's stem.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import BreakerConfig
from ..errors import ConfigError
from ..fakes import anthropic_replies as anthropic
from ..fakes.openai_replies import chat_answer, responses_answer
from ..fakes.scripted_upstream import Fault as WireFault
from ..fakes.scripted_upstream import Reply
from ..tools import read_toml, tool_from_mapping
from .plan import error_body
from .scenario import Exchange, Scenario
from .socket_scenario import as_messages, distinct_ids, responses_setting, socket_of

# The built-in scenarios called a name (``catalog.builtin``), for a socket of fixtures.
Builtins = Callable[[str], list[Scenario]]

APIS = {
    "anthropic": "/anthropic/v1/messages",
    "openai-chat": "/openai/v1/chat/completions",
    "openai-responses": "/openai/v1/responses",
}
_TOP = {"api", "stream", "keys", "prompt", "tool", "turn", "requests", "gap", "starts", "breaker"}
_SOCKET = {"api", "keys", "prompt", "tool", "turn", "transport", "responses", "fixtures"}
_BREAKER = {"threshold", "interval", "open_time", "probes"}
_TURN = {"text", "tool_call", "status", "retry_after", "reset_after", "stall_after"}
_FRAMING = {"content-length", "transfer-encoding"}


def load_toml_scenario(path: Path, builtins: Builtins | None = None) -> Scenario:
    """The scenario in ``path``; every mistake is a ``ConfigError`` naming the file.
    ``builtins``: where a socket's ``fixtures`` are looked up (the catalog)."""
    return scenario_from_toml(path.stem, read_toml(path, "scenario"), str(path), builtins)


def scenario_from_toml(
    name: str, data: Mapping[str, Any], where: str, builtins: Builtins | None = None
) -> Scenario:
    if "transport" in data:
        return _socket(name, data, where, builtins)
    _no_unknown(data, _TOP, where)
    api = data.get("api")
    if api not in APIS:
        raise ConfigError(f"{where}: api must be one of {', '.join(APIS)}, not {api!r}")
    stream, keys = data.get("stream", True), data.get("keys", 1)
    if not isinstance(stream, bool):
        raise ConfigError(f"{where}: stream must be true or false")
    if not isinstance(keys, int) or keys < 0:
        raise ConfigError(f"{where}: keys must be a number of keys (0 or more)")
    turns = data.get("turn")
    if not isinstance(turns, list) or not turns:
        raise ConfigError(f"{where}: give the upstream's answers as [[turn]] tables")
    tools = tuple(
        tool_from_mapping(entry, f"{where}: tool #{i + 1}")
        for i, entry in enumerate(data.get("tool", []))
    )
    exchanges = tuple(
        _exchange(api, turn, stream, f"{where}: turn #{i + 1}") for i, turn in enumerate(turns)
    )
    requests, gap = data.get("requests", 1), data.get("gap", 0.0)
    if not isinstance(requests, int) or isinstance(requests, bool) or not 1 <= requests <= 64:
        raise ConfigError(f"{where}: requests must be a number of requests (1 to 64)")
    if not isinstance(gap, int | float) or isinstance(gap, bool) or not 0 <= gap <= 60:
        raise ConfigError(f"{where}: gap must be seconds between requests (0 to 60)")
    starts = _starts(data.get("starts"), requests, gap, where)
    return Scenario(
        name,
        api,
        APIS[api],
        _request(api, str(data.get("prompt", "Hello.")), stream),
        exchanges,
        tools,
        keys,
        requests=requests,
        gap=float(gap),
        breaker=_breaker(data.get("breaker"), f"{where}: [breaker]"),
        starts=starts,
    )


def _socket(name: str, data: Mapping[str, Any], where: str, builtins: Builtins | None) -> Scenario:
    """A WebSocket scenario: one socket, ``responses`` response.create sent one after
    another, answered by the turns in order; or the built-in ``fixtures`` in sequence."""
    _no_unknown(data, _SOCKET, where)
    if (
        data["transport"] != "websocket"
        or data.get("api", "openai-responses") != "openai-responses"
    ):
        raise ConfigError(
            f'{where}: transport = "websocket" (the only other transport) is the Responses '
            f'API\'s: api = "openai-responses", not {data.get("api")!r}'
        )
    count = responses_setting(data, where)
    fixtures = data.get("fixtures")
    if fixtures is not None:
        if {"turn", "responses", "tool", "prompt"} & set(data):
            raise ConfigError(f"{where}: give either fixtures or turns (with responses), not both")
        if not isinstance(fixtures, list) or not all(isinstance(f, str) for f in fixtures):
            raise ConfigError(f"{where}: fixtures must be a list of built-in scenario names")
        if builtins is None:
            raise ConfigError(f"{where}: fixtures name built-in scenarios; load it as a scenario")
        socket = socket_of(name, [s for fixture in fixtures for s in builtins(fixture)])
        keys = data.get("keys", socket.keys)
        if not isinstance(keys, int) or isinstance(keys, bool) or keys < 0:
            raise ConfigError(f"{where}: keys must be a number of keys (0 or more)")
        return replace(socket, keys=keys)
    plain = {k: v for k, v in data.items() if k not in ("transport", "responses")}
    plain["api"] = "openai-responses"
    http = scenario_from_toml(name, plain, where)
    body = {"type": "response.create", "model": "gpt-x", "input": str(data.get("prompt", "Hello."))}
    create = json.dumps(body).encode()
    return replace(
        http,
        body=create,
        exchanges=distinct_ids([as_messages(x) for x in http.exchanges]),
        transport="websocket",
        creates=(create,) * (count - 1),
    )


def _starts(value: Any, requests: int, gap: float, where: str) -> tuple[float, ...]:
    """Each client's start time: one number (seconds, 0 to 600) per request; not with a gap."""
    if value is None:
        return ()
    numbers = value if isinstance(value, list) else []
    if (
        len(numbers) != requests
        or any(not isinstance(n, int | float) or isinstance(n, bool) for n in numbers)
        or not all(0 <= n <= 600 for n in numbers)
    ):
        raise ConfigError(
            f"{where}: starts must give each of the {requests} requests its start time "
            f"(seconds, 0 to 600), not {value!r}"
        )
    if gap:
        raise ConfigError(f"{where}: give either starts or gap, not both")
    return tuple(float(n) for n in numbers)


def _breaker(table: Any, where: str) -> BreakerConfig | None:
    """The breaker's settings (``serve --breaker``'s); absent: no breaker."""
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    _no_unknown(table, _BREAKER, where)
    default = BreakerConfig()
    counts = {k: table.get(k, getattr(default, k)) for k in ("threshold", "probes")}
    times = {k: table.get(k, getattr(default, k)) for k in ("interval", "open_time")}
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: {name} must be a whole number of at least 1")
    for name, value in times.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
            raise ConfigError(f"{where}: {name} must be a positive number of seconds")
    return BreakerConfig(
        threshold=counts["threshold"],
        interval=float(times["interval"]),
        open_time=float(times["open_time"]),
        probes=counts["probes"],
    )


def _no_unknown(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


def _request(api: str, prompt: str, stream: bool) -> bytes:
    body: dict[str, Any]
    if api == "openai-responses":
        body = {"model": "gpt-x", "stream": stream, "input": prompt}
    else:
        body = {
            "model": "gpt-x",
            "stream": stream,
            "messages": [{"role": "user", "content": prompt}],
        }
        if api == "anthropic":
            body = {**body, "model": "claude-test", "max_tokens": 1024}
    return json.dumps(body).encode()


def _exchange(api: str, turn: Any, stream: bool, where: str) -> Exchange:
    if not isinstance(turn, Mapping):
        raise ConfigError(f"{where}: must be a table")
    _no_unknown(turn, _TURN, where)
    kinds = [k for k in ("text", "tool_call", "status") if k in turn]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one of text, tool_call, status")
    if "status" in turn:
        reply = _error(api, turn, where)
    else:
        reply = _answer(api, turn, stream, where)
    headers = tuple((k.lower(), v) for k, v in reply.headers if k.lower() not in _FRAMING)
    exchange = Exchange(reply.status, headers, tuple(reply.chunks))
    cut = [k for k in ("reset_after", "stall_after") if k in turn]
    if cut:
        at = turn[cut[0]]
        if len(cut) > 1 or "status" in turn or not isinstance(at, int) or at < 0:
            raise ConfigError(
                f"{where}: one of reset_after, stall_after (a byte count) on a text or tool call"
            )
        fault: WireFault = "reset-in-body" if cut[0] == "reset_after" else "stall"
        return Exchange(exchange.status, headers, exchange.chunks, fault, at)
    return exchange


def _error(api: str, turn: Mapping[str, Any], where: str) -> Reply:
    status, retry = turn["status"], turn.get("retry_after")
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ConfigError(f"{where}: status must be an error status (400-599), not {status!r}")
    headers = [("content-type", "application/json")]
    if retry is not None:
        headers.append(("retry-after", str(retry)))
    body = json.dumps(error_body(api, status, f"status {status}")).encode()
    return Reply(status, headers, [body])


def _answer(api: str, turn: Mapping[str, Any], stream: bool, where: str) -> Reply:
    call = None
    if "tool_call" in turn:
        spec = turn["tool_call"]
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ConfigError(f"{where}: tool_call needs a name (and an input table)")
        call = (spec["name"], dict(spec.get("input", {})), "call_1")
    text = None if call is not None else str(turn["text"])
    if api == "openai-chat":
        return chat_answer(text, call, stream=stream)
    if api == "openai-responses":
        return responses_answer(text, call, stream=stream)
    stop = "tool_use" if call else "end_turn"
    if call is not None:
        block = anthropic.tool_block(0, call[0], call[1], "toolu_1")
        content = [{"type": "tool_use", "id": "toolu_1", "name": call[0], "input": call[1]}]
    else:
        block = anthropic.text_block(0, text or "")
        content = [{"type": "text", "text": text or ""}]
    if not stream:
        return anthropic.message(content, stop, 3)
    return anthropic.stream(anthropic.message_start(), block, anthropic.message_end(stop, 3))
