"""The routes ComfyUI's own editor calls beyond the API scripts use, answered in ComfyUI's shapes.

Its editor (`--front-end comfyui`) asks for these on start and from its side panels: translations
and workflow templates of custom node packs (none here), the model library (`/experiment/models`),
a model's safetensors metadata, and the server log with its live subscription (`/internal/logs`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from api.responses import ApiError, read_json_object
from api.state import STATE, ServerState
from engine.paths import MODEL_KINDS, UnsafePathError

LOG_LINES = 1_000             # log records kept for /internal/logs/raw
MAX_SAFETENSORS_HEADER = 2**20  # as ComfyUI: a larger header is not read
LOG_BUFFER = "log_buffer"     # ServerState.extra key
TERMINAL_SIZE = {"cols": 120, "rows": 40}  # ComfyUI reports its terminal's; we have none


class LogBuffer(logging.Handler):
    """The last log records as ComfyUI's `{"t", "m"}` entries; subscribed clients get each new one."""

    def __init__(self, state: ServerState) -> None:
        super().__init__(logging.INFO)
        self.state = state
        self.entries: deque[dict[str, str]] = deque(maxlen=LOG_LINES)
        self.subscribers: set[str] = set()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"t": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
                     "m": self.format(record) + "\n"}
        except Exception:  # a broken record must never break the code that logged it
            return
        self.entries.append(entry)
        for client_id in list(self.subscribers):
            self.state.hub.publish_threadsafe("logs", {"entries": [entry], "size": TERMINAL_SIZE}, client_id)


def attach_log_buffer(state: ServerState) -> None:
    """Keep the server's log from start-up on (records at the levels `--verbose` chooses)."""
    buffer = state.extra[LOG_BUFFER] = LogBuffer(state)
    logging.getLogger().addHandler(buffer)


def detach_log_buffer(state: ServerState) -> None:
    buffer = state.extra.pop(LOG_BUFFER, None)
    if buffer is not None:
        logging.getLogger().removeHandler(buffer)


def log_buffer(state: ServerState) -> LogBuffer:
    buffer = state.extra.get(LOG_BUFFER)
    if buffer is None:  # an app that was never started (tests calling handlers directly)
        attach_log_buffer(state)
        buffer = state.extra[LOG_BUFFER]
    return buffer


async def i18n(request: web.Request) -> web.Response:
    """Translations shipped by custom node packs, by locale: none (the editor has its own)."""
    return web.json_response({})


async def workflow_templates(request: web.Request) -> web.Response:
    """Template workflows shipped by custom node packs, by pack: none."""
    return web.json_response({})


async def global_subgraphs(request: web.Request) -> web.Response:
    """Subgraph blueprints shipped by custom node packs, by id: none."""
    return web.json_response({})


# ComfyUI serves these from its optional `comfyui-workflow-templates` package; we ship no templates.
TEMPLATE_INDEXES: dict[str, Any] = {"index_logo.json": {}, "fuse_options.json": None}


async def template_index(request: web.Request) -> web.Response:
    """The template browser's index files, empty: `index.json` (and `index.<locale>.json`) lists no
    categories, the logos and search options are the editor's defaults."""
    name = request.match_info["name"]
    if name in TEMPLATE_INDEXES:
        return web.json_response(TEMPLATE_INDEXES[name])
    if name == "index.json" or (name.startswith("index.") and name.endswith(".json") and name.count(".") == 2):
        return web.json_response([])
    raise ApiError(404, "not_found", "No such template file", name)


def _model_folders(state: ServerState) -> list[dict[str, Any]]:
    return [{"name": kind, "folders": [str(folder.resolve()) for folder in state.paths.model_dirs(kind)]}
            for kind in MODEL_KINDS]


