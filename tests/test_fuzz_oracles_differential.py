"""The differential and specification oracles: each catches a bug planted in the proxy
that the older oracles pass, and the unplanted proxy passes the same plan."""

from __future__ import annotations

from typing import Any

import pytest

from aibridge_cli.errors import AllKeysRateLimited
from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.differential import Exchange, stream_problems
from aibridge_cli.fuzz.grammar import Response
from aibridge_cli.fuzz.plan import Cut, Fault, FaultKind, Plan, upstream_replies
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.providers.anthropic import AnthropicConversation
from aibridge_cli.providers.openai_chat import ChatConversation
from aibridge_cli.providers.openai_responses import ResponsesConversation
from aibridge_cli.proxy import keypool
from aibridge_cli.proxy.bridge import ClientStream


def oracles_of(name: str, plan: Plan) -> set[str]:
    violations, _ = Judge("eager").evaluate(builtin(name)[0], plan)
    return {v.oracle for v in violations}


CHAT_TOOL = "openai-chat/injected-tool#streaming"
RESPONSES_TOOL = "openai-responses/injected-tool#streaming"
ANTHROPIC_TOOL = "anthropic/injected-tool#streaming"
# The Responses stream of the tool turn: created, the call added, its arguments done,
# the call done, completed. An error after the arguments: the held lifecycle goes out
# with it, the call's events never.
ERROR_AFTER_ARGUMENTS = Plan(faults=(Fault(FaultKind.ERROR_EVENT, 0, at=3),))


def test_the_unplanted_proxy_passes_these_plans() -> None:
    assert oracles_of(CHAT_TOOL, Plan()) == set()
    assert oracles_of(RESPONSES_TOOL, ERROR_AFTER_ARGUMENTS) == set()
    assert oracles_of(ANTHROPIC_TOOL, Plan()) == set()
    assert oracles_of("anthropic/injected-tool#blocking", Plan()) == set()
    assert oracles_of("openai-responses/rate-limit-after-tool-turn", Plan()) == set()


