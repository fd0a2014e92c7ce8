"""The black-box mock upstream's script: which iteration a request belongs to, and what
it is answered.

Every client request carries a marker (``aibridge-fuzz-<run>-<i>``, or ``-canary`` for the
canary). A request with another run's marker or none is *unmarked*; one marked with an
earlier iteration is *late*: both are answered 500 and not judged. A request of the
current iteration takes the next scripted reply, with one exception, the retry rule:

* A **repeated attempt** is a request whose body is the previous request's of this
  iteration (byte for byte, or but for its ``model``: a fallback to another model), after
  an answer that failed (an error status, a reset, a stall, an error event). A gateway
  that retries or falls back sends exactly that.
* After a key failure (429, 401, 403) a repeat takes the next scripted reply: the
  scenario's own rule (a key pool fails over with the same body, and the script holds
  the answer the next key gets). After any other failure, or when the script is spent,
  a repeat gets **the same failure again**: the upstream is still broken, so a retry
  cannot turn the iteration into another one, and what the oracles expect of the
  client's answer stays what it was. A retried answer replaces the one it retries in
  what the oracles read (``served``), so its text is not counted twice.
* A request that is not a repeat, past the end of the script, is answered 500 ("not
  this iteration's request") and judged by what the client got.

Times are trio's clock, the one the client's side of the campaign reads too, so the
oracles can order "the client got its first byte" against "a retry reached us".
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

import trio

from ..fakes.scripted_upstream import Reply, SeenRequest
from ..headers import header, presented_key
from ..sim.world import Attempt
from .differential import broken
from .plan import error_body

_MARKER = re.compile(rb"aibridge-fuzz-([0-9a-f]{8})-(\d+|canary)")
CANARY = -1
KEY_FAILURES = frozenset({401, 403, 429})
# The request id each API's upstream sets on its answers; the mock upstream sets one on
# every answer, so the relayed oracle can look for it at the client.
REQUEST_ID = {
    "anthropic": "request-id",
    "openai-chat": "x-request-id",
    "openai-responses": "x-request-id",
}


def marker(run_id: str, iteration: int) -> str:
    """The text an iteration's client request carries (the canary's is ``-canary``)."""
    return f"aibridge-fuzz-{run_id}-{'canary' if iteration == CANARY else iteration}"


Framing = Literal["chunked", "length", "gzip"]


def framed(reply: Reply, framing: Framing, gzip_ok: bool) -> Reply:
    """``reply`` as the wire carries it: chunked as scripted, with a ``content-length``
    (of its whole body: a reset inside it still cuts it), or gzipped with one (a whole 2xx
    answer, to a request that accepts gzip). The oracles read the scripted reply."""
    if framing == "chunked" or reply.fault == "reset-before-body":
        return reply
    if reply.fault is not None and reply.fault_at >= len(reply.chunks):
        # A reset after the last byte cuts a chunked body (its last chunk never comes) but
        # not a sized one (every declared byte came): it stays chunked to keep its meaning.
        return reply
    body = b"".join(reply.chunks)
    if framing == "gzip" and gzip_ok and reply.status < 400 and reply.fault is None:
        packed = gzip.compress(body, mtime=0)
        n = max(1, len(reply.chunks))
        step = -(-len(packed) // n)
        chunks = [packed[k : k + step] for k in range(0, len(packed), step)]
        headers = [*reply.headers, ("content-encoding", "gzip")]
        headers.append(("content-length", str(len(packed))))
        return replace(reply, headers=headers, chunks=chunks)
    return replace(reply, headers=[*reply.headers, ("content-length", str(len(body)))])


def _accepts_gzip(seen: SeenRequest) -> bool:
    accepted = (header(seen.headers, "accept-encoding") or "").lower()
    return any(part.split(";")[0].strip() == "gzip" for part in accepted.split(","))


def _same_request(a: bytes, b: bytes) -> bool:
    """The same request, byte for byte or but for its model (a fallback to another)."""
    if a == b:
        return True
    try:
        first, second = json.loads(a), json.loads(b)
    except ValueError:
        return False
    if not isinstance(first, dict) or not isinstance(second, dict):
        return False
    first.pop("model", None)
    second.pop("model", None)
    return bool(first == second)


class LateRequest(NamedTuple):
    """A request of iteration ``marked`` that reached the upstream during ``during``."""

    marked: int
    during: int


@dataclass(frozen=True)
class UpstreamRequest:
    """One request of the current iteration as the upstream got it, and its answer."""

    time: float
    seen: SeenRequest
    reply: Reply
    repeat: bool  # a repeated attempt (see the retry rule)


@dataclass
class Counters:
    """What the upstream saw that no iteration's oracles judge."""

    late: list[LateRequest] = field(default_factory=list)
    unmarked: int = 0


