"""Which recorded request a new request is, sans-io: the rules and the comparison.

Theory of operation: a request is reduced once to a ``RequestShape`` holding only what
the rules compare: method, path, query (parsed, order-free) and body. A JSON body is
compared as data: the built-in normalizers (``volatile.py``: ids and timestamps for every
request, the dates, hashes and session fields of the client recognised from the headers)
make what changes from run to run constant, a missing ``stream`` is ``false`` as the
providers read it, and the rules' ``ignore`` paths are removed. Two shapes match when
every field the rules name is equal, so matching is an equality test; only a request that
matches nothing is diffed, against each candidate, to name the closest.

This is the one place for it: ``replay`` and ``mock`` (through ``mock.py``) and the pytest
plugin build their ``MatchRules`` with ``MatchRules.of`` from the command line, the ini
file or the marker (``match_on``, ``ignore``, ``no_normalize``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl

from ..errors import ConfigError
from .normalize import diff_normalized
from .volatile import NORMALIZER_NAMES, Client, detect_client, normalize_body

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
    ``messages.0.content``, ``messages.*.cache_control``) dropped before comparing;
    ``normalize_off`` names built-in normalizers (``volatile.NORMALIZERS``) not applied.
    """

    match_on: frozenset[MatchField] = frozenset(MATCH_FIELDS)
    ignore: tuple[str, ...] = ()
    normalize_off: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        match_on: Iterable[str] | None = None,
        ignore: Iterable[str] = (),
        no_normalize: Iterable[str] = (),
    ) -> MatchRules:
        """Rules from user input: ``match_on`` and ``no_normalize`` names may also come
        comma-separated, ``ignore`` paths in JSONPath (``$.messages[0].content``) or
        dotted form. An unknown name is a ``ConfigError`` naming the known ones."""
        fields = list(MATCH_FIELDS if match_on is None else _names(match_on))
        if not fields:  # matching on nothing would answer any request with any exchange
            raise ConfigError(f"match_on: no field given (known: {', '.join(MATCH_FIELDS)})")
        unknown = [f for f in fields if f not in MATCH_FIELDS]
        if unknown:
            known = ", ".join(MATCH_FIELDS)
            raise ConfigError(f"match_on: unknown field {unknown[0]!r} (known: {known})")
        off = _names(no_normalize)
        unknown = [n for n in off if n not in NORMALIZER_NAMES]
        if unknown:
            known = ", ".join(NORMALIZER_NAMES)
            raise ConfigError(f"no_normalize: unknown normalizer {unknown[0]!r} (known: {known})")
        return cls(
            frozenset(f for f in MATCH_FIELDS if f in fields),
            tuple(dotted_path(p) for p in ignore),
            frozenset(off),
        )

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


def _names(values: Iterable[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


_SEGMENT = re.compile(r"\[(\d+|\*)\]|\[['\"]([^'\"]+)['\"]\]")


def dotted_path(path: str) -> str:
    """``$.messages[0].content`` (JSONPath) as ``messages.0.content``, and JSONPath's
    descent ``$..cache_control`` (at any depth) as ``**.cache_control``; a dotted path as
    it is. A path with an empty segment is a ``ConfigError``."""
    text = path.strip()
    text = text[1:] if text.startswith("$") else text
    text = _SEGMENT.sub(lambda m: "." + (m.group(1) or m.group(2)), text)
    text = text.replace("..", ".**.").lstrip(".")
    segments = text.split(".")
    if not text or "" in segments or segments[-1] == "**":
        raise ConfigError(f"ignore: {path!r} is not a field path (e.g. $.metadata, max_tokens)")
    return text


def request_shape(
    method: str,
    target: str,
    body: Any,
    rules: MatchRules,
    headers: Iterable[tuple[str, str]] = (),
) -> RequestShape:
    """The shape of a request; ``body`` is raw bytes, decoded JSON, or ``ANY_BODY``;
    ``headers`` tell which client sent it (its normalizers apply)."""
    path, _, query = target.partition("?")
    client = detect_client(headers)
    return RequestShape(
        method.upper(),
        path,
        tuple(sorted(parse_qsl(query, keep_blank_values=True))),
        body if body is ANY_BODY else comparable_body(body, rules, client),
    )


def comparable_body(body: Any, rules: MatchRules, client: Client | None = None) -> Any:
    """A body as it is compared: JSON decoded, normalized, ignored fields dropped."""
    if isinstance(body, bytes | bytearray):
        if not body:
            return None
        try:
            body = json.loads(body)
        except ValueError:
            return bytes(body)
    if not isinstance(body, dict):
        return body
    out: Any = {"stream": False, **normalize_body(body, client, rules.normalize_off)}
    for dotted in rules.ignore:
        out = _drop(out, dotted.split("."))
    return out


def _drop(data: Any, path: list[str]) -> Any:
    """``data`` without the field at ``path`` (a copy where it changes: bodies are shared)."""
    head, rest = path[0], path[1:]
    if head == "**":  # here, and at every depth below
        data = _drop(data, rest)
        if isinstance(data, list):
            return [_drop(v, path) for v in data]
        if isinstance(data, dict):
            return {k: _drop(v, path) for k, v in data.items()}
        return data
    if isinstance(data, list):
        picked = range(len(data)) if head == "*" else [int(head)] if head.isdigit() else []
        if not rest:
            return [v for i, v in enumerate(data) if i not in picked]
        return [_drop(v, rest) if i in picked else v for i, v in enumerate(data)]
    if isinstance(data, dict):
        keys = set(data) if head == "*" else {head}
        if not rest:
            return {k: v for k, v in data.items() if k not in keys}
        return {k: _drop(v, rest) if k in keys else v for k, v in data.items()}
    return data


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
