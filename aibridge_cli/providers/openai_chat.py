"""OpenAI Chat Completions: chunk grammar, agentic turns and error shape, sans-io.

Theory of operation, streaming: the client must see one completion however many upstream
iterations the loop runs. Every chunk carries the first iteration's ``id``. A tool call is
classified on its first delta (the one naming the function): an injected call's deltas
are stripped from every chunk, and a chunk left with nothing to say is dropped; a client
call keeps its deltas under a client index counted from 0, whatever index the provider
used (some continue counting from a previous response). An iteration that ends with
``finish_reason: tool_calls`` (or ``stop``) and only injected calls is "continuing": its
finish chunk, usage and ``[DONE]`` are swallowed, and the loop runs the calls. Upstream
``[DONE]`` is never relayed: the bridge sends one after the last iteration. Usage chunks of the last
iteration carry usage summed over every iteration. The assistant turn (text and calls) is
rebuilt from the deltas, so it can be sent back upstream with the tool results.

Blocking: the client gets the last completion under the first id with usage summed; the
text of intermediate turns is dropped, as the Go gateway does.

``n > 1``: injected tools are not offered. Each choice would be its own conversation, with
its own tool results and continuation, and a completion's choices cannot be continued
apart; so such a request goes upstream with the client's tools only and its answer is
relayed as it comes. Tool calls are tracked per (choice, index) all the same, so no two
choices' arguments are ever joined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UpstreamBroken
from ..sse import SSEEvent, encode_event
from ..tools import InjectedTool, ToolOutcome, ToolSet
from .base import ToolCall, dumps, error_cause, next_body, offered_tools, parse_request
from .openai_common import (
    OpenAIAPI,
    as_object,
    error_object,
    event_json,
    function_parameters,
    hashable,
    parse_arguments,
    result_text,
)
from .usage import add_usage, overlay_usage, summed

DONE_FRAME = b"data: [DONE]\n\n"
# Finish reasons after which a turn's injected calls are run. Some OpenAI-compatible
# providers end a tool turn with "stop"; "length" cuts the arguments short, so never that.
CALL_ENDINGS = frozenset({"tool_calls", "stop"})


def chat_tool_spec(tool: InjectedTool) -> dict[str, Any]:
    """An injected tool as a Chat Completions ``function`` tool."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": function_parameters(tool),
        },
    }


@dataclass
class _Call:
    """One upstream tool call of the current iteration, rebuilt from its deltas."""

    id: str
    name: str
    client_index: int | None  # None: injected, hidden from the client
    arguments: list[str] = field(default_factory=list)

    def as_message_part(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }


def several_choices(body: dict[str, Any]) -> bool:
    n = body.get("n")
    return isinstance(n, int) and not isinstance(n, bool) and n > 1


