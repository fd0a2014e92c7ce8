"""OpenAI Responses: event stream, agentic turns and error shape, sans-io.

Theory of operation, streaming: the client must see one response however many upstream
iterations the loop runs, and see it as it comes. With injected tools offered:

* the events of an injected ``function_call`` item (tied to it by ``output_index`` or
  ``item_id``) are dropped; every other item's events are relayed as they arrive, their
  ``output_index`` counted from 0 across iterations in the order items appear;
* the lifecycle events (``response.created``, ``queued``, ``in_progress``) of an iteration
  are held until it shows the client something (an item's event, its terminal event or an
  error). An iteration that shows nothing and ends in injected calls alone (the usual tool
  turn) is dropped whole, so the client sees the next iteration's response, the one the
  upstream stored last: its id is the one to continue from (``previous_response_id``). Once
  a response was shown, later iterations' lifecycle events are dropped;
* a ``response.completed`` whose function calls are all injected ends the iteration: it is
  dropped and the loop runs the calls. Any other terminal event goes out carrying the id
  of the response the client was shown (the openai SDK refuses a lifecycle whose id
  changes), every item the client saw in ``output`` (the earlier iterations' too), and
  usage summed over the iterations;
* every relayed event's ``sequence_number`` counts on in steps of one from the first one
  relayed, so dropping events leaves no gap;
* every response object the client gets (lifecycle, terminal, blocking body) lists the
  client's own ``tools`` only: the upstream echoes the request's, injected ones included.

When an iteration that showed the client something continues the loop, the client holds
the shown response's id, while the upstream stored the turn under the last iteration's
id; the terminal event names the shown id, and a later request continuing from it
(``previous_response_id``) is sent upstream with the last id (``Continuations``).

A stream that breaks before anything was shown releases nothing: the client gets the
error alone. An event that is not a JSON object ends the stream with an error, as on the
other providers (the Go gateway relayed it as received). With no injected tools there is
nothing to hide and events flow through untouched.

The follow-up request carries the tool results as ``function_call_output`` items. With
``conversation`` set, the upstream already appended the input and output items to the
conversation, so only the outputs are sent; otherwise the input grows by the iteration's
output items and the outputs, and ``previous_response_id`` is passed on as the client gave it.

Blocking: the last response, with the items the client may see of every iteration in its
``output``, the client's tools only and usage summed.
"""

from __future__ import annotations

from typing import Any

from ..errors import UpstreamBroken
from ..sse import SSEEvent, encode_event
from ..tools import InjectedTool, ToolOutcome, ToolSet
from .base import ToolCall, dumps, error_cause, next_body, offered_tools, parse_request
from .openai_common import (
    OpenAIAPI,
    error_object,
    event_json,
    function_parameters,
    hashable,
    parse_arguments,
    result_text,
)
from .usage import add_usage, overlay_usage, summed

TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
# What a response says of itself before its items; held until it shows the client something.
LIFECYCLE = frozenset({"response.created", "response.queued", "response.in_progress"})
# Output items the API takes back as input items; the others are output-only.
REPLAYABLE = frozenset(
    {
        "message",
        "function_call",
        "reasoning",
        "file_search_call",
        "web_search_call",
        "computer_call",
        "code_interpreter_call",
        "custom_tool_call",
        "image_generation_call",
        "compaction",
    }
)


def _output(outcome: ToolOutcome) -> str | list[dict[str, Any]]:
    """A function call's output: the text, or input_text and input_image parts with images."""
    if not outcome.images:
        return result_text(outcome)
    return [
        {"type": "input_text", "text": result_text(outcome)},
        *(
            {"type": "input_image", "image_url": f"data:{i.media_type};base64,{i.data}"}
            for i in outcome.images
        ),
    ]


def responses_tool_spec(tool: InjectedTool) -> dict[str, Any]:
    """An injected tool as a Responses ``function`` tool."""
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": function_parameters(tool),
        "strict": False,
    }


