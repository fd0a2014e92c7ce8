"""The differential and specification oracles: what the client got, against what the
upstream sent and what aibridge documents it does with it.

* ``differential``: the client's events are the upstream's events, in order, less what
  the proxy documents it removes (injected tool calls and everything tied to them by
  index, id, ``item_id`` or ``output_index``; the ends of iterations that continue the
  loop; the later iterations' ``message_start``; the upstream's ``[DONE]``) and plus what
  it documents it adds (contiguous indexes, the first id on every Chat chunk, ``[DONE]``,
  one error event when the upstream's answer failed). Compared event by event, data
  included; usage is left to ``usage`` and pings are timing. Blocking answers: the same
  on the JSON body. A failed upstream answer allows the events before the failure and
  one error; a JSON error status is right only when nothing was due before it.
* ``usage``: the usage a client adds up from what it got equals the sum over every
  iteration of every numeric field the upstream reported.
* ``continuation-sse``: after an agentic continuation began, an eager proxy answers a
  streaming request with a 200 event stream, errors included.

Everything is computed from what the run recorded: the bytes the upstream played and the
client's body. The SSE parser here is the oracle's own, written from the WHATWG rules and
not shared with ``aibridge_cli.sse``: a bug planted in the proxy's codec must not bend the
oracle's reading of the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from ..fakes.scripted_upstream import Reply
from ..headers import media_type
from ..providers.openai_common import hashable
from ..sessions.normalize import VOLATILE
from .grammar import Response

Event = tuple[str | None, Any]  # (event name, JSON data; None when it is not JSON)
DONE = "[DONE]"
NOT_JSON = object()  # the data of an event that does not parse
_LINES = re.compile(rb"\r\n|\r|\n")
_STRIPPED = ("usage",)  # left to the usage oracle
_TERMINAL = ("response.completed", "response.failed", "response.incomplete")


# -- reading bytes ------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def read_events(body: bytes) -> tuple[Event, ...]:
    """The complete events in ``body`` (a trailing partial event is not one)."""
    events: list[Event] = []
    name: str | None = None
    data: list[str] = []
    fields = False
    lines = _LINES.split(body)
    lines.pop()  # what follows the last line end is not a whole line
    for raw in lines:
        line = raw.decode("utf-8", "replace")
        if not line:
            if fields:
                events.append((name, _loads("\n".join(data))))
            name, data, fields = None, [], False
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        fields = True
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    return tuple(events)


def _loads(text: str) -> Any:
    if text == DONE:
        return DONE
    try:
        return json.loads(text)
    except ValueError:
        return NOT_JSON


def played(reply: Reply) -> bytes:
    """The body bytes ``reply`` put on the wire before its fault struck."""
    if reply.fault == "reset-before-body":
        return b""  # whatever else the plan says, nothing went out
    chunks = reply.chunks[: reply.fault_at] if reply.fault is not None else reply.chunks
    return b"".join(chunks)


def broken(reply: Reply) -> bool:
    """The upstream failed this answer: an error status, a reset or stall, an error event."""
    if reply.status >= 400 or reply.fault is not None:
        return True
    return any(c.startswith((b"event: error\n", b'data: {"error"')) for c in reply.chunks)


def _without(data: Any, keys: Collection[str] = _STRIPPED) -> Any:
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in keys}
    return data


def _is_error(api: str, name: str | None, data: Any) -> bool:
    if api == "openai-chat":
        return isinstance(data, dict) and "error" in data
    kind = data.get("type") if isinstance(data, dict) else None
    return name == "error" or kind == "error"


def _is_ping(name: str | None, data: Any) -> bool:
    return name == "ping" or (isinstance(data, dict) and data.get("type") == "ping")


# -- what the client is due ---------------------------------------------------------------


@dataclass
class Due:
    """The client events the upstream's answers call for, and how the answer ends.

    ``ending``: ``complete`` (the last iteration finished), ``upstream-error`` (the
    upstream's own error event, relayed as the last event) or ``failed`` (the upstream
    broke off or refused: one error is due after ``events``).
    """

    events: list[Event] = field(default_factory=list)
    ending: str = "failed"
    first_id: str | None = None  # Chat: the id every chunk carries


class _Anthropic:
    """Messages: one message_start, contiguous block indexes, injected blocks hidden, the
    end of a continuing iteration swallowed."""

    def __init__(self, injected: Collection[str]) -> None:
        self.injected = injected
        self.next_index = 0

    def iteration(self, n: int, events: Sequence[Event], due: Due) -> str | None:
        """Add iteration ``n``'s events; its ending: continue (None) or how it ended."""
        hidden: set[Any] = set()
        index: dict[Any, int] = {}
        uses: list[bool] = []  # per tool_use block: injected?
        continuing = False
        for name, data in events:
            if _is_ping(name, data):
                continue
            if not isinstance(data, dict):
                return "failed"  # an event that is not a JSON object ends it with an error
            kind = name or data.get("type")
            if kind == "error":
                due.events.append((name, data))
                return "upstream-error"
            if kind == "message_start":
                if n == 0:
                    due.events.append((name, _strip_message_usage(data)))
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use":
                    uses.append(block.get("name") in self.injected)
                    if uses[-1]:
                        hidden.add(data.get("index"))
                        continue
                index[data.get("index")] = self.next_index
                self.next_index += 1
                due.events.append((name, {**data, "index": index[data.get("index")]}))
            elif kind in ("content_block_delta", "content_block_stop"):
                if data.get("index") in hidden:
                    continue
                if data.get("index") not in index:
                    return "failed"  # a block never started: the proxy gives up
                due.events.append((name, {**data, "index": index[data.get("index")]}))
            elif kind == "message_delta":
                stop = (data.get("delta") or {}).get("stop_reason")
                continuing = stop == "tool_use" and bool(uses) and all(uses)
                if not continuing:
                    due.events.append((name, _without(data)))
            elif kind == "message_stop":
                if continuing:
                    return None
                due.events.append((name, data))
                return "complete"
            else:
                due.events.append((name, data))
        return "failed"  # the upstream ended before message_stop


