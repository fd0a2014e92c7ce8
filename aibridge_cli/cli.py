"""The ``aibridge`` command line: thin typer commands over plain functions.

What every command shares lives in ``AibridgeGroup``, so a command added later gets it
without asking: ``-h``, an ``AIBRIDGE_<COMMAND>_<OPTION>`` environment variable for each
option, readable placeholders, and one line on stderr with exit 2 for every operator
mistake (a bad value, a port in use, an unreadable file), a traceback only with --debug.
A command is added as a row of ``commands.COMMANDS``: built only when it is looked up.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Annotated, Any

import typer
import typer.core
import typer.main

from . import __version__
from .commands import LazyCommands
from .failures import explain, interrupted
from .httpx_fence import leave_out_command_line
from .typer_fence import defer_coercion

ENV_PREFIX = "AIBRIDGE"

# typer exports click's ``BadParameter`` but not its base, the ``UsageError`` every parse
# failure is (a missing option, an unknown one, a bad value); click is a package of its
# own before typer 0.29 and vendored inside it since, so it is reached through the one
# class both export.
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


class AibridgeGroup(typer.core.TyperGroup):
    """The root command: the conventions above, applied to every subcommand. The
    subcommands are ``commands.COMMANDS``, each built when it is first looked up; the
    root help lists them by their summaries."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        lazy = LazyCommands(self.rich_markup_mode, made=lambda c: _readable(c.params))
        lazy.update(self.commands)
        self.commands = self._lazy = lazy
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # typer's reads every command, which builds it

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if self._listing:
            return self._lazy.summary(cmd_name)
        command = self.commands.get(cmd_name)
        if command is not None:
            # created on first use, with a ``<bool>`` placeholder: made before it is shown
            _quiet_flag(command.get_help_option(ctx))
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True  # the command list needs no command built
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        given = args[1] if len(args) > 1 else kwargs.get("args", [])
        if not given or {"-h", "--help"} & set(given):
            _load_rich_help()
        # typer adds the completion options after building the group: fixed up here
        for param in self.params:
            if isinstance(param, typer.core.TyperOption):
                # a variable that prints the version or installs completion would surprise
                param.allow_from_autoenv = param.name == "debug"
        _readable(self.params)
        try:
            return super().make_context(*args, **kwargs)
        except _UsageError as exc:
            # a bad AIBRIDGE_DEBUG fails here, before ``invoke`` could make it one line
            bad = getattr(exc, "param", None)
            source = ""
            if bad is not None and not set(bad.opts) & set(given):
                source = f" (from {ENV_PREFIX}_{str(bad.name).upper()})"
            if getattr(exc, "message", True):  # none when no arguments: the help is the answer
                _print_error(_usage_line(exc, source))
            raise typer.Exit(2) from None

    def get_help_option(self, ctx: Any) -> Any:
        return _quiet_flag(super().get_help_option(ctx))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.Exit:
            raise  # a command's own exit code
        except _UsageError as exc:
            _print_error(_usage_line(exc))
            raise typer.Exit(2) from None
        except BaseException as exc:
            if interrupted(exc):
                raise typer.Exit(130) from None  # as a shell reports Ctrl-C
            if ctx.params.get("debug"):
                raise
            failure = explain(exc)
            if failure is None:
                raise
            _print_error(failure.line())
            raise typer.Exit(failure.exit_code) from None


