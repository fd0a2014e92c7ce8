"""Usage arithmetic every provider shares, sans-io.

After an agentic loop the client sees one answer, so its usage must be every iteration's
added up: every number, at any depth (Anthropic's ``cache_creation.*`` and
``server_tool_use.*``, Chat's ``*_tokens_details.*``, Responses' ``input_tokens_details.*``
and ``output_tokens_details.*``, and whatever the providers add next). Fields that are not
numbers (``service_tier``) are the last answer's.
"""

from __future__ import annotations

from typing import Any


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def add_usage(total: dict[str, Any], usage: Any) -> None:
    """Add every number of ``usage``, at any depth, into ``total`` (which it updates)."""
    if not isinstance(usage, dict):
        return
    for key, value in usage.items():
        if _number(value):
            previous = total.get(key, 0)
            total[key] = (previous if _number(previous) else 0) + value
        elif isinstance(value, dict):
            inner = total.get(key)
            if not isinstance(inner, dict):
                inner = total[key] = {}
            add_usage(inner, value)


def summed(*usages: Any) -> dict[str, Any]:
    """The numbers of all ``usages`` added up."""
    total: dict[str, Any] = {}
    for usage in usages:
        add_usage(total, usage)
    return total


def overlay_usage(usage: Any, top: dict[str, Any]) -> dict[str, Any]:
    """``usage`` with ``top``'s fields laid over it at any depth; the rest of ``usage``
    (a ``service_tier``, a nested field ``top`` lacks) is kept."""
    out = dict(usage) if isinstance(usage, dict) else {}
    for key, value in top.items():
        out[key] = overlay_usage(out.get(key), value) if isinstance(value, dict) else value
    return out
