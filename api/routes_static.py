"""The web editor's files from `web/` at `/` (index.html, or a placeholder page until it exists).

Registered last, as a catch-all for GET: unknown paths answer a JSON 404 like any unknown route.
Names resolve through `engine.paths.contained`, so nothing outside `web/` is ever served.
"""

from __future__ import annotations

import mimetypes

from aiohttp import web

from api.responses import ApiError
from api.security import editor_csp
from api.state import STATE
from engine.paths import UnsafePathError, contained

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sdgraph</title></head>
<body style="font:15px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto">
<h1>sdgraph server</h1><p>The editor is not installed in <code>web/</code> yet.
The API is running: see <a href="docs">the API documentation</a>.</p></body></html>
"""


async def index(request: web.Request) -> web.StreamResponse:
    page = request.app[STATE].settings.web_dir / "index.html"
    csp = {"Content-Security-Policy": editor_csp(request.host)}
    if page.is_file():
        return web.FileResponse(page, headers={"Cache-Control": "no-cache", **csp})
    return web.Response(text=PLACEHOLDER, content_type="text/html", headers=csp)


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    root = request.app[STATE].settings.web_dir
    try:
        path = contained(root, name)
    except UnsafePathError:
        raise ApiError(404, "not_found", "No such route or file", request.path) from None
    if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root.resolve()).parts):
        raise ApiError(404, "not_found", "No such route or file", request.path)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Type": content_type,
                                           "Content-Security-Policy": editor_csp(request.host)})


def add_static_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/{name:.+}", static_file)
