"""Hand-written reproductions of what `aibridge fuzz --target` found in LiteLLM's proxy.

Each case is an upstream written out by hand (raw bytes on a socket, no aibridge code) and
one request through LiteLLM's pass-through route; the script prints what the client got.
LiteLLM (the `bench` extra) must run with its pass-through routes pointed here:

    ANTHROPIC_API_BASE=http://127.0.0.1:18901 ANTHROPIC_API_KEY=sk-x \\
    OPENAI_API_BASE=http://127.0.0.1:18901 OPENAI_API_KEY=sk-x \\
        litellm --config config.yaml --port 18900      # config.yaml: model_list: []
    python bench/litellm_findings.py --litellm http://127.0.0.1:18900 --port 18901 \\
        [--master-key KEY]      # LITELLM_MASTER_KEY, which newer releases require
"""

from __future__ import annotations

import argparse
import json
import socket
import threading

import httpx

ANTHROPIC_SSE = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":'
    b'"message","role":"assistant","model":"m","content":[],"stop_reason":null,'
    b'"usage":{"input_tokens":1,"output_tokens":1}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hello"}}\n\n',
]
CHAT_SSE = [
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},'
    b'"finish_reason":null}]}\n\n',
]
ANTHROPIC_JSON = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"m","content":'
    b'[{"type":"text","text":"Hello there"}],"stop_reason":"end_turn","usage":'
    b'{"input_tokens":1,"output_tokens":2}}'
)


def serve_once(port: int, head: bytes, parts: list[bytes]) -> threading.Thread:
    """Answer one request with ``head`` and chunked ``parts``, then reset the connection."""
    listener = socket.create_server(("127.0.0.1", port))

    def run() -> None:
        conn, _ = listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head_end = data.index(b"\r\n\r\n") + 4
        length = next(
            int(line.split(b":", 1)[1])
            for line in data[:head_end].split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(data) < head_end + length:
            data += conn.recv(65536)
        conn.sendall(head)
        for part in parts:
            conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        # No terminating chunk: a reset mid-body. SO_LINGER 0 makes close() send RST.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()
        listener.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def head(content_type: str) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
    ).encode()


def ask(litellm: str, path: str, body: dict[str, object], key: str | None = None) -> None:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.stream(
            "POST", litellm + path, json=body, headers=headers, timeout=30
        ) as response:
            data = b"".join(response.iter_raw())
            print(f"  client got: {response.status_code}, {len(data)} bytes, the message ended")
            print("  " + data.decode(errors="replace").replace("\n", "\n  ")[-400:])
    except httpx.HTTPError as exc:
        print(f"  client got an error: {type(exc).__name__}: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--litellm", default="http://127.0.0.1:18900")
    parser.add_argument("--port", type=int, default=18901)
    parser.add_argument("--master-key", help="LiteLLM's master key (newer releases ask for it)")
    args = parser.parse_args()
    messages = [{"role": "user", "content": "hi"}]
    anthropic = {"model": "m", "max_tokens": 16, "messages": messages}
    key = args.master_key

    print("0. Anthropic, blocking, no key at all (no upstream is reached)")
    ask(args.litellm, "/anthropic/v1/messages", anthropic)

    print("1. Anthropic, blocking: the upstream resets after 40 bytes of its JSON body")
    thread = serve_once(args.port, head("application/json"), [ANTHROPIC_JSON[:40]])
    ask(args.litellm, "/anthropic/v1/messages", anthropic, key)
    thread.join()

    print("2. Anthropic, streaming: the upstream resets after three events")
    thread = serve_once(args.port, head("text/event-stream"), ANTHROPIC_SSE)
    ask(args.litellm, "/anthropic/v1/messages", {**anthropic, "stream": True}, key)
    thread.join()

    print("3. OpenAI Chat, streaming: the upstream resets after one chunk")
    thread = serve_once(args.port, head("text/event-stream"), CHAT_SSE)
    chat = {"model": "m", "stream": True, "messages": messages}
    ask(args.litellm, "/openai/v1/chat/completions", chat, key)
    thread.join()
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
