"""`GET /ws?clientId=ID`: ComfyUI's event stream for one client, through the server's hub.

A client gets binary preview frames only when it asks: with `/ws?previews=1` (ComfyUI's original
frame), or with the message ComfyUI's front end sends on connect, `{"type": "feature_flags",
"data": {"supports_preview_metadata": true}}` (ComfyUI's frame with metadata); the server answers
that message with its own flags.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from aiohttp import WSMsgType, web

from api.responses import ApiError
from api.state import STATE
from api.websocket import LEGACY, WITH_METADATA, Connection
from engine.events import EXECUTING, STATUS

MAX_CLIENT_MESSAGE = 64 * 1024
MAX_CLIENT_ID = 200


def _wants_previews(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    state = request.app[STATE]
    hub = state.hub
    if hub.count >= hub.max_clients:
        raise ApiError(503, "too_many_clients", f"The server already has {hub.max_clients} WebSocket clients")
    client_id = request.query.get("clientId") or uuid.uuid4().hex
    if len(client_id) > MAX_CLIENT_ID:
        raise ApiError(400, "invalid_client_id", f"clientId is longer than {MAX_CLIENT_ID} characters")
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_CLIENT_MESSAGE)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "This route speaks WebSocket: connect with a WebSocket client")
    await ws.prepare(request)
    conn = Connection(ws, client_id, LEGACY if _wants_previews(request.query.get("previews")) else None,
                      hub.outbox_size)
    hub.register(conn)
    conn.task = asyncio.get_running_loop().create_task(conn.pump())
    try:
        conn.offer(json.dumps({"type": STATUS, "data": {"status": state.queue.status(), "sid": client_id}}))
        for running in state.queue.running_jobs():
            if running["client_id"] == client_id and running["node"]:
                conn.offer(json.dumps({"type": EXECUTING, "data": {
                    "node": running["node"], "display_node": running["node"], "prompt_id": running["prompt_id"]}}))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                _client_message(conn, message.data, state.settings.max_upload_bytes)
    finally:
        hub.unregister(conn)
        await conn.stop()
    return ws


def _client_message(conn: Connection, text: str, max_upload_bytes: int) -> None:
    """Messages from a client: only `feature_flags` means something; anything else is ignored."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return
    if not isinstance(message, dict) or message.get("type") != "feature_flags":
        return
    flags = message.get("data")
    if isinstance(flags, dict) and flags.get("supports_preview_metadata") is True:
        conn.previews = WITH_METADATA
    conn.offer(json.dumps({"type": "feature_flags", "data": {
        "supports_preview_metadata": True, "max_upload_size": max_upload_bytes}}))


ROUTES = [("GET", "/ws", websocket_handler)]
