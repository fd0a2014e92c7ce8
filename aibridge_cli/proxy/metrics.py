"""The proxy's metrics for ``GET /metrics`` (docs/metrics.md), as Prometheus families.

What feeds them, and when:

* an interception, when it ends (``finished``): its count, duration, prompt, tokens (the
  usage the client was told, summed over the loop), injected tool runs, the client's own
  tool calls, key failovers (an exchange answered 429/401/403 that another followed) and
  an exhausted pool (its recorded outcome); ``started`` counts it in flight;
* a pass-through request, when it starts;
* the circuit breakers, through the listener every breaker is given (``on_breaker``);
* the key pools: each recorded answer 429 (cooling) or 401/403 (disabled) moves its key,
  and the pools are read when an interception ends and at every scrape, where a key whose
  state differs from the last one known made a transition (a cooling key turns valid by
  the clock alone, so that one is counted when next looked at).

Keys appear masked only (``PoolKey.masked``); a session id never becomes a label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import AllKeysDisabled, AllKeysRateLimited
from ..interception import Interception
from .breaker import BreakerEvent, Breakers, BreakerState
from .exposition import Family, render
from .keypool import FAILOVER_STATUSES, KeyPool

_WHO = ("provider", "endpoint", "model", "client")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# coder's gauge values for a breaker's state
BREAKER_GAUGE = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 0.5, BreakerState.OPEN: 1.0}
# usage field paths -> token type; the first present counts (Anthropic's, then OpenAI's)
TOKEN_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "input": (("input_tokens",), ("prompt_tokens",)),
    "output": (("output_tokens",), ("completion_tokens",)),
    "cache_read": (
        ("cache_read_input_tokens",),
        ("input_tokens_details", "cached_tokens"),
        ("prompt_tokens_details", "cached_tokens"),
    ),
    "cache_write": (("cache_creation_input_tokens",),),
}
_EXHAUSTED = {
    f"error: {AllKeysRateLimited(1).message}": "rate_limited",
    f"error: {AllKeysDisabled().message}": "disabled",
}
_MOVES = {429: "cooling", 401: "disabled", 403: "disabled"}  # what an answer does to its key
_OUTCOMES = (("ok", "ok"), ("error", "error"), ("client disconnected", "disconnected"))


class Pooled(Protocol):
    """What the metrics read of a provider's upstream: its key pool."""

    @property
    def pool(self) -> KeyPool: ...


class Spent(Protocol):
    """What the metrics read of a conversation when it ends (``providers.base``)."""

    client_calls: list[str]

    def client_usage(self) -> dict[str, Any]: ...


def tokens(usage: Mapping[str, Any]) -> dict[str, int]:
    """Tokens by type in one usage object, whichever API's names it uses."""
    out: dict[str, int] = {}
    for kind, paths in TOKEN_FIELDS.items():
        for path in paths:
            value: Any = usage
            for part in path:
                # dict, not Mapping: an ABC's isinstance costs ten times more, per field
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[kind] = int(value)
                break
    return out


def is_prompt(api: str, body: Any) -> bool:
    """Whether a request carries a new prompt from the user (its last turn is the user's
    words), not only tool results handed back to the model."""
    if not isinstance(body, dict):
        return False
    if api == "openai-responses":
        items = body.get("input")
        if isinstance(items, str):
            return True
        last = items[-1] if isinstance(items, list) and items else None
        return isinstance(last, dict) and last.get("role") == "user"
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if not isinstance(last, dict) or last.get("role") != "user":
        return False
    content = last.get("content")
    if isinstance(content, list):  # Anthropic: tool_result blocks alone are no prompt
        return any(isinstance(b, dict) and b.get("type") != "tool_result" for b in content)
    return True


def outcome_label(outcome: str) -> str:
    for prefix, label in _OUTCOMES:
        if outcome.startswith(prefix):
            return label
    return "cancelled" if outcome == "cancelled" else "error"


