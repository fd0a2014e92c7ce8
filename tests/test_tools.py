"""Injected tools: the TOML file, and running result / command / error tools."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from aibridge_cli.errors import ConfigError
from aibridge_cli.tools import InjectedTool, load_tools

ECHO_UPPER = "import json,sys; print(json.load(sys.stdin)['city'].upper(), end='')"
FAIL = "import sys; sys.stderr.write('no such city'); sys.exit(3)"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tools.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_each_kind_of_tool(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[[tool]]
name = "bmcp_weather"
description = "Weather"
input_schema = {{ type = "object", properties = {{ city = {{ type = "string" }} }} }}
result = "sunny"

[[tool]]
name = "bmcp_upper"
description = "Upper-case the city"
input_schema = {{ type = "object" }}
command = [{sys.executable!r}, "-c", {ECHO_UPPER!r}]
timeout = 5

[[tool]]
name = "bmcp_broken"
description = "Always fails"
input_schema = {{ type = "object" }}
error = "backend down"
""",
    )
    tools = load_tools(path)
    assert [t.name for t in tools] == ["bmcp_weather", "bmcp_upper", "bmcp_broken"]
    weather = tools.get("bmcp_weather")
    assert weather is not None
    assert weather.as_spec() == {
        "name": "bmcp_weather",
        "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    upper = tools.get("bmcp_upper")
    assert upper is not None
    assert upper.timeout == 5.0
    assert "bmcp_broken" in tools
    assert len(tools) == 3


COMPLETE = "[[tool]]\nname = 'a'\ndescription = 'd'\ninput_schema = {}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[tool]]\nname = 'a'\n", "exactly one of result, command, error (got none)"),
        ("[[tool]]\nname = 'a'\nresult = 'x'\nerror = 'y'\n", "(got ['result', 'error'])"),
        ("[[tool]]\nresult = 'x'\n", "'name' must be a non-empty string"),
        ("[[tool]]\nname = 'a'\ncommand = []\n", "'command' must be a non-empty list of strings"),
        ("[[tool]]\nname = 'a'\ncommand = 'ls'\n", "'command' must be a non-empty list of strings"),
        (
            "[[tool]]\nname = 'a'\nresult = 'x'\ninput_schema = 3\n",
            "'input_schema' must be a table",
        ),
        (
            "[[tool]]\nname = 'a'\nresult = 'x'\ntimeout = -1\n",
            "'timeout' must be a positive number",
        ),
        (
            f"{COMPLETE}result = 'x'\n{COMPLETE}result = 'y'\n",
            "duplicate tool names: a",
        ),
        ("[[tool]]\nname = 'a'\nresult = 'x'\ninput_schema = {}\n", "missing 'description'"),
        ("[[tool]]\nname = 'a'\nresult = 'x'\ndescription = 'd'\n", "missing 'input_schema'"),
        (
            f"{COMPLETE}command = ['aibridge-no-such-binary']\n",
            "command 'aibridge-no-such-binary' not found on PATH",
        ),
        ("# no tools\n", "no [[tool]] or [[mcp]] table"),
        ("tool = 3\n", "expected [[tool]] tables"),
        ("[[tool]\nname=", "not valid TOML"),
    ],
)
def test_bad_tools_file_is_a_config_error_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_tools(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_tools_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read tools file"):
        load_tools(tmp_path / "nope.toml")


async def test_result_and_error_tools() -> None:
    ok = InjectedTool("a", "", {}, result="done")
    bad = InjectedTool("b", "", {}, error="backend down")
    assert (await ok.run({})).text == "done"
    outcome = await bad.run({})
    assert (outcome.text, outcome.is_error) == ("backend down", True)


async def test_command_tool_gets_input_on_stdin_and_answers_with_stdout() -> None:
    tool = InjectedTool("up", "", {}, command=(sys.executable, "-c", ECHO_UPPER))
    outcome = await tool.run({"city": "paris"})
    assert (outcome.text, outcome.is_error) == ("PARIS", False)


async def test_command_tool_nonzero_exit_is_a_tool_error() -> None:
    tool = InjectedTool("f", "", {}, command=(sys.executable, "-c", FAIL))
    outcome = await tool.run({})
    assert (outcome.text, outcome.is_error) == ("no such city", True)


async def test_command_tool_that_cannot_start_is_a_tool_error(tmp_path: Path) -> None:
    tool = InjectedTool("g", "", {}, command=(str(tmp_path / "missing-binary"),))
    outcome = await tool.run({})
    assert outcome.is_error
    assert "could not start" in outcome.text


async def test_command_tool_timeout_is_a_tool_error(autojump_clock: trio.testing.MockClock) -> None:
    tool = InjectedTool(
        "slow", "", {}, command=(sys.executable, "-c", "import time; time.sleep(30)"), timeout=5
    )
    started = trio.current_time()
    outcome = await tool.run({})
    assert outcome.is_error
    assert outcome.text == "tool slow timed out after 5 s"
    assert trio.current_time() - started == pytest.approx(5.0)
