"""The fields a client changes on every run of the same command, and how matching hides them.

Sans-io. Each ``Normalizer`` is named (to be switched off), says why it exists, and applies
either to every request or to the requests of one known client, recognised from its
headers (``detect_client``). They were found by recording each supported client twice
(in one directory, in another directory and home, and with the clock a day on) against
a scripted upstream and diffing the recorded requests; docs/fixture-format.md
("Matching a request to a recorded one") lists them.

What they found, besides ids and timestamps every API carries:

- Claude Code 2.1 (``user-agent: claude-cli/...``) ends a context block with
  "Today's date is 2026-12-07." and starts its system prompt with a text block
  ``x-anthropic-billing-header: cc_version=2.1.332.0c0; ...`` whose suffix is a hash of
  the prompt and the client version; ``metadata.user_id`` is a JSON string of a device
  id and the session id (``ids`` drops it).
- Both name where they run in the prompt (working directory, home, Claude Code's memory
  path, Codex's skills root): a recording made in another checkout or on another
  machine differs there.
- Codex CLI 0.171 (``user-agent: codex_exec/...``, ``originator: codex_...``) sends the
  session id as ``prompt_cache_key``, a ``client_metadata`` object of session, thread,
  turn, window and installation ids and request-start timestamps, an
  ``<current_date>`` element in its environment context, and a ``create_time`` on each
  input message.

Headers (session ids, ``host``, WebSocket keys...) differ too, but matching never
compares headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .normalize import strip_volatile

Client = Literal["claude-code", "codex"]


def detect_client(headers: Iterable[tuple[str, str]]) -> Client | None:
    """The known client that sent a request with these headers, or None."""
    for name, value in headers:
        name, value = name.lower(), value.lower()
        if name == "user-agent" and value.startswith("claude-cli/"):
            return "claude-code"
        if (name == "user-agent" and value.startswith("codex")) or (
            name == "originator" and value.startswith("codex")
        ):
            return "codex"
    return None


Body = dict[str, Any]


@dataclass(frozen=True)
class Normalizer:
    """One rule: ``apply`` returns a JSON body with the volatile field made constant."""

    name: str
    client: Client | None  # None: every request
    why: str
    apply: Callable[[Body], Body]


def _map_strings(data: Any, change: Callable[[str], str]) -> Any:
    if isinstance(data, str):
        return change(data)
    if isinstance(data, dict):
        return {k: _map_strings(v, change) for k, v in data.items()}
    if isinstance(data, list):
        return [_map_strings(v, change) for v in data]
    return data


def _substitute(
    pattern: str | re.Pattern[str],
    replacement: str | Callable[[re.Match[str]], str],
    *fields: str,
) -> Callable[[Body], Body]:
    """A regex substitution in every string under the top-level ``fields`` (only there:
    walking a client's tool schemas too tripled the cost of matching a request)."""
    compiled = re.compile(pattern)

    def change(text: str) -> str:
        return compiled.sub(replacement, text)

    def apply(body: Body) -> Body:
        return {k: _map_strings(v, change) if k in fields else v for k, v in body.items()}

    return apply


def _without(*keys: str) -> Callable[[Body], Body]:
    def apply(body: Body) -> Body:
        return {k: v for k, v in body.items() if k not in keys}

    return apply


def _ids(body: Body) -> Body:
    out: Body = strip_volatile(body)
    return out


def _strings(data: Any) -> Iterable[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def _paths(fields: tuple[str, ...], *finders: str) -> Callable[[Body], Body]:
    """Where the client says it runs (each finder's named groups: the working directory,
    the home, a project's folder name), replaced by the group's name wherever it appears
    under ``fields``: a recording made in another checkout or on another machine."""
    compiled = [re.compile(finder) for finder in finders]

    def apply(body: Body) -> Body:
        found: dict[str, str] = {}
        for text in (t for f in fields for t in _strings(body.get(f))):
            for finder in compiled:
                for match in finder.finditer(text):
                    for name, value in match.groupdict().items():
                        if value and len(value.strip("/")) > 1:  # never "/" alone
                            found.setdefault(value, f"<{name}>")
        if not found:
            return body
        # longest first: a home is often the start of the working directory
        alternatives = "|".join(re.escape(p) for p in sorted(found, key=len, reverse=True))
        pattern = re.compile(rf"(?:{alternatives})(?![\w.-])")
        return _substitute(pattern, lambda m: found[m.group()], *fields)(body)

    return apply


BILLING_PREFIX = "x-anthropic-billing-header:"


def _billing(body: Body) -> Body:
    system = body.get("system")
    if isinstance(system, str) and system.startswith(BILLING_PREFIX):
        return {**body, "system": BILLING_PREFIX}
    if not isinstance(system, list):
        return body
    blocks = [
        {**block, "text": BILLING_PREFIX}
        if isinstance(block, dict) and str(block.get("text", "")).startswith(BILLING_PREFIX)
        else block
        for block in system
    ]
    return {**body, "system": blocks}


def _message_times(body: Body) -> Body:
    items = body.get("input")
    if not isinstance(items, list):
        return body
    key = "internal_chat_message_metadata_passthrough"

    def timeless(item: Any) -> Any:
        if isinstance(item, dict) and isinstance(item.get(key), dict):
            return {**item, key: {k: v for k, v in item[key].items() if k != "create_time"}}
        return item

    return {**body, "input": [timeless(item) for item in items]}


NORMALIZERS: tuple[Normalizer, ...] = (
    Normalizer(
        "ids",
        None,
        "ids and timestamps (`id`, any `*_id` such as Claude Code's `metadata.user_id`, "
        "`created`, `created_at`...) are new on every run",
        _ids,
    ),
    Normalizer(
        "claude-code-date",
        "claude-code",
        'the context ends in "Today\'s date is YYYY-MM-DD.": a recording would go stale '
        "the next day",
        _substitute(
            r"(Today's date(?: is|:) ?)\d{4}-\d{2}-\d{2}", r"\1<date>", "system", "messages"
        ),
    ),
    Normalizer(
        "claude-code-billing",
        "claude-code",
        "the first system block, `x-anthropic-billing-header: cc_version=...`, carries a "
        "hash of the prompt and the client's version: it changes when Claude Code updates",
        _billing,
    ),
    Normalizer(
        "claude-code-paths",
        "claude-code",
        'the working directory ("Primary working directory: ..."), the home folder and '
        "the project's folder name in the memory path become `<cwd>`, `<home>`, "
        "`<project>`: the same command run in another checkout or on another machine",
        _paths(
            ("system", "messages"),
            r"Primary working directory: (?P<cwd>[^\n]+)",
            r"memory at `(?P<home>[^`\n]+?)/\.claude/projects/(?P<project>[^/`\n]+)/",
        ),
    ),
    Normalizer(
        "codex-prompt-cache-key",
        "codex",
        "`prompt_cache_key` is the session id, new on every run",
        _without("prompt_cache_key"),
    ),
    Normalizer(
        "codex-client-metadata",
        "codex",
        "`client_metadata` holds session, thread, turn, window and installation ids and "
        "request-start timestamps: telemetry, not what the model is asked",
        _without("client_metadata"),
    ),
    Normalizer(
        "codex-date",
        "codex",
        "the environment context carries `<current_date>YYYY-MM-DD</current_date>`",
        _substitute(
            r"<current_date>[^<]*</current_date>", "<current_date/>", "input", "instructions"
        ),
    ),
    Normalizer(
        "codex-paths",
        "codex",
        "the working directory (`<cwd>`, the workspace roots) and `CODEX_HOME` (the skills "
        "root) become `<cwd>` and `<codex_home>`: another checkout or another machine",
        _paths(
            ("input", "instructions"),
            r"<cwd>(?P<cwd>[^<]+)</cwd>",
            r"`(?P<codex_home>[^`\n]+?)/skills/\.system`",
        ),
    ),
    Normalizer(
        "codex-message-times",
        "codex",
        "each input message's `internal_chat_message_metadata_passthrough.create_time` is "
        "the moment it was made",
        _message_times,
    ),
)
NORMALIZER_NAMES: tuple[str, ...] = tuple(n.name for n in NORMALIZERS)


def normalize_body(body: Body, client: Client | None, off: frozenset[str] = frozenset()) -> Body:
    """``body`` with every normalizer for ``client`` (and for every request) applied,
    except those named in ``off``."""
    for normalizer in NORMALIZERS:
        if normalizer.name not in off and normalizer.client in (None, client):
            body = normalizer.apply(body)
    return body
