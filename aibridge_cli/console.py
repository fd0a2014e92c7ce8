"""Rich in one place: the stderr console, log set-up, and formatting helpers."""

from __future__ import annotations

import json
import logging
import time
from typing import Literal

from rich.console import Console
from rich.text import Text

stderr = Console(stderr=True)
stdout = Console(highlight=False, soft_wrap=True)
# A report that goes to a file or a pipe keeps whole scenario names and timeline lines.
report_out = stdout if stdout.is_terminal else Console(highlight=False, soft_wrap=True, width=160)


LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]

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


class _JSONLineHandler(logging.Handler):
    """Each record as one JSON object per line on stderr, for log collectors."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line: dict[str, object] = {
                "time": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                line["exception"] = logging.Formatter().formatException(record.exc_info)
            stderr.file.write(json.dumps(line, ensure_ascii=False) + "\n")
            stderr.file.flush()
        except Exception:
            self.handleError(record)


def setup_logging(level: str, log_format: LogFormat = "text") -> None:
    """Log to stderr, one line per record: rich text, or JSON objects."""
    handler: logging.Handler = _JSONLineHandler() if log_format == "json" else _OneLineHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("aibridge")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def print_error(message: str) -> None:
    """A domain error, for the user: one red line on stderr, never wrapped (a pipe or a
    file gets the whole line, not one cut at 80 columns)."""
    line = Text.assemble(("error:", "bold red"), " ", message)
    stderr.print(line, highlight=False, soft_wrap=True)
