"""The web editor's files from `web/` at `/` (index.html, or a placeholder page until it exists).

With `--front-end comfyui`, ComfyUI's editor (the `comfyui-frontend-package` files) is at `/` and
ours at `/sdgraph/`. Registered last, as a catch-all for GET: unknown paths answer a JSON 404 like
any unknown route. Names resolve through `engine.paths.contained`, so nothing outside the editor's
folder is ever served.
"""

from __future__ import annotations

import hmac
import mimetypes
from pathlib import Path

from aiohttp import web

from api import routes_frontend
from api.responses import ApiError
from api.security import TOKEN_COOKIE, comfyui_csp, editor_csp
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
    return _file_in(request, request.app[STATE].settings.web_dir, editor_csp(request.host))


def _file_in(request: web.Request, root: Path, csp: str) -> web.StreamResponse:
    name = request.match_info["name"]
    try:
        path = contained(root, name)
    except UnsafePathError:
        raise ApiError(404, "not_found", "No such route or file", request.path) from None
    if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root.resolve()).parts):
        raise ApiError(404, "not_found", "No such route or file", request.path)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Type": content_type, "Content-Security-Policy": csp})


async def comfyui_index(request: web.Request) -> web.StreamResponse:
    """ComfyUI's editor page; opened with a valid `?token=`, it also gets the token as a cookie, since
    that editor sends no token of its own on its API calls, files and WebSocket."""
    root = request.app[STATE].settings.front_end_dir
    assert root is not None
    response = web.FileResponse(root / "index.html", headers={
        "Cache-Control": "no-cache", "Content-Security-Policy": comfyui_csp(request.host)})
    token = request.app[STATE].settings.token
    if token and hmac.compare_digest(request.query.get("token", "").encode(), token.encode()):
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
    return response


async def comfyui_file(request: web.Request) -> web.StreamResponse:
    root = request.app[STATE].settings.front_end_dir
    assert root is not None
    return _file_in(request, root, comfyui_csp(request.host))


async def no_favicon(request: web.Request) -> web.StreamResponse:
    """ComfyUI's editor sets its icon itself; the browser's own request for one gets an empty answer."""
    return web.Response(status=204)


async def our_editor_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/sdgraph/" + (f"?{request.query_string}" if request.query_string else ""))


def add_static_routes(app: web.Application) -> None:
    if app[STATE].settings.front_end_dir is None:
        app.router.add_get("/", index)
        app.router.add_get("/{name:.+}", static_file)
        return
    app.router.add_get("/sdgraph", our_editor_redirect)
    app.router.add_get("/sdgraph/", index)
    app.router.add_get("/sdgraph/{name:.+}", static_file)
    app.router.add_get("/", comfyui_index)
    app.router.add_get("/user.css", routes_frontend.user_css)  # the page links it at the root too
    app.router.add_get("/favicon.ico", no_favicon)
    app.router.add_get("/{name:.+}", comfyui_file)
