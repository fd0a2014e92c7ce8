"""The JSONL fixture format: round trips, bad lines, cut lines, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aibridge_cli.errors import FixtureError
from aibridge_cli.interception import ClientRequest, Interception, ToolCallRecord
from aibridge_cli.sessions.fixture import (
    FORMAT_VERSION,
    Fixture,
    dump_fixture,
    header_line,
    parse_fixture,
)
from aibridge_cli.sessions.recording import FixtureWriter, load_fixture


def make_record(data: bytes = b"event: x\ndata: {}\n\n") -> Interception:
    record = Interception(
        api="anthropic",
        request=ClientRequest(
            "POST", "/anthropic/v1/messages", [("x-api-key", "sk-client-secret-123456")], {"a": 1}
        ),
        started_at=1.5,
    )
    exchange = record.new_exchange("POST", "/v1/messages", {"a": 1}, "sk-a…aaaa")
    exchange.response.started(200, [("content-type", "text/event-stream")])
    exchange.response.wrote(data)
    record.response.started(200, [("content-type", "text/event-stream")])
    record.response.wrote(data)
    return record


def test_round_trip_keeps_chunks_and_non_utf8_bytes() -> None:
    raw = b"\xff\xfe not utf-8"
    fixture = Fixture("f", [make_record(raw)], ["one"])
    text = dump_fixture(fixture)
    assert '"b64"' in text
    again = parse_fixture(text, "f")
    assert again.labels == ["one"]
    record = again.interceptions[0]
    assert record.upstream[0].response.chunks[0].data == raw
    assert record.response.body == raw
    assert record.request.headers == [("x-api-key", "[redacted]")]
    assert dump_fixture(again).splitlines()[1:] == text.splitlines()[1:]


def test_mcp_calls_round_trip_and_version_1_files_still_load() -> None:
    record = make_record()
    record.tool_calls = [
        ToolCallRecord("plain", {}, "ok", False),
        ToolCallRecord(
            "bmcp_wx_radar",
            {"city": "Lyon"},
            "radar",
            False,
            "wx",
            "radar",
            12.5,
            [{"media_type": "image/png", "data": "iVBO"}],
        ),
    ]
    text = dump_fixture(Fixture("f", [record], ["#1"]))
    plain, mcp = json.loads(text.splitlines()[1])["tool_calls"]
    assert set(plain) == {"name", "input", "result", "is_error"}  # nothing MCP on a plain one
    assert mcp["server"] == "wx"
    assert mcp["duration_ms"] == 12.5
    assert parse_fixture(text, "f").interceptions[0].tool_calls == record.tool_calls
    for old_version in (1, 2, 3):
        old = text.replace('"aibridge_fixture":4', f'"aibridge_fixture":{old_version}', 1)
        assert parse_fixture(old, "f").interceptions[0].tool_calls == record.tool_calls
    bad = text.replace('"duration_ms":12.5', '"duration_ms":"slow"')
    with pytest.raises(FixtureError, match=r"tool_calls\[1\].duration_ms' has the wrong type"):
        parse_fixture(bad, "f")


def test_each_line_is_one_json_object() -> None:
    text = dump_fixture(Fixture("f", [make_record(), make_record()], ["#1", "#2"]))
    lines = text.splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["aibridge_fixture"] == FORMAT_VERSION == 4
    assert all(json.loads(line)["api"] == "anthropic" for line in lines[1:])


def test_the_websocket_transport_round_trips_and_http_lines_do_not_change() -> None:
    socket = make_record(b'{"type":"response.created"}')
    socket.transport = "websocket"
    text = dump_fixture(Fixture("f", [make_record(), socket], ["#1", "#2"]))
    first, second = text.splitlines()[1:]
    assert '"transport"' not in first  # an HTTP line reads as it did in version 1
    assert json.loads(second)["transport"] == "websocket"
    again = parse_fixture(text, "f")
    assert [r.transport for r in again.interceptions] == ["http", "websocket"]


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_file_reads_as_http(version: int) -> None:
    line = dump_fixture(Fixture("f", [make_record()], ["#1"])).splitlines()[1]
    fixture = parse_fixture(f'{{"aibridge_fixture": {version}}}\n' + line + "\n", "f")
    assert fixture.version == version
    assert fixture.interceptions[0].transport == "http"


def test_an_unknown_transport_is_named() -> None:
    line = json.loads(dump_fixture(Fixture("f", [make_record()], ["#1"])).splitlines()[1])
    line["transport"] = "carrier-pigeon"
    with pytest.raises(FixtureError, match=r"f:2: field 'transport' must be"):
        parse_fixture('{"aibridge_fixture": 3}\n' + json.dumps(line) + "\n", "f")


def test_a_bad_line_is_named_with_file_and_line() -> None:
    good = dump_fixture(Fixture("f", [make_record()], ["#1"]))
    bad = good + '{"api": "anthropic"}\n' + good.splitlines()[1] + "\n"
    with pytest.raises(FixtureError, match=r"^f\.jsonl:3: missing field 'request'"):
        parse_fixture(bad, "f.jsonl")
    with pytest.raises(FixtureError, match=r"^f\.jsonl:2: not valid JSON"):
        parse_fixture(header_line() + "\n{oops\n" + good.splitlines()[1] + "\n", "f.jsonl")


def test_a_version_1_file_still_loads() -> None:
    """Version 2 only added pass-through records and query strings: a v1 file is read as is."""
    text = dump_fixture(Fixture("f", [make_record()], ["#1"]))
    header, line = text.splitlines()
    old = json.dumps({**json.loads(header), "aibridge_fixture": 1}) + "\n" + line + "\n"
    fixture = parse_fixture(old, "f")
    assert fixture.version == 1
    assert [r.api for r in fixture.interceptions] == ["anthropic"]
    with pytest.raises(FixtureError, match=r"version 5 is not supported \(this reads 1, 2, 3, 4\)"):
        parse_fixture('{"aibridge_fixture": 5}\n', "f")


def test_a_missing_or_foreign_header_is_rejected() -> None:
    with pytest.raises(FixtureError, match=r"f:1: expected the header line"):
        parse_fixture('{"api": "anthropic"}\n', "f")
    with pytest.raises(FixtureError, match=r"f:1: fixture format version 99"):
        parse_fixture('{"aibridge_fixture": 99}\n', "f")
    with pytest.raises(FixtureError, match=r"f:1: empty file"):
        parse_fixture("", "f")


def test_a_cut_last_line_is_reported_and_skipped() -> None:
    good = dump_fixture(Fixture("f", [make_record()], ["#1"]))
    cut = good + good.splitlines()[1][:40]
    fixture = parse_fixture(cut, "f")
    assert len(fixture.interceptions) == 1
    assert fixture.warnings == ["f:3: truncated last line skipped (a crash mid-write?)"]


def test_writer_moves_a_cut_line_aside_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    writer = FixtureWriter(path)
    writer(make_record())
    writer.close()
    whole = path.read_bytes()
    for n, cut in enumerate(['{"api": "anthr', '{"api": "open']):
        with path.open("a") as f:
            f.write(cut)  # what a crash mid-write leaves
        assert load_fixture(path).warnings
        writer = FixtureWriter(path)
        assert path.read_bytes() == whole  # the cut line is gone from the fixture...
        aside = tmp_path / ("rec.jsonl.cut" if n == 0 else "rec.jsonl.cut.1")
        assert aside.read_text() == cut  # ...and kept beside it, byte for byte
        writer(make_record())
        writer.close()
        whole = path.read_bytes()
    fixture = load_fixture(path)
    assert (len(fixture.interceptions), fixture.warnings) == (3, [])


@pytest.mark.parametrize(
    "content",
    [b"a\nb", b"a\nb\n", b"\xff\xfe\n", b'{"not": "a header"}\n', b"just text, no newline"],
)
def test_writer_refuses_a_file_that_is_not_a_fixture_and_leaves_it_alone(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(FixtureError, match="is not an aibridge fixture"):
        FixtureWriter(path)
    assert path.read_bytes() == content
    assert list(tmp_path.iterdir()) == [path]


def test_a_file_the_writer_created_and_wrote_nothing_to_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    FixtureWriter(path).close()  # a proxy that failed to start, or served nothing
    assert not path.exists()
    path.write_bytes(b"")  # the user's own empty file stays, as a fixture now
    FixtureWriter(path).close()
    assert load_fixture(path).interceptions == []


def test_writer_refuses_a_fixture_recorded_with_other_settings(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    writer = FixtureWriter(path, proxy={"stream_initiation": "lazy", "max_iterations": 10})
    writer(make_record())
    writer.close()
    before = path.read_bytes()
    with pytest.raises(FixtureError, match=r"stream_initiation=lazy.*this proxy: .*eager"):
        FixtureWriter(path, proxy={"stream_initiation": "eager", "max_iterations": 10})
    assert path.read_bytes() == before
    FixtureWriter(path, proxy={"stream_initiation": "lazy", "max_iterations": 10}).close()
    assert path.read_bytes() == before  # the same settings: appended to, header kept


def test_writer_scrubs_keys_and_extra_headers(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record = make_record(b'data: {"echo": "sk-ant-api03-verysecretkey-0001"}\n\n')
    record.request.headers.append(("x-team-token", "team-secret-value"))
    writer = FixtureWriter(
        path, redact=["X-Team-Token"], secrets=["sk-ant-api03-verysecretkey-0001"]
    )
    writer(record)
    writer.close()
    text = path.read_text()
    assert "verysecretkey" not in text
    assert "team-secret-value" not in text
    assert "sk-client-secret" not in text


def test_load_fixture_names_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="cannot read"):
        load_fixture(tmp_path / "absent.jsonl")
    (tmp_path / "bin.jsonl").write_bytes(header_line().encode() + b"\n\xff\n")
    with pytest.raises(FixtureError, match=r"bin\.jsonl:2: not UTF-8"):
        load_fixture(tmp_path / "bin.jsonl")
