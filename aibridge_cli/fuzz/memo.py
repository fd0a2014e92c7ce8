"""A bounded memo: what repeats across a campaign's iterations, computed once."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

SIZE = 4096  # distinct entries kept; a thousand iterations need a few hundred


class Memo(Generic[K, V]):
    """A map from a key to the value ``make`` gave for it first; once full, the oldest
    entry makes way."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._values: dict[K, V] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        values = self._values
        if key in values:
            return values[key]
        value = make()
        if len(values) >= self.size:
            del values[next(iter(values))]
        values[key] = value
        return value
