"""An MCP ``CallToolResult`` (its wire JSON) as a ``ToolOutcome``.

Text parts become the text, joined by newlines; a result with structured content and no
text carries that content as JSON text (servers should send both, and some send only the
structure); images are kept for the providers that take them in a tool result; audio and
resource links, which no provider takes there, are named in the text. ``isError`` makes it
an error result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..tools import ToolImage, ToolOutcome


def server_down(server: str, tool: str) -> ToolOutcome:
    """A call whose server died before answering (live, or a simulation fault)."""
    return ToolOutcome(f"mcp server {server} went down during {tool}", True)


def timed_out(server: str, tool: str, seconds: float) -> ToolOutcome:
    return ToolOutcome(f"mcp server {server}: {tool} timed out after {seconds:g} s", True)


def fault_outcome(server: str, tool: str, fault: str, timeout: float) -> ToolOutcome:
    """What an MCP tool call struck by an ``mcp-*`` fault answers, in the fuzzer's world
    and under ``serve --chaos`` alike (``mcp-slow``: once the call's timeout has passed)."""
    if fault == "mcp-slow":
        return timed_out(server, tool, timeout)
    if fault == "mcp-dies":
        return server_down(server, tool)
    return ToolOutcome("simulated MCP tool error", True)


def _part_text(part: Mapping[str, Any]) -> str | None:
    kind = part.get("type")
    if kind == "text":
        return str(part.get("text", ""))
    if kind == "resource":
        resource = part.get("resource")
        if isinstance(resource, Mapping):
            if "text" in resource:
                return str(resource["text"])
            return f"[resource {resource.get('uri', '')}: {resource.get('mimeType', 'binary')}]"
    if kind == "resource_link":
        return f"[resource link {part.get('uri', '')}]"
    if kind == "audio":
        return f"[audio: {part.get('mimeType', 'unknown type')}]"
    return None


def outcome_from_result(result: Mapping[str, Any]) -> ToolOutcome:
    """The outcome of one tool call from its result's wire JSON (camelCase keys)."""
    texts: list[str] = []
    images: list[ToolImage] = []
    content = result.get("content")
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "image":
            images.append(ToolImage(str(part.get("mimeType", "")), str(part.get("data", ""))))
            continue
        text = _part_text(part)
        if text is not None:
            texts.append(text)
    structured = result.get("structuredContent")
    if not texts and structured is not None:
        texts.append(json.dumps(structured, separators=(",", ":"), ensure_ascii=False))
    return ToolOutcome("\n".join(texts), bool(result.get("isError")), tuple(images))
