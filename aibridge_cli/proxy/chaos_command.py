"""``aibridge chaos add|list|clear``: a running proxy's chaos rules, over
``/aibridge/chaos``; and what ``serve`` does with ``--chaos`` at start and at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from ..errors import ConfigError, TargetUnreachable

if TYPE_CHECKING:
    from .chaos import Chaos

# The chaos engine (.chaos) is imported by what uses it, not by the options serve shows in
# its help: 68 million instructions of ``aibridge serve --help``'s 865.

ChaosOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--chaos",
        metavar="SPEC",
        help="Inject a fault: KIND[@AT][,NAME=VALUE]..., e.g. '529,first=1' or "
        "'error-event@3,api=anthropic,p=0.2' (docs/chaos.md); repeat.",
    ),
]
ChaosFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--chaos-file",
        metavar="TOML",
        help="[[chaos]] rules (and a seed) from a TOML file; the --tools file's count too.",
    ),
]
ChaosSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--chaos-seed", metavar="N", help="Seed of the chaos draws (default 0, or the file's)."
    ),
]
ChaosReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--chaos-report",
        metavar="FILE",
        help="Write how clients reacted to the injected faults as JSON when serve stops.",
    ),
]


def load_chaos(
    specs: list[str], chaos_file: Path | None, tools_file: Path | None, seed: int | None
) -> Chaos:
    """The rules of ``--chaos``, then ``[[chaos]]`` of the tools file and ``--chaos-file``;
    ``--chaos-seed`` beats a file's ``seed``."""
    from ..tools import read_toml
    from .chaos import Chaos, Rule, parse_spec, rules_from_toml

    rules: list[Rule] = [parse_spec(spec) for spec in specs]
    file_seed: int | None = None
    sources = [(tools_file, "tools file", "see the README's injected tools section")]
    if chaos_file != tools_file:  # one file for both is read once
        sources.append((chaos_file, "chaos file", "see docs/chaos.md"))
    for path, what, hint in sources:
        if path is None:
            continue
        data = read_toml(path, what, hint)
        found, found_seed = rules_from_toml(data, str(path))
        rules += found
        file_seed = found_seed if found_seed is not None else file_seed
    if chaos_file is not None and not rules:
        raise ConfigError(f"{chaos_file}: no [[chaos]] rule", hint="see docs/chaos.md")
    chosen = seed if seed is not None else file_seed or 0
    return Chaos.of(rules, chosen)


def report_on_shutdown(chaos: Chaos, report_path: Path | None) -> None:
    """The reaction report: lines on stderr, and JSON in ``--chaos-report`` if given."""
    if not chaos.watching:
        return
    from ..console import stderr

    for line in chaos.reactions.lines():
        stderr.print(line, highlight=False, soft_wrap=True, markup=False)
    if report_path is not None:
        data = {**chaos.status(), "reactions": chaos.reactions.report()}
        try:
            report_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot write --chaos-report {report_path} ({exc.strerror})"
            ) from None


# -- aibridge chaos add|list|clear ----------------------------------------------------------

Action = Literal["add", "list", "clear"]
DEFAULT_URL = "http://127.0.0.1:8080"


def _call(method: str, url: str, token: str | None, **kwargs: Any) -> Any:
    import httpx

    headers = {"authorization": f"Bearer {token}"} if token else {}
    target = url.rstrip("/") + "/aibridge/chaos"
    try:
        response = httpx.request(method, target, headers=headers, timeout=10, **kwargs)
    except httpx.HTTPError as exc:
        raise TargetUnreachable(
            f"cannot reach {url} ({exc})", hint="is aibridge serve running there?"
        ) from None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 400:
        error = payload.get("error") if isinstance(payload, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.text[:200]
        raise ConfigError(f"{url} answered {response.status_code}: {message}")
    return payload


def _show(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        counts = f" matched={rule['matched']} struck={rule['struck']}" if "matched" in rule else ""
        settings = ",".join(
            f"{k}={v}" for k, v in rule.items() if k not in ("name", "kind", "matched", "struck")
        )
        typer.echo(f"{rule['name']}: {rule['kind']}{',' + settings if settings else ''}{counts}")


def chaos(
    action: Annotated[
        Action, typer.Argument(metavar="add|list|clear", help="What to do with the rules.")
    ],
    spec: Annotated[
        list[str] | None, typer.Argument(metavar="SPEC...", help="add: the rules to add.")
    ] = None,
    url: Annotated[str, typer.Option(metavar="URL", help="The running aibridge serve.")] = (
        DEFAULT_URL
    ),
    name: Annotated[str | None, typer.Option(metavar="NAME", help="clear: only this rule.")] = None,
    auth_token: Annotated[
        str | None,
        typer.Option(
            metavar="TOKEN", envvar="AIBRIDGE_AUTH_TOKEN", help="The proxy's --auth-token."
        ),
    ] = None,
) -> None:
    """Switch a running proxy's chaos rules on and off (docs/chaos.md): add rules, list
    them with their counts and the reaction report so far, or clear them.

    Example: aibridge chaos add '429,retry-after=2,first=1' --url http://127.0.0.1:8080
    """
    from .chaos import parse_spec

    if action == "add":
        if not spec:
            raise ConfigError("chaos add needs a SPEC, e.g. '529,first=1'")
        for text in spec:
            parse_spec(text)  # a mistake is this machine's error line, not the proxy's 400
        _show(_call("POST", url, auth_token, json={"spec": spec})["added"])
    elif action == "list":
        payload = _call("GET", url, auth_token)
        typer.echo(f"seed {payload['seed']}, {len(payload['rules'])} rule(s)")
        _show(payload["rules"])
        typer.echo(json.dumps(payload["reactions"], indent=2))
    else:
        params = {"name": name} if name else None
        cleared = _call("DELETE", url, auth_token, params=params)["cleared"]
        typer.echo(f"cleared {cleared} rule(s)")
