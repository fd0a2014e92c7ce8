"""Rich in one place: the stderr console, log set-up, and formatting helpers."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

stderr = Console(stderr=True)
stdout = Console(highlight=False, soft_wrap=True)


def setup_logging(level: str) -> None:
    """Log to stderr through rich, one line per record."""
    handler = RichHandler(console=stderr, show_path=False, rich_tracebacks=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("aibridge")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def print_error(message: str) -> None:
    """A domain error, for the user: one red line on stderr."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