class Continuations:
    """Which stored response continues a response the client was shown: its id to the id
    the upstream stored the whole turn under (module docstring). Bounded: the oldest go.
    One per process (``OpenAIResponses`` holds it): ids are the upstream's, unique."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._stored: dict[str, str] = {}

    def note(self, shown: str, stored: str) -> None:
        self._stored.pop(shown, None)
        self._stored[shown] = stored
        if len(self._stored) > self.size:
            del self._stored[next(iter(self._stored))]

    def resolve(self, response_id: Any) -> Any:
        """The id to continue from upstream in place of ``response_id``."""
        if isinstance(response_id, str):
            return self._stored.get(response_id, response_id)
        return response_id


class ResponsesConversation:
    """One intercepted Responses request across its agentic iterations."""

    def __init__(
        self, body: dict[str, Any], tools: ToolSet, continuations: Continuations | None = None
    ) -> None:
        self.body = body
        self.input: Any = body["input"]
        client_tools = body.get("tools") or []
        client_names = {t.get("name") for t in client_tools if isinstance(t, dict)}
        self.injected, self.tool_specs = offered_tools(
            client_tools, client_names, tools, responses_tool_spec
        )
        self.continuations = continuations
        self.in_conversation = body.get("conversation") is not None
        self.failed = False
        self.complete = False
        self.failure = ""
        self.iteration = 0
        self.last: dict[str, Any] = {}
        self.usage: dict[str, Any] = {}  # summed over the iterations that ran injected calls
        self.seen: list[Any] = []  # items the client may see, of the iterations that continued
        self.shown = False  # the client got a response's lifecycle (or its first item)
        self.shown_id: Any = None  # the id of the response the client was shown
        self.next_index = 0  # the client's next output_index
        self.next_sequence: int | None = None  # the client's next sequence_number
        self.final_usage: dict[str, Any] = {}  # the last response's, every iteration added
        self.client_calls: list[str] = []
        self._reset()

    def _reset(self) -> None:
        self.lifecycle: list[tuple[SSEEvent, dict[str, Any]]] = []  # held until shown
        self.hidden_indexes: set[Any] = set()  # output indexes of injected function calls
        self.hidden_ids: set[Any] = set()  # and their item ids
        self.indexes: dict[Any, int] = {}  # upstream output_index -> the client's
        self.ended = False
        self.pending: list[ToolCall] = []
        self.output: list[Any] = []

    # -- requests ----------------------------------------------------------------------
    def upstream_body(self) -> dict[str, Any]:
        body = next_body(self.body, "input", self.input, self.tool_specs)
        if self.injected:
            body["parallel_tool_calls"] = False  # one injected call per turn, as the Go gateway
        previous = body.get("previous_response_id")
        if self.continuations is not None and previous is not None:
            resolved = self.continuations.resolve(previous)
            if resolved != previous:
                body["previous_response_id"] = resolved
        return body

    def add_results(self, calls: list[ToolCall], outcomes: list[ToolOutcome]) -> None:
        outputs = [
            {
                "type": "function_call_output",
                "call_id": call.id,
                "output": _output(outcome),
            }
            for call, outcome in zip(calls, outcomes, strict=True)
        ]
        if self.in_conversation:
            self.input = outputs
        else:
            items = (
                [{"role": "user", "content": self.input}]
                if isinstance(self.input, str)
                else list(self.input)
            )
            replayed = [
                i for i in self.output if isinstance(i, dict) and i.get("type") in REPLAYABLE
            ]
            self.input = [*items, *replayed, *outputs]
        self.iteration += 1
        self._reset()

    def _is_injected(self, item: Any) -> bool:
        return (
            isinstance(item, dict)
            and item.get("type") == "function_call"
            and item.get("name") in self.injected
        )

    def _take_calls(self, response: dict[str, Any]) -> list[ToolCall]:
        """The injected calls of a finished response, or none when it goes to the client.

        A response that continues the loop adds its usage to the sum and its items the
        client may see to what the last response's ``output`` will show."""
        output = response.get("output")
        if not isinstance(output, list):
            return []
        calls = [i for i in output if isinstance(i, dict) and i.get("type") == "function_call"]
        if not calls or not all(c.get("name") in self.injected for c in calls):
            return []  # client calls end the loop: the client runs them
        self.output = output
        add_usage(self.usage, response.get("usage"))
        self.seen += [i for i in output if not self._is_injected(i)]
        return [
            ToolCall(
                c.get("call_id") or c.get("id") or "",
                c["name"],
                parse_arguments(c.get("arguments")),
            )
            for c in calls
        ]

    def _client_response(self, response: dict[str, Any], *, last: bool) -> dict[str, Any]:
        """A response object as the client sees it: its injected calls and tools left out;
        ``last``: the one that ends the client's response (module docstring). The same
        object when nothing changes."""
        out = response
        output = response.get("output")
        if isinstance(output, list):
            kept = [i for i in output if not self._is_injected(i)]
            if last and self.seen:
                kept = [*self.seen, *kept]
            if kept != output:
                out = {**out, "output": kept}
        tools = response.get("tools")
        if isinstance(tools, list):
            own = [
                t
                for t in tools
                if not (
                    isinstance(t, dict)
                    and t.get("type") == "function"
                    and t.get("name") in self.injected
                )
            ]
            if len(own) != len(tools):
                out = {**out, "tools": own}
        if last and self.iteration:
            total = summed(self.usage, response.get("usage"))
            if total:
                out = {**out, "usage": overlay_usage(response.get("usage"), total)}
        if last and self.shown_id is not None and response.get("id") != self.shown_id:
            if self.continuations is not None and isinstance(response.get("id"), str):
                self.continuations.note(self.shown_id, response["id"])
            out = {**out, "id": self.shown_id}
        return out

    # -- streaming ---------------------------------------------------------------------
    def on_event(self, event: SSEEvent) -> list[bytes]:
        data = event_json(event)
        if data is None:
            # The Go gateway relays it as received; a client SDK then chokes on it. Like
            # the other providers, aibridge ends the stream with an error instead.
            raise UpstreamBroken(f"upstream sent an event that is not JSON: {event.data[:80]!r}")
        kind = data.get("type") or event.event
        if kind == "error":
            self.failed = True
            self.failure = error_cause(data)
        elif kind in TERMINAL:
            self.ended = True
        if not self.injected:
            if kind in TERMINAL:
                self.complete = True  # no loop: the terminal event is the client's last
                self._ended_with(data.get("response"))
            return [event.raw]  # nothing to hide, and no loop: events flow through untouched
        if kind in LIFECYCLE:
            if not self.shown:
                self.lifecycle.append((event, data))
            return []
        if kind in TERMINAL:
            response = data.get("response")
            if kind == "response.completed" and isinstance(response, dict):
                self.pending = self._take_calls(response)
                if self.pending:
                    self.lifecycle = []  # nothing of it shown: the next response stands
                    return []
            self.complete = True  # no injected call left: this is the client's last event
            self._ended_with(response)
            frames = self._show()
            return [*frames, self._with_response(event, data, last=True)]
        if kind == "error":
            return [*self._show(), self._relayed(event, data)]
        if self._hides(data):
            return []
        return [*self._show(), self._relayed(event, data)]

    def _ended_with(self, response: Any) -> None:
        """Note the usage and client calls of the response the client gets."""
        if not isinstance(response, dict):
            return
        self.final_usage = summed(self.usage, response.get("usage"))
        output = response.get("output")
        self.client_calls += [
            str(i.get("name"))
            for i in (output if isinstance(output, list) else [])
            if isinstance(i, dict)
            and i.get("type") == "function_call"
            and i.get("name") not in self.injected
        ]

    def client_usage(self) -> dict[str, Any]:
        return self.final_usage

    def _hides(self, data: dict[str, Any]) -> bool:
        """True for an event of an injected call (noting the call when it starts)."""
        item = data.get("item")
        if isinstance(item, dict) and self._is_injected(item):
            self.hidden_indexes.add(hashable(data.get("output_index")))
            self.hidden_ids.add(hashable(item.get("id")))
            return True
        if "output_index" in data and hashable(data["output_index"]) in self.hidden_indexes:
            return True
        return "item_id" in data and hashable(data["item_id"]) in self.hidden_ids

    def _show(self) -> list[bytes]:
        """The held lifecycle events, the first time the client is shown something."""
        if self.shown:
            return []
        self.shown = True
        frames = []
        for event, data in self.lifecycle:
            response = data.get("response")
            if self.shown_id is None and isinstance(response, dict):
                self.shown_id = response.get("id")
            frames.append(self._with_response(event, data, last=False))
        self.lifecycle = []
        return frames

    def _with_response(self, event: SSEEvent, data: dict[str, Any], *, last: bool) -> bytes:
        """A lifecycle or terminal event, its response object as the client sees it."""
        response = data.get("response")
        if isinstance(response, dict):
            client = self._client_response(response, last=last)
            if client is not response:
                return self._relayed(event, {**data, "response": client}, rewritten=True)
        return self._relayed(event, data)

    def _relayed(self, event: SSEEvent, data: dict[str, Any], rewritten: bool = False) -> bytes:
        """``event`` with the client's sequence number and output index; ``data`` is its
        data, ``rewritten`` when changed already. Its own bytes when nothing changed."""
        out = data
        if "sequence_number" in data:
            number = data["sequence_number"]
            if self.next_sequence is None:
                ok = isinstance(number, int) and not isinstance(number, bool)
                self.next_sequence = number if ok else 0
            if number != self.next_sequence:
                out = {**out, "sequence_number": self.next_sequence}
            self.next_sequence += 1
        if "output_index" in data:
            upstream = hashable(data["output_index"])
            index = self.indexes.get(upstream)
            if index is None:
                index = self.indexes[upstream] = self.next_index
                self.next_index += 1
            if index != data["output_index"]:
                out = {**out, "output_index": index}
        if out is data and not rewritten:
            return event.raw
        return encode_event(event.event, dumps(out))

    def end_stream(self) -> list[ToolCall]:
        if self.failed:
            return []
        if not self.ended:
            raise UpstreamBroken("upstream stream ended before response.completed")
        return self.pending

    def closing_frames(self) -> list[bytes]:
        return []

    # -- blocking ----------------------------------------------------------------------
    def on_body(self, body: Any) -> list[ToolCall]:
        if not isinstance(body, dict) or not isinstance(body.get("output"), list):
            raise UpstreamBroken("upstream response is not a Responses API response")
        self.last = body
        calls = self._take_calls(body)
        if not calls:
            self._ended_with(body)
        return calls

    def client_body(self) -> dict[str, Any]:
        return self._client_response(self.last, last=True)


class OpenAIResponses(OpenAIAPI):
    """``POST /openai/v1/responses``."""

    name = "openai-responses"
    upstream_path = "/responses"

    def __init__(self) -> None:
        self.continuations = Continuations()

    def conversation(self, body: dict[str, Any], tools: ToolSet) -> ResponsesConversation:
        return ResponsesConversation(body, tools, self.continuations)

    @staticmethod
    def validate(raw: bytes) -> dict[str, Any]:
        return parse_request(
            raw, {"model": (str, "a string"), "input": (str | list, "a string or a list")}
        )

    def error_frame(self, payload: Any) -> bytes:
        """An ``error`` event; its ``error`` object is what makes the openai SDK raise."""
        error = error_object(payload)
        event = {
            "type": "error",
            "code": error.get("code"),
            "message": error.get("message"),
            "param": error.get("param"),
            "error": error,
        }
        return encode_event("error", dumps(event))
