"""A session world's requests: several client requests, each with its own body, route,
pace and upstream answers, against one proxy.

The upstream cannot tell which client an upstream request serves by when it comes (the
proxy's connections are pooled, and overlapping requests interleave), so it tells by what
it says: the client's conversation (``messages``, or the Responses API's ``input``) is a
prefix of every upstream request made for it, and an agentic continuation only adds turns
after it. ``Session.owner`` picks the request whose conversation the upstream body holds
whole and longest; requests that say exactly the same thing (``twins``) cannot be told
apart, and share their answers in arrival order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from ..fakes.scripted_upstream import Reply
from .client import Pace


@dataclass(frozen=True)
class SessionRequest:
    path: str
    body: bytes
    replies: Sequence[Reply]  # this request's upstream answers, in the order it asks
    pace: Pace  # its own: a client disconnect strikes one request


Fingerprint = tuple[list[Any], Any, Any]  # conversation, system (or instructions), model


def fingerprint(body: bytes) -> Fingerprint:
    """What identifies a request's conversation in any upstream request made for it."""
    try:
        data = json.loads(body)
    except ValueError:
        return [], None, None
    if not isinstance(data, dict):
        return [], None, None
    conversation = data.get("messages", data.get("input"))
    if isinstance(conversation, str):
        conversation = [conversation]
    system = data.get("system", data.get("instructions"))
    return (conversation if isinstance(conversation, list) else []), system, data.get("model")


@lru_cache(maxsize=16)
def _prints(bodies: tuple[bytes, ...]) -> tuple[list[Fingerprint], frozenset[int]]:
    """Each body's fingerprint, and the requests another says exactly the same as: once
    per session, not once per world (the bodies of a recorded session are large)."""
    prints = [fingerprint(body) for body in bodies]
    keys = [json.dumps(p, sort_keys=True) for p in prints]
    return prints, frozenset(i for i, k in enumerate(keys) if keys.count(k) > 1)


def _common(a: list[Any], b: list[Any]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class Session:
    requests: Sequence[SessionRequest]

    @cached_property
    def fingerprints(self) -> list[Fingerprint]:
        return _prints(tuple(r.body for r in self.requests))[0]

    @cached_property
    def twins(self) -> frozenset[int]:
        """Requests another request says exactly the same as: their answers are shared."""
        return _prints(tuple(r.body for r in self.requests))[1]

    def owner(self, body: bytes, taken: Sequence[int]) -> int:
        """The request an upstream ``body`` was made for: the one whose conversation it
        holds whole and longest (then the same system prompt and model); among equals,
        the first with answers left (``taken``: how many each has had)."""
        conversation, system, model = fingerprint(body)

        def score(i: int) -> tuple[bool, int, bool, bool]:
            theirs, their_system, their_model = self.fingerprints[i]
            common = _common(theirs, conversation)
            return common == len(theirs), common, their_system == system, their_model == model

        scores = [score(i) for i in range(len(self.requests))]
        best = max(scores)
        tied = [i for i, s in enumerate(scores) if s == best]
        left = [i for i in tied if taken[i] < len(self.requests[i].replies)]
        return (left or tied)[0]
