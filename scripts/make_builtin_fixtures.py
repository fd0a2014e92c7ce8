"""Regenerate the built-in fixtures in aibridge_cli/fixtures/ (run from the project root).

Each scenario runs through aibridge's own proxy against a scripted upstream and is
recorded (``aibridge_cli.sessions.scripted_sessions``). Providers whose API is not routed yet
are skipped.

    python scripts/make_builtin_fixtures.py [NAME ...]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import trio

from aibridge_cli.fakes.anthropic_replies import (
    Event,
    message,
    message_end,
    message_start,
    text_block,
    tool_block,
)
from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.mcp_tools.config import offered_name
from aibridge_cli.proxy.routes import ROUTES, Intercept
from aibridge_cli.sessions.fixture import dump_fixture
from aibridge_cli.sessions.scripted_sessions import Session, Step, record_session
from aibridge_cli.tools import InjectedTool, McpOrigin, ToolOutcome

OUT = Path(__file__).resolve().parents[1] / "aibridge_cli" / "fixtures"

WEATHER = InjectedTool(
    name="bmcp_weather",
    description="Current weather for a city",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    result="sunny, 21 C",
)


async def _forecast(arguments: Any) -> ToolOutcome:
    return ToolOutcome(f"sunny, 21 C in {arguments.get('city', '?')}")


# A tool of the MCP server "weather", as serve offers it; its answers are canned here, the
# way the simulation serves an MCP tool from a recording.
MCP_FORECAST = InjectedTool(
    name=offered_name("weather", "forecast"),
    description="The weather in a city.",
    input_schema={
        "type": "object",
        "properties": {"city": {"title": "City", "type": "string"}},
        "required": ["city"],
    },
    mcp=McpOrigin("weather", "forecast"),
    call=_forecast,
)
CLIENT_TOOL = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}


def rate_limited(api: str, retry_after: str) -> Reply:
    if api == "anthropic":
        body: Any = {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "Rate limited"},
        }
    else:
        body = {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        }
    return Reply.json(body, 429, [("retry-after", retry_after)])


# -- Anthropic -------------------------------------------------------------------------------
MODEL = "claude-sonnet-4-5"


class Anthropic:
    api = "anthropic"

    @staticmethod
    def request(text: str, stream: bool = True, tools: list[Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 256,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        }
        if tools:
            body["tools"] = tools
        return body

    @staticmethod
    def _start(n: int) -> list[Event]:
        return message_start(f"msg_fixture{n}", 12 + n, model=MODEL)

    @staticmethod
    def _text(index: int, parts: list[str]) -> list[Event]:
        return text_block(index, *parts)

    @staticmethod
    def _tool(index: int, name: str, args: dict[str, Any], n: int) -> list[Event]:
        return tool_block(index, name, args, f"toolu_fixture{n}")

    @staticmethod
    def _end(reason: str, out: int) -> list[Event]:
        return message_end(reason, out)

    @staticmethod
    def _message(content: list[dict[str, Any]], reason: str, out: int, n: int) -> Reply:
        return message(content, reason, out, 12 + n, f"msg_fixture{n}", MODEL)

    def text_reply(self, parts: list[str], n: int = 0, stream: bool = True) -> Reply:
        if not stream:
            content = [{"type": "text", "text": "".join(parts)}]
            return self._message(content, "end_turn", 7, n)
        return Reply.sse([*self._start(n), *self._text(0, parts), *self._end("end_turn", 7)])

    def tool_reply(self, name: str, args: dict[str, Any], n: int = 0, stream: bool = True) -> Reply:
        if not stream:
            content = [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": f"toolu_fixture{n}", "name": name, "input": args},
            ]
            return self._message(content, "tool_use", 9, n)
        return Reply.sse(
            [
                *self._start(n),
                *self._text(0, ["Let me check."]),
                *self._tool(1, name, args, n),
                *self._end("tool_use", 9),
            ]
        )

    def broken_reply(self) -> Reply:
        return Reply.sse(
            [
                *self._start(0),
                *self._text(0, ["Partial ans"])[:2],
                (
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                ),
            ]
        )


# -- OpenAI Chat Completions -----------------------------------------------------------------
class OpenAIChat:
    api = "openai-chat"

    @staticmethod
    def request(text: str, stream: bool = True, tools: list[Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": "gpt-4.1",
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t["name"],
                        "description": t["description"],
                        "parameters": t["input_schema"],
                    },
                }
                for t in tools
            ]
        return body

    @staticmethod
    def _chunk(
        delta: dict[str, Any], finish: str | None = None, usage: Any = None
    ) -> tuple[None, Any]:
        data: dict[str, Any] = {
            "id": "chatcmpl-fixture",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": "gpt-4.1",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            data["choices"] = []
            data["usage"] = usage
        return (None, data)

    _USAGE: ClassVar[dict[str, int]] = {
        "prompt_tokens": 12,
        "completion_tokens": 7,
        "total_tokens": 19,
    }

    def _body(self, message: dict[str, Any], finish: str) -> Reply:
        return Reply.json(
            {
                "id": "chatcmpl-fixture",
                "object": "chat.completion",
                "created": 1764000000,
                "model": "gpt-4.1",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": self._USAGE,
            }
        )

    def text_reply(self, parts: list[str], n: int = 0, stream: bool = True) -> Reply:
        if not stream:
            return self._body({"role": "assistant", "content": "".join(parts)}, "stop")
        return Reply.sse(
            [
                self._chunk({"role": "assistant", "content": ""}),
                *[self._chunk({"content": p}) for p in parts],
                self._chunk({}, "stop"),
                self._chunk({}, usage=self._USAGE),
                (None, "[DONE]"),
            ]
        )

    def tool_reply(self, name: str, args: dict[str, Any], n: int = 0, stream: bool = True) -> Reply:
        raw = json.dumps(args)
        call = {
            "id": f"call_fixture{n}",
            "type": "function",
            "function": {"name": name, "arguments": raw},
        }
        if not stream:
            return self._body(
                {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
            )
        return Reply.sse(
            [
                self._chunk(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": f"call_fixture{n}",
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ],
                    }
                ),
                self._chunk({"tool_calls": [{"index": 0, "function": {"arguments": raw[:5]}}]}),
                self._chunk({"tool_calls": [{"index": 0, "function": {"arguments": raw[5:]}}]}),
                self._chunk({}, "tool_calls"),
                self._chunk({}, usage=self._USAGE),
                (None, "[DONE]"),
            ]
        )

    def broken_reply(self) -> Reply:
        return Reply.sse(
            [
                self._chunk({"role": "assistant", "content": ""}),
                self._chunk({"content": "Partial ans"}),
                (
                    None,
                    {
                        "error": {
                            "message": "The server had an error",
                            "type": "server_error",
                            "code": None,
                        }
                    },
                ),
            ]
        )


# -- OpenAI Responses ------------------------------------------------------------------------
class OpenAIResponses:
    api = "openai-responses"

    @staticmethod
    def request(text: str, stream: bool = True, tools: list[Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": "gpt-4.1", "stream": stream, "input": text}
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"],
                }
                for t in tools
            ]
        return body

    _USAGE: ClassVar[dict[str, int]] = {"input_tokens": 12, "output_tokens": 7, "total_tokens": 19}

    def _response(self, status: str, output: list[Any]) -> dict[str, Any]:
        return {
            "id": "resp_fixture",
            "object": "response",
            "created_at": 1764000000,
            "status": status,
            "model": "gpt-4.1",
            "output": output,
            "usage": self._USAGE if status == "completed" else None,
        }

    def _events(self, items: list[Any], deltas: list[str] | None) -> Reply:
        events: list[tuple[str, Any]] = [
            (
                "response.created",
                {
                    "type": "response.created",
                    "sequence_number": 0,
                    "response": self._response("in_progress", []),
                },
            )
        ]
        seq = 1
        for i, item in enumerate(items):
            start = dict(item, status="in_progress")
            if item["type"] == "message":
                start["content"] = []
            if item["type"] == "function_call":
                start["arguments"] = ""
            events.append(
                (
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "sequence_number": seq,
                        "output_index": i,
                        "item": start,
                    },
                )
            )
            seq += 1
            if item["type"] == "message" and deltas is not None:
                for d in deltas:
                    events.append(
                        (
                            "response.output_text.delta",
                            {
                                "type": "response.output_text.delta",
                                "sequence_number": seq,
                                "item_id": item["id"],
                                "output_index": i,
                                "content_index": 0,
                                "delta": d,
                            },
                        )
                    )
                    seq += 1
            if item["type"] == "function_call":
                events.append(
                    (
                        "response.function_call_arguments.done",
                        {
                            "type": "response.function_call_arguments.done",
                            "sequence_number": seq,
                            "item_id": item["id"],
                            "output_index": i,
                            "arguments": item["arguments"],
                        },
                    )
                )
                seq += 1
            events.append(
                (
                    "response.output_item.done",
                    {
                        "type": "response.output_item.done",
                        "sequence_number": seq,
                        "output_index": i,
                        "item": item,
                    },
                )
            )
            seq += 1
        events.append(
            (
                "response.completed",
                {
                    "type": "response.completed",
                    "sequence_number": seq,
                    "response": self._response("completed", items),
                },
            )
        )
        return Reply.sse(events)

    @staticmethod
    def _message(text: str, n: int) -> dict[str, Any]:
        return {
            "type": "message",
            "id": f"msg_fixture{n}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }

    def text_reply(self, parts: list[str], n: int = 0, stream: bool = True) -> Reply:
        items = [self._message("".join(parts), n)]
        if not stream:
            return Reply.json(self._response("completed", items))
        return self._events(items, parts)

    def tool_reply(
        self,
        name: str,
        args: dict[str, Any],
        n: int = 0,
        stream: bool = True,
        preamble: str | None = None,
    ) -> Reply:
        """A function call; ``preamble``: a message item before it (shown as it streams)."""
        call = {
            "type": "function_call",
            "id": f"fc_fixture{n}",
            "call_id": f"call_fixture{n}",
            "name": name,
            "arguments": json.dumps(args),
            "status": "completed",
        }
        items = [call] if preamble is None else [self._message(preamble, 100 + n), call]
        if not stream:
            return Reply.json(self._response("completed", items))
        return self._events(items, None if preamble is None else [preamble])

    def broken_reply(self) -> Reply:
        return Reply.sse(
            [
                (
                    "response.created",
                    {
                        "type": "response.created",
                        "sequence_number": 0,
                        "response": self._response("in_progress", []),
                    },
                ),
                (
                    "error",
                    {
                        "type": "error",
                        "sequence_number": 1,
                        "code": "server_error",
                        "message": "The server had an error",
                        "param": None,
                    },
                ),
            ]
        )


Provider = Anthropic | OpenAIChat | OpenAIResponses


def scenarios(p: Provider) -> dict[str, Session]:
    api = p.api
    weather = {"city": "Paris"}
    own = responses_scenarios(p) if isinstance(p, OpenAIResponses) else {}
    return own | {
        "simple": Session(
            [
                Step(
                    api,
                    p.request("Say hello."),
                    [p.text_reply(["Hel", "lo, ", "world!"])],
                    "streaming",
                ),
                Step(
                    api,
                    p.request("Say hello.", stream=False),
                    [p.text_reply(["Hello, world!"], stream=False)],
                    "blocking",
                ),
            ]
        ),
        "injected-tool": Session(
            [
                Step(
                    api,
                    p.request("Weather in Paris?"),
                    [p.tool_reply(WEATHER.name, weather), p.text_reply(["It is ", "sunny."], 1)],
                    "streaming",
                ),
                Step(
                    api,
                    p.request("Weather in Paris?", stream=False),
                    [
                        p.tool_reply(WEATHER.name, weather, stream=False),
                        p.text_reply(["It is sunny."], 1, stream=False),
                    ],
                    "blocking",
                ),
            ],
            tools=[WEATHER],
        ),
        "mcp-tool": Session(
            [
                Step(
                    api,
                    p.request("Weather in Paris?"),
                    [
                        p.tool_reply(MCP_FORECAST.name, weather),
                        p.text_reply(["It is ", "sunny."], 1),
                    ],
                    "streaming",
                ),
            ],
            tools=[MCP_FORECAST],
        ),
        "client-tool": Session(
            [
                Step(
                    api,
                    p.request("Read notes.txt", tools=[CLIENT_TOOL]),
                    [p.tool_reply("read_file", {"path": "notes.txt"})],
                    "streaming",
                ),
            ],
            tools=[WEATHER],
        ),
        "failover-after-429": Session(
            [
                Step(
                    api,
                    p.request("Say hello."),
                    [rate_limited(api, "30"), p.text_reply(["Hello from ", "key 2."])],
                    "streaming",
                ),
            ],
            keys=2,
        ),
        "all-keys-rate-limited": Session(
            [
                Step(
                    api,
                    p.request("Say hello."),
                    [rate_limited(api, "30"), rate_limited(api, "20")],
                    "streaming",
                ),
            ],
            keys=2,
        ),
        "mid-stream-error": Session(
            [
                Step(api, p.request("Say hello."), [p.broken_reply()], "streaming"),
            ]
        ),
        "rate-limit-after-tool-turn": Session(
            [
                Step(
                    api,
                    p.request("Weather in Paris?"),
                    [
                        p.tool_reply(WEATHER.name, weather),
                        rate_limited(api, "30"),
                        rate_limited(api, "20"),
                    ],
                    "streaming",
                ),
            ],
            tools=[WEATHER],
            keys=2,
        ),
    }


def responses_scenarios(p: OpenAIResponses) -> dict[str, Session]:
    """Responses only: a tool turn that shows the client a message before its injected
    call, so the client keeps the first response's id and sees both turns' items."""
    weather = {"city": "Paris"}
    return {
        "preamble-tool": Session(
            [
                Step(
                    p.api,
                    p.request("Weather in Paris?"),
                    [
                        p.tool_reply(WEATHER.name, weather, preamble="Let me check."),
                        p.text_reply(["It is ", "sunny."], 1),
                    ],
                    "streaming",
                ),
                Step(
                    p.api,
                    p.request("Weather in Paris?", stream=False),
                    [
                        p.tool_reply(WEATHER.name, weather, stream=False, preamble="Let me check."),
                        p.text_reply(["It is sunny."], 1, stream=False),
                    ],
                    "blocking",
                ),
            ],
            tools=[WEATHER],
        ),
    }


PROVIDERS: dict[str, Callable[[], Provider]] = {
    "anthropic": Anthropic,
    "openai-chat": OpenAIChat,
    "openai-responses": OpenAIResponses,
}


def _without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != field}


def over_websocket(sessions: dict[str, Session]) -> dict[str, Session]:
    """The streaming steps of Responses sessions as WebSocket mode sends them: one
    ``response.create`` message each (``stream`` is implicit there)."""
    out = {}
    for name, session in sessions.items():
        steps = [
            replace(
                step,
                body={
                    "type": "response.create",
                    **{k: v for k, v in step.body.items() if k != "stream"},
                },
                transport="websocket",
            )
            for step in session.steps
            if step.body.get("stream") is True
        ]
        out[name] = replace(session, steps=steps)
    return out


def routed(api: str) -> bool:
    return any(isinstance(r, Intercept) and r.api.name == api for r in ROUTES.values())


async def main(names: list[str]) -> None:
    folders = [(api, api, scenarios(make())) for api, make in PROVIDERS.items()]
    folders.append(("openai-responses-ws", "openai-responses", over_websocket(folders[-1][2])))
    for folder, api, sessions in folders:
        if not routed(api):
            print(f"skip {api}: not routed by this proxy yet")
            continue
        for name, session in sessions.items():
            if names and name not in names:
                continue
            fixture = await record_session(session)
            target = OUT / folder / f"{name}.jsonl"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(dump_fixture(fixture), encoding="utf-8")
            print(
                f"wrote {target.relative_to(OUT.parent.parent)} "
                f"({len(fixture.interceptions)} interceptions)"
            )


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
