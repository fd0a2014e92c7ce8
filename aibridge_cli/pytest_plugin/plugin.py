"""The pytest plugin: record a test's AI traffic once, replay it in CI (docs/pytest-plugin.md).

pytest loads this module in every run of every project that has aibridge installed, so
it only declares: options, ini keys, the ``aibridge`` marker and the fixtures. A test
that uses none of them costs nothing; the first that does imports the machinery (the
proxy, the mock, trio) and starts the server thread (``session.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .cassette import Cassette
    from .session import PluginSession

_SESSION = pytest.StashKey["PluginSession"]()
_CASSETTE = pytest.StashKey["Cassette"]()
FIXTURES = frozenset({"aibridge", "aibridge_anthropic_url", "aibridge_openai_url", "aibridge_env"})
KEY_PLACEHOLDER = "sk-aibridge-replay-placeholder"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aibridge", "record and replay AI API traffic (aibridge)")
    # The choices are spelled out here: settings.py, which checks them, imports the
    # machinery this module must not load.
    settings = [
        (
            "record",
            "none: replay only, a request with no recorded match fails the test; once: record "
            "a test whose file is missing; new: replay what matches, record what does not; "
            "all (or rewrite): record every test afresh, replacing its file (default: none)",
            ("none", "once", "new", "all", "rewrite"),
        ),
        ("timing", "replay fast, or with the recorded gaps (default: fast)", ("fast", "recorded")),
        ("anthropic_upstream", "the Anthropic API recording reaches (default: the real)", None),
        ("openai_upstream", "the OpenAI API recording reaches, .../v1 (default: the real)", None),
        (
            "cassette_dir",
            "the folder of the recordings, <dir>/<module>/<test>.jsonl (default: aibridge/ "
            "beside each test module; the ini's is relative to the ini file)",
            None,
        ),
    ]
    for name, help_text, choices in settings:
        group.addoption(
            "--aibridge-" + name.replace("_", "-"),
            dest="aibridge_" + name,
            choices=choices,
            default=None,
            help=f"{help_text}; the ini key aibridge_{name} sets it for a project",
        )
        parser.addini("aibridge_" + name, help_text, default="")
    rules = [
        ("ignore", "request body fields left out of matching ($.metadata, max_tokens)"),
        (
            "match_on",
            "what a request must share with a recorded one (default: all of "
            "method path query body)",
        ),
        ("no_normalize", "built-in normalizers switched off (docs/fixture-format.md)"),
        ("allowed_hosts", "hosts a test using aibridge may reach besides loopback"),
    ]
    for name, help_text in rules:
        parser.addini("aibridge_" + name, help_text, type="args", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "aibridge(fixture=PATH, record=MODE, timing=TIMING, match_on=[...], ignore=[...], "
        "no_normalize=[...], allowed_hosts=[...]): record this test's AI API traffic once "
        "and replay it (docs/pytest-plugin.md)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A marked test that asks for no aibridge fixture gets ``aibridge_env``."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is not None and item.get_closest_marker("aibridge") and not FIXTURES & set(names):
            names.append("aibridge_env")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test whose requests matched nothing recorded fails with the diff, in place of
    whatever the code under test made of the 400 it got (or despite its catching it)."""
    try:
        result = yield
    except BaseException:
        message = _misses(item)
        if message:
            raise pytest.fail.Exception(message, pytrace=False) from None
        raise
    message = _misses(item)
    if message:
        pytest.fail(message, pytrace=False)
    return result


def _misses(item: pytest.Item) -> str | None:
    cassette = item.stash.get(_CASSETTE, None)
    return cassette.failure() if cassette is not None else None


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None and (session.recorded or session.late):
        from .settings import shown

        terminalreporter.section("aibridge")
        for path, count in session.recorded.items():
            terminalreporter.write_line(f"recorded {count} interception(s) to {shown(path)}")
        for path, count in session.late.items():
            terminalreporter.write_line(
                f"not recorded: {count} request(s) still running when their test ended "
                f"({shown(path)})",
                yellow=True,
            )


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None:
        del config.stash[_SESSION]
        session.stop()


def _session(config: pytest.Config) -> PluginSession:
    session = config.stash.get(_SESSION, None)
    if session is None:
        from .session import PluginSession
        from .settings import LIST_SETTINGS, SESSION_SETTINGS, Defaults

        given = {
            name: str(config.getoption("aibridge_" + name) or config.getini("aibridge_" + name))
            for name in SESSION_SETTINGS
        }
        lists = {name: list(config.getini("aibridge_" + name)) for name in LIST_SETTINGS}
        defaults = Defaults.of(given, lists, _cassette_dir(config))
        session = config.stash[_SESSION] = PluginSession(defaults)
    return session


def _cassette_dir(config: pytest.Config) -> Path | None:
    """The option's folder, from where pytest was run; else the ini's, from the ini file."""
    option = config.getoption("aibridge_cassette_dir")
    if option:
        return config.invocation_params.dir / str(option)
    ini = str(config.getini("aibridge_cassette_dir"))
    if ini:
        return (config.inipath.parent if config.inipath else config.rootpath) / ini
    return None


@pytest.fixture
def aibridge(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """This test's recording: its URLs (``anthropic_url``, ``openai_url``) and settings."""
    from ..errors import ConfigError
    from .settings import settings_for

    marker = request.node.get_closest_marker("aibridge")
    problem: str | None = None
    try:
        if marker is not None and marker.args:
            raise ConfigError(f"{request.node.nodeid}: @pytest.mark.aibridge takes keywords only")
        session = _session(request.config)
        settings = settings_for(
            request.node.path,
            request.node.nodeid,
            marker.kwargs if marker else {},
            session.defaults,
        )
        cassette = session.open(settings)
    except ConfigError as exc:
        problem = f"aibridge: {exc}"
    if problem is not None:
        # out of the except block: the error is shown once, not chained to its cause
        pytest.fail(problem, pytrace=False)
    request.node.stash[_CASSETTE] = cassette
    try:
        with cassette.guard:
            yield cassette
    finally:
        session.close(cassette)


@pytest.fixture
def aibridge_anthropic_url(aibridge: Cassette) -> str:
    """The base URL to give the Anthropic client under test."""
    return aibridge.anthropic_url


@pytest.fixture
def aibridge_openai_url(aibridge: Cassette) -> str:
    """The base URL to give the OpenAI client under test (it ends in ``/v1``)."""
    return aibridge.openai_url


@pytest.fixture
def aibridge_env(aibridge: Cassette, monkeypatch: pytest.MonkeyPatch) -> Cassette:
    """``ANTHROPIC_BASE_URL`` and ``OPENAI_BASE_URL`` pointed at aibridge for this test.

    When the test only replays, a missing ``ANTHROPIC_API_KEY`` / ``OPENAI_API_KEY`` gets
    a placeholder, since the SDKs refuse to build a client without one; recording needs
    the real ones.
    """
    monkeypatch.setenv("ANTHROPIC_BASE_URL", aibridge.anthropic_url)
    monkeypatch.setenv("OPENAI_BASE_URL", aibridge.openai_url)
    if aibridge.proxy is None:
        for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
            if not os.environ.get(name):
                monkeypatch.setenv(name, KEY_PLACEHOLDER)
    return aibridge
