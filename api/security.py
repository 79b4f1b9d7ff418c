"""Middlewares: JSON errors for everything, the access token, and Origin/Host checks.

- Every error answer is JSON: 4xx for the client's mistakes, 503 when the server is full (queue,
  WebSocket clients), 500 only for a server bug, without a traceback.
- With a token (always when the server listens beyond loopback) each request must carry
  `Authorization: Bearer TOKEN`; GET requests may instead pass `?token=` (a browser cannot set
  headers on a WebSocket, an `<img src>` or the page itself).
- State-changing requests and WebSocket upgrades whose `Origin` is not this server are refused,
  so a web page cannot queue prompts on a localhost server behind the user's back.
- On a loopback-only server, a `Host` that is not a loopback name is refused: that is what a DNS
  rebinding attack looks like (the attacker's page becomes same-origin with its own host name).
- Every answer carries `X-Content-Type-Options: nosniff`, so a browser never runs a file as
  something other than the type it is served as; the editor's pages add `editor_csp`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import re
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger

from api.responses import ApiError, error_response
from api.state import STATE

log = logging.getLogger("sdgraph.server")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_STATUS_TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


# Host names that may appear in a CSP source expression as they are (no spaces, quotes or `;`).
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")


def editor_csp(host: str) -> str:
    """The Content-Security-Policy of the editor's pages: their own files only, nothing framed.

    The page's inline start-up script (and the import map it writes) needs 'unsafe-inline';
    WebSockets to the same host are named too, for browsers whose 'self' does not cover ws:.
    """
    sockets = f" ws://{host} wss://{host}" if _PLAIN_HOST.fullmatch(host or "") else ""
    return ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:; connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


def comfyui_csp(host: str) -> str:
    """ComfyUI's editor's pages: as ours, plus what its build needs (its translations compile with
    eval, WebAssembly loaded from data URLs, web workers and fonts from blobs); it still talks to
    this server only."""
    return (editor_csp(host).replace("script-src 'self' 'unsafe-inline'",
                                     "script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:")
            .replace("connect-src 'self'", "connect-src 'self' data: blob:")
            + "; worker-src 'self' blob:; font-src 'self' data:; media-src 'self' data: blob:")


def _with_security_headers(response: web.StreamResponse) -> web.StreamResponse:
    if not response.prepared:
        response.headers.setdefault(hdrs.X_CONTENT_TYPE_OPTIONS, "nosniff")
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: turns every error into a JSON answer, and sets the headers every answer carries."""
    try:
        return _with_security_headers(await _json_errors(request, handler))
    except web.HTTPException as exc:  # a redirect, or an error that is already JSON
        exc.headers.setdefault(hdrs.X_CONTENT_TYPE_OPTIONS, "nosniff")
        raise


async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        message = exc.reason
        if exc.status == 413:
            message = f"Request body too large (limit {request.client_max_size} bytes)"
        return error_response(exc.status, _STATUS_TYPES.get(exc.status, "http_error"), message, _allowed(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Internal server error", "the server log has the details")


def _allowed(exc: web.HTTPException) -> str:
    allowed = exc.headers.get(hdrs.ALLOW) if exc.headers else None
    return f"allowed methods: {allowed}" if allowed else ""


def is_loopback_host(hostname: str) -> bool:
    hostname = hostname.strip("[]").lower()
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
        return (parts.hostname or "").lower(), port
    except ValueError:
        return "", None


def same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether `Origin` names this server (as reached through `Host`). Loopback names are equivalent."""
    try:
        parts = urlsplit(origin)
        origin_host, origin_port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not origin_host:
        return False
    origin_port = origin_port or (443 if parts.scheme == "https" else 80)
    host_name, host_port = _host_port(host, scheme)
    if not host_name or origin_port != host_port:
        return False
    return origin_host == host_name or (is_loopback_host(origin_host) and is_loopback_host(host_name))


TOKEN_COOKIE = "sdgraph_token"  # set when ComfyUI's editor is opened with ?token= (api/routes_static.py)


def _token_ok(request: web.Request, token: str) -> bool:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(TOKEN_COOKIE)
    if cookie is not None and hmac.compare_digest(cookie.encode(), token.encode()):
        return True  # SameSite=Strict, and the Origin check below still applies to state changes
    query_token = request.query.get("token")
    return (request.method in ("GET", "HEAD") and query_token is not None
            and hmac.compare_digest(query_token.encode(), token.encode()))


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[STATE].settings
    host = request.headers.get(hdrs.HOST, "")
    if settings.loopback_only:
        hostname, _ = _host_port(host, request.scheme)
        if not is_loopback_host(hostname):
            raise ApiError(403, "host_not_allowed", "This server only answers requests addressed to a loopback "
                           "name (localhost, 127.0.0.1, [::1])", f"Host: {host!r}")
    if settings.token and not _token_ok(request, settings.token):
        response = error_response(401, "unauthorized", "A valid access token is required",
                                  "send 'Authorization: Bearer TOKEN' (or ?token=TOKEN on GET and WebSocket)")
        response.headers[hdrs.WWW_AUTHENTICATE] = "Bearer"
        return response
    is_upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and (request.method not in SAFE_METHODS or is_upgrade):
        if not same_origin(origin, host, request.scheme):
            raise ApiError(403, "origin_not_allowed", "Requests from another web site are refused",
                           f"Origin {origin!r} does not match Host {host!r}")
    return await handler(request)


def redacted_argv(argv: list[str]) -> list[str]:
    """The command line with the access token's value hidden (`/system_stats` shows the argv)."""
    shown, hide_next = [], False
    for arg in argv:
        if hide_next:
            shown.append("***")
        elif arg.startswith("--token="):
            shown.append("--token=***")
        else:
            shown.append(arg)
        hide_next = arg == "--token"
    return shown


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Access log lines without query strings: a GET may carry the token as `?token=`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.3fs', request.remote, request.method, request.path, response.status, time)
