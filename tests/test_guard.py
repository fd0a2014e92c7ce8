"""The guard's policy on its own (proxy/guard.py): headers in, a verdict out."""

from __future__ import annotations

import pytest

from aibridge_cli.config import GuardConfig
from aibridge_cli.errors import ConfigError
from aibridge_cli.headers import Headers
from aibridge_cli.proxy.guard import (
    Admit,
    Guard,
    Preflight,
    Refuse,
    Verdict,
    exposes_pool,
    is_loopback,
    split_host,
)

MESSAGES = ("POST", "/anthropic/v1/messages")
LOCAL = ("127.0.0.1", 8080)
TOKEN = "aibridge-token-0123456789-QRST"
JSON = ("content-type", "application/json")


def check(
    guard: Guard,
    *headers: tuple[str, str],
    route: tuple[str, str] = MESSAGES,
    local: tuple[str, int] | None = LOCAL,
) -> Verdict:
    return guard.check(route[0], route[1], list(headers), local)


def status(verdict: Verdict) -> int:
    if isinstance(verdict, Refuse):
        return verdict.status
    return 204 if isinstance(verdict, Preflight) else 200


DEFAULT = Guard(GuardConfig(), json_routes=[MESSAGES])


@pytest.mark.parametrize(
    ("host", "local", "expected"),
    [
        ("127.0.0.1:8080", LOCAL, 200),
        ("localhost:8080", LOCAL, 200),
        ("LocalHost:8080", LOCAL, 200),  # host names know no case
        ("[::1]:8080", LOCAL, 200),
        ("[::1]:8080", ("::1", 8080), 200),
        ("192.168.1.5:8080", ("192.168.1.5", 8080), 200),  # the address the client dialled
        ("[fe80::1]:8080", ("fe80::1", 8080), 200),
        ("localhost", ("127.0.0.1", 80), 200),  # no port: the default, 80
        ("localhost:80", ("127.0.0.1", 80), 200),
        ("localhost", LOCAL, 403),  # no port, but not served on 80
        ("localhost:8081", LOCAL, 403),  # another port: another server's name
        ("192.168.1.5:8080", LOCAL, 403),  # not the address this connection came to
        ("evil.example.com", LOCAL, 403),
        ("attacker.example:8080", LOCAL, 403),  # DNS rebinding: the page's own name
        ("localhost.:8080", LOCAL, 403),
        ("127.0.0.1:8080@evil", LOCAL, 403),
        ("127.0.0.1:http", LOCAL, 403),
        ("127.0.0.1:99999", LOCAL, 403),
        ("", LOCAL, 403),
        ("[::1", LOCAL, 403),
        ("localhost:1234", None, 200),  # not a socket (a memory pipe): no port to compare
        ("attacker.example:8080", None, 403),
    ],
)
def test_host_must_name_the_address_served(
    host: str, local: tuple[str, int] | None, expected: int
) -> None:
    assert status(check(DEFAULT, ("host", host), JSON, local=local)) == expected


def test_a_request_without_host_is_refused() -> None:
    assert status(check(DEFAULT, JSON)) == 403


def test_allowed_hosts_by_name_for_any_port_or_by_name_and_port() -> None:
    guard = Guard(GuardConfig(allowed_hosts=("Box.LAN", "proxy.example:9000")))
    assert status(check(guard, ("host", "box.lan:8080"))) == 200
    assert status(check(guard, ("host", "box.lan"))) == 200
    assert status(check(guard, ("host", "proxy.example:9000"))) == 200
    assert status(check(guard, ("host", "proxy.example:8080"))) == 403
    assert status(check(guard, ("host", "proxy.example"))) == 403
    assert status(check(guard, ("host", "other.lan:8080"))) == 403


def test_the_refusal_names_the_host_and_the_flag() -> None:
    verdict = check(DEFAULT, ("host", "evil.example.com"), JSON)
    assert verdict == Refuse(
        403, "host 'evil.example.com' is not served here; allow it with --allowed-host"
    )