def _strip_message_usage(data: dict[str, Any], key: str = "message") -> dict[str, Any]:
    """``data`` without the usage of the object under ``key`` (usage is the usage oracle's)."""
    inner = data.get(key)
    return {**data, key: _without(inner)} if isinstance(inner, dict) else data


class _Chat:
    """Chat: injected calls' deltas hidden, client calls renumbered from 0, the finish of a
    continuing iteration swallowed, the upstream's [DONE] replaced by the proxy's."""

    def __init__(self, injected: Collection[str]) -> None:
        self.injected = injected

    def iteration(self, n: int, events: Sequence[Event], due: Due) -> str | None:
        calls: dict[Any, int | None] = {}  # upstream index -> client index (None: hidden)
        visible = 0
        finished = done = continuing = False
        for name, data in events:
            if data == DONE:
                done = True
                continue
            if not isinstance(data, dict):
                return "failed"
            if data.get("error"):
                due.events.append((name, data))
                return "upstream-error"
            if due.first_id is None and isinstance(data.get("id"), str):
                due.first_id = data["id"]
            if continuing:
                continue  # what follows a continuing finish (usage) is swallowed
            choices = []
            for choice in data.get("choices") or []:
                if not isinstance(choice, dict):
                    choices.append(choice)
                    continue
                delta = dict(choice.get("delta") or {})
                kept = []
                for tc in delta.get("tool_calls") or []:
                    i = tc.get("index", 0)
                    if i not in calls:
                        hide = ((tc.get("function") or {}).get("name") or "") in self.injected
                        calls[i] = None if hide else visible
                        visible += 0 if hide else 1
                    if calls[i] is not None:
                        kept.append({**tc, "index": calls[i]})
                if "tool_calls" in delta:
                    delta["tool_calls"] = kept
                finish = choice.get("finish_reason")
                if finish is not None:
                    finished = True
                    if finish in ("tool_calls", "stop") and calls and visible == 0:
                        continuing = True
                        finish = None
                choices.append({**choice, "delta": delta, "finish_reason": finish})
            due.events.append((name, {**_without(data), "choices": choices}))
        if continuing:
            return None
        return "complete" if finished or done else "failed"


