"""Which escaped exceptions are the operator's to fix, however deep trio wrapped them."""

from __future__ import annotations

import errno

import trio

from aibridge_cli.errors import CommandNotRunnable, ConfigError, ListenError
from aibridge_cli.failures import Failure, explain, interrupted


def cancelled() -> trio.Cancelled:
    return trio.Cancelled._create()  # trio makes them; no public constructor


def test_an_expected_failure_is_found_through_nested_groups_past_cancellations() -> None:
    busy = ListenError("127.0.0.1", 8080, OSError(errno.EADDRINUSE, "Address already in use"))
    nested = BaseExceptionGroup("outer", [cancelled(), ExceptionGroup("inner", [busy])])
    failure = explain(nested)
    assert failure == Failure(
        "cannot listen on 127.0.0.1:8080 (Address already in use)",
        "another process holds that port: choose another one, or 0 for a free one",
    )
    assert failure.line() == f"{failure.message}; {failure.hint}"


def test_a_bug_beside_an_expected_failure_keeps_its_traceback() -> None:
    group = ExceptionGroup("g", [ConfigError("bad"), KeyError("bug")])
    assert explain(group) is None
    assert explain(KeyError("bug")) is None
    assert explain(OSError(errno.EPIPE, "Broken pipe")) is None  # no file named: not ours


def test_a_named_file_and_exit_codes() -> None:
    failure = explain(FileNotFoundError(errno.ENOENT, "No such file or directory", "x.jsonl"))
    assert failure is not None
    assert failure.message == "x.jsonl: No such file or directory"
    assert explain(CommandNotRunnable("cannot run x")) == Failure("cannot run x", None, 127)


def test_ctrl_c_is_found_through_groups() -> None:
    assert interrupted(KeyboardInterrupt())
    assert interrupted(BaseExceptionGroup("g", [cancelled(), KeyboardInterrupt()]))
    assert not interrupted(BaseExceptionGroup("g", [KeyboardInterrupt(), ValueError()]))
    assert not interrupted(ValueError())
