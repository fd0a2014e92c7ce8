"""Who may use a listening server: the checks that keep web pages off the key pool.

Any page the user opens in a browser can send requests to 127.0.0.1, and a page whose
own host name is re-pointed at 127.0.0.1 (DNS rebinding) can read the answers too. Theory
of operation: the server hands every request's method, path and headers to
:meth:`Guard.check` before its app sees the request, and the guard passes it through
four gates, in this order:

1. **Host** names the address served: ``127.0.0.1``, ``localhost`` or ``[::1]`` with the
   port the connection came in on, the connection's own address, or a value allowed with
   ``--allowed-host``. A rebinding page sends its own name, so it stops here. (403)
2. **Origin**: only browsers send one, so a request carrying it is refused unless the
   origin was allowed with ``--allow-origin``; a CORS preflight from an allowed origin is
   answered here, since a preflight carries no credentials. A browser leaves Origin off a
   page's plain GET (an ``<img>`` or ``<script>`` source) but says where it came from in
   ``Sec-Fetch-Site``: one from another site's page is refused too. (403, or the
   preflight answer)
3. **Token**: with ``--auth-token``, the client presents it as its provider key
   (``x-api-key``) or as a bearer token, so SDKs and agents work unchanged; the header
   that carried it is dropped, so the token goes no further than this gate. (401)
4. **JSON**: the intercepted routes take only JSON bodies, so a form post, the one kind of
   cross-site POST a browser sends without asking first, cannot reach the loop. (415)

Sans-io: strings in, a verdict out; the server acts on it. Checks run once per request,
never per streamed event.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Collection
from dataclasses import dataclass

from ..config import GuardConfig
from ..errors import ConfigError
from ..headers import CREDENTIALS, Headers, header, media_type

Address = tuple[str, int]
"""A connection's local address, ``(ip, port)``: what the request was actually sent to."""

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
# Sec-Fetch-Site values that mean "sent by a page of another origin" ("same-site" includes
# another port on localhost); "same-origin" and "none" (typed in the address bar) do not.
FOREIGN_PAGE = frozenset({"cross-site", "same-site"})
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight answer
# A token is all that stands between the network and the key pool: 16 characters of
# `openssl rand -hex` are 64 bits, out of reach of guessing over HTTP.
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Admit:
    """Let the request through. ``headers`` are its headers without the token's header;
    ``cors`` go on the response, so the allowed page may read it."""

    headers: Headers
    cors: Headers


@dataclass(frozen=True)
class Refuse:
    """Answer with an error in the provider's shape; the app never sees the request."""

    status: int
    message: str


@dataclass(frozen=True)
class Preflight:
    """Answer a CORS preflight from an allowed origin: 204 with these headers."""

    headers: Headers


Verdict = Admit | Refuse | Preflight