def test_a_request_with_an_origin_is_refused_unless_allowed() -> None:
    good = ("host", "127.0.0.1:8080")
    refused = check(DEFAULT, good, ("origin", "https://evil.example.com"), JSON)
    assert isinstance(refused, Refuse)
    assert (refused.status, "https://evil.example.com" in refused.message) == (403, True)
    guard = Guard(
        GuardConfig(allowed_origins=("http://LOCALHOST:3000/", "https://app.example:443"))
    )
    admitted = check(guard, good, ("origin", "http://localhost:3000"), JSON)
    assert admitted == Admit(
        [good, ("origin", "http://localhost:3000"), JSON],
        [
            ("access-control-allow-origin", "http://localhost:3000"),
            ("access-control-expose-headers", "*"),
            ("vary", "origin"),
        ],
    )
    # Browsers leave the default port out; the allowed origin said it.
    assert status(check(guard, good, ("origin", "https://app.example"), JSON)) == 200
    assert status(check(guard, good, ("origin", "http://localhost:3001"), JSON)) == 403
    assert status(check(guard, good, ("origin", "null"), JSON)) == 403


@pytest.mark.parametrize(
    ("site", "expected"),
    [("cross-site", 403), ("same-site", 403), ("same-origin", 200), ("none", 200)],
)
def test_a_pages_plain_get_without_origin_is_known_by_sec_fetch_site(
    site: str, expected: int
) -> None:
    route = ("GET", "/anthropic/v1/models")
    verdict = check(DEFAULT, ("host", "127.0.0.1:8080"), ("sec-fetch-site", site), route=route)
    assert status(verdict) == expected


def test_star_admits_every_origin() -> None:
    guard = Guard(GuardConfig(allowed_origins=("*",)))
    verdict = check(guard, ("host", "127.0.0.1:8080"), ("origin", "https://any.example"), JSON)
    assert isinstance(verdict, Admit)
    assert ("access-control-allow-origin", "https://any.example") in verdict.cors


def test_no_origin_means_no_cors_headers() -> None:
    assert check(DEFAULT, ("host", "127.0.0.1:8080"), JSON) == Admit(
        [("host", "127.0.0.1:8080"), JSON], []
    )


def preflight(guard: Guard, origin: str, *extra: tuple[str, str]) -> Verdict:
    return check(
        guard,
        ("host", "127.0.0.1:8080"),
        ("origin", origin),
        ("access-control-request-method", "POST"),
        *extra,
        route=("OPTIONS", "/anthropic/v1/messages"),
    )


def test_a_preflight_is_answered_for_an_allowed_origin_only() -> None:
    guard = Guard(GuardConfig(allowed_origins=("http://localhost:3000",), auth_token=TOKEN))
    asked = ("access-control-request-headers", "content-type, x-api-key")
    # Answered before the token gate: a browser never sends credentials with a preflight.
    assert preflight(guard, "http://localhost:3000", asked) == Preflight(
        [
            ("access-control-allow-origin", "http://localhost:3000"),
            ("access-control-allow-methods", "POST"),
            ("access-control-max-age", "600"),
            ("vary", "origin, access-control-request-method, access-control-request-headers"),
            ("access-control-allow-headers", "content-type, x-api-key"),
        ]
    )
    assert status(preflight(guard, "https://evil.example.com", asked)) == 403
    # Chrome's Private Network Access asks before a public page reaches 127.0.0.1.
    pna = preflight(
        guard, "http://localhost:3000", ("access-control-request-private-network", "true")
    )
    assert isinstance(pna, Preflight)
    assert ("access-control-allow-private-network", "true") in pna.headers


def test_an_options_request_that_is_no_preflight_goes_to_the_app() -> None:
    verdict = check(DEFAULT, ("host", "127.0.0.1:8080"), route=("OPTIONS", "/healthz"))
    assert isinstance(verdict, Admit)


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
        ("application/vnd.api+json", 200),
        ("text/plain", 415),
        ("text/plain; charset=utf-8", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("text/json+json", 415),
        (None, 415),  # a Blob body without a type: a browser sends it without asking first
    ],
)
def test_intercepted_routes_take_json_only(media: str | None, expected: int) -> None:
    headers: Headers = [("host", "127.0.0.1:8080")]
    if media is not None:
        headers.append(("content-type", media))
    assert status(check(DEFAULT, *headers)) == expected


def test_other_routes_take_any_body() -> None:
    route = ("POST", "/anthropic/v1/messages/count_tokens")
    plain = ("content-type", "text/plain")
    assert status(check(DEFAULT, ("host", "127.0.0.1:8080"), plain, route=route)) == 200


