"""Tools injected from MCP servers, end to end: the weather server (the ``mcp`` SDK) over
stdio and streamable HTTP, the official SDKs as clients, a scripted upstream that calls
the MCP tool, real loopback sockets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx
import trio

from aibridge_cli.fakes.scripted_upstream import Reply

from .anthropic_script import message_end, message_start, stream, text_block, tool_block
from .conftest import Stack
from .mcp_util import calls, eventually, http_weather_server, mcp_stack, stdio_entry, write_tools
from .openai_scripts import (
    SDK_GENERATORS,
    chat_text,
    chat_tool_turn,
    client_for,
    close_sdk_clients,
    function_item,
    message_item,
    responses_stream,
)

__all__ = ["close_sdk_clients"]

HELLO: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Weather in Paris?"}]


def tool_turn(name: str, city: str = "Paris") -> Reply:
    return stream(
        message_start("msg_a"),
        text_block(0, "Let me check."),
        tool_block(1, name, {"city": city}),
        message_end("tool_use", 10),
    )


FINAL = stream(
    message_start("msg_b", input_tokens=7),
    text_block(0, "Sunny in Paris."),
    message_end("end_turn", 4),
)


def sdk(s: Stack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=s.proxy_url + "/anthropic", api_key="sk-client", max_retries=0
    )


async def ask(s: Stack) -> anthropic.types.Message:
    """A streaming request through the SDK; the message it assembled."""
    async with sdk(s) as client:
        async with client.messages.stream(model="claude-test", max_tokens=50, messages=HELLO) as st:
            return await st.get_final_message()


def offered(s: Stack, request: int = 0) -> dict[str, Any]:
    """The tools the upstream was offered in its ``request``-th request, by name."""
    return {t["name"]: t for t in s.upstream.seen[request].json().get("tools", [])}


def last_tool_result(s: Stack) -> dict[str, Any]:
    result: dict[str, Any] = s.upstream.seen[-1].json()["messages"][-1]["content"][0]
    return result


async def test_a_stdio_mcp_tool_runs_in_the_loop_behind_the_anthropic_sdk(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log, deny="^secret"))
    s = await mcp_stack(nursery, [tool_turn("bmcp_wx_forecast"), FINAL], tools)
    async with sdk(s) as client:
        async with client.messages.stream(model="claude-test", max_tokens=50, messages=HELLO) as st:
            kinds = [event.type async for event in st]
            final = await st.get_final_message()
    # one clean message: no injected tool_use reaches the client, usage summed
    assert kinds.count("message_start") == 1
    assert kinds.count("message_stop") == 1
    assert [b.type for b in final.content] == ["text", "text"]
    assert "".join(b.text for b in final.content if b.type == "text") == (
        "Let me check.Sunny in Paris."
    )
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 14)
    # the MCP tool got the model's input, and its answer went back upstream
    assert calls(log) == [{"tool": "forecast", "input": {"city": "Paris"}}]
    assert last_tool_result(s) == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "sunny, 21 C in Paris",
    }
    # offered with the server's input schema; the denied tool is not offered
    tools_offered = offered(s)
    assert tools_offered["bmcp_wx_forecast"]["input_schema"]["properties"] == {
        "city": {"title": "City", "type": "string"}
    }
    assert "bmcp_wx_secret_admin" not in tools_offered
    assert {"bmcp_wx_forecast", "bmcp_wx_crash", "bmcp_wx_radar"} <= set(tools_offered)


async def test_allow_offers_only_the_matching_tools(nursery: trio.Nursery, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    entry = stdio_entry("wx", log, allow="^(forecast|radar)$", deny="radar")
    s = await mcp_stack(nursery, [FINAL], write_tools(tmp_path / "tools.toml", entry))
    await ask(s)
    assert set(offered(s)) == {"bmcp_wx_forecast"}


async def test_an_is_error_result_and_an_image_reach_anthropic_as_their_blocks(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    replies = [tool_turn("bmcp_wx_broken"), tool_turn("bmcp_wx_radar", "Lyon"), FINAL]
    s = await mcp_stack(nursery, replies, tools)
    final = await ask(s)
    assert final.stop_reason == "end_turn"
    broken = s.upstream.seen[1].json()["messages"][-1]["content"][0]
    assert broken["is_error"] is True
    assert "no station near Paris" in broken["content"]
    radar = last_tool_result(s)
    assert radar["content"][0] == {"type": "text", "text": "radar for Lyon"}
    image = radar["content"][1]
    assert image["type"] == "image"
    assert image["source"]["media_type"] == "image/png"
    assert image["source"]["data"] == "iVBORw0KGgpmYWtl"  # base64 of the server's bytes


@SDK_GENERATORS
async def test_a_streamable_http_mcp_tool_behind_openai_chat(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    async with http_weather_server(log) as url:
        tools = write_tools(tmp_path / "tools.toml", {"name": "web", "url": url})
        replies = [
            chat_tool_turn("bmcp_web_humidity", arguments='{"city": "Oslo"}'),
            chat_text("40% in Oslo."),
        ]
        s = await mcp_stack(nursery, replies, tools)
        client = client_for(s)
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model="gpt-x",
                messages=[{"role": "user", "content": "Humidity in Oslo?"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "40% in Oslo."
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    usage = [c.usage for c in chunks if c.usage is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(10, 10)]
    assert calls(log) == [{"tool": "humidity", "input": {"city": "Oslo"}}]
    # structured content, sent as JSON text
    tool_message = s.upstream.seen[1].json()["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"]) == {"city": "Oslo", "percent": 40}


@SDK_GENERATORS
async def test_an_mcp_image_reaches_openai_responses_as_an_input_image(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    replies = [
        responses_stream("resp_1", [function_item("bmcp_wx_radar")]),
        responses_stream("resp_2", [message_item("msg_2", "A storm.")]),
    ]
    s = await mcp_stack(nursery, replies, tools)
    events = await client_for(s).responses.create(model="gpt-x", input="Radar?", stream=True)
    done = [e async for e in events if e.type == "response.completed"]
    assert done[0].response.output_text == "A storm."
    output = s.upstream.seen[1].json()["input"][-1]
    assert output["type"] == "function_call_output"
    assert output["output"] == [
        {"type": "input_text", "text": "radar for Paris"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgpmYWtl"},
    ]
    assert calls(log) == [{"tool": "radar", "input": {"city": "Paris"}}]


async def test_a_server_that_crashes_mid_call_is_a_tool_error_then_the_answer(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    s = await mcp_stack(nursery, [tool_turn("bmcp_wx_crash"), FINAL], tools)
    final = await ask(s)
    assert [b.text for b in final.content if b.type == "text"] == [
        "Let me check.",
        "Sunny in Paris.",
    ]
    result = last_tool_result(s)
    assert result["is_error"] is True
    assert result["content"] == "mcp server wx went down during crash"
    assert calls(log) == [{"tool": "crash", "input": {"city": "Paris"}}]
    # then it is restarted (after a 1 s backoff) and offered again
    assert s.app.env.servers is not None
    await eventually(lambda: s.app.status()["mcp"][0]["state"] == "ready")
    status = s.app.status()["mcp"][0]
    assert status["restarts"] == 1
    assert "bmcp_wx_forecast" in status["tools"]


async def test_a_server_down_at_start_is_reported_and_serve_goes_on_without_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    dead = {"name": "dead", "command": [sys.executable, "-c", "pass"]}
    silent = {
        "name": "silent",
        "command": [sys.executable, "-c", "import time; time.sleep(60)"],
        "connect_timeout": 0.5,
    }
    tools = write_tools(tmp_path / "tools.toml", dead, silent, stdio_entry("wx", log))
    s = await mcp_stack(nursery, [FINAL], tools)
    states = {m["name"]: m for m in s.app.status()["mcp"]}
    assert states["wx"]["state"] == "ready"
    assert states["dead"]["state"] != "ready"
    assert states["dead"]["tools"] == []
    assert states["silent"]["error"] == "TimeoutError: no answer to initialize in 0.5 s"
    final = await ask(s)
    assert final.content[0].type == "text"
    names = set(offered(s))
    assert "bmcp_wx_forecast" in names
    assert not any(n.startswith(("bmcp_dead_", "bmcp_silent_")) for n in names)


async def test_list_changed_offers_the_new_tool_and_status_shows_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    s = await mcp_stack(nursery, [tool_turn("bmcp_wx_grow"), FINAL, FINAL], tools)
    assert "bmcp_wx_tide" not in s.app.status()["mcp"][0]["tools"]
    await ask(s)
    await eventually(lambda: "bmcp_wx_tide" in s.app.status()["tools"])
    await ask(s)
    assert "bmcp_wx_tide" in offered(s, 2)
    async with httpx.AsyncClient() as http:
        status = (await http.get(s.proxy_url + "/aibridge/status")).json()
    (server,) = status["mcp"]
    assert server["name"] == "wx"
    assert server["state"] == "ready"
    assert server["transport"] == "stdio"
    assert server["target"] == sys.executable
    assert "bmcp_wx_tide" in server["tools"]