def test_leaked_argument_deltas_of_an_injected_chat_call(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ChatConversation._tool_delta

    def tool_delta(self: ChatConversation, choice: Any, tc: Any) -> Any:
        # The plant: only the delta that names the injected call is hidden.
        out = original(self, choice, tc)
        named = ((tc or {}).get("function") or {}).get("name")
        return tc if out is None and not named else out

    monkeypatch.setattr(ChatConversation, "_tool_delta", tool_delta)
    # No name leaks, so the grammar's injected-tool check sees nothing.
    assert oracles_of(CHAT_TOOL, Plan()) == {"differential"}


def test_events_of_a_hidden_responses_call_released_on_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = ResponsesConversation._hides

    def hides(self: ResponsesConversation, data: dict[str, Any]) -> bool:
        # The plant: only the event naming the call is hidden, not those tied to it.
        return original(self, data) and isinstance(data.get("item"), dict)

    monkeypatch.setattr(ResponsesConversation, "_hides", hides)
    # function_call_arguments.done carries item_id and output_index, not the name.
    assert oracles_of(RESPONSES_TOOL, ERROR_AFTER_ARGUMENTS) == {"differential"}


def test_a_blocking_answer_that_drops_an_iterations_text(monkeypatch: pytest.MonkeyPatch) -> None:
    original = AnthropicConversation.client_body

    def client_body(self: AnthropicConversation) -> dict[str, Any]:
        body = original(self)
        return {**body, "content": body["content"][1:]}  # the plant: the first turn's text

    monkeypatch.setattr(AnthropicConversation, "client_body", client_body)
    assert "differential" in oracles_of("anthropic/injected-tool#blocking", Plan())


def test_usage_of_one_iteration_only(monkeypatch: pytest.MonkeyPatch) -> None:
    original = AnthropicConversation._message_delta

    def message_delta(self: AnthropicConversation, data: dict[str, Any], raw: bytes) -> list[bytes]:
        self.usage = {}  # the plant: the earlier iterations' usage is forgotten
        return original(self, data, raw)

    monkeypatch.setattr(AnthropicConversation, "_message_delta", message_delta)
    # Well-formed, the same in every run, the text intact: only usage sees it.
    assert oracles_of(ANTHROPIC_TOOL, Plan()) == {"usage"}


def test_an_error_after_a_continuation_answered_in_json(monkeypatch: pytest.MonkeyPatch) -> None:
    async def initiate(self: ClientStream) -> None:
        pass  # the plant: eager no longer initiates the stream before a continuation

    monkeypatch.setattr(ClientStream, "initiate", initiate)
    # A JSON 429 is a right answer on its own; after a tool turn eager owes an SSE stream.
    assert oracles_of("openai-responses/rate-limit-after-tool-turn", Plan()) == {"continuation-sse"}


def test_retry_after_rounded_to_nearest_shows_on_a_fractional_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def rounded(remaining: float) -> keypool.PoolKey:
        raise AllKeysRateLimited(retry_after=max(1, round(remaining)))

    monkeypatch.setattr(keypool.KeyPool, "_raise_rate_limited", staticmethod(rounded))
    scenario = "anthropic/all-keys-rate-limited"
    # An HTTP date 20 s after the epoch, read 0.7 s in: 19.3 s left, the rules say 20, and
    # so does the pool's timeline (key-consistency).
    both = {"key-pool", "key-consistency"}
    assert oracles_of(scenario, Plan(retry_after="date", start_after=0.7)) == both
    # On a whole-second clock rounding and rounding up agree: the old plans missed it.
    assert oracles_of(scenario, Plan(retry_after="date")) == set()
    assert oracles_of(scenario, Plan(retry_after="2.5")) == both


@pytest.mark.parametrize("provider", ["anthropic", "openai-chat", "openai-responses"])
def test_cr_and_crlf_upstreams_split_between_cr_and_lf_are_relayed_whole(provider: str) -> None:
    name = f"{provider}/simple#streaming"
    exchange = builtin(name)[0].exchanges[0]
    offsets, pos = [], 0
    for chunk in exchange.chunks[:-1]:
        pos += len(chunk)
        offsets.append(pos)
    crlf = Plan(line_ending="\r\n", cuts=(Cut(0, tuple(offsets)),))
    (reply,) = upstream_replies(builtin(name)[0], crlf)
    assert all(c.endswith(b"\r") for c in reply.chunks[:-1])  # each cut between CR and LF
    assert oracles_of(name, crlf) == set()
    assert oracles_of(name, Plan(line_ending="\r")) == set()


@pytest.mark.parametrize(
    "conversation", [AnthropicConversation, ChatConversation, ResponsesConversation]
)
def test_a_clean_early_end_relayed_as_a_complete_answer(
    monkeypatch: pytest.MonkeyPatch, conversation: type[Any]
) -> None:
    name = {
        AnthropicConversation: "anthropic/simple#streaming",
        ChatConversation: "openai-chat/simple#streaming",
        ResponsesConversation: "openai-responses/simple#streaming",
    }[conversation]
    early = Plan(faults=(Fault(FaultKind.EARLY_END, 0, at=3),))
    assert oracles_of(name, early) == set()
    monkeypatch.setattr(conversation, "end_stream", lambda self: [])  # the plant
    assert "differential" in oracles_of(name, early)


def test_generic_lets_a_gateway_add_fields_and_ids_but_not_lose_an_event() -> None:
    events: list[tuple[str | None, Any]] = [
        ("response.created", {"type": "response.created", "sequence_number": 0}),
        (
            "response.output_text.delta",
            {"type": "response.output_text.delta", "sequence_number": 1, "delta": "hi"},
        ),
        ("response.completed", {"type": "response.completed", "sequence_number": 2}),
    ]
    upstream = Reply.sse(events)
    sse = [("content-type", "text/event-stream")]

    def judged(exact: bool, sent: list[tuple[str | None, Any]]) -> list[str]:
        response = Response(200, sse, b"".join(Reply.sse(sent).chunks), complete=True)
        return stream_problems(Exchange("openai-responses", (), [upstream], response), exact)

    added = [(name, {**data, "id": "gw-1", "provider": "x"}) for name, data in events]
    assert judged(False, added) == []
    assert judged(True, added) != []  # aibridge relays events as they came
    assert judged(False, [added[0], added[2]])[0].startswith("an event differs (#1)")