def test_the_415_names_what_was_sent() -> None:
    verdict = check(DEFAULT, ("host", "127.0.0.1:8080"), ("content-type", "text/plain"))
    assert verdict == Refuse(
        415, "the body must be JSON (content-type application/json), not text/plain"
    )


TOKEN_GUARD = Guard(GuardConfig(auth_token=TOKEN), json_routes=[MESSAGES])
HOST = ("host", "127.0.0.1:8080")


@pytest.mark.parametrize(
    "credential",
    [
        ("x-api-key", TOKEN),
        ("authorization", f"Bearer {TOKEN}"),
        ("authorization", f"bearer  {TOKEN} "),
    ],
)
def test_the_token_passes_as_a_key_or_bearer_and_goes_no_further(
    credential: tuple[str, str],
) -> None:
    own_key = ("x-api-key", "sk-ant-client-own-key") if credential[0] != "x-api-key" else None
    headers = [HOST, JSON, credential, *([own_key] if own_key else [])]
    verdict = check(TOKEN_GUARD, *headers)
    # The token's header is gone; any other credential (the client's own key) stays.
    assert verdict == Admit([HOST, JSON, *([own_key] if own_key else [])], [])


@pytest.mark.parametrize(
    "credentials",
    [
        [],
        [("x-api-key", "sk-ant-some-other-key")],
        [("x-api-key", TOKEN[:-1])],
        [("x-api-key", TOKEN + "x")],
        [("authorization", f"Basic {TOKEN}")],
        [("authorization", TOKEN)],
        [("cookie", f"token={TOKEN}")],
        [("x-api-key", "caf\u00e9\u2603")],  # not even latin-1: cannot be the token
    ],
)
def test_a_missing_or_wrong_token_is_401(credentials: list[tuple[str, str]]) -> None:
    verdict = check(TOKEN_GUARD, HOST, JSON, *credentials)
    assert isinstance(verdict, Refuse)
    assert verdict.status == 401
    assert TOKEN not in verdict.message


def test_gates_run_in_order() -> None:
    """Host before Origin before token before JSON: each refusal says the first problem."""
    guard = Guard(GuardConfig(auth_token=TOKEN), json_routes=[MESSAGES])
    evil_host = ("host", "evil.example.com")
    origin = ("origin", "https://evil.example.com")
    plain = ("content-type", "text/plain")
    assert status(check(guard, evil_host, origin, plain)) == 403
    refused = check(guard, HOST, origin, plain)
    assert isinstance(refused, Refuse)
    assert "origin" in refused.message
    assert status(check(guard, HOST, plain)) == 401
    assert status(check(guard, HOST, plain, ("x-api-key", TOKEN))) == 415


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("allowed_hosts", "http://box.lan"),
        ("allowed_hosts", "box.lan:port"),
        ("allowed_hosts", ""),
        ("allowed_origins", "localhost:3000"),
        ("allowed_origins", "http://localhost:3000/app"),
    ],
)
def test_malformed_allow_lists_are_config_errors(option: str, value: str) -> None:
    config = GuardConfig(**{option: (value,)})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--allow"):
        Guard(config)


def test_split_host() -> None:
    assert split_host("LOCALHOST:8080") == ("localhost", 8080)
    assert split_host("[::1]") == ("[::1]", None)
    assert split_host("::1") is None  # IPv6 needs its brackets in a Host
    assert split_host(":8080") is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.5", False),
        ("box.lan", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_key_pool_beyond_loopback_without_a_token_is_exposed() -> None:
    assert exposes_pool("0.0.0.0", True, GuardConfig())
    assert exposes_pool("", True, GuardConfig())  # every interface
    assert exposes_pool("0.0.0.0", True, GuardConfig(insecure_open=True))  # allowed, still open
    assert not exposes_pool("0.0.0.0", True, GuardConfig(auth_token=TOKEN))
    assert not exposes_pool("0.0.0.0", False, GuardConfig())  # no pool: nothing to spend
    assert not exposes_pool("127.0.0.1", True, GuardConfig())


def test_the_token_is_not_in_the_config_repr() -> None:
    assert TOKEN not in repr(GuardConfig(auth_token=TOKEN))