class ChatConversation:
    """One intercepted Chat Completions request across its agentic iterations."""

    def __init__(self, body: dict[str, Any], tools: ToolSet) -> None:
        self.body = body
        self.messages: list[Any] = list(body["messages"])
        if several_choices(body):
            tools = ToolSet()  # see the module docstring
        client_tools = body.get("tools") or []
        client_names = {
            (t.get("function") or {}).get("name") for t in client_tools if isinstance(t, dict)
        }
        self.injected, self.tool_specs = offered_tools(
            client_tools, client_names, tools, chat_tool_spec
        )
        self.iteration = 0
        self.id: str | None = None
        self.usage: dict[str, Any] = {}  # summed over finished iterations
        self.final_usage: dict[str, Any] | None = None  # streaming: the client's usage chunk
        self.client_calls: list[str] = []
        self.failed = False
        self.complete = False
        self.failure = ""
        self.last: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        self.calls: dict[tuple[Any, Any], _Call] = {}  # by (choice index, call index)
        self.content: list[str] = []
        self.next_client_index: dict[Any, int] = {}  # by choice index
        self.finished = False
        self.done = False
        self.continuing = False
        self.pending: list[ToolCall] = []

    # -- requests ----------------------------------------------------------------------
    def upstream_body(self) -> dict[str, Any]:
        return next_body(self.body, "messages", self.messages, self.tool_specs)

    def add_results(self, calls: list[ToolCall], outcomes: list[ToolOutcome]) -> None:
        for call, outcome in zip(calls, outcomes, strict=True):
            # A Chat Completions tool message takes text only: images are named, not sent.
            text = result_text(outcome) + "".join(
                f"\n[image: {image.media_type}, {len(image.data) * 3 // 4} bytes]"
                for image in outcome.images
            )
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
        self.iteration += 1
        self._reset()

    def _take_calls(self, message: dict[str, Any], parts: list[dict[str, Any]]) -> list[ToolCall]:
        """The injected calls of a turn, or none when it must go to the client."""
        functions = [as_object(p.get("function")) for p in parts]
        names = [f.get("name") for f in functions]
        if not parts or not all(name in self.injected for name in names):
            return []  # client tool calls end the loop: the client runs them
        self.messages.append({**message, "role": "assistant", "tool_calls": parts})
        return [
            ToolCall(str(p.get("id", "")), str(f["name"]), parse_arguments(f.get("arguments")))
            for p, f in zip(parts, functions, strict=True)
        ]

    # -- streaming ---------------------------------------------------------------------
    def on_event(self, event: SSEEvent) -> list[bytes]:
        if event.data.strip() == "[DONE]":
            self.done = True
            return []
        data = event_json(event)
        if data is None:
            raise UpstreamBroken(
                f"upstream sent a chunk that is not a JSON object: {event.data[:80]!r}"
            )
        if data.get("error"):
            self.failed = True
            self.failure = error_cause(data)
            return [event.raw]
        if self.id is None and isinstance(data.get("id"), str):
            self.id = data["id"]
        changed = False
        choices = data.get("choices")
        kept: list[Any] = []
        if isinstance(choices, list):
            for choice in choices:
                out = self._choice(choice) if isinstance(choice, dict) else choice
                changed |= out is not choice
                if out is not None:
                    kept.append(out)
        usage = data.get("usage")
        if isinstance(usage, dict):
            changed = True
            if self.continuing:
                add_usage(self.usage, usage)
                usage = None
            else:
                usage = self.final_usage = overlay_usage(usage, summed(self.usage, usage))
        if self.continuing and not kept and usage is None:
            return []  # the swallowed end of an intermediate iteration
        if changed and isinstance(choices, list) and choices and not kept and usage is None:
            return []  # every delta in it was an injected call's
        if self.id is not None and data.get("id") != self.id:
            changed = True
        if not changed:
            return [event.raw]
        out = {**data, "choices": kept if isinstance(choices, list) else choices}
        if self.id is not None:
            out["id"] = self.id
        if "usage" in data:
            out["usage"] = usage
        return [encode_event(None, dumps(out))]

    def _choice(self, choice: dict[str, Any]) -> dict[str, Any] | None:
        """A choice as the client sees it: the same object when nothing changed, None to drop."""
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        if isinstance(delta.get("content"), str):
            self.content.append(delta["content"])
        new_delta = delta
        tool_calls = delta.get("tool_calls")
        if isinstance(tool_calls, list) and tool_calls:
            at = hashable(choice.get("index", 0))
            visible = [out for tc in tool_calls if (out := self._tool_delta(at, tc)) is not None]
            if visible != tool_calls:
                new_delta = {**delta, "tool_calls": visible}
                if not visible:
                    del new_delta["tool_calls"]
        finish = choice.get("finish_reason")
        result: dict[str, Any] = choice
        if finish is not None:
            self.finished = True
            if finish in CALL_ENDINGS:
                hidden = [c for c in self.calls.values() if c.client_index is None]
                self.continuing = bool(hidden) and len(hidden) == len(self.calls)
                if self.continuing:
                    self.pending = self._take_calls(
                        {"content": "".join(self.content) or None},
                        [call.as_message_part() for call in self.calls.values()],
                    )
                    result = {**choice, "finish_reason": None}
        if new_delta is not delta:
            result = {**result, "delta": new_delta}
        if result is choice:
            return choice
        says_something = (
            result.get("finish_reason") is not None
            or any(v is not None for k, v in new_delta.items() if k != "content")
            or bool(new_delta.get("content"))
        )
        return result if says_something else None

    def _tool_delta(self, choice: Any, tc: Any) -> Any:
        """One tool-call delta of ``choice`` as the client sees it (None when it is an
        injected call's)."""
        if not isinstance(tc, dict):
            return tc
        index = tc.get("index", 0)
        function = as_object(tc.get("function"))
        key = (choice, hashable(index))
        call = self.calls.get(key)
        if call is None:
            name = function.get("name") or ""
            client_index = None
            if name not in self.injected:
                self.client_calls.append(name)
                client_index = self.next_client_index.get(choice, 0)
                self.next_client_index[choice] = client_index + 1
            call = self.calls[key] = _Call(tc.get("id") or "", name, client_index)
        if isinstance(function.get("arguments"), str):
            call.arguments.append(function["arguments"])
        if call.client_index is None:
            return None
        return tc if call.client_index == index else {**tc, "index": call.client_index}

    def end_stream(self) -> list[ToolCall]:
        if self.failed:
            return []
        if not (self.done or self.finished):
            raise UpstreamBroken("upstream stream ended before its finish_reason and [DONE]")
        return self.pending if self.continuing else []

    def closing_frames(self) -> list[bytes]:
        self.complete = True
        return [DONE_FRAME]

    # -- blocking ----------------------------------------------------------------------
    def on_body(self, body: Any) -> list[ToolCall]:
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list):
            raise UpstreamBroken("upstream response is not a chat completion")
        if self.id is None and isinstance(body.get("id"), str):
            self.id = body["id"]
        add_usage(self.usage, body.get("usage"))
        self.last = body
        first = as_object(choices[0] if choices else None)
        message = as_object(first.get("message"))
        parts = [p for p in message.get("tool_calls") or [] if isinstance(p, dict)]
        names = [str(as_object(p.get("function")).get("name")) for p in parts]
        self.client_calls += [name for name in names if name not in self.injected]
        if first.get("finish_reason") not in CALL_ENDINGS:
            return []
        return self._take_calls(message, parts)

    def client_usage(self) -> dict[str, Any]:
        return self.final_usage if self.final_usage is not None else self.usage

    def client_body(self) -> dict[str, Any]:
        """The last completion under the first id, with usage summed (as the Go gateway)."""
        body = dict(self.last)
        if self.id is not None:
            body["id"] = self.id
        if self.usage:
            body["usage"] = overlay_usage(body.get("usage"), self.usage)
        return body


class OpenAIChat(OpenAIAPI):
    """``POST /openai/v1/chat/completions``."""

    name = "openai-chat"
    upstream_path = "/chat/completions"

    def conversation(self, body: dict[str, Any], tools: ToolSet) -> ChatConversation:
        return ChatConversation(body, tools)

    @staticmethod
    def validate(raw: bytes) -> dict[str, Any]:
        return parse_request(raw, {"model": (str, "a string"), "messages": (list, "a list")})

    def error_frame(self, payload: Any) -> bytes:
        """A ``data:`` frame holding an ``error`` object: the openai SDK raises on it."""
        return encode_event(None, dumps({"error": error_object(payload)}))
