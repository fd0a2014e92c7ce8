"""``/aibridge/chaos``: chaos rules switched on and off while the proxy serves, sans-io.

``GET`` lists the rules with their counts and the reaction report so far; ``POST`` a JSON
object adds rules (``{"spec": "529,first=1"}``, a list of specs, or ``{"rule": {...}}``
with the ``[[chaos]]`` table's names); ``DELETE`` drops every rule, or the one named by
``?name=``. The guard stands in front of it as of every route (Host, Origin, the token).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ..errors import ConfigError
from ..headers import Headers, media_type
from .chaos import Chaos, parse_spec, rule_from

CHAOS_PATH = "/aibridge/chaos"
METHODS = ("GET", "HEAD", "POST", "DELETE")


@dataclass(frozen=True)
class Answer:
    """A status and either a JSON payload or an error message."""

    status: int
    payload: Any = None
    error: str | None = None


def answer(
    chaos: Chaos, method: str, target: str, headers: Headers, body: bytes, now: float
) -> Answer:
    if method in ("GET", "HEAD"):
        return Answer(200, {**chaos.status(), "reactions": chaos.reactions.report()})
    if method == "DELETE":
        name = parse_qs(target.partition("?")[2]).get("name", [None])[0]
        cleared = chaos.clear(name)
        if name is not None and not cleared:
            return Answer(404, error=f"no chaos rule named {name!r}")
        return Answer(200, {"cleared": cleared})
    if method != "POST":
        return Answer(405, error=f"use {', '.join(METHODS)}")
    if not media_type(headers).endswith(("/json", "+json")):
        return Answer(415, error="send the rules as application/json")
    try:
        data = json.loads(body)
    except ValueError:
        return Answer(400, error="the body is not JSON")
    try:
        rules = _rules(data)
        added = [chaos.add(rule, now).as_json() for rule in rules]
    except ConfigError as error:
        return Answer(400, error=str(error))
    return Answer(201, {"added": added})


def _rules(data: Any) -> list[Any]:
    if not isinstance(data, dict):
        raise ConfigError('send {"spec": "KIND,..."} or {"rule": {...}}')
    specs = data.get("spec", [])
    specs = [specs] if isinstance(specs, str) else specs
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        raise ConfigError("spec must be a string or a list of strings")
    rules = [parse_spec(spec) for spec in specs]
    table = data.get("rule")
    if table is not None:
        if not isinstance(table, dict):
            raise ConfigError("rule must be an object")
        rules.append(rule_from(table, "rule"))
    if not rules:
        raise ConfigError('no rule: send {"spec": "KIND,..."} or {"rule": {...}}')
    return rules
