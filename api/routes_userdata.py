"""ComfyUI's user-data API: the user's own files on the server (saved workflows, user.css, ...).

`GET /userdata?dir=`, `GET /v2/userdata?path=`, and `GET/POST/DELETE /userdata/{file}`,
`POST /userdata/{file}/move/{dest}`, with ComfyUI's parameters, shapes and status codes, so a
workflow saved from one browser opens in another. `{file}` holds slashes URL-encoded
(`workflows%2Fa.json`). The server has one user, ComfyUI's single-user `default`: like ComfyUI
without `--multi-user`, it ignores the `comfy-user` header. Files live in `--user-dir`/default;
nothing outside it is ever read or written (api/user_files.py).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from api.responses import ApiError, in_thread
from api.state import STATE
from api.user_files import (
    delete_file,
    file_info,
    list_files,
    list_tree,
    move_file,
    relative_name,
    resolve_user_path,
    write_file,
)

# What a user file may be served as; anything else goes out as application/octet-stream. Every file
# is an attachment (never rendered in the app's origin) except the user's own stylesheet.
SAFE_TYPES = frozenset({"application/json", "text/plain", "text/csv", "image/png", "image/jpeg", "image/webp",
                        "image/gif", "application/octet-stream"})
USER_CSS = "user.css"
# A user file opened as a page can do nothing (the same policy as /view).
SANDBOX_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def user_root(request: web.Request) -> Path:
    """The requesting user's folder, resolved (there is one user: `default`)."""
    return request.app[STATE].settings.user_data_dir.resolve()


def _flag(request: web.Request, name: str, default: str = "false") -> bool:
    """A query flag as ComfyUI reads it: true only when it says "true"."""
    return request.query.get(name, default).lower() == "true"


def _overwrite(request: web.Request) -> bool:
    """ComfyUI overwrites unless told `overwrite=false` (exactly that)."""
    return request.query.get("overwrite", "true") != "false"


def _file_param(request: web.Request, param: str = "file") -> Path:
    """The file named by a path parameter: 403 when it leaves the user's folder or is the folder."""
    root = user_root(request)
    path = resolve_user_path(root, request.match_info.get(param, ""))
    if path == root:
        raise ApiError(403, "path_not_allowed", "The path names the user's folder itself, not a file")
    return path


def _describe(path: Path, root: Path, full_info: bool) -> object:
    return file_info(path, root) if full_info else relative_name(path, root)


async def list_userdata(request: web.Request) -> web.Response:
    """Files of `dir`: names relative to it, `[name, *parts]` with `split`, FileInfo with `full_info`."""
    directory = request.query.get("dir", "")
    if not directory:
        raise ApiError(400, "missing_dir", "The 'dir' query parameter is required")
    root = user_root(request)
    folder = resolve_user_path(root, directory)
    if not folder.exists():
        raise ApiError(404, "dir_not_found", "Directory not found", directory)
    recurse, full_info, split = _flag(request, "recurse"), _flag(request, "full_info"), _flag(request, "split")

    def build() -> list:
        if not folder.is_dir():
            return []  # ComfyUI's glob finds nothing under a file
        result: list = []
        for path in list_files(folder, root, recurse):
            name = relative_name(path, folder)
            result.append(file_info(path, folder) if full_info else [name, *name.split("/")] if split else name)
        return result

    return web.json_response(await in_thread(build))


async def list_userdata_v2(request: web.Request) -> web.Response:
    """Everything under `path` (default: the whole folder) as `{name, path, type, size?, modified?}`;
    paths relative to the user's folder. A user with no folder yet has an empty one."""
    root = user_root(request)
    requested = request.query.get("path", "")
    # ComfyUI decodes `path` once more and answers 400, not 403, for one that leaves the folder.
    target = resolve_user_path(root, requested, status=400) if requested else root
    if not target.exists():
        if target == root:
            return web.json_response([])
        raise ApiError(404, "path_not_found", "Requested path not found", requested)
    if not target.is_dir():
        raise ApiError(400, "not_a_directory", "Requested path is not a directory", requested)
    return web.json_response(await in_thread(list_tree, target, root))


async def get_userdata(request: web.Request) -> web.StreamResponse:
    path = _file_param(request)
    if not path.is_file():
        raise ApiError(404, "file_not_found", "No such file", request.match_info["file"])
    if path == user_root(request) / USER_CSS:
        content_type, disposition = "text/css", "inline"
    else:
        guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        content_type = guessed if guessed in SAFE_TYPES else "application/octet-stream"
        disposition = "attachment"
    return web.FileResponse(path, headers={"Content-Type": content_type, "Content-Disposition": disposition,
                                           "Content-Security-Policy": SANDBOX_CSP, "Cache-Control": "no-cache"})


async def post_userdata(request: web.Request) -> web.Response:
    """Store the body as the file (bounded by the server's body limit: 413 beyond it); answers the
    path relative to the user's folder, or its FileInfo with `full_info=true`."""
    path = _file_param(request)
    overwrite, full_info = _overwrite(request), _flag(request, "full_info")
    if not overwrite and path.exists():
        raise ApiError(409, "file_exists", "File already exists", request.match_info["file"])
    data = await request.read()
    await in_thread(write_file, path, data, overwrite)
    return web.json_response(_describe(path, user_root(request), full_info))


async def delete_userdata(request: web.Request) -> web.Response:
    await in_thread(delete_file, _file_param(request))
    return web.Response(status=204)


async def move_userdata(request: web.Request) -> web.Response:
    """Rename `{file}` to `{dest}`: 404 without a source, 409 when `dest` exists and `overwrite=false`."""
    source = _file_param(request)
    if not source.exists():
        raise ApiError(404, "file_not_found", "No such file", request.match_info["file"])
    dest = _file_param(request, "dest")
    overwrite, full_info = _overwrite(request), _flag(request, "full_info")
    if not overwrite and dest.exists():
        raise ApiError(409, "file_exists", "File already exists", request.match_info["dest"])
    await in_thread(move_file, source, dest, overwrite)
    return web.json_response(_describe(dest, user_root(request), full_info))


ROUTES = [("GET", "/userdata", list_userdata),
          ("GET", "/v2/userdata", list_userdata_v2),
          ("GET", "/userdata/{file}", get_userdata),
          ("POST", "/userdata/{file}", post_userdata),
          ("DELETE", "/userdata/{file}", delete_userdata),
          ("POST", "/userdata/{file}/move/{dest}", move_userdata)]