class _Responses:
    """Responses. Without injected tools, events as they came. With them: an injected
    call's events hidden (by ``item``, ``output_index`` or ``item_id``), the rest as they
    came with output indexes counted from 0 across iterations and sequence numbers on in
    steps of one from the first relayed; an iteration's lifecycle events are shown with
    the first thing it shows, and only by the first iteration that shows something; a
    completed iteration whose calls are all injected continues. The last response names
    the shown response's id, lists every visible item of every iteration and the
    client's tools only."""

    def __init__(self, injected: Collection[str]) -> None:
        self.injected = injected
        self.shown = False
        self.shown_id: Any = None
        self.seen: list[Any] = []  # visible items of the iterations that continued
        self.next_index = 0
        self.sequence: int | None = None

    def iteration(self, n: int, events: Sequence[Event], due: Due) -> str | None:
        if not self.injected:
            for name, data in events:
                if not isinstance(data, dict):
                    return "failed"
                kind = data.get("type") or name
                if kind in _TERMINAL:
                    due.events.append((name, _strip_message_usage(data, "response")))
                    return "complete"
                due.events.append((name, data))
                if kind == "error":
                    return "upstream-error"
            return "failed"
        lifecycle: list[Event] = []
        hidden_indexes: set[Any] = set()
        hidden_ids: set[Any] = set()
        indexes: dict[Any, int] = {}

        def relay(name: str | None, data: dict[str, Any]) -> None:
            if "sequence_number" in data:
                if self.sequence is None:
                    first = data["sequence_number"]
                    self.sequence = first if type(first) is int else 0
                data = {**data, "sequence_number": self.sequence}
                self.sequence += 1
            if "output_index" in data:
                at = hashable(data["output_index"])
                if at not in indexes:
                    indexes[at] = self.next_index
                    self.next_index += 1
                data = {**data, "output_index": indexes[at]}
            due.events.append((name, data))

        def show() -> None:
            if self.shown:
                return
            self.shown = True
            for name, data in lifecycle:
                response = data.get("response")
                if self.shown_id is None and isinstance(response, dict):
                    self.shown_id = response.get("id")
                relay(name, self._seen_response(data, last=False))

        for name, data in events:
            if not isinstance(data, dict):
                return "failed"  # nothing held is released on a broken stream
            kind = data.get("type") or name
            if kind in ("response.created", "response.queued", "response.in_progress"):
                if not self.shown:
                    lifecycle.append((name, data))
                continue
            if kind == "error":
                show()
                relay(name, data)
                return "upstream-error"
            item = data.get("item")
            if isinstance(item, dict) and self._injected(item):
                hidden_indexes.add(hashable(data.get("output_index")))
                hidden_ids.add(hashable(item.get("id")))
                continue
            if ("output_index" in data and hashable(data["output_index"]) in hidden_indexes) or (
                "item_id" in data and hashable(data["item_id"]) in hidden_ids
            ):
                continue
            if kind in _TERMINAL:
                response = data.get("response")
                output = response.get("output") if isinstance(response, dict) else None
                calls = [
                    i
                    for i in output or []
                    if isinstance(i, dict) and i.get("type") == "function_call"
                ]
                if kind == "response.completed" and calls and all(map(self._injected, calls)):
                    self.seen += [i for i in output or [] if not self._injected(i)]
                    return None  # the loop runs them
                show()
                relay(name, _strip_message_usage(self._seen_response(data, last=True), "response"))
                return "complete"
            show()
            relay(name, data)
        return "failed"

    def _seen_response(self, data: dict[str, Any], *, last: bool) -> dict[str, Any]:
        response = data.get("response")
        if not isinstance(response, dict):
            return data
        response = dict(response)
        if isinstance(response.get("output"), list):
            kept = [i for i in response["output"] if not self._injected(i)]
            response["output"] = [*self.seen, *kept] if last else kept
        if isinstance(response.get("tools"), list):
            response["tools"] = [t for t in response["tools"] if not self._injected_tool(t)]
        if last and self.shown_id is not None:
            response["id"] = self.shown_id
        return {**data, "response": response}

    def _injected(self, item: Any) -> bool:
        return (
            isinstance(item, dict)
            and item.get("type") == "function_call"
            and item.get("name") in self.injected
        )

    def _injected_tool(self, tool: Any) -> bool:
        return (
            isinstance(tool, dict)
            and tool.get("type") == "function"
            and tool.get("name") in self.injected
        )