async def experiment_model_folders(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(await asyncio.get_running_loop().run_in_executor(None, _model_folders, state))


def _model_files(state: ServerState, kind: str) -> list[dict[str, Any]]:
    """Each model file as ComfyUI lists it: its name in its folder and that folder's index."""
    files = []
    for index, folder in enumerate(state.paths.model_dirs(kind)):
        if not folder.is_dir():
            continue
        for name in state.paths.list_models(kind):
            path = folder / name
            if path.is_file():
                stat = path.stat()
                files.append({"name": name, "pathIndex": index, "modified": stat.st_mtime,
                              "created": stat.st_ctime, "size": stat.st_size})
    return files


async def experiment_models(request: web.Request) -> web.Response:
    kind = request.match_info["folder"]
    if kind not in MODEL_KINDS:
        raise ApiError(404, "unknown_model_folder", f"No model folder {kind!r}", f"known: {', '.join(MODEL_KINDS)}")
    state = request.app[STATE]
    return web.json_response(await asyncio.get_running_loop().run_in_executor(None, _model_files, state, kind))


def safetensors_metadata(path: Path) -> dict[str, Any] | None:
    """The `__metadata__` of a safetensors file's header, or None (no header, too large, no metadata)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            return None
        size = struct.unpack("<Q", head)[0]
        if size > MAX_SAFETENSORS_HEADER:
            return None
        try:
            header = json.loads(handle.read(size))
        except ValueError:
            return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else None


async def view_metadata(request: web.Request) -> web.Response:
    """A model's safetensors metadata (ComfyUI answers a bare 404 for anything it cannot show)."""
    kind, name = request.match_info["folder"], request.query.get("filename", "")
    if kind not in MODEL_KINDS or not name.endswith(".safetensors"):
        raise ApiError(404, "not_found", "No safetensors metadata", f"{kind}/{name}")
    state = request.app[STATE]
    try:
        path = state.paths.model_path(kind, name)
        metadata = await asyncio.get_running_loop().run_in_executor(None, safetensors_metadata, path)
    except (FileNotFoundError, UnsafePathError, OSError):
        metadata = None
    if metadata is None:
        raise ApiError(404, "not_found", "No safetensors metadata", f"{kind}/{name}")
    return web.json_response(metadata)


async def logs(request: web.Request) -> web.Response:
    """The recent log as one string (ComfyUI's `/internal/logs`)."""
    return web.json_response("".join(entry["m"] for entry in log_buffer(request.app[STATE]).entries))


async def logs_raw(request: web.Request) -> web.Response:
    return web.json_response({"entries": list(log_buffer(request.app[STATE]).entries), "size": TERMINAL_SIZE})


async def logs_subscribe(request: web.Request) -> web.Response:
    """`{"clientId", "enabled"}`: that client's WebSocket gets `logs` messages for each new record."""
    body = await read_json_object(request)
    client_id, enabled = body.get("clientId"), body.get("enabled")
    if not isinstance(client_id, str) or not isinstance(enabled, bool):
        raise ApiError(400, "invalid_body", "Expected {\"clientId\": string, \"enabled\": boolean}")
    subscribers = log_buffer(request.app[STATE]).subscribers
    if enabled:
        subscribers.add(client_id)
    else:
        subscribers.discard(client_id)
    return web.Response(status=200)


async def user_css(request: web.Request) -> web.StreamResponse:
    """The user's own stylesheet (`user.css` in their folder), which ComfyUI's editor page links
    twice; an empty one when there is none, so the page loads without a failed request."""
    path = request.app[STATE].settings.user_data_dir / "user.css"
    headers = {"Content-Type": "text/css", "Content-Disposition": "inline", "Cache-Control": "no-cache"}
    if path.is_file() and not path.is_symlink():
        return web.FileResponse(path, headers=headers)
    return web.Response(body=b"", headers=headers)


# The files ComfyUI's editor reads on start or from its panels, as a used ComfyUI has them: its node
# templates and its saved workflows' bookmarks (a hidden file, left out of the workflow listings).
STARTING_USER_FILES = {"comfy.templates.json": "[]", "workflows/.index.json": '{"favorites": []}'}


def prepare_user_folders(state: ServerState) -> None:
    """The folders ComfyUI's editor lists on start (saved workflows, subgraphs) and the files it reads,
    so a first start answers them as a used ComfyUI does rather than with a 404 each."""
    for folder in ("workflows", "subgraphs"):
        (state.settings.user_data_dir / folder).mkdir(parents=True, exist_ok=True)
    for name, text in STARTING_USER_FILES.items():
        path = state.settings.user_data_dir / name
        if not path.exists():
            path.write_text(text)


async def folder_paths(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({entry["name"]: entry["folders"] for entry in _model_folders(state)})


# Before the user-data routes, whose `/userdata/{file}` would answer 404 for a missing user.css.
USER_CSS_ROUTES = [("GET", "/userdata/user.css", user_css)]
ROUTES = [
    ("GET", "/i18n", i18n),
    ("GET", "/workflow_templates", workflow_templates),
    ("GET", "/templates/{name}", template_index),
    ("GET", "/global_subgraphs", global_subgraphs),
    ("GET", "/experiment/models", experiment_model_folders),
    ("GET", "/experiment/models/{folder}", experiment_models),
    ("GET", "/view_metadata/{folder}", view_metadata),
    ("GET", "/internal/logs", logs),
    ("GET", "/internal/logs/raw", logs_raw),
    ("PATCH", "/internal/logs/subscribe", logs_subscribe),
    ("GET", "/internal/folder_paths", folder_paths),
]
