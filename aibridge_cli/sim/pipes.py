"""Lean in-memory byte pipes for the simulation: trio's memory streams, minus the frills.

``trio.testing``'s memory streams are made to shake out bugs in stream code: every
operation yields two or three times, and each pair is six objects with their own conflict
detectors and parking lots. A simulated run makes a few of them and pushes every byte of
an iteration through them, so here each operation is one checkpoint (a cancel point and a
scheduling point, as trio asks of every async operation) and waiting is one parked task.
The semantics are trio's: an unbounded pipe buffers; a lockstep pipe's ``send_all``
returns once the reader has taken everything and ``wait_send_all_might_not_block`` waits
for a reader; closing one end gives the other EOF (reads) or ``BrokenResourceError``
(writes); using an end after closing it is ``ClosedResourceError``.

``Yields`` are the plan's extra checkpoints: they widen the interleavings the scheduler
can reach without touching the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import trio
from trio.lowlevel import Abort, Task, checkpoint, current_task, reschedule, wait_task_rescheduled

Note = Callable[[str, bytes], None]  # (a line for the timeline, the bytes sent)
# (point, operation index) -> extra checkpoints before that operation
CheckpointPlan = Mapping[tuple[str, int], int]


class Yields:
    """Counts operations per point and yields where the plan says so."""

    def __init__(self, plan: CheckpointPlan) -> None:
        self.plan = plan
        self.counts: dict[str, int] = {}

    async def at(self, point: str) -> None:
        if not self.plan:
            return
        index = self.counts.get(point, 0)
        self.counts[point] = index + 1
        for _ in range(self.plan.get((point, index), 0)):
            await checkpoint()


class Pipe:
    """One direction of a connection: a buffer, at most one waiting reader and writer."""

    __slots__ = (
        "data",
        "lockstep",
        "reader",
        "reader_waiting",
        "receiver_closed",
        "sender_closed",
        "writer",
        "writer_wants_reader",
    )

    def __init__(self, *, lockstep: bool = False) -> None:
        self.lockstep = lockstep
        self.data = bytearray()
        self.sender_closed = False
        self.receiver_closed = False
        self.reader_waiting = False  # a receive is in progress
        self.reader: Task | None = None
        self.writer: Task | None = None
        self.writer_wants_reader = False  # the writer waits for a reader, not for a drain

    # -- waiting ---------------------------------------------------------------------------
    async def _park_reader(self) -> None:
        if self.reader is not None:
            raise trio.BusyResourceError("another task is already receiving")
        self.reader = current_task()

        def abort(_: object) -> Abort:
            self.reader = None
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    async def _park_writer(self, for_reader: bool) -> None:
        if self.writer is not None:
            raise trio.BusyResourceError("another task is already sending")
        self.writer = current_task()
        self.writer_wants_reader = for_reader

        def abort(_: object) -> Abort:
            self.writer = None
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def _wake_reader(self) -> None:
        task, self.reader = self.reader, None
        if task is not None:
            reschedule(task)

    def _wake_writer(self) -> None:
        task, self.writer = self.writer, None
        if task is not None:
            reschedule(task)

    # -- the sending end -------------------------------------------------------------------
    def _check_send(self) -> None:
        if self.sender_closed:
            raise trio.ClosedResourceError("this end was closed")
        if self.receiver_closed:
            raise trio.BrokenResourceError("the other end was closed")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if not self.lockstep or not data:
            await checkpoint()
            self._check_send()
            if data:
                self.data += data
                self._wake_reader()
            return
        self._check_send()
        self.data += data
        self._wake_reader()
        while self.data and not self.sender_closed and not self.receiver_closed:
            await self._park_writer(for_reader=False)
        if self.sender_closed:
            raise trio.ClosedResourceError("this end was closed")
        if self.data and self.receiver_closed:
            raise trio.BrokenResourceError("the other end was closed")

    async def wait_send_all_might_not_block(self) -> None:
        if self.sender_closed:
            raise trio.ClosedResourceError("this end was closed")
        if not self.lockstep or self.receiver_closed or self.reader_waiting:
            await checkpoint()
        else:
            while not (self.reader_waiting or self.sender_closed or self.receiver_closed):
                await self._park_writer(for_reader=True)
        if self.sender_closed:
            raise trio.ClosedResourceError("this end was closed")

    def close_sender(self) -> None:
        self.sender_closed = True
        self._wake_reader()
        self._wake_writer()

    # -- the receiving end -----------------------------------------------------------------
    def _ready(self) -> bool:
        return bool(self.data) or self.sender_closed or self.receiver_closed

    async def receive(self, max_bytes: int | None = None, deadline: float = math.inf) -> bytes:
        """Up to ``max_bytes`` (b"" at EOF); ``trio.TooSlowError`` if it waits past ``deadline``."""
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self.receiver_closed:
            raise trio.ClosedResourceError("this end was closed")
        self.reader_waiting = True
        if self.writer_wants_reader:
            self._wake_writer()
        try:
            if self._ready():
                await checkpoint()
            if not self._ready():
                if deadline < math.inf:
                    # A bare scope: trio.fail_at's generator-based wrapper costs as much again.
                    with trio.CancelScope(deadline=deadline) as scope:
                        while not self._ready():
                            await self._park_reader()
                    if scope.cancelled_caught:
                        raise trio.TooSlowError
                else:
                    while not self._ready():
                        await self._park_reader()
        finally:
            self.reader_waiting = False
        if self.receiver_closed:
            raise trio.ClosedResourceError("this end was closed")
        if not self.data:
            return b""  # the sender closed its end
        size = len(self.data) if max_bytes is None else max_bytes
        got = bytes(self.data[:size])
        del self.data[:size]
        if not self.data and not self.writer_wants_reader:
            self._wake_writer()  # a lockstep send is complete
        return got

    def close_receiver(self) -> None:
        self.receiver_closed = True
        self.data.clear()
        self._wake_reader()
        self._wake_writer()


class PipeStream(trio.abc.Stream):
    """One end of a connection: sends into one pipe, receives from the other.

    With ``yields``, the plan's extra checkpoints come before each send and receive,
    counted per point: ``{name}-send`` and ``{name}-receive``.
    """

    def __init__(
        self,
        outgoing: Pipe,
        incoming: Pipe,
        yields: Yields | None = None,
        name: str = "",
        note: Note | None = None,
    ) -> None:
        self.outgoing = outgoing
        self.incoming = incoming
        self.yields = yields if yields is not None and yields.plan else None
        self.note = note
        self.send_point = f"{name}-send"
        self.receive_point = f"{name}-receive"

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.yields is not None:
            await self.yields.at(self.send_point)
        if self.note is not None:
            self.note(f"{self.send_point} {len(data)} bytes: {bytes(data[:40])!r}", bytes(data))
        await self.outgoing.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.outgoing.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.yields is not None:
            await self.yields.at(self.receive_point)
        return await self.incoming.receive(max_bytes)

    async def receive_before(self, max_bytes: int, deadline: float) -> bytes:
        """``receive_some``, raising ``trio.TooSlowError`` if it waits past ``deadline``."""
        if self.yields is not None:
            await self.yields.at(self.receive_point)
        return await self.incoming.receive(max_bytes, deadline)

    def close(self) -> None:
        self.outgoing.close_sender()
        self.incoming.close_receiver()

    async def aclose(self) -> None:
        self.close()
        await checkpoint()


def stream_pair(
    *,
    lockstep: bool = False,
    yields: Yields | None = None,
    name: str = "",
    note: Note | None = None,
) -> tuple[PipeStream, PipeStream]:
    """Two connected ends; the second passes through ``yields`` and tells ``note`` its sends."""
    one, two = Pipe(lockstep=lockstep), Pipe(lockstep=lockstep)
    return PipeStream(one, two), PipeStream(two, one, yields, name, note)
