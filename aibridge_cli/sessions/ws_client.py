"""A one-shot WebSocket client for the sessions code: one ``response.create`` on a socket
of its own, its answer read to the response's end (replay, scripted sessions)."""

from __future__ import annotations

import httpx

from ..providers.openai_responses_ws import is_last_message, sse_view
from ..proxy.websocket import WebSocketClosed
from ..proxy.ws_upstream import Refused, WebSocketDialer


async def websocket_exchange(
    url: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int | None, list[tuple[str, str]], bytes]:
    """One ``response.create`` sent on a socket of its own: the answer's
    messages, up to the response's end, as their SSE view (a refused upgrade as itself)."""
    upgrade = [(k, v) for k, v in headers if not k.lower().startswith("sec-websocket-")]
    answer = await WebSocketDialer().dial(httpx.URL(url), upgrade)
    if isinstance(answer, Refused):
        return answer.status, answer.headers, answer.body
    socket = answer.socket
    messages: list[str] = []
    try:
        await socket.send(body.decode("utf-8", "replace"))
        while not messages or not is_last_message(messages[-1]):
            messages.append(await socket.receive())
    except WebSocketClosed:
        pass  # an answer cut short is compared as far as it went
    finally:
        await socket.close()
    return sse_view(messages)
