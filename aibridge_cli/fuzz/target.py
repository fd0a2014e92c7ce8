"""A black-box target and what it was told: where it listens, how its clients call it,
and the configuration it declares (which scenarios apply to it).

Sans-io: settings, the client's request for a scenario, and the reason a scenario is
skipped. ``blackbox.py`` does the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..headers import FrozenHeaders
from ..sessions.normalize import normalize_response
from ..tools import InjectedTool, load_tools_file
from .oracles import GENERIC_ORACLES
from .plan import ALL_FAULTS, FaultKind
from .scenario import Scenario


class Target(NamedTuple):
    """Where the proxy under test listens, and the path prefix of its routes."""

    host: str
    port: int
    prefix: str

    @property
    def authority(self) -> str:
        """The Host header a client dialling this address sends (a guarded proxy checks it)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"--target must be an http:// URL, not {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"--target {url!r}: the port is not a number") from None
    return Target(parts.hostname, port, parts.path.rstrip("/"))


@dataclass(frozen=True)
class ClientConfig:
    """How the campaign's client calls the target, beyond the scenario's own request.

    ``paths``: (API or "", path) pairs, the route a gateway serves an API on in place of
    the scenario's (``--client-path``; "" for every API); ``model``: the model the client
    asks for (``--model``); ``headers``: sent with every request (``--client-header``,
    a gateway's own auth).
    """

    paths: tuple[tuple[str, str], ...] = ()
    model: str | None = None
    headers: FrozenHeaders = ()

    def path(self, scenario: Scenario) -> str:
        chosen = dict(self.paths)
        return chosen.get(scenario.api, chosen.get("", scenario.path))

    def body(self, scenario: Scenario) -> bytes:
        """The scenario's request body, with ``model`` if one was given."""
        if self.model is None:
            return scenario.body
        data = json.loads(scenario.body)
        data["model"] = self.model
        return json.dumps(data).encode()


def parse_client_path(text: str) -> tuple[str, str]:
    """``[API=]PATH`` (``openai-chat=/chat/completions``) as (API or "", PATH)."""
    api, sep, path = text.partition("=")
    if not sep:
        api, path = "", text
    if api and api not in ("anthropic", "openai-chat", "openai-responses"):
        raise ConfigError(
            f"--client-path {text!r}: {api!r} is not an API "
            "(anthropic, openai-chat, openai-responses)"
        )
    if not path.startswith("/"):
        raise ConfigError(f"--client-path {text!r}: the path must start with /")
    return api, path


def parse_client_header(text: str) -> tuple[str, str]:
    """``Name: value`` as a header pair."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
        raise ConfigError(f"--client-header {text!r}: give it as 'Name: value'")
    if "\r" in value or "\n" in value:
        raise ConfigError(f"--client-header {name}: a value cannot hold a line break")
    return name.strip().lower(), value.strip()


def client_config(paths: Sequence[str], model: str | None, headers: Sequence[str]) -> ClientConfig:
    """The client's settings from the command line's ``--client-path``, ``--model`` and
    ``--client-header``; a ``ConfigError`` for a malformed one."""
    if model is not None and not model.strip():
        raise ConfigError("--model must not be empty")
    return ClientConfig(
        tuple(parse_client_path(p) for p in paths),
        model,
        tuple(parse_client_header(h) for h in headers),
    )


MAX_STALL = 15.0


def stall_past(seconds: float | None) -> float | None:
    """``--stall-past``: a read timeout short enough for a campaign's iterations."""
    if seconds is not None and not 0 < seconds <= MAX_STALL:
        raise ConfigError(
            f"--stall-past {seconds:g}: give the target's upstream read timeout, "
            f"more than 0 and at most {MAX_STALL:g} s (set it that low on the target)"
        )
    return seconds


def declared_tools(text: str | None) -> frozenset[str] | None:
    """``--target-tools``: the names of the tools a tools file offers, ``none`` for no tool,
    None (not given) for "configured like each scenario". The file is read as data: its
    commands are never run."""
    if text is None:
        return None
    if text == "none":
        return frozenset()
    tools = load_tools_file(Path(text))
    return frozenset(tool.name for tool in tools.tools)


@dataclass(frozen=True)
class BlackBoxSettings:
    """A black-box campaign: the proxy at ``url``, our mock upstream on ``upstream_port``.

    ``target_tools``: the injected tools the target declares it offers (``--target-tools``);
    None: each scenario's own (the target is configured like every scenario).
    ``strict``: upstream error bodies must come back byte for byte. ``stall_past``: the
    target's upstream read timeout (``--stall-past``): stall faults are drawn, each ended
    by the target within that many seconds.
    """

    url: str
    upstream_port: int
    scenarios: Sequence[Scenario]
    seed: int
    iterations: int
    oracles: frozenset[str] = GENERIC_ORACLES
    faults: frozenset[FaultKind] = ALL_FAULTS
    client: ClientConfig = field(default_factory=ClientConfig)
    target_tools: frozenset[str] | None = None
    strict: bool = False
    stall_past: float | None = None  # the target's upstream read timeout, when declared


def skip_reason(scenario: Scenario, target_tools: frozenset[str] | None) -> str | None:
    """Why ``scenario`` does not apply to a target with ``target_tools``; None: it does."""
    if scenario.transport == "websocket":
        return "a WebSocket scenario (black-box mode drives HTTP requests)"
    if scenario.requests > 1:
        return "a load (its clients share one simulated world; black-box mode sends one request)"
    if any(x.status in (401, 403) for x in scenario.exchanges):
        return "an upstream 401/403 turn would disable the target's key for the rest of the run"
    wanted = called_tools(scenario)
    if target_tools is not None and not wanted <= target_tools:
        missing = ", ".join(sorted(wanted - target_tools))
        return f"injects {missing}, which the target does not offer (--target-tools)"
    return None


def called_tools(scenario: Scenario) -> set[str]:
    """The scenario's injected tools its upstream calls (one only offered changes nothing
    a client is due, so a target without it still runs the scenario)."""
    injected = {tool.name for tool in scenario.tools}
    called: set[str] = set()
    for exchange in scenario.exchanges:
        if exchange.status < 400:
            shape = normalize_response(scenario.api, 200, exchange.headers, exchange.body)
            called |= {str(c.get("name")) for c in shape["tool_calls"] if isinstance(c, dict)}
    return called & injected


def as_configured(scenario: Scenario, target_tools: frozenset[str] | None) -> Scenario:
    """The scenario judged as the target runs it: with every tool the target offers
    injected (a gateway injects its tools into every request, so what a client is due
    follows its configuration, not the scenario's recording)."""
    if target_tools is None:
        return scenario
    own = {tool.name: tool for tool in scenario.tools}
    tools = tuple(
        own.get(name) or InjectedTool(name=name, description="", input_schema={}, result="")
        for name in sorted(target_tools)
    )
    return replace(scenario, tools=tools)


__all__ = [
    "BlackBoxSettings",
    "ClientConfig",
    "Target",
    "as_configured",
    "called_tools",
    "client_config",
    "declared_tools",
    "parse_client_header",
    "parse_client_path",
    "parse_target",
    "skip_reason",
    "stall_past",
]
