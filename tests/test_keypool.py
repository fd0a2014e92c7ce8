"""The key pool's state machine: failover rule, cooldowns, Retry-After, masking."""

from __future__ import annotations

import email.utils

import pytest

from aibridge_cli.errors import AllKeysDisabled, AllKeysRateLimited
from aibridge_cli.proxy.keypool import (
    DEFAULT_COOLDOWN,
    KeyPool,
    KeyState,
    mask_key,
    parse_retry_after,
)

WALL = 1_750_000_000.0  # a fixed wall-clock instant for HTTP-date arithmetic
KEYS = ["sk-ant-api03-key0-AAAA", "sk-ant-api03-key1-BBBB", "sk-ant-api03-key2-CCCC"]


def pool() -> KeyPool:
    return KeyPool.from_secrets(KEYS)


def test_first_usable_key_in_configured_order() -> None:
    p = pool()
    assert p.acquire(0.0).index == 0
    assert p.acquire(0.0).index == 0  # a 2xx leaves the key as it was


@pytest.mark.parametrize("status", [200, 400, 404, 500, 529])
def test_other_statuses_do_not_fail_over(status: int) -> None:
    p = pool()
    key = p.acquire(0.0)
    assert p.report(key, status, None, 0.0, WALL) is False
    assert key.state(0.0) is KeyState.VALID
    assert p.acquire(0.0).index == 0


def test_429_cools_for_retry_after_then_key_is_usable_again() -> None:
    p = pool()
    key = p.acquire(100.0)
    assert p.report(key, 429, "7", 100.0, WALL) is True
    assert key.state(106.9) is KeyState.COOLING
    assert p.acquire(106.9).index == 1
    assert key.state(107.0) is KeyState.VALID
    assert p.acquire(107.0).index == 0


@pytest.mark.parametrize("status", [401, 403])
def test_401_403_disable_for_good(status: int) -> None:
    p = pool()
    key = p.acquire(0.0)
    assert p.report(key, status, "1", 0.0, WALL) is True
    assert key.state(1e9) is KeyState.DISABLED
    assert p.acquire(1e9).index == 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (None, DEFAULT_COOLDOWN),
        ("", DEFAULT_COOLDOWN),
        ("soon", DEFAULT_COOLDOWN),
        ("-5", DEFAULT_COOLDOWN),
        ("nan", DEFAULT_COOLDOWN),
        (email.utils.formatdate(WALL + 30, usegmt=True), 30.0),
        (email.utils.formatdate(WALL - 30, usegmt=True), 0.0),  # a date in the past
        ("Mon, 99 Foo 2025 25:61:00 GMT", DEFAULT_COOLDOWN),
    ],
)
def test_retry_after_forms(value: str | None, seconds: float) -> None:
    assert parse_retry_after(value, WALL) == pytest.approx(seconds)


def test_all_cooling_raises_rate_limited_with_smallest_remaining_rounded_up() -> None:
    p = pool()
    for retry in ("30", "4.2", "9"):
        key = p.acquire(0.0)
        p.report(key, 429, retry, 0.0, WALL)
    with pytest.raises(AllKeysRateLimited) as caught:
        p.acquire(0.5)
    assert caught.value.retry_after == 4  # 4.2 - 0.5 = 3.7, rounded up
    assert caught.value.status == 429
    assert caught.value.message == "all configured keys are rate-limited"


def test_some_cooling_some_disabled_is_rate_limited() -> None:
    p = pool()
    p.report(p.acquire(0.0), 401, None, 0.0, WALL)
    p.report(p.acquire(0.0), 429, None, 0.0, WALL)
    p.report(p.acquire(0.0), 403, None, 0.0, WALL)
    with pytest.raises(AllKeysRateLimited) as caught:
        p.acquire(0.0)
    assert caught.value.retry_after == 60


def test_all_disabled_raises_502() -> None:
    p = pool()
    for _ in KEYS:
        p.report(p.acquire(0.0), 401, None, 0.0, WALL)
    with pytest.raises(AllKeysDisabled) as caught:
        p.acquire(0.0)
    assert caught.value.status == 502


def test_tried_set_keeps_one_attempt_off_a_key_it_already_used() -> None:
    p = KeyPool.from_secrets(KEYS[:2])
    first = p.acquire(0.0)
    p.report(first, 429, "0", 0.0, WALL)  # cools for zero seconds: usable at once...
    assert first.state(0.0) is KeyState.VALID
    second = p.acquire(0.0, frozenset({0}))  # ...but not by the same attempt
    assert second.index == 1
    p.report(second, 429, "0", 0.0, WALL)
    with pytest.raises(AllKeysRateLimited) as caught:
        p.acquire(0.0, frozenset({0, 1}))
    assert caught.value.retry_after == 1  # never "Retry-After: 0"
    assert p.acquire(0.0).index == 0  # a new attempt may use it again


def test_tried_disabled_keys_do_not_count_as_cooling() -> None:
    p = KeyPool.from_secrets(KEYS[:2])
    p.report(p.acquire(0.0), 403, None, 0.0, WALL)
    p.report(p.acquire(0.0, frozenset({0})), 401, None, 0.0, WALL)
    with pytest.raises(AllKeysDisabled):
        p.acquire(0.0, frozenset({0, 1}))


def test_cooldown_never_shortens() -> None:
    p = pool()
    key = p.acquire(0.0)
    p.report(key, 429, "50", 0.0, WALL)
    p.report(key, 429, "5", 1.0, WALL)
    assert key.state(49.0) is KeyState.COOLING


@pytest.mark.parametrize(
    ("secret", "masked"),
    [
        ("sk-ant-api03-abcdefghijklmnop-XYZ9", "sk-a…XYZ9"),
        ("short", "*****"),
        ("12345678", "********"),
        ("abcdefghij", "ab…ij"),
    ],
)
def test_mask_key(secret: str, masked: str) -> None:
    assert mask_key(secret) == masked


def test_snapshot_shows_masked_keys_and_states_only() -> None:
    p = pool()
    p.report(p.acquire(0.0), 429, "10", 0.0, WALL)
    p.report(p.acquire(0.0), 401, None, 0.0, WALL)
    rows = p.snapshot(4.0)
    assert [r["state"] for r in rows] == ["cooling", "disabled", "valid"]
    assert rows[0]["cooldown_remaining"] == 6.0
    assert rows[0]["last_status"] == 429
    text = repr(rows)
    for secret in KEYS:
        assert secret not in text
        assert secret[4:-4] not in text
    assert [r["key"] for r in rows] == [mask_key(k) for k in KEYS]
