"""typer's value conversion, deferred: a help page imports no pydantic, a value is still
converted by typer's own runtime param."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
from typer._coercion import build_runtime_param

from aibridge_cli import typer_fence
from aibridge_cli.cli import app


def test_typers_internals_are_where_the_fence_expects_them() -> None:
    # if this fails, typer moved them: the fence falls back to typer's path (pydantic
    # imported by every help page, 0.4 billion instructions): update typer_fence.py
    assert typer_fence.FENCED


def option(command: str, name: str) -> tuple[Any, Any]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    built = group.commands[command]
    param = next(p for p in built.params if p.name == name)
    return param, built.context_class(built, info_name=command)


def deferred(param: Any) -> bool:
    return type(param.get_runtime_param()).__name__ == "_Deferred"


@pytest.mark.parametrize(
    ("command", "name", "given", "converted"),
    [
        ("serve", "port", "9000", 9000),
        ("serve", "stream_initiation", "lazy", "lazy"),
        ("serve", "max_body_size", "64KiB", 65536),
        ("serve", "chaos", ["529,first=1"], ["529,first=1"]),
        ("fuzz", "iterations", "12", 12),
    ],
)
def test_none_is_answered_without_typers_runtime_param_a_value_is_converted_by_it(
    command: str, name: str, given: Any, converted: Any
) -> None:
    param, ctx = option(command, name)
    assert deferred(param)
    empty = () if param.multiple or param.nargs == -1 else None
    assert param.get_runtime_param().coerce(None, param, ctx) == empty
    assert deferred(param)  # nothing built for None
    typers = build_runtime_param(param.type_descriptor).coerce(given, param, ctx)
    assert param.get_runtime_param().coerce(given, param, ctx) == typers == converted
    # a plain value is converted without typer's adapter; the list is typer's from now on
    assert deferred(param) == (name != "chaos")


def test_a_bad_value_is_typers_error() -> None:
    param, ctx = option("serve", "port")
    with pytest.raises(typer.BadParameter) as deferred_error:
        param.get_runtime_param().coerce("x", param, ctx)
    with pytest.raises(typer.BadParameter) as typers_error:
        build_runtime_param(param.type_descriptor).coerce("x", param, ctx)
    assert deferred_error.value.format_message() == typers_error.value.format_message()


@pytest.mark.parametrize("args", [("serve", "--help"), ("fuzz", "-h"), ("show", "-h")])
def test_a_help_page_imports_no_pydantic(args: tuple[str, ...]) -> None:
    probe = (
        "import sys\nfrom aibridge_cli.cli import main\nsys.argv = ['aibridge', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True
    )
    modules = set(done.stderr.split())
    assert "Usage" in done.stdout
    assert "typer._coercion" in modules  # the probe saw typer's conversion layer load
    assert sorted(m for m in modules if m.startswith(("pydantic", "typer._adapters"))) == []


SAMPLES = (
    "0",
    "7",
    "007",
    "-1",
    "1e3",
    " 5",
    "1_000",
    "99999999999999999999",
    "",
    "x",
    "lazy",
    "LAZY",
    "eager",
    "127.0.0.1",
    "anthropic",
    "-",
    ".",
    "a/b",
    "64KiB",
    "all",
)


def every_param() -> list[tuple[str, Any]]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return [
        (f"{name} {param.name}", (group.commands[name], param))
        for name in sorted(group.commands)
        for param in group.commands[name].params
        if hasattr(param, "type_descriptor") and not (param.multiple or param.nargs == -1)
    ]


PARAMS = every_param()


@pytest.mark.parametrize(
    ("label", "built_param"), PARAMS, ids=[label.replace(" ", ":") for label, _ in PARAMS]
)
def test_a_plain_conversion_is_typers_for_every_option_and_value(
    label: str, built_param: Any
) -> None:
    built, param = built_param
    ctx = built.context_class(built, info_name=built.name)
    runtime = param.get_runtime_param()
    typers = build_runtime_param(param.type_descriptor)
    values: list[Any] = [*SAMPLES, param.default, 3, True, Path("x")]
    plain = 0
    for value in values:
        if value is None:
            continue
        ours = typer_fence._plain(runtime, value, param, ctx)
        if ours is typer_fence._NOT_PLAIN:
            continue
        plain += 1
        # what _plain takes, typer takes too, to the same value of the same type
        theirs = typers.coerce(value, param, ctx)
        assert (type(ours), ours) == (type(theirs), theirs), (label, value)
    if param.default is not None and not callable(param.default):
        assert plain, f"{label}: its default {param.default!r} goes to pydantic"


@pytest.mark.parametrize(
    "args",
    [
        ("fuzz", "--iterations", "2", "--jobs", "1", "--seed", "7", "--stream-initiation", "eager"),
        ("replay", "--builtin"),
    ],
)
def test_a_command_given_plain_values_imports_no_pydantic(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    probe = (
        "import sys\nfrom aibridge_cli.cli import main\nsys.argv = ['aibridge', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\nelse:\n    code = 0\n"
        "print(code, 'pydantic' in sys.modules, file=sys.stderr)\n"
    )
    argv = [*args, "--out", str(tmp_path)] if args[0] == "fuzz" else list(args)
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.stderr.split()[-2:] == ["0", "False"], done.stderr[-2000:]
