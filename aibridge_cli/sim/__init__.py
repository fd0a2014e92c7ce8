"""The simulated world: proxy, mock upstream and client in one trio run, in memory.

``sched`` makes trio's scheduler seeded and deterministic, ``network`` is an httpcore
network backend over in-memory streams, ``world`` wires one run together.
"""

from ..httpx_fence import import_httpx

import_httpx()  # the fuzzer used as a library: no httpx command line (httpx_fence.py)
