"""Rich in one place: the stderr console, log set-up, and formatting helpers."""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.markup import escape
from rich.text import Text

stderr = Console(stderr=True)
stdout = Console(highlight=False, soft_wrap=True)
# A report that goes to a file or a pipe keeps whole scenario names and timeline lines.
report_out = stdout if stdout.is_terminal else Console(highlight=False, soft_wrap=True, width=160)


_LEVEL_STYLES = {"DEBUG": "dim", "INFO": "cyan", "WARNING": "yellow", "ERROR": "bold red"}


class _OneLineHandler(logging.Handler):
    """Each record as one line on the stderr console, never wrapped.

    rich's own ``RichHandler`` lays records out in a table as wide as the console and
    wraps long messages onto more lines (80 columns when stderr is a pipe or a file),
    which breaks the one-line-per-request log.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
            line = Text.assemble(
                (stamp, "dim"),
                " ",
                (f"{record.levelname:<7}", _LEVEL_STYLES.get(record.levelname, "")),
                " ",
                self.format(record),
            )
            stderr.print(line, soft_wrap=True, highlight=False)
        except Exception:
            self.handleError(record)


def setup_logging(level: str) -> None:
    """Log to stderr through rich, one line per record."""
    handler = _OneLineHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("aibridge")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def print_error(message: str) -> None:
    """A domain error, for the user: one red line on stderr, however long (never wrapped),
    the message taken as text (a bracket in it is no markup)."""
    stderr.print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True
    )
