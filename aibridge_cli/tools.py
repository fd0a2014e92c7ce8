"""Injected tools: loaded from a TOML file, offered upstream, run by the agentic loop.

Each ``[[tool]]`` has ``name``, ``description``, ``input_schema`` and exactly one of
``result`` (canned text), ``command`` (argv; the tool input arrives as JSON on stdin,
stdout is the result, a non-zero exit is a tool error; its environment is a few harmless
variables and the table's ``env``, see ``child_env``) or ``error`` (canned error text).
Each ``[[mcp]]`` names an MCP server whose tools are injected too
(``aibridge_cli.mcp_tools``, which reads those tables); those tools are live, so the set
in play is asked of ``ToolServers`` at every request.
A tools file is checked in full when the proxy starts, so a mistake in it stops the
start instead of failing the first conversation that calls the tool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from .child_env import tool_environment
from .errors import ConfigError

DEFAULT_TOOL_TIMEOUT = 30.0
# What every provider accepts in a tool name (Anthropic's rule is the narrowest): a name
# with a space or a "<" is refused where its file is read, not by the upstream at the
# first request that offers it.
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


async def _kill(process: trio.Process) -> None:
    """A tool past its timeout is killed at once: its answer can no longer be used."""
    process.kill()


@dataclass(frozen=True)
class ToolImage:
    """An image a tool returned: its media type and base64 data, as MCP carries it."""

    media_type: str
    data: str

    def as_json(self) -> dict[str, str]:
        return {"media_type": self.media_type, "data": self.data}


@dataclass(frozen=True)
class ToolOutcome:
    """What running a tool gave: the text for the model, any images, and whether it failed.

    Each provider builds its tool-result content from this (``providers/``).
    """

    text: str
    is_error: bool = False
    images: tuple[ToolImage, ...] = ()


@dataclass(frozen=True)
class McpOrigin:
    """Where an injected MCP tool lives: its server and its name there."""

    server: str
    tool: str


@dataclass(frozen=True)
class InjectedTool:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    result: str | None = None
    command: tuple[str, ...] | None = None
    error: str | None = None
    timeout: float = DEFAULT_TOOL_TIMEOUT
    mcp: McpOrigin | None = None
    # A command's variables besides the few every tool gets (child_env.py); never
    # recorded, since they may hold the tool's own secrets.
    env: Mapping[str, str] = field(default_factory=dict)
    # How a live MCP tool is called (its server's client); None for a recorded one.
    call: Callable[[Any], Awaitable[ToolOutcome]] | None = field(
        default=None, compare=False, repr=False
    )

    async def run(self, arguments: Any) -> ToolOutcome:
        """Run the tool on the model's input. Never raises for a tool failure."""
        if self.call is not None:
            return await self.call(arguments)
        if self.result is not None:
            return ToolOutcome(self.result)
        if self.error is not None:
            return ToolOutcome(self.error, is_error=True)
        assert self.command is not None
        payload = json.dumps(arguments).encode()
        try:
            with trio.fail_after(self.timeout):
                done = await trio.run_process(
                    list(self.command),
                    stdin=payload,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    env=tool_environment(self.env),
                    deliver_cancel=_kill,
                )
        except trio.TooSlowError:
            return self._timed_out()
        except OSError as exc:
            return self._not_started(exc)
        return self._finished(done.returncode, done.stdout, done.stderr)

    def run_blocking(self, arguments: Any) -> ToolOutcome:
        """``run`` of a ``command`` tool without trio, blocking the caller: the simulation
        runs commands this way, so no virtual time passes while a real process works."""
        assert self.command is not None, "only a command tool runs a process"
        try:
            done = subprocess.run(
                list(self.command),
                input=json.dumps(arguments).encode(),
                capture_output=True,
                timeout=self.timeout,
                check=False,
                env=tool_environment(self.env),
            )
        except subprocess.TimeoutExpired:
            return self._timed_out()
        except OSError as exc:
            return self._not_started(exc)
        return self._finished(done.returncode, done.stdout, done.stderr)

    def _not_started(self, exc: OSError) -> ToolOutcome:
        return ToolOutcome(f"tool {self.name} could not start: {exc}", True)

    def _timed_out(self) -> ToolOutcome:
        return ToolOutcome(f"tool {self.name} timed out after {self.timeout:g} s", True)

    def _finished(self, returncode: int, stdout: bytes, stderr: bytes) -> ToolOutcome:
        out = stdout.decode("utf-8", errors="replace")
        if returncode != 0:
            err = stderr.decode("utf-8", errors="replace").strip()
            return ToolOutcome(err or out or f"tool {self.name} exited {returncode}", True)
        return ToolOutcome(out)

    def as_spec(self) -> dict[str, Any]:
        """The tool definition in Anthropic's shape (other providers convert it)."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
        }

    def to_toml_fields(self) -> dict[str, Any]:
        """The tool as plain data, the way a fixture records it."""
        data: dict[str, Any] = self.as_spec()
        if self.result is not None:
            data["result"] = self.result
        if self.error is not None:
            data["error"] = self.error
        if self.command is not None:
            data["command"] = list(self.command)
        if self.mcp is not None:
            data["mcp"] = {"server": self.mcp.server, "tool": self.mcp.tool}
        return data


@dataclass(frozen=True)
class ToolSet:
    """The injected tools by name; empty when no tools file was given."""

    tools: Mapping[str, InjectedTool] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def __iter__(self) -> Any:
        return iter(self.tools.values())

    def __len__(self) -> int:
        return len(self.tools)

    def get(self, name: str) -> InjectedTool | None:
        return self.tools.get(name)

    @classmethod
    def of(cls, tools: Iterable[InjectedTool]) -> ToolSet:
        return cls({tool.name: tool for tool in tools})


class ToolServers(Protocol):
    """Live tool servers (MCP): their tools change while the proxy runs."""

    def tools(self) -> list[InjectedTool]:
        """The tools offered now: those of the servers that are up, filtered."""
        ...

    def status(self) -> list[dict[str, Any]]:
        """Each server, its state and its tools, for ``/aibridge/status``."""
        ...

    async def serve(self, *, task_status: trio.TaskStatus[list[str]] = ...) -> None:
        """Run the servers until cancelled; started, with one line per server that did
        not start, once each has answered ``initialize`` or failed to."""
        ...


@dataclass(frozen=True)
class ToolsFile:
    """What a tools file holds: canned and command tools, and the ``[[mcp]]`` tables (read
    by ``mcp_tools.config``, a layer above this module)."""

    path: Path | None = None
    tools: ToolSet = field(default_factory=ToolSet)
    mcp: tuple[Mapping[str, Any], ...] = ()


def tool_from_mapping(entry: Mapping[str, Any], where: str) -> InjectedTool:
    """One tool from its table; ``where`` names it in error messages."""
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: 'name' must be a non-empty string")
    if not TOOL_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: tool name {name!r} is not a tool name (1 to 128 letters, digits, "
            "'_' or '-', as every provider requires)"
        )
    schema = entry.get("input_schema", {"type": "object", "properties": {}})
    if not isinstance(schema, Mapping):
        raise ConfigError(f"{where} ({name}): 'input_schema' must be a table")
    actions = [key for key in ("result", "command", "error") if key in entry]
    if len(actions) != 1:
        raise ConfigError(
            f"{where} ({name}): give exactly one of result, command, error"
            f" (got {actions or 'none'})"
        )
    command = entry.get("command")
    if command is not None and (
        not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command)
    ):
        raise ConfigError(f"{where} ({name}): 'command' must be a non-empty list of strings")
    env = entry.get("env", {})
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ConfigError(f"{where} ({name}): 'env' must be a table of strings")
    if env and command is None:
        raise ConfigError(f"{where} ({name}): 'env' goes with 'command'")
    timeout = entry.get("timeout", DEFAULT_TOOL_TIMEOUT)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where} ({name}): 'timeout' must be a positive number")
    origin = entry.get("mcp")
    mcp = None
    if isinstance(origin, Mapping):
        mcp = McpOrigin(str(origin.get("server", "")), str(origin.get("tool", "")))
    return InjectedTool(
        name=name,
        description=str(entry.get("description", "")),
        input_schema=schema,
        result=str(entry["result"]) if "result" in entry else None,
        command=tuple(command) if command is not None else None,
        error=str(entry["error"]) if "error" in entry else None,
        timeout=float(timeout),
        mcp=mcp,
        env=dict(env),
    )


def read_toml(path: Path, what: str, hint: str | None = None) -> dict[str, Any]:
    """The TOML document in ``path`` (a ``what``); a ``ConfigError`` naming it otherwise,
    with ``hint`` saying where the format is described."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})", hint=hint) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: {what} is not UTF-8 text (byte {exc.start})", hint=hint
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})", hint=hint) from None