class Metrics:
    """Every family ``/metrics`` serves, and what feeds them."""

    def __init__(self, upstreams: Mapping[str, Pooled]) -> None:
        self.upstreams = upstreams
        # every key starts valid: the state each was last known in
        self._key_states = {
            (provider, key.masked): "valid"
            for provider, upstream in upstreams.items()
            for key in upstream.pool.keys
        }
        self.interceptions = Family(
            "aibridge_interceptions",
            "counter",
            "Intercepted requests that ended, by how they ended.",
            (*_WHO, "outcome"),
        )
        self.in_flight = Family(
            "aibridge_interceptions_in_flight", "gauge", "Intercepted requests running now.", _WHO
        )
        self.duration = Family(
            "aibridge_interception_duration_seconds",
            "histogram",
            "From an intercepted request's arrival to its end.",
            _WHO,
            DURATION_BUCKETS,
        )
        self.passthrough = Family(
            "aibridge_passthrough_requests",
            "counter",
            "Requests passed through as they came (not intercepted).",
            ("provider", "client"),
        )
        self.prompts = Family(
            "aibridge_prompts", "counter", "Intercepted requests carrying a user prompt.", _WHO
        )
        self.tokens = Family(
            "aibridge_tokens",
            "counter",
            "Tokens by type, from the usage each client was told (summed over the loop).",
            (*_WHO, "type"),
        )
        self.injected = Family(
            "aibridge_injected_tool_invocations",
            "counter",
            "Injected tools the agentic loop ran.",
            (*_WHO, "tool", "error"),
        )
        self.selections = Family(
            "aibridge_client_tool_selections",
            "counter",
            "Calls of the client's own tools the model made.",
            (*_WHO, "tool"),
        )
        self.breaker_state = Family(
            "aibridge_breaker_state",
            "gauge",
            "Circuit breaker state: 0 closed, 0.5 half-open, 1 open.",
            ("provider", "endpoint", "model"),
        )
        self.breaker_trips = Family(
            "aibridge_breaker_trips",
            "counter",
            "Times a circuit breaker opened.",
            ("provider", "endpoint", "model"),
        )
        self.breaker_rejects = Family(
            "aibridge_breaker_rejects",
            "counter",
            "Upstream requests a circuit breaker refused.",
            ("provider", "endpoint", "model"),
        )
        self.key_state = Family(
            "aibridge_keypool_key_state",
            "gauge",
            "1 for each key's current state (masked key).",
            ("provider", "key", "state"),
        )
        self.key_transitions = Family(
            "aibridge_keypool_transitions",
            "counter",
            "Key state changes seen (valid, cooling, disabled).",
            ("provider", "key", "from", "to"),
        )
        self.exhaustions = Family(
            "aibridge_keypool_exhaustions",
            "counter",
            "Requests answered without an upstream attempt left: every key rate-limited "
            "or disabled.",
            ("provider", "reason"),
        )
        self.failovers = Family(
            "aibridge_keypool_failovers",
            "counter",
            "Upstream attempts answered 429/401/403 after which the next key was tried.",
            ("provider", "key", "status"),
        )

    # -- feeding ----------------------------------------------------------------------
    def started(self, provider: str, record: Interception, model: str) -> None:
        self.in_flight.inc((provider, record.api, model, record.client))

    def finished(
        self,
        provider: str,
        record: Interception,
        model: str,
        seconds: float,
        conversation: Spent,
        now: float,
    ) -> None:
        """One interception ended (however it ended)."""
        who = (provider, record.api, model, record.client)
        self.in_flight.inc(who, -1)
        self.interceptions.inc((*who, outcome_label(record.outcome)))
        self.duration.observe(who, seconds)
        if is_prompt(record.api, record.request.body):
            self.prompts.inc(who)
        for kind, count in tokens(conversation.client_usage()).items():
            self.tokens.inc((*who, kind), count)
        for call in record.tool_calls:
            self.injected.inc((*who, call.name, "true" if call.is_error else "false"))
        for name in conversation.client_calls:
            self.selections.inc((*who, name))
        for exchange in record.upstream[:-1]:  # another attempt followed each of these
            status = exchange.response.status
            if exchange.key is not None and status in FAILOVER_STATUSES:
                self.failovers.inc((provider, exchange.key, str(status)))
        for exchange in record.upstream:
            moved = _MOVES.get(exchange.response.status or 0)
            if exchange.key is not None and moved is not None:
                self._move(provider, exchange.key, moved)
        reason = _EXHAUSTED.get(record.outcome)
        if reason is not None:
            self.exhaustions.inc((provider, reason))
        self._observe_states(now)

    def passed_through(self, provider: str, record: Interception) -> None:
        self.passthrough.inc((provider, record.client))

    def on_breaker(self, event: BreakerEvent) -> None:
        """The listener every breaker is given."""
        key = (event.key.provider, event.key.endpoint, event.key.model)
        if event.kind == "transition":
            self.breaker_state.set(key, BREAKER_GAUGE[event.state])
            if event.state is BreakerState.OPEN:
                self.breaker_trips.inc(key)
        elif event.kind == "reject":
            self.breaker_rejects.inc(key)
        elif key not in self.breaker_state.values:
            self.breaker_state.set(key, 0.0)

    def observe_pools(self, now: float) -> None:
        """Count the key-state changes since the last look; set each key's state gauge
        (read at a scrape only: it is set then, not at every request)."""
        self._observe_states(now)
        for (provider, key), state in self._key_states.items():
            for each in ("valid", "cooling", "disabled"):
                self.key_state.set((provider, key, each), float(each == state))

    def _observe_states(self, now: float) -> None:
        """Count the key-state changes since the last look (a cooling key turns valid by
        the clock alone: this is where that is seen)."""
        for provider, upstream in self.upstreams.items():
            for key in upstream.pool.keys:
                self._move(provider, key.masked, key.state(now).value)

    def _move(self, provider: str, key: str, state: str) -> None:
        seen = self._key_states.get((provider, key))
        if seen is not None and seen != state:
            self.key_transitions.inc((provider, key, seen, state))
        self._key_states[provider, key] = state

    # -- serving ----------------------------------------------------------------------
    def exposition(self, now: float, breakers: Breakers | None = None) -> str:
        """The text ``/metrics`` answers, as of ``now``."""
        self.observe_pools(now)
        if breakers is not None:
            breakers.snapshot(now)  # an open breaker whose time is up turns half-open
        return render(
            [
                self.interceptions,
                self.in_flight,
                self.duration,
                self.passthrough,
                self.prompts,
                self.tokens,
                self.injected,
                self.selections,
                self.breaker_state,
                self.breaker_trips,
                self.breaker_rejects,
                self.key_state,
                self.key_transitions,
                self.exhaustions,
                self.failovers,
            ]
        )
