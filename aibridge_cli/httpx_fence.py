"""httpx's one private name aibridge touches, fenced: ``httpx._main``, its command line.

httpx's ``__init__`` imports its command line (click, pygments, rich's syntax and
progress: 0.2 billion instructions, 40 ms of a command's start) unless that import fails,
and then puts a stub in its place; aibridge never runs it. A None in ``sys.modules``
makes the import fail. Were a future httpx to need the module after all, importing it
would fail outright: :func:`import_httpx` then imports it whole, and
``tests/test_cli_imports.py`` shows the command line's path breaking in CI first.
"""

from __future__ import annotations

import sys

_COMMAND_LINE = "httpx._main"


def leave_out_command_line() -> None:
    """Have httpx, when first imported, leave its command line out (no import here: a
    help page needs no httpx)."""
    if "httpx" not in sys.modules:
        sys.modules[_COMMAND_LINE] = None  # type: ignore[assignment]


def import_httpx() -> None:
    """Import httpx now without its command line, and take the None back afterwards."""
    if "httpx" in sys.modules:
        return
    leave_out_command_line()
    try:
        import httpx
    except ImportError:
        pass  # an httpx that needs its command line after all: imported whole below
    finally:
        if sys.modules.get(_COMMAND_LINE, "") is None:
            del sys.modules[_COMMAND_LINE]
    import httpx  # noqa: F401