def load_tools(path: Path) -> ToolSet:
    """The canned and command tools of a tools file (its MCP servers are not started)."""
    return load_tools_file(path).tools


def load_tools_file(path: Path) -> ToolsFile:
    """Read a tools file; every problem becomes a ``ConfigError`` naming the file."""
    hint = "see the README's injected tools section"
    data = read_toml(path, "tools file", hint)
    entries = data.get("tool", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected [[tool]] tables", hint=hint)
    servers = data.get("mcp", [])
    if not isinstance(servers, list) or not all(isinstance(t, dict) for t in servers):
        raise ConfigError(f"{path}: expected [[mcp]] tables", hint=hint)
    if not entries and not servers:
        raise ConfigError(
            f"{path}: no [[tool]] or [[mcp]] table (the file defines no tool)", hint=hint
        )
    tools = []
    for i, entry in enumerate(entries):
        where = f"{path}: tool #{i + 1}"
        tool = tool_from_mapping(entry, where)
        _check_complete(entry, tool, where)
        tools.append(tool)
    no_duplicates(path, "tool", [tool.name for tool in tools], hint)
    return ToolsFile(path, ToolSet.of(tools), tuple(servers))


def no_duplicates(path: Path, what: str, names: list[str], hint: str | None = None) -> None:
    """A ``ConfigError`` naming the file when two entries share a name."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: duplicate {what} names: {', '.join(dupes)}", hint=hint)


def _check_complete(entry: Mapping[str, Any], tool: InjectedTool, where: str) -> None:
    """What the model needs to call the tool, and a command that can start.

    ``tool_from_mapping`` also builds tools from recordings and scenarios, which may
    leave these out; a file an operator wrote must not."""
    for key in ("description", "input_schema"):
        if key not in entry:
            raise ConfigError(
                f"{where} ({tool.name}): missing {key!r}",
                hint="the model is offered the tool with its description and input_schema",
            )
    if tool.command is not None and shutil.which(tool.command[0]) is None:
        raise ConfigError(
            f"{where} ({tool.name}): command {tool.command[0]!r} not found on PATH",
            hint="install it, or give its full path",
        )
