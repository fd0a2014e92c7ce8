"""A fast fake Anthropic upstream for the benchmarks: raw trio sockets, pre-encoded frames.

``aibridge_cli.fakes.scripted_upstream`` writes each chunk in its own send, which makes the
upstream the bottleneck of a 10,000-event stream. This one builds each reply once and writes it in
blocks of whole frames (``--write-size`` bytes, chunked encoding), so what is measured is
whoever sits between it and the client. Every benchmark target, the direct baseline
included, talks to the same instance.

A request picks its reply: a JSON body with ``"stream": true`` gets a Messages stream,
otherwise a small blocking message. The stream's shape is in the prompt, the one part of a
request every proxy passes on (LiteLLM drops headers it does not know): ``events=N`` events
(default 10,000) and ``delay-ms=D`` before each block (slow-producer runs); see
``harness.messages_body``.

    python bench/upstream.py --port 0        # prints "listening on http://127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aibridge_cli.sse import encode_event

TEXT = "lorem ipsum "
SHAPE = re.compile(r"\b(events|delay-ms)=([0-9.]+)")


def stream_shape(request: dict[str, object]) -> tuple[int, float]:
    """The events and the delay before each block (seconds) a request's prompt asks for."""
    messages = request.get("messages")
    prompt = messages[0].get("content") if isinstance(messages, list) and messages else ""
    asked = dict(SHAPE.findall(prompt if isinstance(prompt, str) else ""))
    return int(asked.get("events", "10000")), float(asked.get("delay-ms", "0")) / 1000


def stream_events(events: int) -> list[tuple[str, dict[str, object]]]:
    """A well-formed Messages stream of exactly ``events`` events (at least 6)."""
    events = max(events, 6)
    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }
    out: list[tuple[str, dict[str, object]]] = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": TEXT},
    }
    out += [("content_block_delta", delta)] * (events - 5)
    out += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": events - 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return out


@functools.lru_cache(maxsize=16)
def stream_blocks(events: int, write_size: int) -> tuple[bytes, ...]:
    """The stream as chunked-encoding blocks of whole frames, about ``write_size`` each."""
    frames = [encode_event(name, json.dumps(data)) for name, data in stream_events(events)]
    blocks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for frame in frames:
        current.append(frame)
        size += len(frame)
        if size >= write_size:
            blocks.append(_chunk(b"".join(current)))
            current, size = [], 0
    if current:
        blocks.append(_chunk(b"".join(current)))
    return tuple(blocks)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"request-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n"
)
MESSAGE = json.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [{"type": "text", "text": "Hello from the bench upstream."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 7},
    }
).encode()
JSON_REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_bench\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(MESSAGE), MESSAGE)
)


async def read_request(
    stream: trio.SocketStream, buffer: bytearray
) -> tuple[dict[str, str], bytes] | None:
    """One request's headers (lower-case names) and body; None when the peer closed."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    del buffer[: end + 4]
    while len(buffer) < length:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data
    body = bytes(buffer[:length])
    del buffer[:length]
    return headers, body


async def serve_connection(stream: trio.SocketStream, write_size: int) -> None:
    buffer = bytearray()
    async with stream:
        try:
            while (request := await read_request(stream, buffer)) is not None:
                _, body = request
                try:
                    asked = json.loads(body)
                except ValueError:
                    asked = {}
                if not isinstance(asked, dict) or asked.get("stream") is not True:
                    await stream.send_all(JSON_REPLY)
                    continue
                events, delay = stream_shape(asked)
                await stream.send_all(SSE_HEAD)
                for block in stream_blocks(events, write_size):
                    if delay:
                        await trio.sleep(delay)
                    await stream.send_all(block)
                await stream.send_all(b"0\r\n\r\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away: that is its right


async def main(port: int, write_size: int) -> None:
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    host, bound = listeners[0].socket.getsockname()[:2]
    print(f"listening on http://{host}:{bound}", flush=True)
    handler = functools.partial(serve_connection, write_size=write_size)
    await trio.serve_listeners(handler, listeners)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--write-size", type=int, default=16384, help="bytes per write")
    args = parser.parse_args()
    try:
        trio.run(main, args.port, args.write_size)
    except KeyboardInterrupt:
        pass