class _Model(Protocol):
    def __init__(self, injected: Collection[str]) -> None: ...

    def iteration(self, n: int, events: Sequence[Event], due: Due) -> str | None: ...


_MODELS: dict[str, type[_Model]] = {
    "anthropic": _Anthropic,
    "openai-chat": _Chat,
    "openai-responses": _Responses,
}


def due_events(api: str, injected: Collection[str], served: Sequence[Reply]) -> Due:
    """What the client is due from the upstream's answers to one streaming request."""
    due = Due()
    model = _MODELS[api](injected)
    n = 0
    for reply in served:
        if reply.status >= 400:
            continue  # a key failure the proxy fails over from, or the end (checked below)
        ending = model.iteration(n, read_events(played(reply)), due)
        if reply.fault is not None and ending is None:
            ending = "failed"
        if ending is not None:
            due.ending = "failed" if reply.fault is not None and ending == "complete" else ending
            return due
        n += 1
    return due  # no answer ended it: an error status, a key failure, or nothing at all


# -- the comparison -----------------------------------------------------------------------


def _client_events(api: str, body: bytes) -> list[Event]:
    events = []
    for name, data in read_events(body):
        if _is_ping(name, data):
            continue
        if api == "anthropic" and name == "message_start":
            data = _strip_message_usage(data) if isinstance(data, dict) else data
        elif api == "openai-chat" and isinstance(data, dict) and "choices" in data:
            data = {**_without(data), "choices": [_chat_choice(c) for c in data["choices"]]}
        elif api == "anthropic" and name == "message_delta":
            data = _without(data)
        elif api == "openai-responses" and isinstance(data, dict) and name in _TERMINAL:
            data = _strip_message_usage(data, "response")
        events.append((name, data))
    return events


def _chat_choice(choice: Any) -> Any:
    if not isinstance(choice, dict):
        return choice
    return {
        **choice,
        "delta": dict(choice.get("delta") or {}),
        "finish_reason": choice.get("finish_reason"),
    }


def _chat_atoms(events: Sequence[Event], first_id: str | None) -> Iterator[tuple[Any, ...]]:
    """Chat's events as what they say, one fact at a time: the proxy may drop a chunk left
    with nothing to say, so chunks are not the unit; ids are checked on their own."""
    for name, data in events:
        if data == DONE or not isinstance(data, dict) or "error" in data:
            yield (name, "error" if isinstance(data, dict) else data)
            continue
        if first_id is not None and data.get("id") != first_id:
            yield ("id", data.get("id"))
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict):
                yield ("choice", choice)
                continue
            i = choice.get("index")
            for key, value in (choice.get("delta") or {}).items():
                if key == "tool_calls":
                    for tc in value or []:
                        yield ("tool_call", i, tc)
                elif value is not None and value != "":
                    yield (key, i, value)
            for key, value in choice.items():
                if key not in ("delta", "index") and value is not None:
                    yield (key, i, value)


def _describe(event: Any) -> str:
    return json.dumps(event, default=str)[:160]


class Exchange(NamedTuple):
    """One request's traffic as the differential reads it."""

    api: str
    injected: Collection[str]
    """The names of the injected tools: their calls are the proxy's, not the client's."""
    served: Sequence[Reply]
    """The upstream's answers, one an iteration, as played."""
    response: Response
    """What the client got."""


