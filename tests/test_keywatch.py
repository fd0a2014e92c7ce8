"""The whole-run key watch finds a key in a log line or a recording, and only a key."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aibridge_cli.proxy.keypool import mask_key

from .keywatch import KeyWatch

KEY = "sk-ant-api03-watchedsecret-QQQQ9999"


def watch_of(*messages: str) -> KeyWatch:
    watch = KeyWatch()
    watch.note([KEY, "short"])
    log = logging.getLogger("aibridge.test.keywatch")
    log.addHandler(watch)
    try:
        for message in messages:
            log.warning("upstream said %s", message)
    finally:
        log.removeHandler(watch)
    return watch


def test_a_key_or_its_hidden_middle_in_a_log_line_is_a_leak() -> None:
    assert watch_of(f"bad key {KEY}").leaks() == [
        "log aibridge.test.keywatch: holds sk-ant… (a key, or its middle)"
    ]
    assert watch_of(f"...{KEY[8:-4]}...").leaks() != []


def test_a_masked_key_is_not_a_leak() -> None:
    assert watch_of(f"key {mask_key(KEY)} cooling").leaks() == []


def test_a_key_in_a_recording_is_a_leak(tmp_path: Path) -> None:
    clean, dirty = tmp_path / "clean.jsonl", tmp_path / "dirty.jsonl"
    clean.write_text(json.dumps({"key": mask_key(KEY)}) + "\n")
    dirty.write_text(json.dumps({"echo": KEY}) + "\n")
    assert watch_of().leaks([clean, dirty]) == [f"{dirty}: holds sk-ant… (a key, or its middle)"]
