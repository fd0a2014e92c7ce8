"""The oracles only a black-box campaign can judge: they read what the upstream got (each
request's time, headers and body) beside what the client sent and when it got its bytes.

* ``upstream-reached``: the target called the upstream for the client's request (a
  target that answers everything itself, a 401 or a 404, passes no other oracle's test).
* ``retry``: a repeated attempt (``blackbox_upstream``'s retry rule) is legal before the
  client got its first byte; once the gateway committed (sent its status and first
  bytes), a retry splices a second answer onto the first.
* ``request-fidelity``: the first request the upstream got carries every field of the
  client's body with its value (a gateway may add fields, and entries to ``tools``: its
  own injected tools) and every header the client sent, credentials and framing aside.
  Allow-list: ``model`` may be any string (a gateway maps model names); a field at its
  default (``stream: false``, any ``null``) may be left out; headers may be added. Later
  requests (an agentic loop's continuations) are the gateway's own.
* ``status-mapping``: when the upstream's last answer was an error status and the client
  got an error status, both are of one class (4xx, 5xx); a 429 or 529 (what a client
  backs off on) stays that status, or its kind (rate limit, overload) is named in the
  client's body. Bytes may differ (``--strict`` holds them in the differential).
* ``relayed``: the upstream's request id (``request-id``, ``x-request-id``: the mock
  upstream sets one on every answer) reaches the client on any answer that relays one of
  its answers; a relayed 429's ``Retry-After`` reaches it; a complete answer made of one
  upstream answer carries that answer's usage.
* ``after-hang-up``: once its client left, the target sends no new upstream request
  (watched for ``HANG_UP_WAIT``; one that arrives more than ``HANG_UP_MARGIN`` after the
  hang-up was sent by a target that did not notice), and in a leak probe it stops reading
  the upstream's answer within ``LEAK_WINDOW``.

Sans-io: plain data in, violations out.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..fakes.scripted_upstream import Reply
from ..headers import CREDENTIALS, HOP_BY_HOP, FrozenHeaders, header, media_type
from ..sessions.normalize import normalize_response
from .blackbox_upstream import REQUEST_ID, UpstreamRequest
from .differential import broken, covers, played, usage_problems
from .grammar import Response
from .oracles import Violation
from .signature import body_shape, masked

LEAK_WINDOW = 1.0
# A request that reaches the upstream this long after its client left was sent by a
# target that did not notice (a correct one may have sent it while the client hung up).
HANG_UP_MARGIN = 0.25
HANG_UP_WAIT = 0.75
# What a gateway rightly does not pass on: hop-by-hop and framing headers, content coding
# (it negotiates its own with the upstream), the client's credentials (it presents its own
# key upstream), and the Host it was reached at.
_NOT_RELAYED = HOP_BY_HOP | {
    "host",
    "accept-encoding",
    "api-key",
    "proxy-authorization",
    "cookie",
    *CREDENTIALS,
}
# Values a gateway may leave out, as the API takes them by default (null, for any field).
_DEFAULTS: dict[str, tuple[object, ...]] = {"stream": (False, None)}
# Statuses a client acts on by their kind, and the words a re-wrapped error names it by.
_KINDS = {429: ("rate_limit", "rate limit", "requests"), 529: ("overloaded",)}


@dataclass(frozen=True)
class Observed:
    """What one black-box iteration saw besides the client's response."""

    requests: Sequence[UpstreamRequest]
    response: Response
    first_byte: float | None  # when the client read its first byte (trio's clock)
    left: float  # when the client was done or hung up
    hung_up_at_once: bool  # the client left as soon as its request was out
    hung_up: bool  # the client left before the end of the answer
    leak_probe: bool
    read_on: bool  # in a leak probe: the answer was still open LEAK_WINDOW after
    api: str = "anthropic"
    streaming: bool = False
    client_body: bytes = b""  # what the client sent
    client_headers: FrozenHeaders = ()
    served: Sequence[Reply] = ()  # the upstream's answers as the oracles read them


def blackbox_violations(observed: Observed, oracles: Collection[str]) -> list[Violation]:
    found: list[Violation] = []
    if "upstream-reached" in oracles and not observed.requests and not observed.hung_up_at_once:
        shape = body_shape(observed.response)
        message = f"the upstream never got this iteration's request; the client got {shape}"
        found.append(Violation("upstream-reached", message, f"not called: {shape}"))
    if "retry" in oracles:
        found += _retry_problems(observed)
    if "request-fidelity" in oracles and observed.requests:
        found += _fidelity_problems(observed)
    whole = observed.response.complete and not observed.hung_up
    if "status-mapping" in oracles and observed.served and whole:
        found += _status_problems(observed.served[-1], observed.response)
    if "relayed" in oracles and observed.served and whole:
        found += _relay_problems(observed)
    if "after-hang-up" in oracles and observed.hung_up:
        if observed.leak_probe and observed.read_on:
            message = (
                f"the upstream answer was still being read {LEAK_WINDOW:g} s after the client left"
            )
            found.append(Violation("after-hang-up", message, "an answer read on"))
        late = [r for r in observed.requests if r.time > observed.left + HANG_UP_MARGIN]
        if late:
            after = late[0].time - observed.left
            message = f"an upstream request was sent {after:.2f} s after the client left"
            found.append(Violation("after-hang-up", message, "a request sent after the hang-up"))
    return found


