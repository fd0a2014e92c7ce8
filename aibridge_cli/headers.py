"""HTTP vocabulary every layer shares: the header list type, lookups, and what crosses
the proxy.

Headers travel as a list of ``(name, value)`` pairs, the shape h11 hands them over in,
so order and repeats survive a relay and a recording. The server lower-cases names as it
reads them; :func:`header` still compares without regard to case, because fixtures and
fakes may hold headers as some other peer spelled them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Headers = list[tuple[str, str]]
"""Header pairs in wire order; names lower-case where the server produced them."""
FrozenHeaders = tuple[tuple[str, str], ...]
"""The same, hashable: for plans and scenarios that key caches."""
WireHeaders = list[tuple[bytes, bytes]]
"""Header pairs as bytes, for httpx."""

TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
"""A header name (RFC 9110 token), as h11 checks it: the pattern the server's head writer
and the lean client's request and response share."""

SSE_HEADERS: Headers = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("connection", "keep-alive"),
    ("x-accel-buffering", "no"),
]
JSON_HEADERS: Headers = [("content-type", "application/json")]

# Hop-by-hop and framing headers never cross the proxy; the rest of a relayed response's
# headers (request ids, rate-limit hints) do.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "date",
        "server",
        "proxy-connection",
        "upgrade",
        "trailer",
        "te",
    }
)
CREDENTIALS = ("x-api-key", "authorization")
# Client headers that are the proxy's business, not the upstream's.
_DROP_REQUEST = HOP_BY_HOP | {"host", "accept-encoding", "content-type", "cookie", *CREDENTIALS}
# What an intercepted response's head says about the body the proxy writes: its own.
_PROXY_OWNED = frozenset(name for name, _ in SSE_HEADERS) | {"content-type"}
# Statuses of the proxy's own refusals that the same request cannot turn by trying again:
# its path, body, size, type or credentials are wrong. The Anthropic and OpenAI SDKs read
# ``x-should-retry`` before their own rules, and Claude Code retries a 401 ten times with
# backoff without it.
FINAL_STATUSES = frozenset({400, 401, 403, 404, 405, 413, 415, 422, 431})


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name`` (lower-case), compared without regard to case."""
    return next((v for k, v in headers if k.lower() == name), None)


def refusal_headers(status: int) -> Headers:
    """What a refusal of the proxy's own adds: ``x-should-retry: false`` when trying again
    cannot succeed (never on a relayed upstream answer, which says so itself)."""
    return [("x-should-retry", "false")] if status in FINAL_STATUSES else []


def presented_key(headers: Iterable[tuple[str, str]]) -> str | None:
    """The key a request presents, as a provider reads it: Anthropic's ``x-api-key``, else
    an OpenAI-style ``Authorization: Bearer`` token."""
    key = header(headers, "x-api-key")
    bearer = header(headers, "authorization") or ""
    if key is None and bearer.startswith("Bearer "):
        key = bearer[len("Bearer ") :]
    return key


def media_type(headers: Iterable[tuple[str, str]]) -> str:
    """The content type without parameters, lower-case ('' when absent)."""
    return (header(headers, "content-type") or "").split(";", 1)[0].strip().lower()


def forwarded_response_headers(
    headers: Iterable[tuple[str, str]], *, head: bool = False
) -> Headers:
    """An upstream response's headers as relayed: all but hop-by-hop and framing ones.

    ``head``: the answer to a HEAD, whose ``content-length`` is the size of the body a GET
    would get, not framing, so it is kept.
    """
    if head:
        return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP or k == "content-length"]
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


def intercepted_response_headers(own: Headers, upstream: Iterable[tuple[str, str]]) -> Headers:
    """An intercepted response's head: the proxy's own headers (the body is the proxy's),
    then the upstream's that say something else (request ids, rate-limit hints)."""
    return [*own, *((k, v) for k, v in upstream if k not in HOP_BY_HOP and k not in _PROXY_OWNED)]


def wire(headers: Iterable[tuple[str, str]]) -> WireHeaders:
    """Headers as the bytes they came as: the server decodes them as latin-1, and httpx
    would encode a str as ASCII, failing on any other byte a client may send."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def forwarded_request_headers(headers: Sequence[tuple[str, str]], byok: bool) -> Headers:
    """The client's headers as sent upstream; its credentials only without a key pool."""
    kept = [(k, v) for k, v in headers if k not in _DROP_REQUEST]
    if byok:
        kept += [(k, v) for k, v in headers if k in CREDENTIALS]
    return [*kept, ("accept-encoding", "identity")]
