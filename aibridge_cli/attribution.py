"""Which client sent a request, and which of its sessions it belongs to, sans-io.

Read from what the clients really send (checked by running them against a recording
upstream; ``tests/test_attribution.py`` keeps their headers):

* Claude Code 2.1: ``user-agent: claude-cli/2.1.332 (external, sdk-cli)``, the session in
  ``x-claude-code-session-id`` and again in ``metadata.user_id`` (a JSON string with a
  ``session_id``; older versions wrote ``user_<hash>_account_<uuid>_session_<uuid>``);
* Codex CLI 0.171: ``user-agent: codex_exec/0.171.0 (...)``, ``originator: codex_exec``
  (``codex_cli_rs`` interactive), the session in ``session-id`` (and ``thread-id``);
  older versions sent ``session_id`` and ``conversation_id``;
* the SDKs: ``AsyncAnthropic/Python 0.x``, ``OpenAI/JS 6.x`` and their ``x-stainless-lang``.

The client is a short fixed name (a metrics label must not take whatever a user agent
says); the session is the client's own id, kept as it came, at most 128 characters.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .interception import REDACTED

UNKNOWN = "unknown"
OTHER = "other"
_MAX_SESSION = 128

# (client, a pattern on the user agent), first match wins: the coding tools before the
# SDKs they are built on.
_USER_AGENTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("claude-code", r"^claude-cli/|claude-code"),
        ("codex", r"^codex_|^codex-"),
        ("cursor", r"cursor"),
        ("copilot", r"copilot"),
        ("zed", r"^zed/|\bzed\b"),
        ("opencode", r"^opencode/"),
        ("cline", r"\bcline\b"),
        ("anthropic-sdk-python", r"^(async)?anthropic/python"),
        ("anthropic-sdk-js", r"^anthropic/js"),
        ("openai-sdk-python", r"^(async)?openai/python"),
        ("openai-sdk-js", r"^openai/js"),
        ("curl", r"^curl/"),
    )
)
# Headers that name the client outright, whatever the user agent says.
_CLIENT_HEADERS = (
    ("x-claude-code-session-id", "claude-code"),
    ("originator", "codex"),  # its value starts with codex_ for Codex's own builds
    ("copilot-integration-id", "copilot"),
)
# Session headers, by client; the first one present is the session.
_SESSION_HEADERS = {
    "claude-code": ("x-claude-code-session-id",),
    "codex": ("session-id", "session_id", "conversation_id", "thread-id"),
}
_GENERIC_SESSION_HEADERS = ("x-session-id", "session-id", "session_id")
_LEGACY_USER_ID = re.compile(r"_session_([0-9A-Za-z-]+)$")


@dataclass(frozen=True)
class Attribution:
    client: str = UNKNOWN
    session: str | None = None


def _get(headers: dict[str, str], name: str) -> str | None:
    """A header's value; none when absent, empty or redacted (``--redact``)."""
    value = (headers.get(name) or "").strip()
    return value if value and value != REDACTED else None


def client_of(headers: dict[str, str]) -> str:
    """The client's short name: from its user agent, else a header only it sends."""
    agent = _get(headers, "user-agent")
    if agent is not None:
        named = _agent_name(agent)
        if named is not None:
            return named
    for header, name in _CLIENT_HEADERS:
        value = _get(headers, header)
        if value is not None and (header != "originator" or value.startswith("codex")):
            return name
    if _get(headers, "x-stainless-lang") is not None:
        return "stainless-sdk"  # an official SDK we do not know by its user agent
    return OTHER if agent is not None else UNKNOWN


@functools.lru_cache(maxsize=64)
def _agent_name(agent: str) -> str | None:
    """The client a user agent names, if any; a client sends the same one every time,
    so the twelve patterns run once per agent, not per request."""
    for name, pattern in _USER_AGENTS:
        if pattern.search(agent):
            return name
    return None


def _session_from_metadata(body: Any) -> str | None:
    """Claude Code's ``metadata.user_id``: a JSON string with a ``session_id``, or the
    older ``user_..._session_<uuid>``."""
    metadata = body.get("metadata") if isinstance(body, dict) else None
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str):
        return None
    try:
        parsed = json.loads(user_id)
    except ValueError:
        legacy = _LEGACY_USER_ID.search(user_id)
        return legacy[1] if legacy else None
    session = parsed.get("session_id") if isinstance(parsed, dict) else None
    return session if isinstance(session, str) and session else None


def identify(headers: Iterable[tuple[str, str]], body: Any = None) -> Attribution:
    """Who sent a request with these headers (and JSON ``body``, when known)."""
    by_name = {name.lower(): value for name, value in headers}
    client = client_of(by_name)
    session = None
    for name in _SESSION_HEADERS.get(client, ()) + _GENERIC_SESSION_HEADERS:
        session = _get(by_name, name)
        if session is not None:
            break
    if session is None:
        return Attribution(client, session_in_body(client, body))
    return Attribution(client, session[:_MAX_SESSION])


def session_in_body(client: str, body: Any) -> str | None:
    """The session a request's JSON body names, for a client whose headers name none."""
    if client not in ("claude-code", UNKNOWN, OTHER):
        return None
    session = _session_from_metadata(body)
    return session[:_MAX_SESSION] if session else None
