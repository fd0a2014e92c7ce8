"""Time to the first text delta, with and without injected tools, for every API and
transport: Anthropic Messages, Chat Completions and Responses over HTTP, and Responses
over WebSocket mode.

The upstream is the scripted one, in this process, answering every request with a text
answer of 10 deltas 0.3 s apart (its opening events at once, the first delta right after
them). ``aibridge serve`` runs twice beside it, once bare and once with ``--tools`` (one
canned tool, offered to every request and never called), and each round asks every path
once per target, interleaved: direct (the upstream itself), bare, with tools. The figure
is the time from the request's first byte sent to the first delta read by the client.
Before #27, Responses with tools held every event to the upstream's end (about 3 s here).

    python bench/first_delta.py [--rounds 5] [--baseline DIR]

``--baseline DIR`` adds the two proxies of the ``aibridge_cli`` found in DIR (an older tree).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

from aibridge_cli.fakes.anthropic_replies import message_end, message_start, text_block
from aibridge_cli.fakes.openai_replies import chunk, message_item
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest
from aibridge_cli.proxy.server import Server
from aibridge_cli.proxy.ws_upstream import Refused, WebSocketDialer
from aibridge_cli.sse import encode_event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import open_serve, serve_argv

DELTAS = 10
GAP = 0.3
TOOLS_TOML = """\
[[tool]]
name = "bmcp_bench"
description = "A tool the model never calls"
input_schema = { type = "object", properties = {} }
result = "unused"
"""


def _played(events: list[tuple[str | None, Any]], opening: int) -> Reply:
    """``events`` as one SSE reply: the first ``opening`` events and the first delta at
    once, then a delta every ``GAP`` seconds."""
    chunks = [encode_event(n, d if isinstance(d, str) else json.dumps(d)) for n, d in events]
    delays = [0.0] * (opening + 1) + [GAP] * (DELTAS - 1)
    return Reply(200, [("content-type", "text/event-stream")], chunks, delays)


def anthropic_answer() -> Reply:
    parts = [f"word{i} " for i in range(DELTAS)]
    events: list[tuple[str | None, Any]] = [
        *message_start(),
        *text_block(0, *parts),
        *message_end("end_turn", DELTAS),
    ]
    return _played(events, 2)  # message_start, content_block_start


def chat_answer() -> Reply:
    events: list[tuple[str | None, Any]] = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f"word{i} "}) for i in range(DELTAS)]
    usage = {"prompt_tokens": 5, "completion_tokens": DELTAS, "total_tokens": 5 + DELTAS}
    events += [chunk({}, "stop", usage=usage), (None, "[DONE]")]
    return _played(events, 1)


def responses_answer(tools: list[Any]) -> Reply:
    text = "".join(f"word{i} " for i in range(DELTAS))
    item = message_item("msg_1", text)
    events: list[tuple[str | None, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, **fields, "sequence_number": len(events)}))

    def response(status: str, output: list[Any]) -> dict[str, Any]:
        return {
            "id": "resp_1",
            "object": "response",
            "status": status,
            "model": "gpt-x",
            "output": output,
            "tools": tools,  # a real upstream echoes the request's tools
            "usage": None,
        }

    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    add("response.created", response=response("in_progress", []))
    add("response.in_progress", response=response("in_progress", []))
    add("response.output_item.added", output_index=0, item={**item, "content": []})
    add("response.content_part.added", **at, part={"type": "output_text", "text": ""})
    for i in range(DELTAS):
        add("response.output_text.delta", **at, delta=f"word{i} ")
    add("response.output_text.done", **at, text=text)
    add("response.output_item.done", output_index=0, item=item)
    add("response.completed", response=response("completed", [item]))
    return _played(events, 4)


def answer(seen: SeenRequest, index: int) -> Reply:
    if seen.path.endswith("/messages"):
        return anthropic_answer()
    if seen.path.endswith("/chat/completions"):
        return chat_answer()
    body = json.loads(seen.body) if seen.body else {}
    return responses_answer(body.get("tools") or [])


MARKER = "word0"  # the first delta's text: no event before it holds it
PATHS = {
    "anthropic": ("/v1/messages", "/anthropic/v1/messages"),
    "openai-chat": ("/v1/chat/completions", "/openai/v1/chat/completions"),
    "openai-responses": ("/v1/responses", "/openai/v1/responses"),
}


def request_body(api: str) -> dict[str, Any]:
    if api == "anthropic":
        return {"model": "m", "max_tokens": 50, "stream": True, "messages": [_hi()]}
    if api == "openai-chat":
        return {"model": "m", "stream": True, "messages": [_hi()]}
    return {"model": "m", "stream": True, "input": "hi"}


def _hi() -> dict[str, str]:
    return {"role": "user", "content": "hi"}


async def http_first_delta(client: httpx.AsyncClient, url: str, api: str) -> float:
    headers = {"x-api-key": "sk-client", "authorization": "Bearer sk-client"}
    started = trio.current_time()
    async with client.stream("POST", url, json=request_body(api), headers=headers) as response:
        seen = b""
        async for data in response.aiter_raw():
            seen += data
            if MARKER.encode() in seen:
                elapsed = trio.current_time() - started
                break
        else:
            raise SystemExit(f"{url}: no delta in {seen[:300]!r}")
    return elapsed


async def ws_first_delta(url: str) -> float:
    ws_url = httpx.URL(url.replace("http://", "ws://"))
    answer = await WebSocketDialer().dial(ws_url, [("authorization", "Bearer sk-client")])
    if isinstance(answer, Refused):
        raise SystemExit(f"{url}: upgrade refused {answer.status}")
    socket = answer.socket
    try:
        started = trio.current_time()
        await socket.send(json.dumps({"type": "response.create", "model": "m", "input": "hi"}))
        while True:
            message = await socket.receive()
            if MARKER in message:
                elapsed = trio.current_time() - started
                break
        while '"response.completed"' not in message:
            message = await socket.receive()  # the rest, so the next round starts clean
    finally:
        await socket.close()
    return elapsed


async def start_proxy(upstream_url: str, extra: list[str], tree: Path | None) -> tuple[Any, str]:
    # a client leaving after its first delta is a warning: errors only
    argv = serve_argv(upstream_url, upstream_url + "/v1", log_level="error", extra=extra)
    return await open_serve(argv, tree)


Path_ = tuple[str, str]  # (api, transport)
ROWS: list[Path_] = [
    ("anthropic", "http"),
    ("openai-chat", "http"),
    ("openai-responses", "http"),
    ("openai-responses", "websocket"),
]


async def main(rounds: int, baseline: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tools = Path(tmp) / "tools.toml"
        tools.write_text(TOOLS_TOML)
        async with trio.open_nursery() as nursery:
            server = Server(ScriptedUpstream(script=answer))
            host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
            upstream = f"http://{host}:{port}"
            targets: dict[str, tuple[Any, str] | None] = {"direct": None}
            trees: list[tuple[str, Path | None]] = [("", None)]
            if baseline is not None:
                trees.append(("baseline ", baseline))
            for label, tree in trees:
                targets[f"{label}bare"] = await start_proxy(upstream, [], tree)
                targets[f"{label}--tools"] = await start_proxy(
                    upstream, ["--tools", str(tools)], tree
                )
            times: dict[tuple[str, Path_], list[float]] = {}
            try:
                async with httpx.AsyncClient(timeout=30) as client:
                    for _ in range(rounds):
                        for row in ROWS:
                            for name, target in targets.items():
                                times.setdefault((name, row), []).append(
                                    await measure(client, upstream, target, row)
                                )
            finally:
                for target in targets.values():
                    if target is not None:
                        target[0].terminate()
                        await target[0].wait()
                server.shutdown()
    report(rounds, list(targets), times)


async def measure(
    client: httpx.AsyncClient, upstream: str, target: tuple[Any, str] | None, row: Path_
) -> float:
    api, transport = row
    direct, proxied = PATHS[api]
    url = upstream + direct if target is None else target[1] + proxied
    if transport == "websocket":
        return await ws_first_delta(url)
    return await http_first_delta(client, url, api)


def report(rounds: int, names: list[str], times: dict[tuple[str, Path_], list[float]]) -> None:
    load = os.getloadavg()
    print(
        f"time to first delta, median of {rounds} interleaved rounds, ms; upstream: {DELTAS}"
        f" deltas {GAP} s apart; load {load[0]:.1f} {load[1]:.1f} on {os.cpu_count()} cores"
    )
    ms: Callable[[list[float]], str] = lambda v: f"{statistics.median(v) * 1000:.1f}"  # noqa: E731
    print("| api | transport | " + " | ".join(names) + " | --tools minus bare |")
    print("|---|---|" + "---:|" * (len(names) + 1))
    for row in ROWS:
        cells = [ms(times[(n, row)]) for n in names]
        diffs = [t - b for t, b in zip(times[("--tools", row)], times[("bare", row)], strict=True)]
        diff = f"{statistics.median(diffs) * 1000:+.1f}"
        print(f"| {row[0]} | {row[1]} | " + " | ".join(cells) + f" | {diff} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    trio.run(main, args.rounds, args.baseline)
