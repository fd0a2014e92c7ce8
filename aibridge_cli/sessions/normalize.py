"""What a client saw, in a form two runs can be compared by, sans-io.

``normalize_response(api, status, headers, body)`` turns a client-facing response of any
intercepted API into a plain dict: the body's shape (``sse``, ``json``, ``json+trailing``
when bytes follow a JSON body — the seed race's mixed body —, ``invalid``, ``empty``), the
error type, the event list (SSE) or the body (JSON) with ids and timestamps dropped, and
the facts read from them: text, tool calls, usage and stop reason. Pings are not events:
their number depends on timing. ``diff_normalized`` lists the differences, naming the
event where one differs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..headers import header
from ..sse import SSEDecoder

# "retry-after" (in a WebSocket error's headers): a cooldown's remaining seconds depend on
# when it is read, as the Retry-After header does, which the comparison leaves out too.
VOLATILE = frozenset(
    {
        "id",
        "created",
        "created_at",
        "completed_at",
        "expires_at",
        "system_fingerprint",
        "retry-after",
    }
)


def strip_volatile(data: Any) -> Any:
    """``data`` without ids and timestamps (keys ``id``, ``*_id``, ``created``...)."""
    if isinstance(data, dict):
        return {
            k: strip_volatile(v)
            for k, v in data.items()
            if k not in VOLATILE and not k.endswith("_id")
        }
    if isinstance(data, list):
        return [strip_volatile(v) for v in data]
    return data


def loads_or_text(text: str) -> Any:
    """Parsed JSON, or the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def normalize_response(
    api: str, status: int | None, headers: Iterable[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    """The comparable summary of one client-facing response of ``api``."""
    headers = list(headers)
    out: dict[str, Any] = {
        "status": status,
        "shape": "empty",
        "error_type": None,
        "events": [],
        "text": "",
        "tool_calls": [],
        "usage": {},
        "stop_reason": None,
    }
    facts = facts_reader(api)
    if "text/event-stream" in (header(headers, "content-type") or "") and body:
        out["shape"] = "sse"
        decoder = SSEDecoder()
        for event in [*decoder.feed(body), *decoder.feed(b"\n\n")]:
            data = loads_or_text(event.data)
            name = event.event or (data.get("type") if isinstance(data, dict) else None)
            if name == "ping" or (not event.data and name is None):
                continue
            facts.event(name, data)
            out["events"].append({"event": name, "data": strip_volatile(data)})
    elif body.strip():
        text = body.decode("utf-8", errors="replace")
        try:
            data, end = json.JSONDecoder().raw_decode(text.lstrip())
        except ValueError:
            out["shape"] = "invalid"
            out["events"] = [{"event": "body", "data": text[:200]}]
        else:
            rest = text.lstrip()[end:].strip()
            out["shape"] = "json+trailing" if rest else "json"
            if rest:
                out["trailing"] = rest[:200]
            facts.body(data)
            out["events"] = [{"event": "body", "data": strip_volatile(data)}]
    out.update(facts.result())
    return out


def _d(data: Any, key: str) -> dict[str, Any]:
    """``data[key]`` when it is an object, else empty: responses can be malformed."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _objects(data: Any, key: str) -> list[dict[str, Any]]:
    value = data.get(key) if isinstance(data, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _s(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _key(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else repr(value)


class Facts:
    """Reads text, tool calls, usage, stop reason and error type from events or a body.

    Every access is guarded: a malformed response is a fact to compare, never a crash.
    """

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[Any, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.stop_reason: Any = None
        self.error_type: Any = None

    def event(self, name: str | None, data: Any) -> None:
        error = _d(data, "error")
        if error:
            self.error_type = error.get("type") or error.get("code")

    def body(self, data: Any) -> None:
        self.event("body", data)

    def _call(self, key: Any) -> dict[str, Any]:
        return self.calls.setdefault(_key(key), {"name": "", "arguments": []})

    def result(self) -> dict[str, Any]:
        calls = []
        for call in self.calls.values():
            raw = "".join(call["arguments"]) if isinstance(call["arguments"], list) else None
            arguments = (
                call["arguments"] if raw is None else (loads_or_text(raw) if raw.strip() else {})
            )
            calls.append({"name": call["name"], "input": arguments})
        return {
            "text": "".join(self.text),
            "tool_calls": calls,
            "usage": strip_volatile(self.usage),
            "stop_reason": self.stop_reason,
            "error_type": self.error_type,
        }


class _AnthropicFacts(Facts):
    def event(self, name: str | None, data: Any) -> None:
        super().event(name, data)
        if not isinstance(data, dict):
            return
        if name == "message_start":
            self.usage.update(_d(_d(data, "message"), "usage"))
        elif name == "content_block_start":
            block = _d(data, "content_block")
            if block.get("type") == "tool_use":
                self._call(data.get("index"))["name"] = _s(block, "name")
            elif block.get("type") == "text":
                self.text.append(_s(block, "text"))
        elif name == "content_block_delta":
            delta = _d(data, "delta")
            if delta.get("type") == "text_delta":
                self.text.append(_s(delta, "text"))
            elif delta.get("type") == "input_json_delta":
                self._call(data.get("index"))["arguments"].append(_s(delta, "partial_json"))
        elif name == "message_delta":
            self.usage.update(_d(data, "usage"))
            self.stop_reason = _d(data, "delta").get("stop_reason", self.stop_reason)

    def body(self, data: Any) -> None:
        super().event("body", data)
        if not isinstance(data, dict):
            return
        for i, block in enumerate(_objects(data, "content")):
            if block.get("type") == "text":
                self.text.append(_s(block, "text"))
            elif block.get("type") == "tool_use":
                self.calls[i] = {"name": _s(block, "name"), "arguments": block.get("input")}
        self.usage.update(_d(data, "usage"))
        self.stop_reason = data.get("stop_reason")


class _ChatFacts(Facts):
    def event(self, name: str | None, data: Any) -> None:
        super().event(name, data)
        self.usage.update(_d(data, "usage"))
        for choice in _objects(data, "choices"):
            delta = _d(choice, "delta")
            self.text.append(_s(delta, "content"))
            for call in _objects(delta, "tool_calls"):
                entry = self._call(call.get("index"))
                function = _d(call, "function")
                entry["name"] += _s(function, "name")
                entry["arguments"].append(_s(function, "arguments"))
            if choice.get("finish_reason"):
                self.stop_reason = choice["finish_reason"]

    def body(self, data: Any) -> None:
        super().event("body", data)
        self.usage.update(_d(data, "usage"))
        for choice in _objects(data, "choices"):
            message = _d(choice, "message")
            self.text.append(_s(message, "content"))
            for i, call in enumerate(_objects(message, "tool_calls")):
                function = _d(call, "function")
                self.calls[i] = {
                    "name": _s(function, "name"),
                    "arguments": [_s(function, "arguments")],
                }
            self.stop_reason = choice.get("finish_reason")


class _ResponsesFacts(Facts):
    def event(self, name: str | None, data: Any) -> None:
        super().event(name, data)
        if not isinstance(data, dict):
            return
        if name == "error":
            # an SSE error event has its code on top; WebSocket mode's, in its error object
            inner = _d(data, "error")
            self.error_type = (
                data.get("code") or inner.get("code") or inner.get("type") or data.get("type")
            )
        elif name == "response.output_text.delta":
            self.text.append(_s(data, "delta"))
        elif name == "response.output_item.done":
            self._item(data.get("output_index"), _d(data, "item"))
        elif name in ("response.completed", "response.incomplete", "response.failed"):
            self._response(_d(data, "response"))

    def _item(self, key: Any, item: dict[str, Any]) -> None:
        if item.get("type") in ("function_call", "custom_tool_call"):
            arguments = _s(item, "arguments") or _s(item, "input")
            self.calls[_key(key)] = {"name": _s(item, "name"), "arguments": [arguments]}

    def _response(self, response: dict[str, Any]) -> None:
        self.usage.update(_d(response, "usage"))
        self.stop_reason = response.get("status")
        error = _d(response, "error")
        if error:
            self.error_type = error.get("code") or error.get("type")

    def body(self, data: Any) -> None:
        super().event("body", data)
        if not isinstance(data, dict):
            return
        self._response(data)
        for i, item in enumerate(_objects(data, "output")):
            if item.get("type") == "message":
                for part in _objects(item, "content"):
                    if part.get("type") == "output_text":
                        self.text.append(_s(part, "text"))
            self._item(i, item)


_FACTS: dict[str, type[Facts]] = {
    "anthropic": _AnthropicFacts,
    "openai-chat": _ChatFacts,
    "openai-responses": _ResponsesFacts,
    # a pass-through's body is whatever the upstream said: only an error type to read
    "anthropic-passthrough": Facts,
    "openai-passthrough": Facts,
}


def facts_reader(api: str) -> Facts:
    """A fresh reader of ``api``'s events or body (``Facts.event``, ``.body``, ``.result``)."""
    return _FACTS.get(api, _AnthropicFacts)()


def diff_normalized(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Readable differences between two normalized responses (or any JSON values).

    An event is named by its position and type: ``events[4] (content_block_delta).data...``.
    """
    out: list[str] = []
    _diff(expected, actual, path, out)
    return out


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(f"{sub}: missing (expected {_short(a[key])})")
            elif key not in a:
                out.append(f"{sub}: unexpected {_short(b[key])}")
            else:
                _diff(a[key], b[key], sub, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{path}[{i}]{_event_name(x, y)}", out)
        if len(a) != len(b):
            extra, which = (
                (a[len(b) :], "missing") if len(a) > len(b) else (b[len(a) :], "unexpected")
            )
            names = ", ".join(_short(x) for x in extra[:3])
            out.append(f"{path}: {len(a)} expected, {len(b)} got; {which}: {names}")
        return
    if a != b:
        if isinstance(a, str) and isinstance(b, str) and max(len(a), len(b)) > SHORT:
            out.append(f"{path}: {string_difference(a, b)}")
        else:
            out.append(f"{path}: expected {_short(a)}, got {_short(b)}")


SHORT = 60  # strings up to this long are shown whole
BEFORE, AFTER = 40, 30  # characters shown around a long string's first difference


def string_difference(a: str, b: str) -> str:
    """Where two strings first differ and a window of both around it: a difference at the
    end of a long prompt (a date in a system prompt) is shown, not the common start."""
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    at = min(len(a), len(b)) if at is None else at
    start = max(0, at - BEFORE)

    def window(text: str) -> str:
        piece = repr(text[start : at + AFTER])
        return ("…" if start else "") + piece + ("…" if at + AFTER < len(text) else "")

    return (
        f"first difference at character {at + 1} ({len(a)} expected, {len(b)} got): "
        f"expected {window(a)}, got {window(b)}"
    )


def _event_name(x: Any, y: Any) -> str:
    if isinstance(x, dict) and "event" in x and set(x) <= {"event", "data"}:
        name = x["event"]
        other = y.get("event") if isinstance(y, dict) else None
        return f" ({name})" if other in (None, name) else f" ({name} / {other})"
    return ""


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
