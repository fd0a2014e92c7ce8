"""The Anthropic Messages API: event grammar, agentic turns and error shape, sans-io.

Theory of operation, streaming: the client must see one message however many upstream
iterations the loop runs. So ``message_start`` goes out for the first iteration only;
content blocks keep contiguous client indexes (0, 1, 2, ...) across iterations; blocks of
an injected ``tool_use`` are swallowed whole; and an iteration that ends in injected calls
alone has its ``message_delta`` (``stop_reason: tool_use``) and ``message_stop`` swallowed
too. The last iteration's ``message_delta`` carries usage summed over every iteration.
Every block is also rebuilt from its deltas, so the assistant turn can be sent back
upstream with the tool results.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

from ..errors import ErrorKind, RequestError, UpstreamBroken
from ..sse import SSEEvent, encode_event
from ..tools import InjectedTool, ToolOutcome, ToolSet
from .base import ToolCall, dumps, error_cause, next_body, offered_tools, parse_request
from .usage import add_usage, overlay_usage

ERROR_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "overloaded": "overloaded_error",
    "timeout": "api_error",
}


def anthropic_error(kind: ErrorKind, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES[kind], "message": message}}


_FOLD = 256

# The head of a text delta exactly as Anthropic serializes it. The relay reads such an
# event's text with json's own string scanner and passes the event on: ``json.loads`` of
# every event was a fifth of the relay's CPU per event (a quarter of it ``loads``' own
# overhead), the scanner a tenth of that.
_TEXT_DELTA_HEAD = re.compile(
    r'\{"type":"content_block_delta","index":(0|[1-9][0-9]*),"delta":\{"type":"text_delta","text":"'
)


@dataclass
class _Block:
    """One upstream content block of the current iteration."""

    content: dict[str, Any]
    client_index: int | None  # None: an injected tool_use, hidden from the client
    partial_json: list[str] = field(default_factory=list)
    # text and thinking deltas not yet joined into ``content``: adding each delta to a str
    # would copy the whole text every time, quadratic in a long stream; joining every
    # ``_FOLD`` deltas keeps the copying linear and the held small strings few
    pending: dict[str, list[str]] = field(default_factory=dict)

    def apply(self, delta: dict[str, Any]) -> None:
        kind = delta.get("type")
        if kind == "text_delta":
            self.add("text", delta.get("text", ""))
        elif kind == "input_json_delta":
            self.partial_json.append(delta.get("partial_json", ""))
        elif kind == "thinking_delta":
            self.add("thinking", delta.get("thinking", ""))
        elif kind == "signature_delta":
            self.content["signature"] = delta.get("signature", "")
        elif kind == "citations_delta":
            self.content.setdefault("citations", []).append(delta.get("citation"))

    def add(self, key: str, text: str) -> None:
        parts = self.pending.setdefault(key, [])
        parts.append(text)
        if len(parts) >= _FOLD:
            self.joined()

    def joined(self) -> dict[str, Any]:
        """The block's content with every delta so far applied."""
        for key, parts in self.pending.items():
            self.content[key] = self.content.get(key, "") + "".join(parts)
        self.pending.clear()
        return self.content

    def close(self) -> None:
        if self.partial_json:
            text = "".join(self.partial_json)
            try:
                self.content["input"] = json.loads(text) if text.strip() else {}
            except ValueError:
                raise UpstreamBroken(f"tool input is not valid JSON: {text[:80]!r}") from None


def _result_content(outcome: ToolOutcome) -> str | list[dict[str, Any]]:
    """A tool result's content: the text, or text and image blocks when there are images."""
    if not outcome.images:
        return outcome.text
    blocks: list[dict[str, Any]] = [{"type": "text", "text": outcome.text}] if outcome.text else []
    return blocks + [
        {"type": "image", "source": {"type": "base64", "media_type": i.media_type, "data": i.data}}
        for i in outcome.images
    ]


