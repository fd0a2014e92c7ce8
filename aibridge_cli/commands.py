"""The table of ``aibridge``'s commands, and the mapping that builds each one on first use.

typer builds a command by reading its function's signature: every option's annotation is
evaluated, every module the options name is imported. Done for all eight commands, that is
a third of ``aibridge --help``'s instructions, for a page that shows only their names and
first lines. So the root group knows each command by this table (where it is defined and
that first line) and imports and builds a command only when it is looked up, by name, to
run it or show its own help. ``tests/test_cli_imports.py`` holds the table's summaries
equal to the commands' docstrings and the root help equal to the one every command built.
Like ``cli.py``, it sits above every area: it names their command modules (by name, so
the import graph test does not see those edges; no module below imports this one).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, NamedTuple

import typer
import typer.core
import typer.main


class Entry(NamedTuple):
    """Where a command is defined, the first paragraph of its docstring (what the root
    help lists), and the settings it is registered with."""

    module: str
    function: str
    summary: str
    context_settings: dict[str, Any] | None = None


COMMANDS: dict[str, Entry] = {
    "serve": Entry(
        "aibridge_cli.proxy.command",
        "serve",
        "Run the proxy. Prints 'listening on http://HOST:PORT' when ready.",
    ),
    "chaos": Entry(
        "aibridge_cli.proxy.chaos_command",
        "chaos",
        "Switch a running proxy's chaos rules on and off (docs/chaos.md): add rules, list\n"
        "them with their counts and the reaction report so far, or clear them.",
    ),
    "record": Entry(
        "aibridge_cli.sessions.command",
        "record",
        "Run COMMAND with ANTHROPIC_BASE_URL and OPENAI_BASE_URL pointing at a recording proxy\n"
        "(Codex CLI, which reads neither, gets -c openai_base_url=... first among its arguments).",
        # what follows COMMAND is the command's own arguments, options too
        {"allow_extra_args": True, "ignore_unknown_options": True},
    ),
    "mock": Entry(
        "aibridge_cli.sessions.command",
        "mock",
        "Answer clients as the recording proxy did: each request gets what its client got.",
    ),
    "replay": Entry(
        "aibridge_cli.sessions.command",
        "replay",
        "Replay fixtures through a proxy and compare what the client gets with the recording.",
    ),
    "import": Entry(
        "aibridge_cli.sessions.command",
        "import_",
        "Convert txtar fixtures to JSONL ones (client side produced by aibridge's proxy).",
    ),
    "show": Entry(
        "aibridge_cli.sessions.command",
        "show",
        "Summarise recorded sessions: per interception its API, model, status, tokens, tool\n"
        "calls, keys tried, duration and time to first event; --html writes a timeline page.",
    ),
    "fuzz": Entry(
        "aibridge_cli.fuzz.command",
        "fuzz",
        "Fuzz the proxy in a simulated world (or a running proxy, with --target).",
    ),
}


def callback_of(entry: Entry) -> Callable[..., Any]:
    """The command's function, its module imported."""
    function: Callable[..., Any] = getattr(importlib.import_module(entry.module), entry.function)
    return function


def build(name: str, entry: Entry, markup_mode: typer.core.MarkupMode) -> typer.core.TyperCommand:
    """The command as typer builds it in a group: typer's public path for one command."""
    one = typer.Typer(add_completion=False, rich_markup_mode=markup_mode)
    one.command(name, context_settings=entry.context_settings)(callback_of(entry))
    command = typer.main.get_command(one)
    assert isinstance(command, typer.core.TyperCommand)
    return command


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands by name: every name of ``COMMANDS`` is there from the start, and
    a command is built when it is first read (``made`` is called on it then)."""

    def __init__(
        self,
        markup_mode: typer.core.MarkupMode,
        made: Callable[[Any], None],
    ) -> None:
        self._table = COMMANDS
        self._built: dict[str, Any] = {}
        self._markup_mode = markup_mode
        self._made = made

    def summary(self, name: str) -> Any:
        """The command if it is built, else a stand-in with what the root help shows of it:
        its name and summary."""
        if name in self._built or name not in self._table:
            return self._built.get(name)
        summary = self._table[name].summary
        return typer.core.TyperCommand(name=name, help=summary, rich_markup_mode=self._markup_mode)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            command = build(name, self._table[name], self._markup_mode)  # KeyError: unknown
            self._made(command)
            self._built[name] = command
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("aibridge's commands are its table's")

    def __iter__(self) -> Iterator[str]:
        yield from self._table
        yield from (name for name in self._built if name not in self._table)

    def __len__(self) -> int:
        return len(set(self._table) | set(self._built))

    def __contains__(self, name: object) -> bool:
        return name in self._table or name in self._built
