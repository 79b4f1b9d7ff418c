"""The hub that fans the engine's events out to open WebSocket connections (the route: api/routes_ws.py).

Events of a prompt go to the sockets of the client id it was queued with (every socket when it
was queued without one, as ComfyUI does); `status` goes to everyone. Each socket has a bounded
outbox drained by its own task, so a slow client never holds up the worker or other clients:
previews are dropped for it when its outbox is full, and a client too slow for the JSON events
is disconnected (it can reconnect and read `/history`).

Binary preview frames go only to sockets that asked for them, in the layout they asked for:
- LEGACY: ComfyUI's original frame `[u32 1][u32 format: 1 JPEG, 2 PNG][image bytes]`;
- WITH_METADATA: ComfyUI's newer frame `[u32 4][u32 n][n bytes of JSON metadata][image bytes]`,
  whose metadata names the prompt and node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from typing import Any

from aiohttp import WSCloseCode, web

from engine.events import PREVIEW

log = logging.getLogger(__name__)
PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
IMAGE_FORMATS = {"JPEG": (1, "image/jpeg"), "JPG": (1, "image/jpeg"), "PNG": (2, "image/png")}
LEGACY, WITH_METADATA = "legacy", "metadata"


def preview_frame(kind: str, data: dict[str, Any]) -> bytes | None:
    """The binary frame for one `preview` event, in the socket's chosen layout (None: unknown format)."""
    fmt = IMAGE_FORMATS.get(str(data.get("format", "")).upper())
    image = data.get("data")
    if fmt is None or not isinstance(image, (bytes, bytearray)):
        return None
    if kind == LEGACY:
        return struct.pack(">II", PREVIEW_IMAGE, fmt[0]) + bytes(image)
    node = data.get("node")
    meta = json.dumps({"node_id": node, "display_node_id": node, "real_node_id": node, "parent_node_id": None,
                       "prompt_id": data.get("prompt_id"), "image_type": fmt[1]}).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + bytes(image)


class Connection:
    """One open socket: its client id, preview preference and outbox."""

    def __init__(self, ws: web.WebSocketResponse, client_id: str, previews: str | None, outbox_size: int) -> None:
        self.ws = ws
        self.client_id = client_id
        self.previews = previews
        self.outbox: asyncio.Queue[str | bytes | None] = asyncio.Queue(outbox_size)
        self.closing = False
        self.task: asyncio.Task | None = None

    def offer(self, message: str | bytes) -> None:
        """Queue a message; a full outbox drops a preview, or disconnects a client that fell behind."""
        if self.closing:
            return
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            if isinstance(message, str):
                self.closing = True
                asyncio.get_running_loop().create_task(
                    self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"client too slow"))

    async def pump(self) -> None:
        while (message := await self.outbox.get()) is not None:
            try:
                if isinstance(message, bytes):
                    await self.ws.send_bytes(message)
                else:
                    await self.ws.send_str(message)
            except (ConnectionError, RuntimeError):
                return

    async def stop(self) -> None:
        self.closing = True
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass


class Hub:
    """The open sockets by client id; events arrive from the worker thread via `publish_threadsafe`."""

    def __init__(self, max_clients: int = 1_000, outbox_size: int = 2_048) -> None:
        self.max_clients = max_clients
        self.outbox_size = outbox_size
        self.clients: dict[str, set[Connection]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @property
    def count(self) -> int:
        return sum(len(conns) for conns in self.clients.values())

    def publish_threadsafe(self, event: str, data: dict[str, Any], client_id: str | None) -> None:
        """Hand an event to the event loop (callable from any thread); FIFO order is kept."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.publish, event, data, client_id)
            except RuntimeError:  # the loop closed meanwhile: nobody is listening any more
                pass

    def publish(self, event: str, data: dict[str, Any], client_id: str | None) -> None:
        """Send an event to `client_id`'s sockets, or to all sockets when it is None (loop thread only)."""
        if client_id is None:
            targets = [conn for conns in self.clients.values() for conn in conns]
        else:
            targets = list(self.clients.get(client_id, ()))
        if event == PREVIEW:
            frames: dict[str, bytes | None] = {}
            for conn in targets:
                if conn.previews:
                    if conn.previews not in frames:
                        frames[conn.previews] = preview_frame(conn.previews, data)
                    frame = frames[conn.previews]
                    if frame is not None:
                        conn.offer(frame)
            return
        if targets:
            try:
                message = json.dumps({"type": event, "data": data}, default=str)
            except (TypeError, ValueError, RecursionError) as exc:  # e.g. a dict keyed by tuples: drop it, go on
                log.warning("event %r not sent: its data cannot be written as JSON (%s)", event, exc)
                return
            for conn in targets:
                conn.offer(message)

    def register(self, conn: Connection) -> None:
        self.clients.setdefault(conn.client_id, set()).add(conn)

    def unregister(self, conn: Connection) -> None:
        conns = self.clients.get(conn.client_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.clients[conn.client_id]

    async def close_all(self) -> None:
        for conn in [c for conns in self.clients.values() for c in conns]:
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
