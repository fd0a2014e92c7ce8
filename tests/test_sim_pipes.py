"""The simulation's in-memory pipes keep trio's stream semantics with one checkpoint a call."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from aibridge_cli.sim.pipes import stream_pair


async def test_an_unbounded_pipe_buffers_and_ends_in_eof() -> None:
    left, right = stream_pair()
    await left.send_all(b"hello ")
    await left.send_all(b"world")
    assert await right.receive_some(7) == b"hello w"
    assert await right.receive_some() == b"orld"
    await left.aclose()
    assert await right.receive_some() == b""
    with pytest.raises(trio.ClosedResourceError):
        await left.send_all(b"x")


async def test_writing_to_a_closed_reader_is_broken() -> None:
    left, right = stream_pair()
    await right.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await left.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await right.receive_some()


async def test_a_lockstep_send_returns_once_the_reader_took_everything(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = stream_pair(lockstep=True)
    sent_at: list[float] = []

    async def send() -> None:
        await left.send_all(b"abcdef")
        sent_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await trio.sleep(1)
        assert await right.receive_some(4) == b"abcd"
        await trio.sleep(1)
        assert not sent_at
        assert await right.receive_some(4) == b"ef"
    assert sent_at == [2.0]


async def test_a_lockstep_writer_may_go_when_a_reader_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = stream_pair(lockstep=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(right.receive_some)
        with trio.fail_after(1):
            await left.wait_send_all_might_not_block()
        await left.send_all(b"x")
    with pytest.raises(trio.TooSlowError), trio.fail_after(5):
        await left.wait_send_all_might_not_block()  # nobody reads now


async def test_a_timed_read_times_out_at_its_deadline_and_not_before(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = stream_pair()
    with pytest.raises(trio.TooSlowError):
        await right.receive_before(10, deadline=30.0)
    assert trio.current_time() == 30.0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(left.send_all, b"late")
        assert await right.receive_before(10, deadline=60.0) == b"late"


async def test_every_call_is_a_cancel_point_even_when_it_need_not_wait() -> None:
    left, right = stream_pair()
    await left.send_all(b"ready")
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await right.receive_some()
        with pytest.raises(trio.Cancelled):
            await left.send_all(b"more")
    assert await right.receive_some() == b"ready"
