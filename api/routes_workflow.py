"""`POST /workflow/convert`: a UI-format workflow (or a PNG carrying one) → API format, on the server;
`GET /workflows[/{name}]`: the shareable workflows shipped in `workflows/`, for the editor to open.

ComfyUI has no server-side converter (its front end converts in the browser); ours uses the node
declarations, so scripts can submit what the editor saves. The answer is the API-format workflow
itself, ready to send as `POST /prompt`'s `prompt`.
"""

from __future__ import annotations

import json

from aiohttp import web

from api.responses import ApiError, json_response_in_thread
from api.state import STATE
from engine.loading import PNG_SIGNATURE, workflow_from_json
from engine.paths import UnsafePathError, contained
from engine.pngmeta import PngMetadataError, workflow_from_png
from engine.workflow import WorkflowFormatError


def _convert(raw: bytes, registry) -> dict:
    try:
        if raw.startswith(PNG_SIGNATURE):
            return workflow_from_png(raw, registry).to_api()
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ApiError(400, "invalid_json", "The body is neither JSON nor a PNG", str(exc)) from None
        if isinstance(data, dict) and isinstance(data.get("workflow"), dict) and "nodes" not in data:
            data = data["workflow"]  # also accept {"workflow": <UI JSON>}
        return workflow_from_json(data, registry).workflow.to_api()
    except (WorkflowFormatError, PngMetadataError, ValueError) as exc:
        raise ApiError(400, "invalid_workflow", "The workflow could not be converted", str(exc),
                       node_id=getattr(exc, "node_id", None)) from None


async def convert_workflow(request: web.Request) -> web.Response:
    state = request.app[STATE]
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "invalid_json", "The request body is empty; expected a UI-format workflow")
    return await json_response_in_thread(lambda: _convert(raw, state.registry))


async def list_workflows(request: web.Request) -> web.Response:
    folder = request.app[STATE].settings.workflows_dir
    names = sorted(p.name for p in folder.glob("*.json") if p.is_file()) if folder.is_dir() else []
    return web.json_response(names)


async def get_workflow(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    try:
        path = contained(request.app[STATE].settings.workflows_dir, name)
    except UnsafePathError:
        path = None
    if path is None or path.suffix != ".json" or not path.is_file():
        raise ApiError(404, "workflow_not_found", "No such workflow", name)
    return web.FileResponse(path, headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})


ROUTES = [("POST", "/workflow/convert", convert_workflow),
          ("GET", "/workflows", list_workflows),
          ("GET", "/workflows/{name}", get_workflow)]
