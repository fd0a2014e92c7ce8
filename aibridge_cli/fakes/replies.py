"""What a scripted upstream answers and what it saw: replies and requests as plain data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..headers import Headers
from ..providers.base import dumps
from ..sse import encode_event

Fault = Literal["reset-before-body", "reset-in-body", "stall"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``fault_at`` is the chunk index where the fault strikes."""

    status: int = 200
    headers: Headers = field(default_factory=list)
    chunks: Sequence[bytes] = ()
    delays: Sequence[float] = ()
    fault: Fault | None = None
    fault_at: int = 0
    head_delay: float = 0.0  # seconds before the status line (an answer slow to start)

    @classmethod
    def json(cls, body: Any, status: int = 200, headers: Headers | None = None) -> Reply:
        data = dumps(body).encode()
        return cls(status, [("content-type", "application/json"), *(headers or [])], [data])

    @classmethod
    def sse(cls, events: Sequence[tuple[str | None, Any]], **kwargs: Any) -> Reply:
        """An SSE reply, one event per chunk; data that is not a string is JSON-encoded."""
        chunks = [
            encode_event(name, data if isinstance(data, str) else dumps(data))
            for name, data in events
        ]
        return cls(200, [("content-type", "text/event-stream")], chunks, **kwargs)


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: Headers
    body: bytes
    target: str  # the path with its query string

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> Any:
        return json.loads(self.body)
