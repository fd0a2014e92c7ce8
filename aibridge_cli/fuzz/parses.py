"""The oracles' parses of a response, each distinct response parsed once per process.

A campaign's clients get the same bytes over and over: over 1,000 iterations of the
built-in scenarios the oracles normalized 3,444 responses of 353 distinct ones, checked
the grammar of 3,554 of 764 and named the body shape of 4,101 of 296. The parses are pure
functions of the bytes, so each is kept by value (a bytes object hashes once) and shared:
callers must not change what they get.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from ..sessions.normalize import normalize_response
from .grammar import Response, response_problems
from .memo import Memo
from .signature import body_shape


def _headers_key(headers: Iterable[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(pair) for pair in headers)


def _response_key(response: Response) -> tuple[Any, ...]:
    return (
        response.status,
        _headers_key(response.headers),
        response.body,
        response.complete,
        response.truncated,
    )


_normalized: Memo[tuple[Any, ...], dict[str, Any]] = Memo()
_problems: Memo[tuple[Any, ...], tuple[str, ...]] = Memo()
_shapes: Memo[tuple[Any, ...], str] = Memo()


def normalized(
    api: str, status: int | None, headers: Sequence[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    """``normalize_response``, shared: read it, never change it."""
    key = (api, status, _headers_key(headers), body)
    return _normalized.get(key, lambda: normalize_response(api, status, headers, body))


def problems(
    api: str, response: Response, streaming: bool, injected: Collection[str], strict: bool = True
) -> list[str]:
    """``response_problems`` (a list of the caller's own)."""
    key = (api, _response_key(response), streaming, frozenset(injected), strict)
    found = _problems.get(
        key,
        lambda: tuple(
            response_problems(api, response, streaming=streaming, injected=injected, strict=strict)
        ),
    )
    return list(found)


def shape(response: Response) -> str:
    """``body_shape``."""
    return _shapes.get(_response_key(response), lambda: body_shape(response))
