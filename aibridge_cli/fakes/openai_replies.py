"""Building blocks for scripted OpenAI upstream answers: Chat Completions and Responses.

The counterpart of ``anthropic_replies`` for the scenarios users write (``fuzz/toml_scenario``):
a text answer or a tool call, as an event stream or a JSON body, in each API's shape.
"""

from __future__ import annotations

import json
from typing import Any

from .scripted_upstream import Reply

_USAGE_CHAT = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
_USAGE_RESPONSES = {
    "input_tokens": 5,
    "output_tokens": 3,
    "total_tokens": 8,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens_details": {"reasoning_tokens": 0},
}


def chunk(
    delta: dict[str, Any],
    finish: str | None = None,
    *,
    id: str = "chatcmpl-1",
    usage: dict[str, Any] | None = None,
) -> tuple[None, dict[str, Any]]:
    """One Chat Completions stream chunk, as an unnamed event."""
    data: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return (None, data)


def message_item(id: str, text: str) -> dict[str, Any]:
    """A finished Responses ``message`` output item holding ``text``."""
    return {
        "id": id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_item(
    name: str, call_id: str = "call_1", arguments: str = '{"city": "Paris"}', id: str = "fc_1"
) -> dict[str, Any]:
    """A finished Responses ``function_call`` output item."""
    return {
        "id": id,
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def chat_answer(
    text: str | None, call: tuple[str, dict[str, Any], str] | None, *, stream: bool
) -> Reply:
    """Text, or a tool call (name, input, call id), as Chat Completions sends it."""
    finish = "tool_calls" if call else "stop"
    if not stream:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if call is not None:
            name, arguments, call_id = call
            function = {"name": name, "arguments": json.dumps(arguments)}
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": function}]
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-x",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": _USAGE_CHAT,
        }
        return Reply.json(body)
    chunks = [chunk({"role": "assistant", "content": "" if call is None else None})]
    if text:
        chunks.append(chunk({"content": text}))
    if call is not None:
        name, arguments, call_id = call
        start = {"index": 0, "id": call_id, "type": "function"}
        chunks.append(chunk({"tool_calls": [{**start, "function": {"name": name}}]}))
        args = {"index": 0, "function": {"arguments": json.dumps(arguments)}}
        chunks.append(chunk({"tool_calls": [args]}))
    chunks.append(chunk({}, finish, usage=_USAGE_CHAT))
    return Reply.sse([*chunks, (None, "[DONE]")])


def _response(output: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "gpt-x",
        "output": output,
        "usage": _USAGE_RESPONSES if status == "completed" else None,
    }


def responses_answer(
    text: str | None, call: tuple[str, dict[str, Any], str] | None, *, stream: bool
) -> Reply:
    """Text, or a function call (name, input, call id), as the Responses API sends it."""
    if call is not None:
        name, arguments, call_id = call
        item = function_item(name, call_id, json.dumps(arguments))
    else:
        item = message_item("msg_1", text or "")
    if not stream:
        return Reply.json(_response([item], "completed"))
    events: list[tuple[str | None, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, **fields, "sequence_number": len(events)}))

    add("response.created", response=_response([], "in_progress"))
    add("response.output_item.added", output_index=0, item={**item, "status": "in_progress"})
    if call is None:
        at = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        add("response.output_text.delta", **at, delta=text or "")
        add("response.output_text.done", **at, text=text or "")
    else:
        at = {"item_id": item["id"], "output_index": 0}
        add("response.function_call_arguments.delta", **at, delta=item["arguments"])
        add("response.function_call_arguments.done", **at, arguments=item["arguments"])
    add("response.output_item.done", output_index=0, item=item)
    add("response.completed", response=_response([item], "completed"))
    return Reply.sse(events)
