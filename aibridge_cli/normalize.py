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

from .sse import SSEDecoder

_VOLATILE = frozenset(
    {"id", "created", "created_at", "completed_at", "expires_at", "system_fingerprint"}
)


def strip_volatile(data: Any) -> Any:
    """``data`` without ids and timestamps (keys ``id``, ``*_id``, ``created``...)."""
    if isinstance(data, dict):
        return {
            k: strip_volatile(v)
            for k, v in data.items()
            if k not in _VOLATILE and not k.endswith("_id")
        }
    if isinstance(data, list):
        return [strip_volatile(v) for v in data]
    return data


def _header(headers: Iterable[tuple[str, str]], name: str) -> str:
    return next((v for k, v in headers if k.lower() == name), "")


def _loads(text: str) -> Any:
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
    facts = _FACTS.get(api, _AnthropicFacts)()
    if "text/event-stream" in _header(headers, "content-type") and body:
        out["shape"] = "sse"
        decoder = SSEDecoder()
        for event in [*decoder.feed(body), *decoder.feed(b"\n\n")]:
            data = _loads(event.data)
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


class _Facts:
    """Reads text, tool calls, usage, stop reason and error type from events or a body."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[Any, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.stop_reason: Any = None
        self.error_type: Any = None

    def event(self, name: str | None, data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = data["error"]
            self.error_type = error.get("type") or error.get("code")

    def body(self, data: Any) -> None:
        self.event("body", data)

    def _call(self, key: Any) -> dict[str, Any]:
        return self.calls.setdefault(key, {"name": "", "arguments": []})

    def result(self) -> dict[str, Any]:
        calls = []
        for call in self.calls.values():
            raw = "".join(call["arguments"]) if isinstance(call["arguments"], list) else None
            arguments = call["arguments"] if raw is None else (_loads(raw) if raw.strip() else {})
            calls.append({"name": call["name"], "input": arguments})
        return {
            "text": "".join(self.text),
            "tool_calls": calls,
            "usage": strip_volatile(self.usage),
            "stop_reason": self.stop_reason,
            "error_type": self.error_type,
        }


class _AnthropicFacts(_Facts):
    def event(self, name: str | None, data: Any) -> None:
        super().event(name, data)
        if not isinstance(data, dict):
            return
        if name == "message_start":
            self.usage.update(data.get("message", {}).get("usage") or {})
        elif name == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                self._call(data.get("index"))["name"] = block.get("name", "")
            elif block.get("type") == "text":
                self.text.append(block.get("text", ""))
        elif name == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                self.text.append(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta":
                self._call(data.get("index"))["arguments"].append(delta.get("partial_json", ""))
        elif name == "message_delta":
            self.usage.update(data.get("usage") or {})
            self.stop_reason = (data.get("delta") or {}).get("stop_reason", self.stop_reason)

    def body(self, data: Any) -> None:
        super().event("body", data)
        if not isinstance(data, dict):
            return
        for i, block in enumerate(data.get("content") or []):
            if block.get("type") == "text":
                self.text.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                self.calls[i] = {"name": block.get("name", ""), "arguments": block.get("input")}
        self.usage.update(data.get("usage") or {})
        self.stop_reason = data.get("stop_reason")


class _ChatFacts(_Facts):
    def event(self, name: str | None, data: Any) -> None:
        super().event(name, data)
        if not isinstance(data, dict):
            return
        if data.get("usage"):
            self.usage.update(data["usage"])
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                entry = self._call(call.get("index"))
                function = call.get("function") or {}
                entry["name"] += function.get("name") or ""
                entry["arguments"].append(function.get("arguments") or "")
            if choice.get("finish_reason"):
                self.stop_reason = choice["finish_reason"]

    def body(self, data: Any) -> None:
        super().event("body", data)
        if not isinstance(data, dict):
            return
        self.usage.update(data.get("usage") or {})
        for choice in data.get("choices") or []:
            message = choice.get("message") or {}
            if message.get("content"):
                self.text.append(message["content"])
            for i, call in enumerate(message.get("tool_calls") or []):
                function = call.get("function") or {}
                self.calls[i] = {
                    "name": function.get("name", ""),
                    "arguments": [function.get("arguments") or ""],
                }
            self.stop_reason = choice.get("finish_reason")


class _ResponsesFacts(_Facts):
    def event(self, name: str | None, data: Any) -> None:
        super().event(name, data)
        if not isinstance(data, dict):
            return
        if name == "error":
            self.error_type = data.get("code") or data.get("type")
        elif name == "response.output_text.delta":
            self.text.append(data.get("delta", ""))
        elif name == "response.output_item.done":
            self._item(data.get("output_index"), data.get("item") or {})
        elif name in ("response.completed", "response.incomplete", "response.failed"):
            self._response(data.get("response") or {})

    def _item(self, key: Any, item: dict[str, Any]) -> None:
        if item.get("type") in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments", item.get("input", ""))
            self.calls[key] = {"name": item.get("name", ""), "arguments": [arguments or ""]}

    def _response(self, response: dict[str, Any]) -> None:
        self.usage.update(response.get("usage") or {})
        self.stop_reason = response.get("status")
        if isinstance(response.get("error"), dict):
            self.error_type = response["error"].get("code") or response["error"].get("type")

    def body(self, data: Any) -> None:
        super().event("body", data)
        if not isinstance(data, dict):
            return
        self._response(data)
        for i, item in enumerate(data.get("output") or []):
            if item.get("type") == "message":
                for part in item.get("content") or []:
                    if part.get("type") == "output_text":
                        self.text.append(part.get("text", ""))
            self._item(i, item)


_FACTS: dict[str, type[_Facts]] = {
    "anthropic": _AnthropicFacts,
    "openai-chat": _ChatFacts,
    "openai-responses": _ResponsesFacts,
}


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
        out.append(f"{path}: expected {_short(a)}, got {_short(b)}")


def _event_name(x: Any, y: Any) -> str:
    if isinstance(x, dict) and "event" in x and set(x) <= {"event", "data"}:
        name = x["event"]
        other = y.get("event") if isinstance(y, dict) else None
        return f" ({name})" if other in (None, name) else f" ({name} / {other})"
    return ""


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