def stream_problems(exchange: Exchange, exact: bool) -> list[str]:
    """Where the client's stream departs from the events it is due.

    ``exact`` (the aibridge profile): aibridge's documented relay, data equal. Otherwise
    what any correct gateway owes: each event's data holds what the upstream's did
    (a gateway may add fields and give its own ids and timestamps), and a failed answer
    may reach the client as a stream cut short instead of an error event.
    """
    api, injected, served, response = exchange
    status, headers, body = response.status, response.headers, response.body
    due = due_events(api, injected, served)
    if media_type(headers) != "text/event-stream":
        if due.ending != "complete" and (status or 0) >= 400 and (not due.events or not exact):
            # An error before anything was due: one right shape. Generic: also after events
            # were due, from a gateway that had not committed (it sent no status yet: it
            # buffers, or it retried); what it may answer then is status-mapping's to judge.
            return []
        return [
            f"events lost: status {status} {media_type(headers) or 'no body'}, "
            f"due {len(due.events)} events"
        ]
    got = _client_events(api, body)
    want = list(due.events)
    if due.ending == "complete" and api == "openai-chat":
        want.append((None, DONE))
    if not exact and _relayed_as_it_came(api, served, got):
        return []  # a transparent gateway, faithful to an upstream answer that failed itself
    # Generic: an answer the upstream cut at the HTTP level may reach the client cut, and
    # one it ended cleanly but early (or with a bad event) may be relayed as it came.
    whole = bool(served) and served[-1].fault is None and served[-1].status < 400
    error_due = due.ending == "failed" and (exact or (response.complete and not whole))
    if got and due.ending == "failed" and _is_error(api, *got[-1]):
        got = got[:-1]
    elif error_due:
        return ["no error for a failed answer: the stream does not end in an error event"]
    if api == "openai-chat":
        first = due.first_id if exact else None
        want_atoms, got_atoms = list(_chat_atoms(want, None)), list(_chat_atoms(got, first))
        return _first_difference(want_atoms, got_atoms, exact)
    return _first_difference(want, got, exact)


def _relayed_as_it_came(api: str, served: Sequence[Reply], got: Sequence[Event]) -> bool:
    """The client got the one upstream answer's events as they came, bad ones included."""
    answers = [r for r in served if r.status < 400]
    if len(answers) != 1:
        return False
    sent = _client_events(api, played(answers[0]))
    if api == "openai-chat":
        sent = [e for e in sent if e[1] != DONE]
        got = [e for e in got if e[1] != DONE]
    return len(sent) == len(got) and all(covers(g, w) for g, w in zip(got, sent, strict=True))


