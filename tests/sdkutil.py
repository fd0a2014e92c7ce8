"""Living with the anthropic SDK in tests."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Awaitable
from typing import TypeVar

import trio.testing

T = TypeVar("T")


async def collect_sdk_garbage(call: Awaitable[T]) -> T:
    """Await ``call``, where the SDK may raise on an in-stream error event.

    The SDK then leaves its own async generators half-consumed (not ours to fix). ``call``
    must return plain data, so nothing keeps them alive; they are collected here, where
    that is expected, so their ResourceWarning cannot fail a later test.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        result = await call
        for _ in range(4):  # trio closes each dropped generator in a task: let the cascade run
            gc.collect()
            await trio.testing.wait_all_tasks_blocked()
    return result
