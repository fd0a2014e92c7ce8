"""``serve --chaos``: the fuzzer's faults (``faults.py``) struck on live traffic, sans-io.

Theory of operation: a ``Rule`` names a fault kind, where in the answer it strikes
(``at``), **when** (probability, the first N matching requests, every Nth, a time window)
and **which** requests (API, route, model, user agent, session, a tool turn). Every
upstream request of the agentic loop is a candidate: ``Chaos.decide`` gives it to each
rule; a rule whose *which* matches counts it (``matched``), and the first one whose *when*
also holds strikes it (``struck``). The probability draw is a hash of the seed, the rule's
name and its match number, never a shared random stream: the same seed and the same
requests give the same strikes, whatever else the process does. Time comes in as ``now``
(trio's clock); nothing here does I/O. How a strike reaches the wire is ``chaos_wire.py``.

The fault plays the upstream's part: the proxy handles it as it handles the real failure
(a 429 cools a pool key; a broken stream ends in the proxy's error event), and the
recording holds it as the upstream's answer, so ``replay`` and ``fuzz`` take it as it is.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from ..errors import ConfigError
from ..faults import FaultKind
from ..headers import Headers, header
from ..interception import Interception
from .chaos_report import FaultSeen, Reactions, Seen

TOOL_ARGS = "tool-args"  # ``at``: inside the first tool call's arguments
Point = int | Literal["tool-args"]
Turn = Literal["any", "first", "tool"]
# The fuzzer's simulated client hangs up; serve --chaos cannot make a real one.
LIVE_KINDS = tuple(k for k in FaultKind if k is not FaultKind.CLIENT_DISCONNECT)
# Only an event stream has events to break, replace or end early at.
STREAM_ONLY = frozenset({FaultKind.ERROR_EVENT, FaultKind.MALFORMED_SSE})
APIS = ("anthropic", "openai", "openai-chat", "openai-responses")
# Headers a client names its session by: Claude Code's, Codex CLI's, a generic one.
SESSION_HEADERS = ("x-claude-code-session-id", "session_id", "session-id", "x-session-id")


@dataclass(frozen=True)
class Rule:
    """One chaos rule: what fault, when and on which requests (see the module docstring)."""

    kind: FaultKind
    name: str = ""
    at: Point = 0
    p: float = 1.0
    first: int | None = None
    every: int | None = None
    window: tuple[float, float | None] | None = None  # seconds after the rule was added
    api: str | None = None
    route: str | None = None  # glob on the client's path
    model: str | None = None  # glob
    user_agent: str | None = None  # glob, case-insensitive
    session: str | None = None
    turn: Turn = "any"
    retry_after: str | None = None
    should_retry: bool | None = None
    seconds: float = 30.0  # how long a stall lasts
    message: str | None = None

    def matches(self, facts: Facts) -> bool:
        """The *which* half: does this request fall under the rule?"""
        if self.kind in STREAM_ONLY or self.at == TOOL_ARGS:
            if not facts.streaming:
                return False
        if self.api is not None and self.api not in (facts.api, facts.api.split("-")[0]):
            return False
        if self.turn == "tool" and not facts.after_tool_turn:
            return False
        if self.turn == "first" and facts.after_tool_turn:
            return False
        checks = (
            (self.route, facts.path),
            (self.model, facts.model),
            (self.user_agent, facts.user_agent),
        )
        if any(glob is not None and not _globbed(glob, value) for glob, value in checks):
            return False
        return self.session is None or self.session == facts.session

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        return {k: v for k, v in data.items() if v is not None and v != _DEFAULTS.get(k)}


_DEFAULTS: dict[str, Any] = {"at": 0, "p": 1.0, "turn": "any", "seconds": 30.0}


def _globbed(glob: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), glob.lower())


@dataclass(frozen=True)
class Facts:
    """What the rules look at in one upstream request."""

    api: str
    path: str
    model: str = ""
    user_agent: str = ""
    session: str = ""
    streaming: bool = False
    after_tool_turn: bool = False
    digest: str = ""  # of the client's request body: a retry sends the same one
    client: str = ""  # user agent and session: who sent it


def request_facts(
    api: str, target: str, headers: Headers, client_body: Any, *, loop_turn: bool
) -> Facts:
    """The facts of an upstream request for a client's request; ``loop_turn``: the proxy
    ran injected tools before it (an agentic continuation)."""
    body = client_body if isinstance(client_body, dict) else {}
    agent = header(headers, "user-agent") or ""
    session = next((v for name in SESSION_HEADERS if (v := header(headers, name))), "")
    return Facts(
        api=api,
        path=target.partition("?")[0],
        model=str(body.get("model", "")),
        user_agent=agent,
        session=session,
        streaming=body.get("stream") is True,
        after_tool_turn=loop_turn or carries_tool_results(body),
        digest=body_digest(client_body),
        client=f"{agent} {session}".strip(),
    )


def carries_tool_results(body: Mapping[str, Any]) -> bool:
    """The client's request answers tool calls: its last message (or input item) is a
    tool result, in any of the three APIs."""
    messages = body.get("messages")
    items = messages if isinstance(messages, list) else body.get("input")
    if not isinstance(items, list) or not items or not isinstance(items[-1], dict):
        return False
    last = items[-1]
    if last.get("role") == "tool" or last.get("type") == "function_call_output":
        return True
    content = last.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


# Left out of a body's digest: a client may retry a broken stream as a blocking request
# with a smaller output limit (Claude Code 2.1 does: max_tokens 128000 -> 64000), and that
# is the same request again.
_NOT_THE_REQUEST = frozenset(
    {"stream", "stream_options", "max_tokens", "max_output_tokens", "max_completion_tokens"}
)


def body_digest(body: Any) -> str:
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in _NOT_THE_REQUEST}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(data.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Strike:
    """A rule striking one upstream request: its ``number``-th strike."""

    rule: Rule
    number: int

    @property
    def kind(self) -> FaultKind:
        return self.rule.kind

    def answers(self, attempt: int) -> bool:
        """This attempt (0: the first, more after a key failover) gets the fault's own
        answer instead of the upstream's: a status, or a reset before any byte."""
        kind = self.rule.kind
        if kind is FaultKind.RATE_LIMIT_ALL:
            return True
        if kind.status is not None or kind is FaultKind.RESET_BEFORE_BODY:
            return attempt == 0
        return False

    def note(self) -> dict[str, Any]:
        """What a recording keeps of it (``upstream[].chaos``)."""
        return {"rule": self.rule.name, "kind": str(self.rule.kind), "strike": self.number}


