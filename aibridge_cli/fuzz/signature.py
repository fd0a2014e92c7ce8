"""Failure signatures: which oracle failed, on which scenario, and what the client got.

A campaign groups its failing iterations by signature, so each distinct failure is
counted, dated (its first iteration) and shrunk on its own, instead of the first failure
of an oracle hiding the others. The shape names the client body the way a person would
("JSON 429 then SSE", "SSE cut without error", "200 with truncated JSON"); for the
oracles that do not judge a body it is the message with its numbers masked.

Plain data and sans-io: the JSON report carries signatures for other tools to read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Protocol

from ..headers import media_type
from .grammar import SSE_FIELDS, Response, parse_events

_NUMBER = re.compile(r"\d+(\.\d+)?")
_TERMINAL = frozenset(
    {"message_stop", "[DONE]", "response.completed", "response.failed", "response.incomplete"}
)


@dataclass(frozen=True, order=True)
class Signature:
    """One distinct failure: ``oracle`` broken on ``scenario``, the client's body ``shape``."""

    scenario: str
    oracle: str
    shape: str

    def label(self) -> str:
        return f"{self.oracle}: {self.shape}"

    def to_json(self) -> dict[str, str]:
        return asdict(self)


class _Judged(Protocol):
    @property
    def oracle(self) -> str: ...

    @property
    def shape(self) -> str: ...


class Signed(Protocol):
    """A judged iteration (simulated or black-box): its index and its signatures."""

    @property
    def iteration(self) -> int: ...

    @property
    def signatures(self) -> tuple[Signature, ...]: ...


def first_signatures(scenario: str, violations: Iterable[_Judged]) -> tuple[Signature, ...]:
    """One signature per oracle broken, from its first violation (the most fundamental)."""
    first: dict[str, Signature] = {}
    for v in violations:
        first.setdefault(v.oracle, Signature(scenario, v.oracle, v.shape))
    return tuple(first.values())


def signature_counts(failures: Iterable[Signed]) -> dict[Signature, tuple[int, int]]:
    """Every signature of ``failures``: (failing iterations, first iteration)."""
    out: dict[Signature, tuple[int, int]] = {}
    for outcome in failures:
        for signature in outcome.signatures:
            count, first = out.get(signature, (0, outcome.iteration))
            out[signature] = (count + 1, first)
    return out


def masked(message: str) -> str:
    """``message`` with every number as N: the same failure at another frame or key."""
    return _NUMBER.sub("N", message)


def problem_kind(problem: str) -> str:
    """A grammar problem without the quoted values that vary: what went wrong, not where."""
    head = re.split(r"[:(]", problem, maxsplit=1)[0]
    return masked(head.strip())


def body_shape(response: Response) -> str:
    """The client body in a few words: its framing and how it ended."""
    if response.status is None:
        return "no response"
    status, body = response.status, response.body
    media = media_type(response.headers)
    if media == "text/event-stream":
        return _sse_shape(response)
    if media == "application/json":
        text = body.decode("utf-8", errors="replace").lstrip()
        try:
            _, end = json.JSONDecoder().raw_decode(text)
        except ValueError:
            if response.truncated:
                return f"JSON {status}, the client left"
            if not text:
                return f"{status} with an empty body"
            return f"{status} with truncated JSON" if text.startswith("{") else f"{status} non-JSON"
        rest = text[end:].lstrip()
        if not rest:
            return f"JSON {status}" if response.complete else f"JSON {status}, message cut"
        if rest.startswith(("event:", "data:")):
            return f"JSON {status} then SSE"
        return f"JSON {status} then other bytes"
    return f"{status} {media or 'without content-type'}"


def _sse_shape(response: Response) -> str:
    events, framing = parse_events(response.body, truncated=response.truncated)
    if any(p.startswith("not an SSE line") for p in framing):
        lines = response.body.replace(b"\r\n", b"\n").split(b"\n")
        foreign = next((line for line in lines if line and not line.startswith(SSE_FIELDS)), b"")
        return "SSE then JSON" if foreign.startswith(b"{") else "SSE then other bytes"
    names = [
        "[DONE]" if data == "[DONE]" else name or data.get("type")
        for name, data in events
        if name != "ping" and (data == "[DONE]" or isinstance(data, dict))
    ]
    if any(_is_error(name, data) for name, data in events):
        return "SSE ended by an error"
    if response.truncated:
        return "SSE, the client left"
    if names and names[-1] in _TERMINAL:
        return "SSE complete" if response.complete else "SSE complete, message cut"
    return "SSE cut without error" if response.complete else "SSE cut mid-message"


def _is_error(name: str | None, data: object) -> bool:
    return name == "error" or (isinstance(data, dict) and "error" in data)


__all__ = [
    "Signature",
    "Signed",
    "body_shape",
    "first_signatures",
    "masked",
    "problem_kind",
    "signature_counts",
]
