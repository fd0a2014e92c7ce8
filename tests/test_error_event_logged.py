"""An upstream ``error`` event mid-stream is relayed to the client as it came, and its
request's log line says so at error level with the event's cause (masked), in each
API's shape: a 200 that ended in an error is not an ``info`` success."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from aibridge_cli.fakes.replies import Reply
from aibridge_cli.tools import ToolSet

from .anthropic_script import message_start, stream, text_block
from .conftest import StackFactory
from .openai_scripts import chunk

POOL = "sk-ant-logged-pool-0000SECRET"
OPENAI_POOL = "sk-proj-logged-pool-1111SECRET"

ANTHROPIC_ERROR = stream(
    message_start("msg_1"),
    text_block(0, "Hel"),
    [("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})],
)
CHAT_ERROR = Reply.sse(
    [
        chunk({"role": "assistant", "content": "Hel"}),
        (None, {"error": {"type": "server_error", "message": f"broke for key {OPENAI_POOL}"}}),
    ]
)
RESPONSES_ERROR = Reply.sse(
    [
        ("response.created", {"type": "response.created", "response": {"id": "resp_1"}}),
        ("error", {"type": "error", "code": "server_error", "message": "stream broke"}),
    ]
)
BODY: dict[str, Any] = {"model": "m", "max_tokens": 5, "stream": True}
CASES = [
    ("/anthropic/v1/messages", ANTHROPIC_ERROR, "overloaded_error: Overloaded", "Overloaded"),
    ("/openai/v1/chat/completions", CHAT_ERROR, "server_error: broke for key sk-p…CRET", "broke"),
    ("/openai/v1/responses", RESPONSES_ERROR, "server_error: stream broke", "stream broke"),
]


@pytest.mark.parametrize(
    ("path", "reply", "cause", "relayed"), CASES, ids=["anthropic", "chat", "responses"]
)
async def test_an_error_event_mid_stream_is_logged_as_an_error_with_its_cause(
    stack: StackFactory,
    caplog: pytest.LogCaptureFixture,
    path: str,
    reply: Reply,
    cause: str,
    relayed: str,
) -> None:
    caplog.set_level(logging.INFO, logger="aibridge")
    s = await stack([reply], keys=[POOL], openai_keys=[OPENAI_POOL], tools=ToolSet())
    messages = [{"role": "user", "content": "hi"}]
    body = {**BODY, "input": "hi"} if path.endswith("responses") else {**BODY, "messages": messages}
    async with httpx.AsyncClient() as http:
        response = await http.post(s.proxy_url + path, json=body)
    assert response.status_code == 200
    assert relayed in response.text  # the client got the upstream's error event
    assert "SECRET" not in response.text
    (line,) = [r for r in caplog.records if r.getMessage().startswith(f"POST {path} 200")]
    assert line.levelno == logging.ERROR
    assert f'error="upstream error event: {cause}"' in line.getMessage()
