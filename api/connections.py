"""Slow and excess clients: the connection guard under every listening socket of the server.

aiohttp never times out a request head or a stalled body, so a few thousand half-open sockets
(slowloris) would hold the server's descriptors forever. `GuardedSite` listens like
`web.TCPSite`, but its connections close when a request head takes longer than
`header_timeout`, when a body stalls for `body_timeout`, and it refuses at once connections
beyond a cap per client address and in total. Upgraded connections (WebSockets) are never timed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from api.security import PathOnlyAccessLogger
from api.state import ServerSettings

log = logging.getLogger(__name__)

# Sent to a connection over the caps before closing it, so that ordinary clients see why.
_REFUSED_BODY = b"too many connections\n"
REFUSED_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(_REFUSED_BODY), _REFUSED_BODY))


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0     # seconds from the first byte of a request (or the connection) to its last header
    body_timeout: float = 60.0       # longest silence while a request body is still arriving
    max_per_address: int = 128       # open connections per client address (IPv6: per /64)
    max_total: int = 1_000           # open connections in all

    @classmethod
    def of(cls, settings: ServerSettings) -> "ConnectionLimits":
        return cls(header_timeout=settings.header_timeout, body_timeout=settings.body_timeout,
                   max_per_address=settings.max_connections_per_address, max_total=settings.max_connections)


def client_key(host: str) -> str:
    """What the per-address cap counts: the IPv4 address, or the IPv6 /64 (one host's usual share)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class ConnectionGuard:
    """The open connections of one listening site, counted per client address and in total."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.per_address: Counter[str] = Counter()
        self.total = 0

    def admit(self, key: str) -> bool:
        if self.total >= self.limits.max_total or self.per_address[key] >= self.limits.max_per_address:
            return False
        self.per_address[key] += 1
        self.total += 1
        return True

    def release(self, key: str) -> None:
        self.total -= 1
        self.per_address[key] -= 1
        if self.per_address[key] <= 0:
            del self.per_address[key]


# What a connection is waiting for, and so which deadline applies.
IDLE, HEAD, BODY, UPGRADED = "idle", "head", "body", "upgraded"


class GuardedRequestHandler(RequestHandler):
    """aiohttp's HTTP protocol, plus the caps at connection time and the head and body deadlines.

    Between requests a kept-alive connection is idle: aiohttp's keepalive_timeout closes it.
    The head deadline starts with the connection, then with the first byte of each later request,
    and is not extended by trickled bytes; the body deadline moves with every byte that arrives."""

    __slots__ = ("_guard", "_client", "_refused", "_phase", "_deadline", "_deadline_handle", "_body")

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._client = ""
        self._refused = False
        self._phase = IDLE
        self._deadline = 0.0
        self._deadline_handle: asyncio.TimerHandle | None = None
        self._body: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._client = client_key(str(peer[0])) if isinstance(peer, tuple) and peer else ""
        if not self._guard.admit(self._client):
            # Never registered with the server, never started: the descriptor is freed at once.
            self._refused = True
            log.debug("refused a connection from %s: over the connection caps", self._client)
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(REFUSED_RESPONSE)
            transport.close()
            return
        super().connection_made(transport)
        self._enter(HEAD, self._loop.time() + self._guard.limits.header_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
            self._deadline_handle = None
        self._body = None
        self._guard.release(self._client)
        self._refused = True  # released once, even if aiohttp calls this again
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        heads_before = self._request_count
        super().data_received(data)
        if self._upgraded or self._payload_parser is not None:
            self._enter(UPGRADED)
            return
        if self._phase == UPGRADED:  # an upgrade the handler declined: plain HTTP again
            self._phase = IDLE
        now = self._loop.time()
        if self._request_count > heads_before:  # a head completed: its body, if any, is next
            body = self._messages[-1][1] if self._messages else None
            if body is not None and not body.is_eof():
                self._body = body
                self._enter(BODY, now + self._guard.limits.body_timeout)
            else:
                self._enter(IDLE)
        elif self._phase == BODY:
            if self._body is None or self._body.is_eof():
                self._enter(IDLE)
            else:
                self._deadline = now + self._guard.limits.body_timeout
        elif self._phase == IDLE and data:
            self._enter(HEAD, now + self._guard.limits.header_timeout)

    def _enter(self, phase: str, deadline: float = 0.0) -> None:
        self._phase = phase
        if phase != BODY:
            self._body = None
        if phase in (IDLE, UPGRADED):
            if self._deadline_handle is not None:
                self._deadline_handle.cancel()
                self._deadline_handle = None
            return
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
        self._deadline = deadline
        self._deadline_handle = self._loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        """Close the connection if its deadline passed; re-arm lazily when it moved (one timer per connection)."""
        self._deadline_handle = None
        if self._phase in (IDLE, UPGRADED) or self.transport is None:
            return
        now = self._loop.time()
        if self._phase == BODY:
            if self._body is None or self._body.is_eof():
                self._enter(IDLE)
                return
            if not self.transport.is_reading():  # the handler is not reading: not the client's delay
                self._deadline = now + self._guard.limits.body_timeout
        if now < self._deadline:
            self._deadline_handle = self._loop.call_at(self._deadline, self._check_deadline)
            return
        log.debug("closed a connection from %s: request %s too slow", self._client, self._phase)
        self.force_close()


class GuardedSite(web.TCPSite):
    """`web.TCPSite` whose connections are `GuardedRequestHandler`s sharing one `ConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits,
                 **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.guard = ConnectionGuard(limits)

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site; TCPSite.start is replaced below
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        handler_args = dict(server._kwargs)

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, loop=loop, guard=self.guard, **handler_args)

        self._server = await loop.create_server(protocol, self._host, self._port, ssl=self._ssl_context,
                                                backlog=self._backlog, reuse_address=self._reuse_address,
                                                reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


async def start_server(app: web.Application, settings: ServerSettings, host: str, port: int,
                       access_log: logging.Logger | None = None) -> web.AppRunner:
    """Start the app (its startup hooks) and listen on host:port behind the guard; the caller cleans up the
    returned runner. `serve()` and the tests' live server both come through here."""
    runner = web.AppRunner(app, access_log=access_log, access_log_class=PathOnlyAccessLogger,
                           handle_signals=False, keepalive_timeout=settings.keepalive_timeout)
    await runner.setup()
    try:
        await GuardedSite(runner, host, port, ConnectionLimits.of(settings)).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
