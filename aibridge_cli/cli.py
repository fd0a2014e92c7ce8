"""The ``aibridge`` command line: thin typer commands over plain functions."""

from __future__ import annotations

from typing import Annotated

import typer

from . import __version__
from .fuzz.command import register as register_fuzz
from .proxy.command import register as register_proxy
from .sessions.command import register as register_sessions

app = typer.Typer(
    name="aibridge",
    help="Record, replay and fuzz AI API traffic through a local proxy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
) -> None:
    """aibridge: a local proxy for the Anthropic and OpenAI APIs that records, replays, fuzzes."""


def main() -> None:
    app()


# Each area registers its commands; a command imports its machinery only when it runs, so
# ``aibridge --help`` loads no proxy, fuzzer or simulation.
register_proxy(app)
register_sessions(app)
register_fuzz(app)
