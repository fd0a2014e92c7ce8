"""The simulated world: proxy, mock upstream and client in one trio run, in memory.

``sched`` makes trio's scheduler seeded and deterministic, ``network`` is an httpcore
network backend over in-memory streams, ``world`` wires one run together.
"""

import sys

if "httpx" not in sys.modules:
    # httpx imports its own command line (click, pygments, rich's syntax: 0.2 billion
    # instructions, 40 ms) unless that import fails, then offers a stub in its place;
    # nothing here runs it. A None in sys.modules makes the import fail.
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx
    except ImportError:
        pass  # an httpx that needs its command line after all: imported whole below
    finally:
        del sys.modules["httpx._main"]
    import httpx  # noqa: F401