class IterationScript:
    """The script the mock upstream plays: the current iteration's replies, and who asked."""

    def __init__(self, run_id: str, counters: Counters) -> None:
        self.run_id = run_id
        self.counters = counters
        self.iteration = CANARY - 1  # nothing is current before the first start()
        self.api = "anthropic"
        self.replies: list[Reply] = []
        self.served: list[Reply] = []  # what the oracles read: a retried answer replaced
        self.attempts: list[Attempt] = []
        self.requests: list[UpstreamRequest] = []
        self.secrets: dict[str, list[str]] = {}  # per provider, in order of first use
        self.framing: Framing = "chunked"
        self._next = 0

    def start(
        self, iteration: int, api: str, replies: list[Reply], framing: Framing = "chunked"
    ) -> None:
        self.iteration, self.api, self.replies, self.framing = iteration, api, replies, framing
        self.served, self.attempts, self.requests, self._next = [], [], [], 0

    def __call__(self, seen: SeenRequest, index: int) -> Reply:
        found = _MARKER.search(seen.body)
        exhausted = self.not_this_iteration()
        if found is None or found.group(1).decode() != self.run_id:
            self.counters.unmarked += 1
            return exhausted
        text = found.group(2).decode()
        marked = CANARY if text == "canary" else int(text)
        if marked != self.iteration:
            self.counters.late.append(LateRequest(marked, self.iteration))
            return exhausted
        reply, repeat = self._answer(seen)
        self.requests.append(UpstreamRequest(trio.current_time(), seen, reply, repeat))
        status = None if reply.fault == "reset-before-body" else reply.status
        retry = header(reply.headers, "retry-after")
        self.attempts.append(Attempt(trio.current_time(), self._key(seen), status, retry))
        return framed(reply, self.framing, _accepts_gzip(seen))

    def not_this_iteration(self) -> Reply:
        return Reply.json(error_body(self.api, 500, "not this iteration's request"), 500)

    def _answer(self, seen: SeenRequest) -> tuple[Reply, bool]:
        previous = self.requests[-1] if self.requests else None
        repeat = (
            previous is not None
            and _same_request(previous.seen.body, seen.body)
            and broken(previous.reply)
        )
        spent = self._next >= len(self.replies)
        if previous is not None and repeat:
            if previous.reply.status not in KEY_FAILURES or spent:
                self.served[-1] = previous.reply  # the same failure again
                return previous.reply, True
        if spent:
            reply = self.not_this_iteration()
        else:
            reply = self.replies[self._next]
            self._next += 1
        ident = (REQUEST_ID[self.api], f"req_{self.run_id}_{self.iteration}_{len(self.requests)}")
        reply = replace(reply, headers=[*reply.headers, ident])
        self.served.append(reply)
        return reply, repeat

    def _key(self, seen: SeenRequest) -> int | None:
        secret = presented_key(seen.headers)
        if secret is None:
            return None
        provider = "anthropic" if seen.path.endswith("/messages") else "openai"
        known = self.secrets.setdefault(provider, [])
        if secret not in known:
            known.append(secret)
        return known.index(secret)


__all__ = [
    "CANARY",
    "REQUEST_ID",
    "Counters",
    "Framing",
    "IterationScript",
    "LateRequest",
    "UpstreamRequest",
    "framed",
    "marker",
]