@dataclass
class RuleState:
    rule: Rule
    added_at: float
    matched: int = 0
    struck: int = 0


@dataclass
class Chaos:
    """The live rules, their counts, and what clients did after a strike."""

    seed: int = 0
    states: list[RuleState] = field(default_factory=list)
    # True once any rule was set: from then on finished requests feed the reactions.
    watching: bool = False
    reactions: Reactions = field(default_factory=Reactions)

    @classmethod
    def of(cls, rules: Iterable[Rule], seed: int = 0, now: float = 0.0) -> Chaos:
        chaos = cls(seed)
        for rule in rules:
            chaos.add(rule, now)
        return chaos

    def add(self, rule: Rule, now: float) -> Rule:
        """Add ``rule`` (named ``chaos-N`` when it has no name); its window starts now."""
        names = {s.rule.name for s in self.states}
        if not rule.name:
            n = len(self.states) + 1
            while f"chaos-{n}" in names:
                n += 1
            rule = replace(rule, name=f"chaos-{n}")
        elif rule.name in names:
            raise ConfigError(f"a chaos rule named {rule.name!r} is already set")
        self.states.append(RuleState(rule, now))
        self.watching = True
        return rule

    def clear(self, name: str | None = None) -> int:
        """Drop every rule, or the one named ``name``; how many went."""
        before = len(self.states)
        self.states = [s for s in self.states if name is not None and s.rule.name != name]
        return before - len(self.states)

    def decide(self, facts: Facts, now: float) -> Strike | None:
        """Whether a rule strikes this upstream request (the ``mcp-*`` rules never do)."""
        return self._decide(facts, now, lambda rule: not rule.kind.mcp)

    def decide_tool(self, facts: Facts, call: int, now: float) -> Strike | None:
        """Whether an ``mcp-*`` rule strikes the request's ``call``-th MCP tool call (from
        0; the rule's ``at``), as the fuzzer's MCP faults do."""
        return self._decide(facts, now, lambda rule: rule.kind.mcp and rule.at == call)

    def _decide(self, facts: Facts, now: float, takes: Callable[[Rule], bool]) -> Strike | None:
        strike: Strike | None = None
        for state in self.states:
            rule = state.rule
            if not takes(rule) or not rule.matches(facts):
                continue
            n = state.matched
            state.matched += 1
            if strike is None and self._when(state, n, now):
                state.struck += 1
                strike = Strike(rule, state.struck)
        if strike is not None:
            rule = strike.rule
            retry = float(rule.retry_after) if rule.retry_after is not None else None
            seen = FaultSeen(rule.name, str(rule.kind), retry, facts.digest, facts.client, now)
            self.reactions.struck(replace(seen, api=facts.api, path=facts.path))
        return strike

    def _when(self, state: RuleState, n: int, now: float) -> bool:
        """The *when* half for the rule's ``n``-th match (from 0)."""
        rule = state.rule
        if rule.first is not None and n >= rule.first:
            return False
        if rule.every is not None and (n + 1) % rule.every:
            return False
        if rule.window is not None:
            start, end = rule.window
            elapsed = now - state.added_at
            if elapsed < start or (end is not None and elapsed >= end):
                return False
        return rule.p >= 1.0 or self._draw(rule.name, n) < rule.p

    def _draw(self, name: str, n: int) -> float:
        digest = hashlib.blake2b(f"{self.seed}:{name}:{n}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def observe(self, facts: Facts, record: Interception, now: float) -> None:
        """A client's request is over: what the reaction report reads."""
        notes = [ex.chaos for ex in record.upstream] + [c.chaos for c in record.tool_calls]
        struck = any(notes)
        status = record.response.status
        self.reactions.finished(
            Seen(
                digest=facts.digest,
                client=facts.client,
                arrived=now - record.clock() / 1000,
                finished=now,
                # A struck answer is no recovery, though a stream that ended in an error
                # event is a 200 that went "ok". A client that hangs up as soon as it has
                # its answer cancels a request that went well.
                ok=not struck
                and not record.outcome.startswith("error")
                and status is not None
                and status < 400,
                struck=struck,
            )
        )

    def status(self) -> dict[str, Any]:
        """For ``/aibridge/status`` and ``GET /aibridge/chaos``: each rule and its counts."""
        return {
            "seed": self.seed,
            "rules": [
                {**s.rule.as_json(), "matched": s.matched, "struck": s.struck} for s in self.states
            ],
        }


# -- the spec grammar: KIND[@AT][,NAME=VALUE]... -------------------------------------------

_NAMES = {
    "name": "name",
    "p": "p",
    "first": "first",
    "every": "every",
    "window": "window",
    "api": "api",
    "route": "route",
    "model": "model",
    "ua": "user_agent",
    "user-agent": "user_agent",
    "session": "session",
    "turn": "turn",
    "retry-after": "retry_after",
    "should-retry": "should_retry",
    "seconds": "seconds",
    "message": "message",
    "at": "at",
    "kind": "kind",
}
_WINDOW = re.compile(r"(\d+(?:\.\d+)?)?-(\d+(?:\.\d+)?)?")
_RETRY_AFTER = re.compile(r"\d+(\.\d+)?")


def parse_spec(spec: str) -> Rule:
    """A rule from ``KIND[@AT][,NAME=VALUE]...``, e.g. ``529,api=anthropic,first=1`` or
    ``error-event@3,p=0.2,seed=...``; a ``ConfigError`` names the bad part."""
    head, *pairs = [part.strip() for part in spec.split(",")]
    kind, _, at = head.partition("@")
    fields: dict[str, Any] = {"kind": kind}
    if at:
        fields["at"] = at
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq:
            raise ConfigError(f"chaos spec {spec!r}: {pair!r} is not NAME=VALUE")
        fields[name.strip()] = value.strip()
    return rule_from(fields, f"chaos spec {spec!r}")


def rule_from(fields: Mapping[str, Any], where: str) -> Rule:
    """A rule from names and values (a spec's pairs, a ``[[chaos]]`` table, a POST's JSON),
    each checked: a ``ConfigError`` says which and why."""
    values: dict[str, Any] = {}
    for raw_name, value in fields.items():
        name = _NAMES.get(str(raw_name).replace("_", "-"))
        if name is None:
            known = ", ".join(sorted(set(_NAMES) - {"kind"}))
            raise ConfigError(f"{where}: unknown setting {raw_name!r} (known: {known})")
        values[name] = _checked(name, value, where)
    if "kind" not in values:
        raise ConfigError(f"{where}: no fault kind")
    rule = Rule(**values)
    if rule.at == TOOL_ARGS and not rule.kind.in_body:
        raise ConfigError(f"{where}: @tool-args needs a kind that strikes inside a body")
    return rule


def _checked(name: str, value: Any, where: str) -> Any:
    text = str(value).strip()
    try:
        if name == "kind":
            return _kind(text)
        if name == "at":
            return text if text == TOOL_ARGS else _count(text, 0)
        if name == "p":
            p = float(text)
            if not 0.0 <= p <= 1.0:
                raise ValueError
            return p
        if name in ("first", "every"):
            return _count(text, 1)
        if name == "window":
            return _window(text)
        if name == "api":
            if text not in APIS:
                raise ValueError
            return text
        if name == "turn":
            if text not in ("any", "first", "tool"):
                raise ValueError
            return text
        if name == "retry_after":
            if not _RETRY_AFTER.fullmatch(text):
                raise ValueError
            return text
        if name == "should_retry":
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if name == "seconds":
            seconds = float(text)
            if seconds < 0:
                raise ValueError
            return seconds
    except (ValueError, ConfigError) as exc:
        why = f" ({exc})" if str(exc) else ""
        raise ConfigError(f"{where}: bad {name.replace('_', '-')} {text!r}{why}") from None
    return text


def _kind(text: str) -> FaultKind:
    aliases = {"429": FaultKind.RATE_LIMIT_ONE, "overload": FaultKind.OVERLOADED}
    try:
        kind = aliases.get(text) or FaultKind(text)
    except ValueError:
        raise ValueError(f"kinds: {', '.join(LIVE_KINDS)}") from None
    if kind not in LIVE_KINDS:
        raise ValueError(f"{kind} strikes the fuzzer's simulated world only")
    return kind


def _count(text: str, least: int) -> int:
    n = int(text)
    if n < least:
        raise ValueError(f"at least {least}")
    return n


def _window(text: str) -> tuple[float, float | None]:
    match = _WINDOW.fullmatch(text)
    if match is None:
        raise ValueError("START-END seconds, either may be left out")
    start = float(match.group(1) or 0)
    end = float(match.group(2)) if match.group(2) else None
    if end is not None and end <= start:
        raise ValueError("the end comes before the start")
    return start, end


def rules_from_toml(data: Mapping[str, Any], where: str) -> tuple[list[Rule], int | None]:
    """The ``[[chaos]]`` tables of a parsed TOML file and its ``seed``, if it gives one."""
    tables = data.get("chaos", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where}: chaos must be [[chaos]] tables")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ConfigError(f"{where}: seed must be an integer, not {seed!r}")
    rules = [rule_from(t, f"{where}: [[chaos]] #{i + 1}") for i, t in enumerate(tables)]
    return rules, seed
