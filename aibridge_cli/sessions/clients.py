"""How ``aibridge record`` points the command it runs at its proxy, client by client.

The SDKs and Claude Code read ``ANTHROPIC_BASE_URL`` / ``OPENAI_BASE_URL`` from the
environment, which ``record`` sets. Codex CLI (0.171) ignores ``OPENAI_BASE_URL``: its
built-in OpenAI provider takes its address from the ``openai_base_url`` setting, which
every run can override on its command line (``-c key=value``, parsed as TOML). So a
command whose program is ``codex`` gets that override first among its arguments, where it
applies to every subcommand; an override of its own later on the line still wins, and no
configuration file is read or written.
"""

from __future__ import annotations

import json
from pathlib import PurePath

CODEX_PROGRAMS = frozenset({"codex", "codex.js", "codex.exe", "codex.cmd"})


def is_codex(program: str) -> bool:
    return PurePath(program).name.lower() in CODEX_PROGRAMS


def codex_override(openai_url: str) -> list[str]:
    """The arguments that point Codex's built-in provider at ``openai_url`` (``.../v1``)."""
    return ["-c", f"openai_base_url={json.dumps(openai_url)}"]


def pointed_at(argv: list[str], openai_url: str) -> list[str]:
    """``argv`` as ``record`` runs it: Codex gets ``codex_override``; others as given."""
    if argv and is_codex(argv[0]):
        return [argv[0], *codex_override(openai_url), *argv[1:]]
    return list(argv)
