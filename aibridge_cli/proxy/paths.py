"""Request paths that would step out of where they were routed: refused before routing.

A pass-through path is appended to the provider's base URL and sent with the pool's key.
A dot segment in it (``/openai/v1/../../v2/x``) is resolved by the HTTP client or by the
upstream, so the request would land outside the provider's base path, on an address the
operator never meant to hand the key to; ``/anthropic/./v1/messages`` would slip past the
interception; ``/anthropic/../aibridge/status`` would name one route and reach another.
Percent-encoding hides the same segments from a plain comparison (``%2e%2e``, ``.%2E``)
and an encoded slash or backslash (``..%2f..``, ``..%5c``) makes segments an upstream
that decodes it would see; a path is decoded until it no longer changes, for a chain of
servers that each decode once (``%252e%252e``).

Refused, not resolved: no client sends such a path on purpose (the SDKs and agents build
their paths from fixed strings and ids), so a refusal costs nobody and leaves no doubt
about which route a request took. Sans-io: a path in, a reason or None out.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

DOT_SEGMENTS = frozenset({".", ".."})
# What a server may treat as a segment separator once the path is decoded.
_SEPARATORS = re.compile(r"[/\\]")


def dot_segment_problem(path: str) -> str | None:
    """Why ``path`` (without its query) may not be routed, or None when it may: it holds a
    ``.`` or ``..`` segment, plain or percent-encoded, or one that an encoded slash or
    backslash would make."""
    form = ""
    while form != path:
        if any(segment in DOT_SEGMENTS for segment in _SEPARATORS.split(path)):
            return (
                "the path holds a dot segment ('.' or '..', plain or percent-encoded), "
                "which would leave the route it names"
            )
        form, path = path, unquote(path)
    return None