def split_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` as the lower-case name (IPv6 in brackets) and the port; None when
    it is not a host at all."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]") + 1
        name, rest = value[:end], value[end:]
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if not name or name == "[" or "/" in name or "@" in name:
        return None
    if not rest:
        return name, None
    digits = rest[1:]
    if rest[0] != ":" or not digits.isdigit() or len(digits) > 5 or int(digits) > 65535:
        return None
    return name, int(digits)


def normalize_origin(value: str) -> str:
    """An origin as browsers serialize it: lower-case, no trailing slash, no default port."""
    origin = value.strip().rstrip("/").lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin


def check_token(token: str) -> None:
    """Refuse a token a client could guess: blank, or shorter than ``MIN_TOKEN_LENGTH``."""
    hint = f"use at least {MIN_TOKEN_LENGTH} characters, such as: openssl rand -hex 16"
    if not token.strip():
        raise ConfigError("--auth-token is blank", hint=hint)
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"--auth-token is {len(token)} characters", hint=hint)


def is_json(media: str) -> bool:
    """``application/json`` or a JSON-based ``application/...+json``."""
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (``localhost`` counts)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost, or "" (every interface)


def exposes_pool(host: str, pooled: bool, config: GuardConfig) -> bool:
    """True when serving on ``host`` would hand a key pool to anyone who can reach the
    address: a pool, an address beyond loopback, and no token."""
    return pooled and not is_loopback(host) and not config.auth_token


class Guard:
    """The four gates, built once from the settings and the app's JSON-only routes."""

    def __init__(self, config: GuardConfig, json_routes: Collection[tuple[str, str]] = ()) -> None:
        self._any_port: set[str] = set()
        self._exact: set[tuple[str, int]] = set()
        for value in config.allowed_hosts:
            parsed = split_host(value)
            if parsed is None:
                raise ConfigError(
                    f"--allowed-host takes a host name, with :PORT if you like, not {value!r}"
                )
            name, port = parsed
            if port is None:
                self._any_port.add(name)
            else:
                self._exact.add((name, port))
        origins = {normalize_origin(value) for value in config.allowed_origins}
        if "null" in origins:
            raise ConfigError(
                "--allow-origin null would admit every sandboxed iframe and local file page, "
                "whatever site it comes from",
                hint="give the page's own origin, such as http://localhost:3000",
            )
        for origin in origins - {"*"}:
            scheme, sep, rest = origin.partition("://")
            if not sep or not scheme or not rest or "/" in rest:
                raise ConfigError(
                    f"--allow-origin takes an origin such as http://localhost:3000, not {origin!r}"
                )
        self._any_origin = "*" in origins
        self._origins = frozenset(origins - {"*"})
        if config.auth_token is not None:
            check_token(config.auth_token)
        # Compared as bytes: a header value arrives as latin-1 text of the bytes sent.
        self._token = config.auth_token.encode() if config.auth_token else None
        self._json_routes = frozenset(json_routes)

    def check(self, method: str, path: str, headers: Headers, local: Address | None) -> Verdict:
        """The verdict on one request; ``local`` is the address it came in on (None for a
        stream that is not a socket, which no browser can reach)."""
        # the first value of each name, found in one pass (four names are looked up)
        named = {name.lower(): value for name, value in reversed(headers)}
        host = named.get("host")
        if not self._host_allowed(host, local):
            return Refuse(403, f"host {host!r} is not served here; allow it with --allowed-host")
        origin = named.get("origin")
        cors: Headers = []
        if origin is None and named.get("sec-fetch-site") in FOREIGN_PAGE:
            return Refuse(403, "a request from another site's web page may not use this server")
        if origin is not None:
            if not (self._any_origin or origin.lower() in self._origins):
                return Refuse(
                    403,
                    f"origin {origin!r} may not use this server; allow it with --allow-origin",
                )
            cors = [
                ("access-control-allow-origin", origin),
                ("access-control-expose-headers", "*"),
                ("vary", "origin"),
            ]
            asked = named.get("access-control-request-method")
            if method == "OPTIONS" and asked:
                return Preflight(_preflight_headers(origin, asked, headers))
        if self._token is not None:
            kept = [(k, v) for k, v in headers if not (k in CREDENTIALS and self._is_token(k, v))]
            if len(kept) == len(headers):
                return Refuse(
                    401,
                    "this aibridge needs its token: send it as the API key (x-api-key) "
                    "or as a bearer token",
                )
            headers = kept
        if (method, path) in self._json_routes and not is_json(media := media_type(headers)):
            media = media or "none"
            return Refuse(
                415, f"the body must be JSON (content-type application/json), not {media}"
            )
        return Admit(headers, cors)

    def _host_allowed(self, host: str | None, local: Address | None) -> bool:
        parsed = split_host(host) if host is not None else None
        if parsed is None:
            return False
        name, port = parsed
        if name in self._any_port or (port is not None and (name, port) in self._exact):
            return True
        if local is None:
            return name in LOOPBACK_NAMES
        ip, served_port = local
        if name not in LOOPBACK_NAMES and name != (f"[{ip}]" if ":" in ip else ip):
            return False
        # A Host without a port means the scheme's default, 80 for plain HTTP.
        return port == served_port or (port is None and served_port == 80)

    def _is_token(self, name: str, value: str) -> bool:
        assert self._token is not None
        if name == "authorization":
            scheme, _, value = value.strip().partition(" ")
            if scheme.lower() != "bearer":
                return False
        try:
            sent = value.strip().encode("latin-1")  # the bytes on the wire (see __init__)
        except UnicodeEncodeError:
            return False  # not from a socket, and not the token either
        return hmac.compare_digest(sent, self._token)


def _preflight_headers(origin: str, method: str, headers: Headers) -> Headers:
    """Allow what the page asked for: the request that follows passes every gate again."""
    answer = [
        ("access-control-allow-origin", origin),
        ("access-control-allow-methods", method),
        ("access-control-max-age", str(PREFLIGHT_MAX_AGE)),
        ("vary", "origin, access-control-request-method, access-control-request-headers"),
    ]
    asked = header(headers, "access-control-request-headers")
    if asked:
        answer.append(("access-control-allow-headers", asked))
    # Chrome asks before a public page may reach a private address (Private Network Access).
    if (header(headers, "access-control-request-private-network") or "").lower() == "true":
        answer.append(("access-control-allow-private-network", "true"))
    return answer
