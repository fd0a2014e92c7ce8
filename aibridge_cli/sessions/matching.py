"""Which recorded request a new request is, sans-io: the rules and the comparison.

Theory of operation: a request is reduced once to a ``RequestShape`` holding only what
the rules compare: method, path, query (parsed, order-free) and body. A JSON body is
compared as data: ids and timestamps are dropped (``normalize.strip_volatile``: ``id``,
``*_id`` such as ``metadata.user_id``, ``created``...), a missing ``stream`` is ``false``
as the providers read it, and the rules' ``ignore`` paths are removed. Two shapes match
when every field the rules name is equal, so matching is an equality test; only a
request that matches nothing is diffed, against each candidate, to name the closest.

The mock upstream (``mock.py``) serves from these; the pytest plugin configures them per
test (``match_on``, ``ignore``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl

from ..errors import ConfigError
from .normalize import diff_normalized, strip_volatile

MatchField = Literal["method", "path", "query", "body"]
MATCH_FIELDS: tuple[MatchField, ...] = get_args(MatchField)


class _AnyBody:
    """A recorded body that was not kept: it matches any body."""

    def __repr__(self) -> str:
        return "<any body>"


ANY_BODY: Any = _AnyBody()


@dataclass(frozen=True)
class MatchRules:
    """What two requests must share to be the same request.

    ``ignore`` names body fields by dotted path (``metadata``, ``max_tokens``,
    ``messages.0.content``) dropped before comparing, besides ids and timestamps.
    """

    match_on: frozenset[MatchField] = frozenset(MATCH_FIELDS)
    ignore: tuple[str, ...] = ()

    @classmethod
    def of(cls, match_on: Iterable[str] | None = None, ignore: Iterable[str] = ()) -> MatchRules:
        """Rules from user input; an unknown field is a ``ConfigError`` naming the known ones."""
        fields = list(MATCH_FIELDS if match_on is None else match_on)
        unknown = [f for f in fields if f not in MATCH_FIELDS]
        if unknown:
            known = ", ".join(MATCH_FIELDS)
            raise ConfigError(f"match_on: unknown field {unknown[0]!r} (known: {known})")
        return cls(frozenset(f for f in MATCH_FIELDS if f in fields), tuple(ignore))

    @property
    def by_route(self) -> bool:
        """True when requests on different routes can never match (the fast index)."""
        return {"method", "path"} <= self.match_on


@dataclass(frozen=True)
class RequestShape:
    """A request as the rules see it."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: Any

    @property
    def route(self) -> tuple[str, str]:
        return self.method, self.path


def request_shape(method: str, target: str, body: Any, rules: MatchRules) -> RequestShape:
    """The shape of a request; ``body`` is raw bytes, decoded JSON, or ``ANY_BODY``."""
    path, _, query = target.partition("?")
    return RequestShape(
        method.upper(),
        path,
        tuple(sorted(parse_qsl(query, keep_blank_values=True))),
        body if body is ANY_BODY else comparable_body(body, rules.ignore),
    )


def comparable_body(body: Any, ignore: Sequence[str] = ()) -> Any:
    """A body as it is compared: JSON decoded, volatile and ignored fields dropped."""
    if isinstance(body, bytes | bytearray):
        if not body:
            return None
        try:
            body = json.loads(body)
        except ValueError:
            return bytes(body)
    if not isinstance(body, dict):
        return body
    out = strip_volatile(body)
    out.setdefault("stream", False)
    for dotted in ignore:
        _drop(out, dotted.split("."))
    return out


def _drop(data: Any, path: list[str]) -> None:
    head, rest = path[0], path[1:]
    if isinstance(data, list) and head.isdigit() and int(head) < len(data):
        if rest:
            _drop(data[int(head)], rest)
        else:
            del data[int(head)]
    elif isinstance(data, list) and head == "*":
        for item in data:
            if rest:
                _drop(item, rest)
    elif isinstance(data, dict) and head in data:
        if rest:
            _drop(data[head], rest)
        else:
            del data[head]


def matches(recorded: RequestShape, seen: RequestShape, rules: MatchRules) -> bool:
    on = rules.match_on
    return (
        ("method" not in on or recorded.method == seen.method)
        and ("path" not in on or recorded.path == seen.path)
        and ("query" not in on or recorded.query == seen.query)
        and ("body" not in on or recorded.body is ANY_BODY or recorded.body == seen.body)
    )


def differences(recorded: RequestShape, seen: RequestShape, rules: MatchRules) -> list[str]:
    """Each way ``seen`` differs from ``recorded`` under ``rules``, one readable line each."""
    on = rules.match_on
    out: list[str] = []
    for name in ("method", "path"):
        want, got = getattr(recorded, name), getattr(seen, name)
        if name in on and want != got:
            out.append(f"request {name}: expected {want}, got {got}")
    if "query" in on and recorded.query != seen.query:
        want_q = "&".join(f"{k}={v}" for k, v in recorded.query) or "(none)"
        got_q = "&".join(f"{k}={v}" for k, v in seen.query) or "(none)"
        out.append(f"request query: expected {want_q}, got {got_q}")
    if "body" in on and recorded.body is not ANY_BODY and recorded.body != seen.body:
        if isinstance(recorded.body, bytes) or isinstance(seen.body, bytes):
            out.append("request body differs from the recorded bytes")
        else:
            out += [f"request body {line}" for line in diff_normalized(recorded.body, seen.body)]
    return out


def closest(
    candidates: Sequence[RequestShape], seen: RequestShape, rules: MatchRules
) -> tuple[int, list[str]] | None:
    """The candidate with the fewest differences (the first among equals), and them.

    A candidate on the same route always beats one on another route: a changed prompt
    should be shown against the request it changed, not against a stranger that happens
    to differ in fewer fields.
    """
    best: tuple[tuple[bool, int], int, list[str]] | None = None
    for index, candidate in enumerate(candidates):
        found = differences(candidate, seen, rules)
        rank = (candidate.route != seen.route, len(found))
        if best is None or rank < best[0]:
            best = (rank, index, found)
    return None if best is None else (best[1], best[2])
