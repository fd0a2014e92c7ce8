"""Hand-written reproductions of what `aibridge fuzz --target` found in LiteLLM's
model-routed routes (``/v1/chat/completions`` and ``/v1/messages`` with model aliases).

Each case is an upstream written out by hand (raw bytes on a socket, no aibridge code:
each answer closes its connection) and one request through LiteLLM; the script prints
what the client got and what the upstream saw. LiteLLM must run with a config whose
``gpt-fuzz`` model is ``openai/gpt-4.1`` at ``http://127.0.0.1:PORT/v1`` and whose
``claude-fuzz`` is ``anthropic/claude-sonnet-4-5`` at ``http://127.0.0.1:PORT`` (telemetry
off, as bench/README.md says):

    model_list:
      - model_name: gpt-fuzz
        litellm_params: {model: openai/gpt-4.1, api_base: "http://127.0.0.1:18811/v1",
                         api_key: sk-upstream-0000}
      - model_name: claude-fuzz
        litellm_params: {model: anthropic/claude-sonnet-4-5, api_base: "http://127.0.0.1:18811",
                         api_key: sk-upstream-0000}

    LITELLM_MASTER_KEY=sk-fuzz-master-0000000000000000 litellm --config config.yaml \\
        --host 127.0.0.1 --port 18810
    python bench/litellm_routed_findings.py --litellm http://127.0.0.1:18810 --port 18811 \\
        --master-key sk-fuzz-master-0000000000000000
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import httpx

CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4.1",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},'
    b'"finish_reason":null}]}\n\n'
)
ERROR_429 = b'{"error":{"message":"slow down","type":"requests","param":null,"code":null}}'
MESSAGE = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":'
    b'[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":1,"output_tokens":1}}'
)
ERROR_500 = b'{"error":{"message":"boom","type":"server_error","param":null,"code":null}}'


def response(status: str, headers: list[str], body: bytes, chunked: bool = False) -> bytes:
    """One whole HTTP/1.1 answer that closes its connection."""
    framing = "transfer-encoding: chunked" if chunked else f"content-length: {len(body)}"
    head = "\r\n".join([f"HTTP/1.1 {status}", *headers, framing, "connection: close", "", ""])
    if chunked:
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    return head.encode() + body


class Upstream:
    """Answers each request with the next of ``answers`` (the last one again when they
    run out) and notes when each request came."""

    def __init__(self, port: int, answers: list[bytes]) -> None:
        self.answers = answers
        self.seen: list[float] = []
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.stopped = False
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.seen.append(time.monotonic())
                n = min(len(self.seen), len(self.answers)) - 1
                conn.sendall(self.answers[n])

    def stop(self) -> None:
        self.stopped = True
        self.thread.join()
        self.listener.close()


def ask(url: str, key: str, stream: bool, model: str = "gpt-fuzz") -> None:
    messages = [{"role": "user", "content": "hi"}]
    body = {"model": model, "max_tokens": 16, "stream": stream, "messages": messages}
    headers = {"authorization": f"Bearer {key}"}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as answer:
        data = b"".join(answer.iter_raw())
        shown = {k: v for k, v in answer.headers.items() if "request-id" in k or "retry" in k}
        print(f"  client got: {answer.status_code}, headers {shown}")
        print("  " + data.decode(errors="replace").replace("\n", "\n  ")[-300:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--litellm", default="http://127.0.0.1:18810")
    parser.add_argument("--port", type=int, default=18811)
    parser.add_argument("--master-key", required=True)
    args = parser.parse_args()
    url = args.litellm + "/v1/chat/completions"
    sse = ["content-type: text/event-stream", "x-request-id: req_fixture_1"]

    print("1. the upstream's event stream ends cleanly at once: no chunk, no [DONE]")
    upstream = Upstream(args.port, [response("200 OK", sse, b"", chunked=True)])
    ask(url, args.master_key, stream=True)
    upstream.stop()

    print("2. a whole answer with x-request-id: req_fixture_1")
    upstream = Upstream(args.port, [response("200 OK", sse, CHUNK + b"data: [DONE]\n\n", True)])
    ask(url, args.master_key, stream=True)
    upstream.stop()

    print("3. a 429 with Retry-After: 7")
    limited = ["content-type: application/json", "retry-after: 7", "x-request-id: req_2"]
    upstream = Upstream(args.port, [response("429 Too Many Requests", limited, ERROR_429)])
    ask(url, args.master_key, stream=False)
    print(f"  the upstream got {len(upstream.seen)} request(s)")
    upstream.stop()

    print("4. a 500 to every request; the client hangs up 0.1 s after sending its own")
    failing = ["content-type: application/json"]
    upstream = Upstream(args.port, [response("500 Internal Server Error", failing, ERROR_500)])
    body = b'{"model":"gpt-fuzz","messages":[{"role":"user","content":"hi"}]}'
    host = args.litellm.split("//", 1)[1]
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {args.master_key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    client = socket.create_connection(tuple(host.rsplit(":", 1)))  # type: ignore[arg-type]
    client.sendall(request)
    time.sleep(0.1)
    client.close()
    left = time.monotonic()
    time.sleep(5)
    after = [round(t - left, 2) for t in upstream.seen if t > left]
    print(f"  the upstream got {len(upstream.seen)} request(s); after the hang-up, at +{after} s")
    upstream.stop()

    print("5. Messages (/v1/messages, model claude-fuzz), blocking, with request-id: req_3")
    answer = ["content-type: application/json", "request-id: req_3"]
    upstream = Upstream(args.port, [response("200 OK", answer, MESSAGE)])
    ask(args.litellm + "/v1/messages", args.master_key, stream=False, model="claude-fuzz")
    upstream.stop()


if __name__ == "__main__":
    main()
