"""Tools injected from MCP servers: ``config`` and ``results`` are plain data and import no
MCP code; ``servers`` runs the live servers with the ``mcp`` SDK (the ``mcp`` extra)."""
