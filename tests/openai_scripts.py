"""Scripted OpenAI upstream replies for tests: chat chunks and Responses events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import openai
import pytest

from aibridge_cli.fakes.openai_replies import chunk as fake_chunk
from aibridge_cli.fakes.openai_replies import function_item as function_item
from aibridge_cli.fakes.openai_replies import message_item as message_item
from aibridge_cli.fakes.scripted_upstream import Reply

if TYPE_CHECKING:
    from .conftest import Stack

# The openai SDK stops at ``[DONE]`` without closing its inner async generators; trio then
# warns when they are collected. That is the SDK's hygiene, not the proxy's.
SDK_GENERATORS = pytest.mark.filterwarnings(
    "ignore:Async generator .* was garbage collected:ResourceWarning"
)


class SDKClients:
    """Official ``AsyncOpenAI`` clients pointed at a proxy, closed after each test."""

    def __init__(self) -> None:
        self.clients: list[openai.AsyncOpenAI] = []

    def open(self, stack: Stack) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(
            base_url=stack.proxy_url + "/openai/v1", api_key="sk-client", max_retries=0
        )
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        while self.clients:
            await self.clients.pop().close()


# One set for every test module; a module that opens clients imports ``close_sdk_clients``.
SDK_CLIENTS = SDKClients()
client_for = SDK_CLIENTS.open


@pytest.fixture(autouse=True)
async def close_sdk_clients() -> AsyncIterator[None]:
    """The clients a test opened with ``client_for``, closed after it."""
    yield
    await SDK_CLIENTS.aclose()


def keys_seen(stack: Stack) -> list[str | None]:
    """The bearer credential of each request the upstream saw, in order."""
    return [r.header("authorization") for r in stack.upstream.seen]


CHAT_ID = "chatcmpl-up"


def chunk(
    delta: dict[str, Any],
    finish: str | None = None,
    *,
    id: str = CHAT_ID,
    usage: dict[str, Any] | None = None,
) -> tuple[None, dict[str, Any]]:
    """The package's chunk with the tests' own id."""
    return fake_chunk(delta, finish, id=id, usage=usage)


def tool_delta(
    index: int, name: str | None = None, arguments: str | None = None, id: str | None = None
) -> dict[str, Any]:
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    tc: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        tc.update(id=id, type="function")
    return {"tool_calls": [tc]}


def chat_stream(*chunks: tuple[None, Any], done: bool = True) -> Reply:
    events: list[tuple[str | None, Any]] = list(chunks)
    if done:
        events.append((None, "[DONE]"))
    return Reply.sse(events)


def chat_text(text: str, *, id: str = CHAT_ID, usage: int = 3) -> Reply:
    return chat_stream(
        chunk({"role": "assistant", "content": ""}, id=id),
        chunk({"content": text}, id=id),
        chunk(
            {},
            "stop",
            id=id,
            usage={"prompt_tokens": 5, "completion_tokens": usage, "total_tokens": 5 + usage},
        ),
    )


def chat_tool_turn(
    name: str,
    *,
    index: int = 0,
    preamble: str | None = None,
    id: str = "chatcmpl-t1",
    call_id: str = "call_1",
    arguments: str = '{"city": "Paris"}',
) -> Reply:
    chunks = [chunk({"role": "assistant", "content": None}, id=id)]
    if preamble is not None:
        chunks.append(chunk({"content": preamble}, id=id))
    chunks += [
        chunk(tool_delta(index, name, "", call_id), id=id),
        chunk(tool_delta(index, arguments=arguments), id=id),
        chunk(
            {},
            "tool_calls",
            id=id,
            usage={"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        ),
    ]
    return chat_stream(*chunks)


def chat_body(
    message: dict[str, Any], finish: str, *, id: str = CHAT_ID, completion: int = 3
) -> Reply:
    return Reply.json(
        {
            "id": id,
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-x",
            "choices": [
                {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": completion,
                "total_tokens": 5 + completion,
            },
        }
    )


def tool_call_part(
    name: str, call_id: str = "call_1", arguments: str = '{"city": "Paris"}'
) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


RATE_LIMITED: dict[str, Any] = {
    "message": "all configured keys are rate-limited",
    "type": "rate_limit_error",
    "param": None,
    "code": "rate_limit_exceeded",
}
"""The error object the proxy answers when every key is cooling down."""


def openai_error_reply(status: int, message: str = "nope", retry_after: str | None = None) -> Reply:
    kinds = {429: "rate_limit_error", 401: "authentication_error", 403: "permission_error"}
    headers = [("retry-after", retry_after)] if retry_after else []
    return Reply.json(
        {
            "error": {
                "message": message,
                "type": kinds.get(status, "server_error"),
                "param": None,
                "code": None,
            }
        },
        status,
        headers,
    )


# -- Responses ---------------------------------------------------------------------------
def response_object(
    id: str, output: list[Any], status: str = "completed", tools: list[Any] | None = None
) -> dict[str, Any]:
    """A response object; ``tools``: the request's, which a real upstream echoes."""
    return {
        "id": id,
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "gpt-x",
        "output": output,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": tools or [],
        "usage": {
            "input_tokens": 5,
            "output_tokens": 3,
            "total_tokens": 8,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def responses_stream(
    response_id: str, items: list[dict[str, Any]], tools: list[Any] | None = None
) -> Reply:
    """A well-formed event stream producing ``items`` (messages and function calls);
    ``tools`` echoed in its response objects."""
    seq = iter(range(1000))
    events: list[tuple[str | None, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, **fields, "sequence_number": next(seq)}))

    empty = response_object(response_id, [], "in_progress", tools)
    add("response.created", response=empty)
    add("response.in_progress", response=empty)
    for index, item in enumerate(items):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            add(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            at = {"item_id": item["id"], "output_index": index, "content_index": 0}
            add("response.content_part.added", **at, part=part)
            add("response.output_text.delta", **at, delta=text, logprobs=[])
            add("response.output_text.done", **at, text=text, logprobs=[])
            add("response.content_part.done", **at, part={**part, "text": text})
        else:
            add(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            add(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=item["arguments"],
            )
            add(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            )
        add("response.output_item.done", output_index=index, item=item)
    add("response.completed", response=response_object(response_id, items, tools=tools))
    return Reply.sse(events)


def stalled_after_created() -> Reply:
    """``response.created``, then the upstream stalls forever."""
    created = {
        "type": "response.created",
        "sequence_number": 0,
        "response": response_object("r", [], "in_progress"),
    }
    return Reply(
        200,
        [("content-type", "text/event-stream")],
        [f"event: response.created\ndata: {json.dumps(created)}\n\n".encode()],
        fault="stall",
        fault_at=1,
    )
