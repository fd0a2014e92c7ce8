"""The ws-isolation oracle, sans-io: on a socket with several responses, each response's
events are its own.

A client (Codex) sends its next ``response.create`` once the previous response ended, and
takes every message after that for the next response's. So a proxy that leaves the rest
of an upstream answer on a socket it reuses (after an error it injected, a malformed
event, a timeout), or writes a response's events after its end, hands one turn's output
to the next, where no single-response oracle can see it: each response on its own may
look well formed.

What must hold, response by response (the world's client splits the socket's messages at
each response's end, ``ClientResult.responses``):

* it begins with its own ``response.created``, or is a single ``error`` event;
* nothing follows its end (its terminal event, or an ``error``);
* no message names an id (response, item) of an upstream answer that was given to
  another response: the world notes which response the client was in when the upstream
  was asked (``Attempt.response``), and the scenario made every answer's ids its own
  (``socket_scenario.distinct_ids``); a message that names no id (an upstream's own
  ``error`` event) must not be, word for word, a message of another response's answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..fakes.scripted_upstream import Reply
from ..fakes.scripted_websocket import reply_messages
from ..providers.openai_responses_ws import is_last_message, message_type
from .socket_scenario import message_ids

OTHERS = "an event of another response's upstream answer"
BEGUN = "a response not begun by its own response.created"
AFTER_END = "an event after the response's end"


def answer_owners(served: Sequence[tuple[int, Reply]]) -> dict[str, int]:
    """Each id the upstream's answers named, and each of their messages that names none
    (by its text), with the response its answer was given to (``served``: (response,
    reply) per upstream request). What two responses' answers share tells nothing and is
    left out."""
    owners: dict[str, int] = {}
    shared: set[str] = set()
    for response, reply in served:
        if reply.status >= 400:
            continue  # a refusal: the proxy answers it in its own words
        for messages in reply_messages(reply):
            for message in messages:
                for name in message_ids(message) or [message]:
                    if owners.setdefault(name, response) != response:
                        shared.add(name)
    return {name: k for name, k in owners.items() if name not in shared}


def isolation_problems(
    responses: Sequence[Sequence[str]], served: Sequence[tuple[int, Reply]]
) -> list[tuple[str, str]]:
    """(message, shape) for each response of ``responses`` (the client's messages, split
    at each response's end) that holds what is not its own."""
    owners = answer_owners(served)
    problems: list[tuple[str, str]] = []
    for k, messages in enumerate(responses):
        if not messages:
            continue  # the socket ended before an answer: liveness and hygiene judge it
        foreign = _foreign(k, messages, owners)
        if foreign is not None:
            problems.append((foreign, OTHERS))  # which answer it came from says most
        first, _ = message_type(messages[0])
        if foreign is None and first not in ("response.created", "error"):
            problems.append((f"response {k} began with {first!r}, not response.created", BEGUN))
        ends = [n for n, message in enumerate(messages) if is_last_message(message)]
        if ends and ends[0] < len(messages) - 1:
            kind, _ = message_type(messages[ends[0] + 1])
            message = f"response {k} went on after its end: {kind!r} came after it"
            problems.append((message, AFTER_END))
    return problems


def _foreign(k: int, messages: Sequence[str], owners: dict[str, int]) -> str | None:
    """The first of response ``k``'s messages naming an id of another response's answer
    (the rest of a leak says the same)."""
    for n, message in enumerate(messages):
        names = message_ids(message)
        for name in names or [message]:
            j = owners.get(name, k)
            if j != k:
                kind, _ = message_type(message)
                which = f"naming {name!r}" if names else "word for word"
                return (
                    f"response {k} got {kind!r} (message {n}) {which}, from the "
                    f"upstream's answer to response {j}"
                )
    return None