class AnthropicConversation:
    """One intercepted Messages request across its agentic iterations."""

    def __init__(self, body: dict[str, Any], tools: ToolSet) -> None:
        self.body = body
        self.messages: list[Any] = list(body["messages"])
        client_tools = body.get("tools") or []
        client_names = {t.get("name") for t in client_tools if isinstance(t, dict)}
        self.injected, self.tool_specs = offered_tools(
            client_tools, client_names, tools, InjectedTool.as_spec
        )
        self.iteration = 0
        self.next_index = 0
        self.usage: dict[str, Any] = {}
        self.failed = False
        self.complete = False
        self.client_calls: list[str] = []
        self.failure = ""
        self.content: list[Any] = []  # blocking: what the client will see
        self.last: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        self.blocks: dict[int, _Block] = {}
        self.iter_usage: dict[str, Any] = {}
        self.pending_calls: list[ToolCall] = []
        self.continuing = False
        self.stopped = False

    # -- requests ----------------------------------------------------------------------
    def upstream_body(self) -> dict[str, Any]:
        return next_body(self.body, "messages", self.messages, self.tool_specs)

    def add_results(self, calls: list[ToolCall], outcomes: list[ToolOutcome]) -> None:
        results = [
            {
                "type": "tool_result",
                "tool_use_id": call.id,
                "content": _result_content(outcome),
                **({"is_error": True} if outcome.is_error else {}),
            }
            for call, outcome in zip(calls, outcomes, strict=True)
        ]
        self.messages.append({"role": "user", "content": results})
        self.iteration += 1
        self._reset()

    def _calls(self, content: list[Any]) -> list[ToolCall]:
        """The injected calls of a turn, or none when it must go to the client."""
        uses = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
        injected = [b for b in uses if b.get("name") in self.injected]
        if not injected or len(injected) != len(uses):
            return []  # client tool calls end the loop: the client runs them
        self.messages.append({"role": "assistant", "content": content})
        return [ToolCall(b.get("id", ""), b["name"], b.get("input", {})) for b in injected]

    # -- streaming ---------------------------------------------------------------------
    def on_event(self, event: SSEEvent) -> list[bytes]:
        kind = event.event
        if kind == "content_block_delta" and (plain := self._plain_text(event.data)):
            index, delta = plain
            block = self.blocks.get(index)
            if block is not None and block.client_index == index:
                block.add("text", delta)
                return [event.raw]
        if kind == "ping":
            return [event.raw]
        try:
            data = json.loads(event.data)
        except ValueError:
            raise UpstreamBroken(
                f"upstream sent an event that is not JSON: {event.data[:80]!r}"
            ) from None
        if not isinstance(data, dict):
            raise UpstreamBroken("upstream sent an event that is not a JSON object")
        kind = kind or data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self.iter_usage = overlay_usage(message.get("usage"), {})
            return [event.raw] if self.iteration == 0 else []
        if kind == "content_block_start":
            return self._block_start(event, data)
        if kind in ("content_block_delta", "content_block_stop"):
            block = self.blocks.get(data.get("index", -1))
            if block is None:
                raise UpstreamBroken(f"upstream sent {kind} for unknown block {data.get('index')}")
            if kind == "content_block_delta":
                block.apply(data.get("delta") or {})
            else:
                block.close()
            return self._renumbered(event, data, block.client_index)
        if kind == "message_delta":
            return self._message_delta(data, event.raw)
        if kind == "message_stop":
            self.stopped = True
            if self.continuing:
                return []
            self.complete = True
            return [event.raw]
        if kind == "error":
            self.failed = True
            self.failure = error_cause(data)
        return [event.raw]

    @staticmethod
    def _plain_text(data: str) -> tuple[int, str] | None:
        """A text delta's index and text, when ``data`` is one exactly as Anthropic writes
        it (then it is valid JSON); None sends the event down the general path."""
        head = _TEXT_DELTA_HEAD.match(data)
        if head is None or not data.endswith('"}}'):
            return None
        try:
            text, end = scanstring(data, head.end())
        except ValueError:
            return None
        return (int(head[1]), text) if end == len(data) - 2 else None

    def _block_start(self, event: SSEEvent, data: dict[str, Any]) -> list[bytes]:
        content = copy.deepcopy(data.get("content_block") or {})
        hidden = content.get("type") == "tool_use" and content.get("name") in self.injected
        if content.get("type") in ("tool_use", "server_tool_use") and content.get("input") == {}:
            content.pop("input")  # the deltas will carry it
        client_index = None if hidden else self.next_index
        if not hidden:
            self.next_index += 1
            if content.get("type") == "tool_use":
                self.client_calls.append(str(content.get("name")))
        self.blocks[data.get("index", len(self.blocks))] = _Block(content, client_index)
        return self._renumbered(event, data, client_index)

    @staticmethod
    def _renumbered(event: SSEEvent, data: dict[str, Any], index: int | None) -> list[bytes]:
        if index is None:
            return []
        if data.get("index") == index:
            return [event.raw]
        return [encode_event(event.event, dumps({**data, "index": index}))]

    def _message_delta(self, data: dict[str, Any], raw: bytes) -> list[bytes]:
        delta_usage = data.get("usage")
        if isinstance(delta_usage, dict):
            self.iter_usage = overlay_usage(self.iter_usage, delta_usage)
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        self.pending_calls = self._calls(self._content()) if stop_reason == "tool_use" else []
        self.continuing = bool(self.pending_calls)
        # message_delta's usage is cumulative within its message; iterations add up.
        add_usage(self.usage, self.iter_usage)
        if self.continuing:
            return []
        if self.iteration == 0:
            return [raw]  # nothing to add up: relay it untouched
        # The client saw only the first message_start, so the final delta carries every
        # summed count (input tokens included), not just the ones upstream put in it.
        usage = overlay_usage(data.get("usage"), self.usage)
        return [encode_event("message_delta", dumps({**data, "usage": usage}))]

    def _content(self) -> list[dict[str, Any]]:
        """The turn's content blocks, rebuilt from their deltas (only a tool turn needs it)."""
        content = [self.blocks[i].joined() for i in sorted(self.blocks)]
        for block in content:
            if block.get("type") in ("tool_use", "server_tool_use"):
                block.setdefault("input", {})
        return content

    def end_stream(self) -> list[ToolCall]:
        if self.failed:
            return []
        if not self.stopped:
            raise UpstreamBroken("upstream stream ended before message_stop")
        return self.pending_calls if self.continuing else []

    def closing_frames(self) -> list[bytes]:
        return []

    # -- blocking ----------------------------------------------------------------------
    def on_body(self, body: Any) -> list[ToolCall]:
        if not isinstance(body, dict) or not isinstance(body.get("content"), list):
            raise UpstreamBroken("upstream response is not a Messages API message")
        add_usage(self.usage, body.get("usage"))
        content = body["content"]
        calls = self._calls(content) if body.get("stop_reason") == "tool_use" else []
        kept = [
            b
            for b in content
            if not (
                isinstance(b, dict)
                and b.get("type") == "tool_use"
                and b.get("name") in self.injected
            )
        ]
        self.content.extend(kept)
        self.client_calls += [
            str(b.get("name")) for b in kept if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        self.last = body
        return calls

    def client_usage(self) -> dict[str, Any]:
        # message_start's counts updated by each message_delta's, every iteration added
        return self.usage

    def client_body(self) -> dict[str, Any]:
        return {
            **self.last,
            "content": self.content,
            "usage": overlay_usage(self.last.get("usage"), self.usage),
        }


class AnthropicMessages:
    """``POST /anthropic/v1/messages``."""

    name = "anthropic"
    provider = "anthropic"
    upstream_path = "/v1/messages"
    ping_frame = encode_event("ping", '{"type": "ping"}')

    def conversation(self, body: dict[str, Any], tools: ToolSet) -> AnthropicConversation:
        return AnthropicConversation(body, tools)

    @staticmethod
    def validate(raw: bytes) -> dict[str, Any]:
        body = parse_request(raw, {"model": (str, "a string"), "messages": (list, "a list")})
        tools = body.get("tools")
        if tools is not None and not (
            isinstance(tools, list) and all(isinstance(t, dict) for t in tools)
        ):
            # The loop reads the client's tools to tell them from injected ones.
            raise RequestError(f"tools: must be a list of tool objects, not {tools!r:.40}")
        return body

    def error_body(self, kind: ErrorKind, message: str) -> dict[str, Any]:
        return anthropic_error(kind, message)

    def error_frame(self, payload: Any) -> bytes:
        return encode_event("error", dumps(payload))
