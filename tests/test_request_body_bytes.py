"""A request body the proxy has no reason to change reaches the upstream as the client's
own bytes (spacing, key order, number spelling and escapes kept); one it changes (tools
injected) is serialized again, as compact JSON."""

from __future__ import annotations

import json

import httpx

from aibridge_cli.fakes.anthropic_replies import message
from aibridge_cli.tools import ToolSet

from .conftest import WEATHER, StackFactory

# Spelled as no json.dumps would write it: spaces, 1.50, an escaped é, a key order of its own.
RAW = (
    b'{ "max_tokens" : 1.50e2, "model":"claude-test",\n'
    b' "messages":[{"role":"user","content":"caf\\u00e9?"}] }'
)


async def post(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            url + "/anthropic/v1/messages",
            content=RAW,
            headers={"content-type": "application/json", "x-api-key": "sk-client"},
        )


async def test_an_unchanged_body_goes_upstream_byte_for_byte(stack: StackFactory) -> None:
    s = await stack([message([{"type": "text", "text": "oui"}], "end_turn", 1)], tools=ToolSet())
    response = await post(s.proxy_url)
    assert response.status_code == 200
    (seen,) = s.upstream.seen
    assert seen.body == RAW


async def test_a_body_with_injected_tools_is_serialized_again(stack: StackFactory) -> None:
    s = await stack(
        [message([{"type": "text", "text": "oui"}], "end_turn", 1)], tools=ToolSet.of([WEATHER])
    )
    response = await post(s.proxy_url)
    assert response.status_code == 200
    (seen,) = s.upstream.seen
    sent = json.loads(seen.body)
    assert [t["name"] for t in sent["tools"]] == [WEATHER.name]
    assert {k: v for k, v in sent.items() if k != "tools"} == json.loads(RAW)
    assert seen.body != RAW
