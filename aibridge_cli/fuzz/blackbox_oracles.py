"""The oracles only a black-box campaign can judge: they read what the upstream got (each
request's time, headers and body) beside what the client sent and when it got its bytes.

* ``upstream-reached``: the target called the upstream for the client's request (a
  target that answers everything itself, a 401 or a 404, passes no other oracle's test).
* ``retry``: a repeated attempt (``blackbox_upstream``'s retry rule) is legal before the
  client got its first byte; once the gateway committed (sent its status and first
  bytes), a retry splices a second answer onto the first.
* ``after-hang-up``: once its client left, the target sends no new upstream request
  (watched for ``HANG_UP_WAIT``; one that arrives more than ``HANG_UP_MARGIN`` after the
  hang-up was sent by a target that did not notice), and in a leak probe it stops reading
  the upstream's answer within ``LEAK_WINDOW``.

Sans-io: plain data in, violations out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .blackbox_upstream import UpstreamRequest
from .grammar import Response
from .oracles import Violation
from .signature import body_shape, masked

LEAK_WINDOW = 1.0
# A request that reaches the upstream this long after its client left was sent by a
# target that did not notice (a correct one may have sent it while the client hung up).
HANG_UP_MARGIN = 0.25
HANG_UP_WAIT = 0.75


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


def blackbox_violations(observed: Observed, oracles: Collection[str]) -> list[Violation]:
    found: list[Violation] = []
    if "upstream-reached" in oracles and not observed.requests and not observed.hung_up_at_once:
        shape = body_shape(observed.response)
        message = f"the upstream never got this iteration's request; the client got {shape}"
        found.append(Violation("upstream-reached", message, f"not called: {shape}"))
    if "retry" in oracles:
        found += _retry_problems(observed)
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


__all__ = ["HANG_UP_MARGIN", "HANG_UP_WAIT", "LEAK_WINDOW", "Observed", "blackbox_violations"]
