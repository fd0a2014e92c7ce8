"""Every use of typer's private names, fenced: what it replaces, and why.

typer 0.29 converts each parameter's value with a "runtime param" that it builds on first
use (``_TyperParameter.get_runtime_param``, kept in ``_runtime_param``); building one
imports pydantic for its ``TypeAdapter``: 0.4 billion instructions, more than the rest of
``aibridge serve --help`` together. Yet a value of ``None`` (an option not given, and
no default: the root's ``--help`` while a subcommand runs, the completion options) never
reaches the adapter: ``RuntimeParam.coerce`` answers it itself. :func:`defer_coercion`
gives such a parameter a runtime param that answers ``None`` the same way and, for any other
value, builds typer's own, puts it in its place and hands the value to it. A help page
then imports no pydantic; a command given a value or a default converts it as typer does.

Most values a command converts are plain: a whole number, a string, a path, one of a
few choices, or a value one of our parsers reads (``aibridge fuzz --iterations 1000 --out
DIR`` converts seven, all plain). Building typer's adapter for them costs pydantic's
import, 0.14 s of CPU at the start of every command. :func:`_plain` converts them itself,
by typer's own functions where typer has one (``coerce_cli_path``, ``coerce_cli_choice``).
Anything else, and any value it does not take (so any error), goes to typer's runtime
param: an accepted value comes out as typer's would, a refused one with typer's message.

Checked at import: typer's ``RuntimeParam`` with ``coerce`` defined once, on the base class
(no subclass answers ``None`` differently), ``build_runtime_param``, and a parameter's
``_runtime_param`` still unset when :func:`defer_coercion` sees it. Where any is missing
(another typer), :func:`defer_coercion` does nothing: typer's own path, pydantic and all.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

try:
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_choice, coerce_cli_path
except ImportError:  # typer before 0.29, or its internals moved
    FENCED = False
else:
    FENCED = all("coerce" not in vars(cls) for cls in RuntimeParam.__subclasses__())

if FENCED:

    class _Deferred(RuntimeParam):
        """Answers ``None`` as every runtime param does; builds typer's for a value."""

        def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
            if value is None:
                return super().coerce(value, param, ctx)
            if not (param.multiple or param.nargs == -1):
                converted = _plain(self, value, param, ctx)
                if converted is not _NOT_PLAIN:
                    return converted
            built = build_runtime_param(param.type_descriptor)
            param._runtime_param = built
            return built.coerce(value, param, ctx)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            return build_runtime_param(param.type_descriptor)._coerce_value(value, param, ctx)


_NOT_PLAIN = object()
# The whole numbers pydantic's lax mode reads from a string exactly as int() does.
_WHOLE = re.compile(r"0|[1-9][0-9]{0,17}")


def _plain(runtime: Any, value: Any, param: Any, ctx: Any) -> Any:
    """``value`` converted as typer converts it, or ``_NOT_PLAIN`` to ask typer."""
    info = runtime.parameter_info
    annotation = runtime.annotation
    kind = type(value)
    try:
        if info.parser is not None:  # typer's adapter hands the parser's answer on as it is
            return info.parser(value)
        if annotation is int and info.min is None and info.max is None:
            if kind is int:
                return value
            if kind is str and _WHOLE.fullmatch(value):
                return int(value)
        elif annotation is str and kind is str:
            return value
        elif annotation is bool and kind is bool:
            return value
        elif (
            annotation is Path
            and info.path_type is None
            and ((kind is str and value) or isinstance(value, Path))
        ):
            path = value if isinstance(value, Path) else Path(value)
            return coerce_cli_path(path, info, path_type=Path, param=param, ctx=ctx)
        elif get_origin(annotation) is Literal or (
            isinstance(annotation, type) and issubclass(annotation, Enum)
        ):
            choices = (
                get_args(annotation) if get_origin(annotation) is Literal else tuple(annotation)
            )
            return coerce_cli_choice(
                value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx
            )
    except Exception:  # typer's runtime param converts it, and words the error
        return _NOT_PLAIN
    return _NOT_PLAIN


def defer_coercion(param: Any) -> None:
    """Build ``param``'s runtime param (and import pydantic) only for a value to convert."""
    if not FENCED or getattr(param, "_runtime_param", False) is not None:
        return
    descriptor = getattr(param, "type_descriptor", None)
    if isinstance(descriptor, TypeDescriptor):
        param._runtime_param = _Deferred(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