def covers(got: Any, want: Any) -> bool:
    """``got`` says all that ``want`` says: the same, or with fields added, ids and
    timestamps aside, and a ``model`` under another name (a gateway maps model names both
    ways: the client reads back the name it asked for)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            k in VOLATILE
            or k.endswith("_id")
            or (k in got and (covers(got[k], v) or (k == "model" and isinstance(got[k], str))))
            for k, v in want.items()
        )
    if isinstance(want, (list, tuple)):
        return (
            isinstance(got, (list, tuple))
            and len(got) == len(want)
            and all(covers(g, w) for g, w in zip(got, want, strict=True))
        )
    return bool(got == want)


def _first_difference(want: Sequence[Any], got: Sequence[Any], exact: bool = True) -> list[str]:
    for i, (w, g) in enumerate(zip(want, got, strict=False)):
        if (w != g) if exact else not covers(g, w):
            return [f"an event differs (#{i}): the client got {_describe(g)}, due {_describe(w)}"]
    if len(got) > len(want):
        return [f"an event added (#{len(want)}): the client got {_describe(got[len(want)])}"]
    if len(got) < len(want):
        return [f"an event lost (#{len(got)}): the client did not get {_describe(want[len(got)])}"]
    return []


# -- blocking -----------------------------------------------------------------------------


def body_problems(exchange: Exchange, exact: bool) -> list[str]:
    """Where a blocking answer's JSON body departs from the upstream's answers."""
    api, injected, served, response = exchange
    status, body = response.status, response.body
    answers: list[dict[str, Any]] = []
    broken = False
    for reply in served:
        if reply.status >= 400:
            continue
        try:
            answer = json.loads(played(reply)) if reply.fault is None else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            broken = True
            continue
        answers.append(answer)
    last = served[-1] if served else None
    if status is None or status >= 400:
        if exact and last is not None and last.status >= 400 and last.status not in (401, 403, 429):
            # an upstream error status the proxy relays as it came (generic: a gateway may
            # re-wrap it; status-mapping judges its class and error type)
            if status != last.status or body != played(last):
                return [f"the upstream's {last.status} came back as {status}"]
        return []
    if not answers or broken:
        if (
            not exact
            and last is not None
            and (
                (last.fault is None and body == played(last))
                or (last.fault is not None and not response.complete)
            )
        ):
            return []  # a transparent gateway: the upstream's early end or its cut, as it came
        return ["a 200 for an upstream answer that did not come whole"]
    try:
        got = json.loads(body)
    except ValueError:
        return ["a 200 whose body is not JSON"]
    want = dict(answers[-1])
    if api == "anthropic":
        want["content"] = [
            b
            for a in answers
            for b in a.get("content") or []
            if not (
                isinstance(b, dict) and b.get("type") == "tool_use" and b.get("name") in injected
            )
        ]
    elif api == "openai-chat" and isinstance(answers[0].get("id"), str):
        want["id"] = answers[0]["id"]
    elif api == "openai-responses" and injected:
        model = _Responses(injected)
        model.seen = [
            i for a in answers[:-1] for i in a.get("output") or [] if not model._injected(i)
        ]
        want = model._seen_response({"response": want}, last=True)["response"]
    want, got = _without(want), _without(got)
    return _first_difference([want], [got], exact)


# -- usage --------------------------------------------------------------------------------


def _numbers(usage: Any, prefix: str = "") -> dict[str, int]:
    """Every numeric field of ``usage``, nested ones as ``a.b``."""
    out: dict[str, int] = {}
    if isinstance(usage, dict):
        for key, value in usage.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                out[prefix + key] = value
            elif isinstance(value, dict):
                out.update(_numbers(value, f"{prefix}{key}."))
    return out


def _add(total: dict[str, int], part: dict[str, int]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + value


def _stream_usage(api: str, events: Sequence[Event]) -> dict[str, int]:
    """The usage of one message as a client adds it up: Anthropic's message_start counts
    updated by message_delta's; Chat's last usage chunk."""
    usage: dict[str, int] = {}
    for name, data in events:
        if not isinstance(data, dict):
            continue
        if api == "anthropic" and name == "message_start":
            usage.update(_numbers((data.get("message") or {}).get("usage")))
        elif api == "anthropic" and name == "message_delta":
            usage.update(_numbers(data.get("usage")))
        elif api == "openai-chat" and isinstance(data.get("usage"), dict):
            usage = _numbers(data["usage"])
        elif api == "openai-responses" and name in _TERMINAL:
            usage = _numbers((data.get("response") or {}).get("usage"))
    return usage


def usage_problems(api: str, streaming: bool, served: Sequence[Reply], body: bytes) -> list[str]:
    """The client's usage against the sum over every iteration (a complete answer only)."""
    total: dict[str, int] = {}
    for reply in served:
        if reply.status < 400:
            if streaming:
                _add(total, _stream_usage(api, read_events(played(reply))))
            else:
                try:
                    _add(total, _numbers(json.loads(played(reply)).get("usage")))
                except (ValueError, AttributeError):
                    return []
    if not total:
        return []
    if streaming:
        got = _stream_usage(api, read_events(body))
        last = next((r for r in reversed(served) if r.status < 400), None)
        if not got and last is not None and not _stream_usage(api, read_events(played(last))):
            return []  # the last iteration reported none: there was no report to add to
    else:
        try:
            got = _numbers(json.loads(body).get("usage"))
        except (ValueError, AttributeError):
            return []
    wrong = [f"{k} {got.get(k)} (sum {v})" for k, v in sorted(total.items()) if got.get(k) != v]
    return [f"usage not summed over the iterations: {', '.join(wrong)}"] if wrong else []


def continued(served: Sequence[Reply]) -> bool:
    """An agentic continuation began: a whole 2xx answer was followed by another request."""
    return any(r.status < 400 and r.fault is None for r in served[:-1])