class _NamedArgument(typer.core.TyperArgument):
    """An argument shown by its name (``FIXTURE``) alone, without the Python type typer
    0.29 prints beside it (``<list[str]>``); typer offers no switch for that column."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _readable(params: list[Any]) -> None:
    for param in params:
        defer_coercion(param)
        if isinstance(param, typer.core.TyperOption) and param.metavar is None:
            param.metavar = _placeholder(param)
        elif isinstance(param, typer.core.TyperArgument):
            param.__class__ = _NamedArgument


def _quiet_flag(option: Any) -> Any:
    if option is not None:
        option.metavar = ""
        defer_coercion(option)
    return option


def _placeholder(option: typer.core.TyperOption) -> str:
    """What stands for an option's value in the help when its command names none: the
    allowed values of a choice, a plain word otherwise, nothing after a flag."""
    if option.is_flag:
        return ""
    # typer 0.29 describes the type in ``type_descriptor``; earlier ones hold click's type
    described = getattr(option, "type_descriptor", None)
    if described is not None:
        if described.is_choice:
            return "|".join(str(c) for c in described.choices or ())
        kind = getattr(described.annotation, "__name__", "")
    else:
        kind = getattr(getattr(option, "type", None), "name", "")
        if choices := getattr(getattr(option, "type", None), "choices", None):
            return "|".join(str(c) for c in choices)
    return _PLACEHOLDERS.get(kind.lower(), "TEXT")


_PLACEHOLDERS = {"int": "N", "integer": "N", "float": "NUMBER", "path": "PATH"}


class _Later(type):
    """A class of a module not imported yet (its ``__module__``): the module is imported
    when the class is first called or looked into."""

    def _real(cls) -> Any:
        return getattr(importlib.import_module(cls.__module__), cls.__name__)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls._real(), name)


# What typer's rich help imports and uses only for markdown help and pretty tracebacks,
# neither of which aibridge shows: 0.1 s of ``aibridge --help``'s 0.3 (markdown-it, pygments).
_HELP_UNUSED = ("rich.markdown", "rich.traceback")


def _load_rich_help() -> None:
    """Import typer's rich help with ``_HELP_UNUSED`` standing in as modules of ``_Later``
    classes, then take the stand-ins away: whoever imports those modules later gets them."""
    if "typer.rich_utils" in sys.modules or any(name in sys.modules for name in _HELP_UNUSED):
        return
    for name in _HELP_UNUSED:
        sys.modules[name] = _stand_in(name)
    try:
        importlib.import_module("typer.rich_utils")
    finally:
        for name in _HELP_UNUSED:
            del sys.modules[name]


def _stand_in(module: str) -> types.ModuleType:
    """A module whose every public name is a ``_Later`` class of ``module``."""

    def later(name: str) -> _Later:
        if name.startswith("_"):
            raise AttributeError(name)  # the import system's own questions (__path__...)
        return _Later(name, (), {"__module__": module})

    stand_in = types.ModuleType(module)
    stand_in.__getattr__ = later  # type: ignore[method-assign]
    return stand_in


def _print_error(line: str) -> None:
    # the console module brings rich's console, json and logging: not for a help page
    from .console import print_error

    print_error(line)


def _usage_line(exc: Any, source: str = "") -> str:
    """A parse failure as one line that says where the help is (and ``source``: where
    the bad value came from, when not the command line)."""
    # typer's choice check words its message like a pydantic error
    message = exc.format_message().rstrip(".").replace("Value error, ", "")
    command = exc.ctx.command_path if exc.ctx is not None else "aibridge"
    return f"{message[:1].lower()}{message[1:]}{source}; see '{command} -h'"


app = typer.Typer(
    name="aibridge",
    cls=AibridgeGroup,
    help="Record, replay and fuzz AI API traffic through a local proxy.\n\n"
    "Example: aibridge serve --port 8080, then point a client at "
    "http://127.0.0.1:8080/anthropic or http://127.0.0.1:8080/openai/v1",
    epilog="Every option also reads AIBRIDGE_<COMMAND>_<OPTION> from the environment, "
    "for example AIBRIDGE_SERVE_PORT=9000.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": ENV_PREFIX},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aibridge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback with every error.")
    ] = False,
) -> None:
    """aibridge: a local proxy for the Anthropic and OpenAI APIs that records, replays, fuzzes."""


def main() -> None:
    leave_out_command_line()  # no command runs httpx's own (httpx_fence.py)
    app()


def environment_variables() -> dict[str, list[str]]:
    """Each option (its long name) and the variables that set it, one per command: what
    the README's table lists (``scripts/env_table.py`` writes it)."""
    group = typer.main.get_command(app)
    assert isinstance(group, AibridgeGroup)
    table: dict[str, list[str]] = {}
    for name, command in group.commands.items():
        for param in command.params:
            if isinstance(param, typer.core.TyperOption) and param.name:
                option = next(o for o in param.opts if o.startswith("--"))
                # an option that names its own variable (--auth-token) reads that one
                named = param.envvar if isinstance(param.envvar, str) else None
                variable = named or f"{ENV_PREFIX}_{name.upper()}_{param.name.upper()}"
                if variable not in table.setdefault(option, []):
                    table[option].append(variable)
    return dict(sorted(table.items()))
