"""What a process aibridge starts may see of aibridge's environment.

aibridge's environment holds its secrets: the key pools (``AIBRIDGE_ANTHROPIC_KEYS``,
``AIBRIDGE_OPENAI_KEYS``), the token (``AIBRIDGE_AUTH_TOKEN``) and often the providers'
own keys (``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``...). A child gets only what it needs:

- A tool aibridge runs (a ``command`` tool, an MCP stdio server) is somebody else's
  program fed what the model chose: ``tool_environment`` gives it a short list of
  harmless variables (``PATH``, ``HOME``, the locale...) and the tools file's ``env``
  table, nothing else.
- The program ``aibridge record`` runs is the user's agent under test, which needs its
  whole setup: ``agent_environment`` gives it the environment less every secret (every
  ``AIBRIDGE_*`` variable, any variable holding a pool key or the token, and a
  provider's key variables when the proxy's pool answers for that provider, replaced by
  a placeholder so its SDK starts), plus the base URLs pointing at the proxy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

# Enough to find programs, a home, a terminal and a locale; nothing that names a secret.
# (The mcp SDK's own default list is HOME, LOGNAME, PATH, SHELL, TERM, USER.)
TOOL_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TZ", "TMPDIR")
# Each provider's key and token variables, as its SDKs and CLIs read them.
PROVIDER_KEY_VARIABLES = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
    "openai": ("OPENAI_API_KEY", "CODEX_API_KEY"),
}
# What an agent's SDK gets instead of a key when the pool pays: it refuses to start
# without one, and the proxy puts the pool's key in its place.
KEY_PLACEHOLDER = "aibridge-pool-key-placeholder"


def tool_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a tool's process: ``TOOL_VARIABLES`` and ``LC_*`` as aibridge
    has them, then ``extra`` (the tools file's ``env``)."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if name in TOOL_VARIABLES or name.startswith("LC_")
    }
    return {**kept, **(extra or {})}


def agent_environment(
    base_urls: Mapping[str, str], pooled: Sequence[str], secrets: Sequence[str]
) -> dict[str, str]:
    """The environment of ``record``'s command: aibridge's less its secrets, with
    ``base_urls`` set; ``pooled`` names the providers whose keys the proxy holds, whose
    key variables become ``KEY_PLACEHOLDER``; ``secrets`` are the pool keys and token,
    dropped under whatever name they are."""
    held = {s for s in secrets if s}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AIBRIDGE_") and not any(s in value for s in held)
    }
    for provider in pooled:
        for name in PROVIDER_KEY_VARIABLES[provider]:
            env.pop(name, None)
        env[PROVIDER_KEY_VARIABLES[provider][0]] = KEY_PLACEHOLDER
    return {**env, **base_urls}
