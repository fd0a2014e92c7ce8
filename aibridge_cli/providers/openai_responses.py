"""OpenAI Responses: event stream, agentic turns and error shape, sans-io.

Theory of operation: a Responses answer is a stored object the client may continue from
(``previous_response_id``), so the response the client sees must be the one the upstream
stored last, whole: its id, its ``sequence_number``s and ``output_index``es as the
upstream gave them. When injected tools are offered, an iteration's events are therefore
held until its terminal event: a ``response.completed`` whose function calls are all
injected is dropped with everything before it and the loop runs the calls; any other
terminal event (or an ``error`` event) releases the iteration's events as they came, less
the events of injected ``function_call`` items (the Go gateway released those too, showing
the client a call it must not run). A stream that breaks before either (cut, or ended
early) releases nothing it held: the client gets the error alone, since no stored response
stands behind those events. With no injected tools there is nothing to hide and events
flow through as they arrive. An event that is not a JSON object ends the stream with an
error, as on the other providers (the Go gateway relayed it as received).

The follow-up request carries the tool results as ``function_call_output`` items. With
``conversation`` set, the upstream already appended the input and output items to the
conversation, so only the outputs are sent; otherwise the input grows by the iteration's
output items and the outputs, and ``previous_response_id`` is passed on as the client gave it.

Usage: the response the client gets carries every iteration's usage added up (its
terminal event is rewritten after a loop, once per request).
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
    parse_arguments,
    result_text,
)
from .usage import add_usage, overlay_usage, summed

TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
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


class ResponsesConversation:
    """One intercepted Responses request across its agentic iterations."""

    def __init__(self, body: dict[str, Any], tools: ToolSet) -> None:
        self.body = body
        self.input: Any = body["input"]
        client_tools = body.get("tools") or []
        client_names = {t.get("name") for t in client_tools if isinstance(t, dict)}
        self.injected, self.tool_specs = offered_tools(
            client_tools, client_names, tools, responses_tool_spec
        )
        self.in_conversation = body.get("conversation") is not None
        self.failed = False
        self.failure = ""
        self.iteration = 0
        self.last: dict[str, Any] = {}
        self.usage: dict[str, Any] = {}  # summed over the iterations that ran injected calls
        self._reset()

    def _reset(self) -> None:
        self.held: list[bytes] = []
        self.hidden: set[Any] = set()  # output indexes of injected function_call items
        self.ended = False
        self.pending: list[ToolCall] = []
        self.output: list[Any] = []

    # -- requests ----------------------------------------------------------------------
    def upstream_body(self) -> dict[str, Any]:
        body = next_body(self.body, "input", self.input, self.tool_specs)
        if self.injected:
            body["parallel_tool_calls"] = False  # one injected call per turn, as the Go gateway
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

    def _take_calls(self, output: Any) -> list[ToolCall]:
        """The injected calls of a finished response, or none when it goes to the client."""
        if not isinstance(output, list):
            return []
        calls = [i for i in output if isinstance(i, dict) and i.get("type") == "function_call"]
        if not calls or not all(c.get("name") in self.injected for c in calls):
            return []  # client calls end the loop: the client runs them
        self.output = output
        return [
            ToolCall(
                c.get("call_id") or c.get("id") or "",
                c["name"],
                parse_arguments(c.get("arguments")),
            )
            for c in calls
        ]

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
            response = data.get("response")
            if kind == "response.completed" and isinstance(response, dict):
                self.pending = self._take_calls(response.get("output"))
                if self.pending:
                    add_usage(self.usage, response.get("usage"))
                    self.held = []
                    return []
            if self.iteration and isinstance(response, dict):
                data = {**data, "response": self._with_total_usage(response)}
                event = SSEEvent(event.event, event.data, encode_event(event.event, dumps(data)))
        if not self.injected:
            return [event.raw]  # nothing to hide
        self._hold(event, data)
        if self.failed or self.ended:
            held, self.held = self.held, []
            return held
        return []

    def _with_total_usage(self, response: dict[str, Any]) -> dict[str, Any]:
        """The last response with every iteration's usage added up."""
        total = summed(self.usage, response.get("usage"))
        if not total:
            return response  # no usage anywhere: nothing to add up
        return {**response, "usage": overlay_usage(response.get("usage"), total)}

    def _hold(self, event: SSEEvent, data: dict[str, Any]) -> None:
        """Keep an event for release, unless it belongs to an injected call."""
        item = data.get("item")
        if (
            isinstance(item, dict)
            and item.get("type") == "function_call"
            and item.get("name") in self.injected
        ):
            self.hidden.add(data.get("output_index"))
            return
        if "output_index" in data and data["output_index"] in self.hidden:
            return
        response = data.get("response")
        if self.hidden and isinstance(response, dict) and isinstance(response.get("output"), list):
            output = [
                i
                for i in response["output"]
                if not (
                    isinstance(i, dict)
                    and i.get("type") == "function_call"
                    and i.get("name") in self.injected
                )
            ]
            data = {**data, "response": {**response, "output": output}}
            self.held.append(encode_event(event.event, dumps(data)))
            return
        self.held.append(event.raw)

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
        calls = self._take_calls(body["output"])
        if calls:
            add_usage(self.usage, body.get("usage"))
        return calls

    def client_body(self) -> dict[str, Any]:
        return self._with_total_usage(self.last) if self.iteration else self.last


class OpenAIResponses(OpenAIAPI):
    """``POST /openai/v1/responses``."""

    name = "openai-responses"
    upstream_path = "/responses"

    def conversation(self, body: dict[str, Any], tools: ToolSet) -> ResponsesConversation:
        return ResponsesConversation(body, tools)

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
