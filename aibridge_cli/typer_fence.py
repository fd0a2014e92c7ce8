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

Checked at import: typer's ``RuntimeParam`` with ``coerce`` defined once, on the base class
(no subclass answers ``None`` differently), ``build_runtime_param``, and a parameter's
``_runtime_param`` still unset when :func:`defer_coercion` sees it. Where any is missing
(another typer), :func:`defer_coercion` does nothing: typer's own path, pydantic and all.
"""

from __future__ import annotations

from typing import Any

try:
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
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
            built = build_runtime_param(param.type_descriptor)
            param._runtime_param = built
            return built.coerce(value, param, ctx)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            return build_runtime_param(param.type_descriptor)._coerce_value(value, param, ctx)


def defer_coercion(param: Any) -> None:
    """Build ``param``'s runtime param (and import pydantic) only for a value to convert."""
    if not FENCED or getattr(param, "_runtime_param", False) is not None:
        return
    descriptor = getattr(param, "type_descriptor", None)
    if isinstance(descriptor, TypeDescriptor):
        param._runtime_param = _Deferred(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
