"""``[[mcp]]`` entries of a tools file, as plain data, and the names their tools get.

A server is reached by ``command`` (an argv run as a subprocess, stdio transport, with an
optional ``env`` table) or ``url`` (streamable HTTP, optional ``headers`` and a bearer
token read from the environment variable ``bearer_env``). Its tools are offered upstream
as ``bmcp_{server}_{tool}``, the Go gateway's names, filtered by ``allow``/``deny``
regular expressions on the server's own tool names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError
from ..tools import TOOL_NAME, ToolsFile, no_duplicates

DEFAULT_CALL_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
_SERVER_NAME = re.compile(r"[A-Za-z0-9-]{1,40}")


def offered_name(server: str, tool: str) -> str:
    """The name a server's tool is offered upstream under."""
    return f"bmcp_{server}_{tool}"


@dataclass(frozen=True)
class McpServerSpec:
    """One configured MCP server; ``command`` or ``url``, never both."""

    name: str
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    bearer_env: str | None = None
    allow: re.Pattern[str] | None = None
    deny: re.Pattern[str] | None = None
    timeout: float = DEFAULT_CALL_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    def offers(self, tool: str) -> bool:
        """Whether the server's tool ``tool`` is injected: allowed, not denied, and with a
        name every provider accepts."""
        if not TOOL_NAME.fullmatch(offered_name(self.name, tool)):
            return False
        if self.allow is not None and not self.allow.search(tool):
            return False
        return self.deny is None or not self.deny.search(tool)

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "streamable-http"

    @property
    def target(self) -> str:
        """What the status page shows: the program, or the URL without any credentials in
        it (headers are never shown)."""
        if self.command is not None:
            return self.command[0]
        parts = urlsplit(str(self.url))
        if "@" not in parts.netloc:
            return str(self.url)
        return urlunsplit(parts._replace(netloc="…@" + parts.netloc.rpartition("@")[2]))

    def http_headers(self) -> dict[str, str]:
        """The headers sent to a URL server, the bearer read from the environment now."""
        headers = dict(self.headers)
        if self.bearer_env is not None:
            token = os.environ.get(self.bearer_env)
            if not token:
                raise ConfigError(
                    f"mcp server {self.name}: environment variable {self.bearer_env} is not set"
                )
            headers["authorization"] = f"Bearer {token}"
        return headers


def _strings(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{what} must be a table of strings")
    return dict(value)


def _pattern(entry: Mapping[str, Any], key: str, where: str) -> re.Pattern[str] | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' must be a regular expression string")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ConfigError(f"{where}: '{key}' is not a valid regular expression: {exc}") from None


def _seconds(entry: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: '{key}' must be a positive number, not {value!r}")
    return float(value)


def mcp_server_from_mapping(entry: Any, where: str) -> McpServerSpec:
    """One ``[[mcp]]`` table; ``where`` names it in error messages."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a table")
    name = entry.get("name")
    if not isinstance(name, str) or not _SERVER_NAME.fullmatch(name):
        raise ConfigError(f"{where}: 'name' must be 1-40 letters, digits or '-', not {name!r}")
    where = f"{where} ({name})"
    command, url = entry.get("command"), entry.get("url")
    if (command is None) == (url is None):
        raise ConfigError(f"{where}: give exactly one of command, url")
    if command is not None and (
        not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command)
    ):
        raise ConfigError(f"{where}: 'command' must be a non-empty list of strings")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise ConfigError(f"{where}: 'url' must be an http:// or https:// URL, not {url!r}")
    bearer_env = entry.get("bearer_env")
    if bearer_env is not None and (not isinstance(bearer_env, str) or url is None):
        raise ConfigError(f"{where}: 'bearer_env' names an environment variable, for a url")
    return McpServerSpec(
        name=name,
        command=tuple(command) if command is not None else None,
        env=_strings(entry.get("env", {}), f"{where}: 'env'"),
        url=url,
        headers=tuple(_strings(entry.get("headers", {}), f"{where}: 'headers'").items()),
        bearer_env=bearer_env,
        allow=_pattern(entry, "allow", where),
        deny=_pattern(entry, "deny", where),
        timeout=_seconds(entry, "timeout", DEFAULT_CALL_TIMEOUT, where),
        connect_timeout=_seconds(entry, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, where),
    )


def mcp_servers(found: ToolsFile) -> tuple[McpServerSpec, ...]:
    """The MCP servers of a tools file; a bad table is a ``ConfigError`` naming it."""
    specs = tuple(
        mcp_server_from_mapping(entry, f"{found.path}: mcp #{i + 1}")
        for i, entry in enumerate(found.mcp)
    )
    if found.path is not None:
        no_duplicates(found.path, "mcp server", [spec.name for spec in specs])
    return specs