def _retry_problems(observed: Observed) -> list[Violation]:
    first = observed.first_byte
    if first is None:
        return []
    for previous, request in zip(observed.requests, observed.requests[1:], strict=False):
        # The retried answer began before the client's first byte, the retry came after it:
        # bytes of the failed answer (or the gateway's commitment to it) reached the client.
        if request.repeat and previous.time < first < request.time:
            message = (
                f"a retry reached the upstream {request.time - first:.3f} s after the client "
                f"got its first byte (the retried answer: status {previous.reply.status}, "
                f"{previous.reply.fault or 'error event'})"
            )
            return [Violation("retry", message, masked("a retry after the first byte"))]
    return []


def _fidelity_problems(observed: Observed) -> list[Violation]:
    first = observed.requests[0].seen
    problems: list[tuple[str, str]] = []
    try:
        sent, got = json.loads(observed.client_body), json.loads(first.body)
    except ValueError:
        sent, got = None, None
        problems.append(("the upstream's request body is not JSON", "body not JSON"))
    if isinstance(sent, dict) and isinstance(got, dict):
        for name, value in sent.items():
            if name not in got and value in _DEFAULTS.get(name, (None,)):
                continue  # a field at its default may be left out: the same request
            if name not in got:
                problems.append(
                    (f"field {name!r} of the client's body was dropped", "field dropped")
                )
            elif not _same_field(name, got[name], value):
                shown = json.dumps(got[name])[:80]
                problems.append((f"field {name!r} went up as {shown}", "field changed"))
    for name, value in observed.client_headers:
        if name not in _NOT_RELAYED and header(first.headers, name) != value:
            upstream = header(first.headers, name)
            problems.append((f"header {name}: {value!r} went up as {upstream!r}", "header changed"))
    return [Violation("request-fidelity", m, f"request {k}") for m, k in problems[:1]]


def _same_field(name: str, got: Any, sent: Any) -> bool:
    """``got`` carries the client's ``sent``, by the allow-list."""
    if name == "model":
        return isinstance(got, str) and bool(got)  # a gateway may map model names
    if name == "tools" and isinstance(got, list) and isinstance(sent, list):
        # a gateway may add its own tools; the client's all go up, in order
        return len(got) >= len(sent) and all(covers(g, w) for g, w in zip(got, sent, strict=False))
    return covers(got, sent)


def _status_problems(last: Reply, response: Response) -> list[Violation]:
    got, want = response.status, last.status
    if want < 400 or last.fault is not None or got is None or got < 400:
        return []  # a clean or cut answer; an error event in a 200 is error-surfaced's
    if got // 100 != want // 100:
        message = f"the upstream's {want} reached the client as {got}"
        return [Violation("status-mapping", message, f"{want // 100}xx became {got // 100}xx")]
    words = _KINDS.get(want)
    if words and got != want:
        text = response.body.decode("utf-8", "replace").lower()
        if not any(word in text for word in words):
            message = f"the upstream's {want} reached the client as {got} without its kind"
            return [Violation("status-mapping", message, f"{want} became {got}, kind lost")]
    return []


def _relay_problems(observed: Observed) -> list[Violation]:
    response, served = observed.response, observed.served
    last = served[-1]
    found: list[Violation] = []
    name = REQUEST_ID[observed.api]
    ids = {header(r.headers, name) for r in served} - {None}
    # The client's answer is an upstream answer: a 2xx one, or its error body as it came
    # (a gateway's own error, such as a pool's 429 when every key is cooling, is not).
    ok = (response.status or 500) < 400 and last.status < 400
    relayed_answer = last.fault is None and (ok or response.body == played(last))
    if ids and relayed_answer and header(response.headers, name) not in ids:
        message = f"the upstream's {name} did not reach the client"
        found.append(Violation("relayed", message, f"{name} lost"))
    lost = header(response.headers, "retry-after") is None
    if header(last.headers, "retry-after") is not None and response.status == 429 and lost:
        message = "the upstream's 429 came with Retry-After, the client's without one"
        found.append(Violation("relayed", message, "retry-after lost"))
    answers = [r for r in served if r.status < 400]
    clean = len(answers) == 1 and last is answers[0] and not broken(last)
    if clean and ok and _is_answer(observed) and not _errored(observed):
        for problem in usage_problems(observed.api, observed.streaming, answers, response.body):
            found.append(Violation("relayed", problem, "usage not relayed"))
    return found


def _errored(observed: Observed) -> bool:
    """The client's answer names an error (an error event, an error body)."""
    r = observed.response
    return bool(normalize_response(observed.api, r.status, r.headers, r.body)["error_type"])


def _is_answer(observed: Observed) -> bool:
    media = media_type(observed.response.headers)
    return bool(media == ("text/event-stream" if observed.streaming else "application/json"))


__all__ = ["HANG_UP_MARGIN", "HANG_UP_WAIT", "LEAK_WINDOW", "Observed", "blackbox_violations"]
