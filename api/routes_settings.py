"""ComfyUI's users and settings API: `GET /users` (single-user mode) and `/settings[/{id}]`.

The front end keeps its settings on the server: one JSON object per user, in
`--user-dir`/default/comfy.settings.json (ComfyUI's file, reachable through the user-data API
too, as in ComfyUI). `POST /settings` merges an object into it, `POST /settings/{id}` sets one
value; both write it atomically, one request at a time, so a crash or two tabs never lose it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from api.responses import in_thread, read_json, read_json_object
from api.state import STATE
from api.user_files import write_file

log = logging.getLogger("sdgraph.server")
SETTINGS_FILE = "comfy.settings.json"
# The lock that makes read-merge-write of the settings file one step, kept in the server's state.
SETTINGS_LOCK = "settings_lock"


def _settings_path(request: web.Request) -> Path:
    return request.app[STATE].settings.user_data_dir / SETTINGS_FILE


def _lock(request: web.Request) -> asyncio.Lock:
    return request.app[STATE].extra.setdefault(SETTINGS_LOCK, asyncio.Lock())


def read_settings(path: Path) -> dict[str, Any]:
    """The stored settings; an unreadable or damaged file counts as none (ComfyUI's choice: the
    front end then starts from its defaults instead of failing to load)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.error("The user settings file %s is damaged and was ignored: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _update_settings(path: Path, changes: dict[str, Any]) -> None:
    write_file(path, json.dumps({**read_settings(path), **changes}, indent=4).encode(), overwrite=True)


async def get_users(request: web.Request) -> web.Response:
    """Single-user mode, as ComfyUI answers it: `migrated` is whether the user's folder exists yet
    (when it does not, the front end moves its browser-stored settings to the server)."""
    exists = await in_thread(request.app[STATE].settings.user_data_dir.is_dir)
    return web.json_response({"storage": "server", "migrated": exists})


async def post_users(request: web.Request) -> web.Response:
    # ComfyUI's shape for this route's errors: {"error": message}.
    return web.json_response({"error": "This server has a single user; users cannot be added."}, status=400)


async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(await in_thread(read_settings, _settings_path(request)))


async def get_setting(request: web.Request) -> web.Response:
    """One setting's value, or null when it is not set."""
    settings = await in_thread(read_settings, _settings_path(request))
    return web.json_response(settings.get(request.match_info["id"]))


async def post_settings(request: web.Request) -> web.Response:
    """Merge a JSON object into the settings (keys not in it are kept)."""
    changes = await read_json_object(request)
    async with _lock(request):
        await in_thread(_update_settings, _settings_path(request), changes)
    return web.Response(status=200)


async def post_setting(request: web.Request) -> web.Response:
    """Set one setting to the body's JSON value (null included)."""
    setting_id = request.match_info["id"]
    value = await read_json(request)
    async with _lock(request):
        await in_thread(_update_settings, _settings_path(request), {setting_id: value})
    return web.Response(status=200)


ROUTES = [("GET", "/users", get_users),
          ("POST", "/users", post_users),
          ("GET", "/settings", get_settings),
          ("POST", "/settings", post_settings),
          ("GET", "/settings/{id}", get_setting),
          ("POST", "/settings/{id}", post_setting)]
