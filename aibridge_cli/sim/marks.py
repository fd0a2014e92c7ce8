"""What happened in one simulated run, as marks for a reproducer's page.

A run recorded with a timeline (a reproducer, never a campaign iteration) also keeps a
list of ``Mark``s: each thing a reader of a race wants to see, in the order it happened,
with the simulated time and the lane of the task that did it: the client's request and
reads, every write to the client (and its bytes) by the relay task or the loop task, the
upstream's answer to each attempt and the key it was tried with, tool runs, the engine's
decisions (stream initiation, the lazy check). The marks are plain data; the page draws
them. Recording is deterministic: the same spec gives the same marks.

A load's marks also say which of its requests each one is about (``request``: the client
of that index, the proxy's tasks serving it, the upstream attempt it sent), and two more
lanes, shared by its requests, show the key pool (a key cooling or disabled by an answer)
and the recorder (an interception handed to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lane = Literal["client", "relay", "loop", "upstream", "tool", "pool", "recorder"]
LANES: tuple[Lane, ...] = ("client", "relay", "loop", "upstream", "tool")
# a load: each request's lanes, then the lanes its requests share
REQUEST_LANES: tuple[Lane, ...] = ("client", "relay", "loop")
SHARED_LANES: tuple[Lane, ...] = ("upstream", "pool", "recorder", "tool")
MarkKind = Literal[
    "request", "write", "read", "attempt", "decision", "tool", "done", "pool", "record"
]


@dataclass(frozen=True)
class Mark:
    step: int  # position in the run: marks at one instant keep their order
    time: float  # simulated seconds
    lane: Lane
    kind: MarkKind
    label: str
    data: bytes = b""  # the bytes written or read
    status: int | None = None  # an attempt's answer (None: the connection was dropped)
    key: int | None = None  # an attempt's key, as an index into the configured keys
    exchange: int | None = None  # an attempt's scripted reply: the plan's exchange number
    request: int | None = None  # a load's request (its client's index); None: one-request


# The world's task names (see ``world.TASK_NAMES``) by lane; any other task is the loop's
# side of the proxy (the handler task runs the agentic loop).
_TASK_LANES: dict[str, Lane] = {
    "client": "client",
    "proxy relay": "relay",
    "proxy handler/loop": "loop",
}


def lane_of(task: str) -> Lane:
    if task.startswith("upstream-conn"):
        return "upstream"
    return _TASK_LANES.get(task, "loop")
