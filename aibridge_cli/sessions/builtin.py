"""The built-in fixtures shipped in the package, by name.

Each is ``PROVIDER/NAME`` (PROVIDER: ``anthropic``, ``openai-chat``, ``openai-responses``),
a file ``aibridge_cli/fixtures/PROVIDER/NAME.jsonl``. A bare ``NAME`` selects that fixture
for every provider that has it. They are made by ``scripts/make_builtin_fixtures.py``.
"""

from __future__ import annotations

from importlib import resources

from ..errors import FixtureError
from .fixture import Fixture, parse_fixture

# openai-responses-ws: the Responses API's WebSocket mode (interceptions of api
# openai-responses over transport websocket)
PROVIDERS = ("anthropic", "openai-chat", "openai-responses", "openai-responses-ws")


def _root() -> resources.abc.Traversable:
    return resources.files("aibridge_cli") / "fixtures"


def list_builtin() -> list[str]:
    """Every built-in fixture as ``PROVIDER/NAME``, sorted."""
    names = []
    for provider in PROVIDERS:
        folder = _root() / provider
        if folder.is_dir():
            names += [
                f"{provider}/{entry.name[: -len('.jsonl')]}"
                for entry in folder.iterdir()
                if entry.name.endswith(".jsonl")
            ]
    return sorted(names)


def load_builtin(name: str | None = None) -> list[Fixture]:
    """The built-in fixtures called ``name`` (all of them for None), loaded."""
    available = list_builtin()
    if name is None:
        chosen = available
    elif "/" in name:
        chosen = [n for n in available if n == name]
    else:
        chosen = [n for n in available if n.split("/", 1)[1] == name]
    if not chosen:
        raise FixtureError(
            f"no built-in fixture {name!r}; there are: {', '.join(available) or 'none'}"
        )
    fixtures = []
    for full in chosen:
        provider, short = full.split("/", 1)
        text = (_root() / provider / f"{short}.jsonl").read_text(encoding="utf-8")
        fixtures.append(parse_fixture(text, f"builtin:{full}"))
    return fixtures
