"""The Go gateway's txtar fixtures, sans-io: a comment, then ``-- NAME --`` sections.

Error sections hold an HTTP status line and headers before the body
(``HTTP/2.0 400 Bad Request``); ``parse_http_section`` splits those out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SECTION = re.compile(r"^-- (.+?) --$", re.MULTILINE)
_STATUS = re.compile(r"^HTTP/[\d.]+ (\d{3})(?: .*)?$")


@dataclass(frozen=True)
class Txtar:
    comment: str
    sections: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HTTPSection:
    """A reply section: the status (200 when none is given), headers, and the body."""

    status: int
    headers: list[tuple[str, str]]
    body: str


def parse_txtar(text: str) -> Txtar:
    """Split a txtar archive into its comment and named sections (in file order)."""
    matches = list(_SECTION.finditer(text))
    comment = text[: matches[0].start()] if matches else text
    sections: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections[match.group(1)] = text[match.end() + 1 : end]
    return Txtar(comment.strip(), sections)


def parse_http_section(text: str) -> HTTPSection:
    """A reply section, with its status line and headers when it has them."""
    lines = text.split("\n")
    first = lines[0].strip() if lines else ""
    status_match = _STATUS.match(first)
    if status_match is None:
        return HTTPSection(200, [], text)
    headers: list[tuple[str, str]] = []
    i = 1
    while i < len(lines) and lines[i].strip():
        name, _, value = lines[i].partition(":")
        headers.append((name.strip().lower(), value.strip()))
        i += 1
    body = "\n".join(lines[i + 1 :])
    return HTTPSection(int(status_match.group(1)), headers, body)
