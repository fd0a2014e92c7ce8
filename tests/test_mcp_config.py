"""``[[mcp]]`` tables, tool names and filters, and MCP results as tool outcomes: plain data."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibridge_cli.errors import ConfigError
from aibridge_cli.mcp_tools.config import mcp_server_from_mapping, mcp_servers, offered_name
from aibridge_cli.mcp_tools.results import outcome_from_result
from aibridge_cli.tools import ToolImage, ToolOutcome, load_tools_file


def test_a_tools_file_holds_tools_and_mcp_servers(tmp_path: Path) -> None:
    path = tmp_path / "tools.toml"
    path.write_text(
        '[[tool]]\nname = "canned"\nresult = "ok"\ndescription = "d"\ninput_schema = {}\n'
        '[[mcp]]\nname = "fs"\ncommand = ["fs-server", "--root", "/tmp"]\n'
        'env = {LEVEL = "debug"}\nallow = "^read"\ntimeout = 5\n'
        '[[mcp]]\nname = "web"\nurl = "http://127.0.0.1:9/mcp"\n'
        'headers = {x-team = "a"}\nbearer_env = "WEB_TOKEN"\n'
    )
    found = load_tools_file(path)
    assert [t.name for t in found.tools] == ["canned"]
    fs, web = mcp_servers(found)
    assert (fs.command, dict(fs.env), fs.timeout, fs.transport) == (
        ("fs-server", "--root", "/tmp"),
        {"LEVEL": "debug"},
        5.0,
        "stdio",
    )
    assert (web.url, web.headers, web.transport) == (
        "http://127.0.0.1:9/mcp",
        (("x-team", "a"),),
        "streamable-http",
    )


def test_two_servers_of_one_name_are_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "tools.toml"
    path.write_text('[[mcp]]\nname = "a"\nurl = "http://h/"\n' * 2)
    with pytest.raises(ConfigError, match="duplicate mcp server names: a"):
        mcp_servers(load_tools_file(path))


def test_the_bearer_comes_from_the_environment_when_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = mcp_server_from_mapping(
        {"name": "web", "url": "https://mcp.example/mcp", "bearer_env": "WEB_TOKEN"}, "t"
    )
    monkeypatch.delenv("WEB_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="environment variable WEB_TOKEN is not set"):
        spec.http_headers()
    monkeypatch.setenv("WEB_TOKEN", "tok-123")
    assert spec.http_headers() == {"authorization": "Bearer tok-123"}
    assert "tok-123" not in spec.target
    secret_url = {"name": "web", "url": "https://user:pw-secret@mcp.example/mcp"}
    assert mcp_server_from_mapping(secret_url, "t").target == "https://…@mcp.example/mcp"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a_b", "command": ["x"]}, "'name' must be 1-40 letters"),
        ({"name": "a"}, "exactly one of command, url"),
        ({"name": "a", "command": ["x"], "url": "http://h/"}, "exactly one of command, url"),
        ({"name": "a", "command": []}, "non-empty list of strings"),
        ({"name": "a", "url": "ftp://h/"}, "http:// or https:// URL"),
        ({"name": "a", "command": ["x"], "allow": "("}, "'allow' is not a valid regular"),
        ({"name": "a", "command": ["x"], "timeout": 0}, "'timeout' must be a positive number"),
        ({"name": "a", "command": ["x"], "bearer_env": "T"}, "for a url"),
        ({"name": "a", "command": ["x"], "env": {"K": 1}}, "'env' must be a table of strings"),
    ],
)
def test_bad_entries_are_config_errors_naming_the_entry(entry: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        mcp_server_from_mapping(entry, "tools.toml: mcp #1")


def test_allow_and_deny_filter_by_the_servers_tool_names() -> None:
    spec = mcp_server_from_mapping(
        {"name": "fs", "command": ["x"], "allow": "^(read|list)", "deny": "secret"}, "t"
    )
    assert [
        t for t in ("read_file", "list_dir", "write_file", "read_secret") if spec.offers(t)
    ] == [
        "read_file",
        "list_dir",
    ]
    assert offered_name("fs", "read_file") == "bmcp_fs_read_file"
    assert not spec.offers("has.dot")  # no provider takes the name


def test_results_become_outcomes() -> None:
    text = {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    assert outcome_from_result(text) == ToolOutcome("a\nb")
    structured = {"content": [], "structuredContent": {"n": 1}}
    assert outcome_from_result(structured) == ToolOutcome('{"n":1}')
    image = {
        "content": [
            {"type": "image", "mimeType": "image/png", "data": "iVBO"},
            {"type": "resource_link", "uri": "file:///a", "name": "a"},
        ],
        "isError": True,
    }
    assert outcome_from_result(image) == ToolOutcome(
        "[resource link file:///a]", True, (ToolImage("image/png", "iVBO"),)
    )
