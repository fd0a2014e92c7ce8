"""A WebSocket with several responses: Codex's way of using one socket for a whole session.

Codex CLI keeps one socket open and sends its next ``response.create`` once the previous
response ended (its terminal event, or an error). Such a scenario holds one
``response.create`` per response (``Scenario.body``, then ``Scenario.creates``) and the
upstream's exchanges in the order the upstream is asked, across responses: a tool turn's
continuation takes the next exchange, and a response that failed before its continuation
leaves that exchange to the next response, as a real upstream answers whatever comes.

Every exchange's ids (response, item) are made its own, so that the ``ws-isolation``
oracle can tell which upstream answer a client's event came from even when one fixture is
played twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from ..providers.openai_responses_ws import frame_messages
from .scenario import Exchange, Scenario

MAX_RESPONSES = 16


def message_ids(message: str | bytes) -> list[str]:
    """The ids a Responses event names: its response's, its item's, ``item_id``, and the
    ids of the items in its response's output."""
    try:
        event = json.loads(message)
    except ValueError:
        return []
    if not isinstance(event, dict):
        return []
    found: list[Any] = []
    response, item = event.get("response"), event.get("item")
    if isinstance(response, dict):
        found.append(response.get("id"))
        output = response.get("output")
        if isinstance(output, list):
            found += [entry.get("id") for entry in output if isinstance(entry, dict)]
    if isinstance(item, dict):
        found.append(item.get("id"))
    found.append(event.get("item_id"))
    return [value for value in found if isinstance(value, str) and value]


def _ids(exchange: Exchange) -> set[str]:
    return {i for message in exchange.chunks for i in message_ids(message)}


def distinct_ids(exchanges: Sequence[Exchange]) -> tuple[Exchange, ...]:
    """``exchanges`` with every id an earlier exchange used renamed (``-N`` added, N the
    exchange's index): the same answer played twice is two answers a client can tell apart."""
    seen: set[str] = set()
    out = []
    for n, exchange in enumerate(exchanges):
        ids = _ids(exchange)
        clash = sorted(ids & seen)  # replaced quoted, whole: no id is cut inside another
        seen |= ids
        if not clash:
            out.append(exchange)
            continue
        chunks = []
        for chunk in exchange.chunks:
            for old in clash:
                chunk = chunk.replace(f'"{old}"'.encode(), f'"{old}-{n}"'.encode())
            chunks.append(chunk)
        seen |= {f"{old}-{n}" for old in clash}
        out.append(replace(exchange, chunks=tuple(chunks)))
    return tuple(out)


def socket_of(name: str, parts: Sequence[Scenario]) -> Scenario:
    """One socket playing ``parts`` (one-response WebSocket scenarios) one after another:
    each one's ``response.create``, then its exchanges; the tools of all, the most keys."""
    if not parts:
        raise ConfigError(f"{name}: a socket needs at least one response")
    for part in parts:
        if part.transport != "websocket" or part.creates or part.requests > 1:
            raise ConfigError(f"{name}: {part.name} is not a WebSocket scenario of one response")
    tools = {tool.name: tool for part in parts for tool in part.tools}
    first = parts[0]
    return replace(
        first,
        name=name,
        exchanges=distinct_ids([x for part in parts for x in part.exchanges]),
        tools=tuple(tools.values()),
        keys=max(part.keys for part in parts),
        creates=tuple(part.body for part in parts[1:]),
    )


def responses_setting(data: Mapping[str, Any], where: str) -> int:
    """A TOML scenario's ``responses``: how many ``response.create`` its socket sends."""
    count = data.get("responses", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_RESPONSES:
        raise ConfigError(
            f"{where}: responses must be a number of responses (1 to {MAX_RESPONSES})"
        )
    return count


def as_messages(exchange: Exchange) -> Exchange:
    """A TOML turn's answer (an SSE reply, or an error status) as a socket's: each event
    one message; an error status stays the refusal it is (on the upgrade, or an ``error``
    event on an open socket)."""
    if exchange.status >= 400:
        return exchange
    messages = tuple(m.encode() for m in frame_messages(exchange.body))
    return replace(exchange, status=101, headers=(), chunks=messages)
