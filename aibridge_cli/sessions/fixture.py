"""The fixture format, sans-io: interceptions to JSONL lines and back.

A fixture file is JSONL (see ``docs/fixture-format.md``): a header line, then one line per
interception, built from the ``Interception`` records the bridge fills. Bytes keep their
chunk boundaries and timing; bytes that are not UTF-8 are stored as base64. Loading names
the bad line (``file:line: reason``); a last line with no newline that does not parse is
what a crash mid-write leaves, so it is reported in ``Fixture.warnings`` and skipped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..errors import FixtureError
from ..interception import (
    Chunk,
    ClientRequest,
    Interception,
    ResponseLog,
    ToolCallRecord,
    UpstreamExchange,
    redact_headers,
)

FORMAT_VERSION = 4
# 2 added pass-through records (``api``: ``anthropic-passthrough``, ``openai-passthrough``)
# and query strings in ``path``s; 3 added ``transport`` (absent: ``http``); 4 added the MCP
# fields of a tool call (``server``, ``server_tool``, ``duration_ms``, ``images``). An older
# file is a newer one without them.
READABLE_VERSIONS = frozenset({1, 2, 3, 4})
_HEADER_KEY = "aibridge_fixture"


@dataclass
class Fixture:
    """A loaded fixture file: its header, its interceptions in order, and load warnings."""

    path: str
    interceptions: list[Interception] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    version: int = FORMAT_VERSION
    tool_version: str = __version__
    created: str = ""
    proxy: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def keys_count(self, provider: str) -> int:
        """How many pool keys the recording proxy used for ``provider`` (0: the client's)."""
        return len(distinct_keys(self, provider))


def is_pass_through(api: str) -> bool:
    """True for a pass-through record (``anthropic-passthrough``...): no intercepted API."""
    return api.endswith("-passthrough")


def provider_of(api: str) -> str:
    """The key pool and upstream an API uses: ``anthropic`` or ``openai``."""
    return "openai" if api.startswith("openai") else "anthropic"


def distinct_keys(fixture: Fixture, provider: str) -> list[str]:
    """The masked keys of ``provider`` in order of first use across the file."""
    seen: list[str] = []
    for record in fixture.interceptions:
        if provider_of(record.api) == provider:
            for key in record.keys_used:
                if key not in seen:
                    seen.append(key)
    return seen


def body_limit(fixtures: Iterable[Fixture], floor: int) -> int:
    """The request body size a replay or mock of ``fixtures`` must accept: ``floor``, or the
    largest body recorded (a client's or one sent upstream) with a quarter more, since the
    same session's bodies vary a little from run to run. The recording proxy's own limit
    is not in the file, and a pass-through body had none: what was recorded must replay."""
    largest = 0
    for fixture in fixtures:
        for record in fixture.interceptions:
            bodies = [record.request.body, *(ex.request_body for ex in record.upstream)]
            largest = max(largest, *(_body_size(body) for body in bodies))
    return max(floor, largest + largest // 4)


def _body_size(body: Any) -> int:
    if body is None:
        return 0
    if isinstance(body, bytes):
        return len(body)
    return len(_dumps(body).encode())


# -- encoding ------------------------------------------------------------------------------
def header_line(proxy: dict[str, Any] | None = None, created: datetime | None = None) -> str:
    """The first line of every fixture file."""
    when = (created or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    header: dict[str, Any] = {
        _HEADER_KEY: FORMAT_VERSION,
        "tool_version": __version__,
        "created": when,
    }
    if proxy:
        header["proxy"] = proxy
    return _dumps(header)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _encode_bytes(data: bytes, text_key: str = "text", b64_key: str = "b64") -> dict[str, str]:
    try:
        return {text_key: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {b64_key: base64.b64encode(data).decode("ascii")}


def _encode_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        return _encode_bytes(body, "body_text", "body_b64")
    return {"body": body}


def _encode_response(log: ResponseLog) -> dict[str, Any]:
    return {
        "status": log.status,
        "headers": [list(pair) for pair in log.headers],
        "chunks": [{"ms": chunk.offset_ms, **_encode_bytes(chunk.data)} for chunk in log.chunks],
    }


def _encode_tool_call(call: ToolCallRecord) -> dict[str, Any]:
    out = {"name": call.name, "input": call.input, "result": call.result, "is_error": call.is_error}
    if call.server is not None:
        out |= {
            "server": call.server,
            "server_tool": call.server_tool,
            "duration_ms": call.duration_ms,
        }
    if call.images:
        out["images"] = call.images
    if call.chaos:
        out["chaos"] = call.chaos
    return out


def encode_interception(
    record: Interception, label: str | None = None, redact: Iterable[str] = ()
) -> str:
    """One interception as a JSONL line (no newline); headers are redacted again here."""
    extra = tuple(redact)
    request = record.request
    out: dict[str, Any] = {"api": record.api}
    if label:
        out["label"] = label
    if record.transport != "http":
        out["transport"] = record.transport
    # who sent it, when known (absent in older files: unknown)
    if record.client != "unknown":
        out["client"] = record.client
    if record.session is not None:
        out["session"] = record.session
    out |= {
        "started_at": record.started_at,
        "outcome": record.outcome,
        "request": {
            "method": request.method,
            "path": request.path,
            "headers": [list(p) for p in redact_headers(request.headers, extra)],
            **_encode_body(request.body),
        },
        "upstream": [
            {
                "method": ex.method,
                "path": ex.path,
                "key": ex.key,
                **_encode_body(ex.request_body),
                "response": _encode_response(
                    ResponseLog(
                        status=ex.response.status,
                        headers=redact_headers(ex.response.headers, extra),
                        chunks=ex.response.chunks,
                    )
                ),
                **({"error": ex.error} if ex.error else {}),
                **({"chaos": ex.chaos} if ex.chaos else {}),
            }
            for ex in record.upstream
        ],
        "tool_calls": [_encode_tool_call(c) for c in record.tool_calls],
        "response": _encode_response(
            ResponseLog(
                status=record.response.status,
                headers=redact_headers(record.response.headers, extra),
                chunks=record.response.chunks,
            )
        ),
        "tools": record.tools,
    }
    return _dumps(out)


# -- decoding ------------------------------------------------------------------------------
class _Bad(Exception):
    """A field is wrong; the loader adds ``file:line``."""


def _need(obj: Any, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _Bad(f"missing field {where + key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise _Bad(f"field {where + key!r} has the wrong type ({type(value).__name__})")
    return value


def _decode_bytes(obj: dict[str, Any], text_key: str = "text", b64_key: str = "b64") -> bytes:
    if text_key in obj:
        if not isinstance(obj[text_key], str):
            raise _Bad(f"{text_key!r} must be a string")
        return str(obj[text_key]).encode("utf-8")
    if b64_key in obj:
        try:
            return base64.b64decode(obj[b64_key], validate=True)
        except (ValueError, TypeError):
            raise _Bad(f"{b64_key!r} is not valid base64") from None
    raise _Bad(f"a chunk needs {text_key!r} or {b64_key!r}")


def _decode_body(obj: dict[str, Any]) -> Any:
    if "body" in obj:
        return obj["body"]
    if "body_text" in obj or "body_b64" in obj:
        return _decode_bytes(obj, "body_text", "body_b64")
    return None


def _headers(value: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in value
    ):
        raise _Bad(f"{where} must be a list of [name, value] string pairs")
    return [(p[0], p[1]) for p in value]


def _decode_response(obj: Any, where: str) -> ResponseLog:
    if not isinstance(obj, dict):
        raise _Bad(f"{where} must be an object")
    status = obj.get("status")
    if status is not None and not isinstance(status, int):
        raise _Bad(f"{where}.status must be an integer or null")
    chunks_in = _need(obj, "chunks", list, where + ".")
    chunks = []
    for i, chunk in enumerate(chunks_in):
        if not isinstance(chunk, dict) or not isinstance(chunk.get("ms"), int | float):
            raise _Bad(f"{where}.chunks[{i}] needs a numeric 'ms'")
        chunks.append(Chunk(float(chunk["ms"]), _decode_bytes(chunk)))
    return ResponseLog(
        status=status, headers=_headers(obj.get("headers", []), where + ".headers"), chunks=chunks
    )


def decode_interception(obj: Any) -> tuple[Interception, str | None]:
    """An interception (and its label) from one parsed line; raises ``_Bad``."""
    api = _need(obj, "api", str)
    req = _need(obj, "request", dict)
    request = ClientRequest(
        _need(req, "method", str, "request."),
        _need(req, "path", str, "request."),
        _headers(req.get("headers", []), "request.headers"),
        _decode_body(req),
    )
    transport = obj.get("transport", "http")
    if transport not in ("http", "websocket"):
        raise _Bad(f"field 'transport' must be 'http' or 'websocket', not {transport!r}")
    record = Interception(
        api=api,
        transport=transport,
        request=request,
        started_at=float(obj.get("started_at", 0.0)),
        outcome=str(obj.get("outcome", "ok")),
        client=str(obj.get("client", "unknown")),
        session=str(obj["session"]) if obj.get("session") is not None else None,
        response=_decode_response(_need(obj, "response", dict), "response"),
        tools=list(obj.get("tools", [])),
    )
    for i, ex in enumerate(_need(obj, "upstream", list)):
        where = f"upstream[{i}]."
        key = ex.get("key") if isinstance(ex, dict) else None
        if key is not None and not isinstance(key, str):
            raise _Bad(f"{where}key must be a string or null")
        record.upstream.append(
            UpstreamExchange(
                _need(ex, "method", str, where),
                _need(ex, "path", str, where),
                _decode_body(ex),
                key,
                _decode_response(_need(ex, "response", dict, where), where + "response"),
                ex.get("error"),
                _optional(ex, "chaos", dict, where),
            )
        )
    for i, call in enumerate(obj.get("tool_calls", [])):
        where = f"tool_calls[{i}]."
        record.tool_calls.append(
            ToolCallRecord(
                _need(call, "name", str, where),
                call.get("input"),
                _need(call, "result", str, where),
                bool(call.get("is_error", False)),
                _optional(call, "server", str, where),
                _optional(call, "server_tool", str, where),
                _optional(call, "duration_ms", int | float, where),
                _images(call, where),
                _optional(call, "chaos", dict, where),
            )
        )
    label = obj.get("label")
    return record, label if isinstance(label, str) else None


def _optional(obj: dict[str, Any], key: str, kind: Any, where: str) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise _Bad(f"field {where + key!r} has the wrong type ({type(value).__name__})")
    return value


def _images(call: dict[str, Any], where: str) -> list[dict[str, str]]:
    images = call.get("images", [])
    if not isinstance(images, list) or not all(
        isinstance(i, dict)
        and isinstance(i.get("media_type"), str)
        and isinstance(i.get("data"), str)
        for i in images
    ):
        raise _Bad(f"field {where + 'images'!r} must be a list of {{media_type, data}} objects")
    return [{"media_type": i["media_type"], "data": i["data"]} for i in images]


def parse_fixture(text: str, path: str = "<fixture>") -> Fixture:
    """A fixture from the text of a JSONL file; raises ``FixtureError`` naming the line."""
    fixture = Fixture(path)
    lines = text.split("\n")
    complete_end = text.endswith("\n")
    last = len(lines) - 1 if complete_end else len(lines)
    saw_header = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        truncated = number == last and not complete_end
        try:
            obj = json.loads(line)
        except ValueError as exc:
            if truncated:
                fixture.warnings.append(
                    f"{path}:{number}: truncated last line skipped (a crash mid-write?)"
                )
                break
            raise FixtureError(f"{path}:{number}: not valid JSON: {exc}") from None
        try:
            if not saw_header:
                _read_header(fixture, obj)
                saw_header = True
                continue
            record, label = decode_interception(obj)
        except _Bad as exc:
            raise FixtureError(f"{path}:{number}: {exc}") from None
        fixture.interceptions.append(record)
        fixture.labels.append(label or f"#{len(fixture.interceptions)}")
    if not saw_header:
        raise FixtureError(f"{path}:1: empty file, expected an aibridge fixture header")
    return fixture


def _read_header(fixture: Fixture, obj: Any) -> None:
    if not isinstance(obj, dict) or _HEADER_KEY not in obj:
        raise _Bad(f'expected the header line ({{"{_HEADER_KEY}": {FORMAT_VERSION}, ...}})')
    version = obj[_HEADER_KEY]
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        readable = ", ".join(map(str, sorted(READABLE_VERSIONS)))
        raise _Bad(f"fixture format version {version!r} is not supported (this reads {readable})")
    fixture.version = version
    fixture.tool_version = str(obj.get("tool_version", ""))
    fixture.created = str(obj.get("created", ""))
    proxy = obj.get("proxy", {})
    fixture.proxy = proxy if isinstance(proxy, dict) else {}


def dump_fixture(fixture: Fixture) -> str:
    """The whole file for ``fixture``, newline-terminated."""
    lines = [header_line(fixture.proxy)]
    for record, label in zip(fixture.interceptions, fixture.labels, strict=True):
        lines.append(encode_interception(record, None if label.startswith("#") else label))
    return "\n".join(lines) + "\n"
