"""Files: `GET /view`, `POST /upload/image`, `POST /upload/mask`, as ComfyUI's API has them.

Every name that arrives in a request is resolved with `engine.paths.contained`, which follows
symlinks and refuses anything that would leave its folder (403). Uploads are streamed with a
size bound, must be images within the pixel bound (all frames of an animation together), and never
overwrite a different file unless asked: `name.png` becomes `name (1).png` (ComfyUI's rule), while
re-uploading identical bytes returns the existing name.

`/view` serves a file inline only as the image type its first bytes show, whatever its name, and
anything else as an `application/octet-stream` attachment, under a sandboxing CSP: an upload named
`evil.html` can never run as a page of this server.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from PIL import Image, UnidentifiedImageError

from api.responses import ApiError
from api.state import STATE
from api.user_files import replace_atomically
from engine.paths import UnsafePathError, contained

PREVIEW_FORMATS = {"webp": ("WEBP", "image/webp"), "jpeg": ("JPEG", "image/jpeg"), "jpg": ("JPEG", "image/jpeg"),
                   "png": ("PNG", "image/png")}
CHANNELS = ("rgba", "rgb", "a")
MAX_FIELD_BYTES = 64 * 1024
MAX_RENAMES = 10_000
MAX_NAME_BYTES = 255  # a file name's limit on nearly every file system
# The image types /view serves inline, by their first bytes (what a browser would sniff too).
IMAGE_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                    (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"BM", "image/bmp"))
# What a /view answer may do if a browser opens it as a page: nothing (GitHub's raw files do the same).
VIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
# LoadImage's placeholder mask is 64x64 whatever the frame's size, so a frame costs at least that.
MIN_FRAME_PIXELS = 64 * 64


def _folder(state: Any, folder_type: str) -> Path:
    try:
        return state.paths.folder(folder_type)
    except UnsafePathError as exc:
        raise ApiError(400, "invalid_type", str(exc)) from None


def resolve_request_file(root: Path, subfolder: str, filename: str) -> Path:
    """`root/subfolder/filename`, refusing (403) any way out of `root`: `..`, absolute, symlink, NUL."""
    try:
        if subfolder:
            contained(root, subfolder)
        return contained(root, f"{subfolder}/{filename}" if subfolder else filename)
    except UnsafePathError as exc:
        raise ApiError(403, "path_not_allowed", "The requested path leaves its folder", str(exc)) from None


def _check_pixels(image: Image.Image, limit: int, all_frames: bool) -> None:
    """413 when the first frame, or with `all_frames` every frame together, passes `limit` pixels.

    Frames are counted from their headers, without decoding (Pillow gives every frame of a GIF the
    size of its logical screen, which is what a loader then allocates for each).
    """
    width, height = image.size
    if width * height > limit:
        raise ApiError(413, "image_too_large", f"Image of {width}x{height} pixels exceeds the limit of {limit} pixels")
    frames = getattr(image, "n_frames", 1) if all_frames else 1
    if frames > 1 and frames * max(width * height, MIN_FRAME_PIXELS) > limit:
        raise ApiError(413, "image_too_large", f"Animation of {frames} frames of {width}x{height} pixels exceeds "
                       f"the limit of {limit} pixels for all frames together")


def _open_image(data: bytes | Path, limit: int, all_frames: bool = False) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        _check_pixels(image, limit, all_frames)
    # Pillow raises ValueError for a text chunk over its limit, EOFError/SyntaxError for damaged frames.
    except (UnidentifiedImageError, OSError, EOFError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ApiError(400, "invalid_image", "The file is not an image this server can read", str(exc)) from None
    return image


def sniff_image_type(head: bytes) -> str | None:
    """The MIME type of an image file from its first 16 bytes, or None when it is no image /view serves."""
    for signature, content_type in IMAGE_SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    return None


def _disposition(kind: str, name: str) -> str:
    """`inline` or `attachment` with the name in both forms: ASCII (others as `_`) and RFC 5987 UTF-8."""
    plain = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in name)
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


# --- /view -----------------------------------------------------------------------------------

def _render(path: Path, preview: str | None, channel: str, limit: int) -> tuple[bytes, str]:
    """The file re-encoded for `preview=format;quality` and/or `channel=` (in a worker thread)."""
    fmt, quality = "png", 90
    if preview:
        fmt, _, quality_text = preview.partition(";")
        fmt = fmt.strip().lower()
        if fmt not in PREVIEW_FORMATS:
            raise ApiError(400, "invalid_preview", f"preview format {fmt!r} is not one of webp, jpeg, png")
        try:
            quality = int(quality_text) if quality_text else 90
        except ValueError:
            raise ApiError(400, "invalid_preview", f"preview quality {quality_text!r} is not an integer") from None
        quality = max(1, min(100, quality))
    with _open_image(path, limit) as image:
        try:
            image.load()
        except (OSError, Image.DecompressionBombError) as exc:
            raise ApiError(400, "invalid_image", "The file could not be decoded", str(exc)) from None
        if channel == "rgb":
            image = image.convert("RGB")
        elif channel == "a":
            alpha = image.getchannel("A") if "A" in image.getbands() else Image.new("L", image.size, 255)
            image = Image.new("RGBA", image.size, (0, 0, 0, 0))
            image.putalpha(alpha)
        pil_format, content_type = PREVIEW_FORMATS[fmt]
        if pil_format == "JPEG" and image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        elif image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA")
        out = io.BytesIO()
        image.save(out, format=pil_format, **({"quality": quality} if pil_format != "PNG" else {}))
    return out.getvalue(), content_type


async def view(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    query = request.query
    filename = query.get("filename")
    if not filename:
        raise ApiError(400, "missing_filename", "The 'filename' query parameter is required")
    path = resolve_request_file(_folder(state, query.get("type") or "output"), query.get("subfolder", ""), filename)
    if not path.is_file():
        raise ApiError(404, "file_not_found", "No such file", filename)
    channel = (query.get("channel") or "rgba").lower()
    if channel not in CHANNELS:
        raise ApiError(400, "invalid_channel", f"channel must be one of {', '.join(CHANNELS)}", channel)
    preview = query.get("preview")
    if not preview and channel == "rgba":
        with open(path, "rb") as handle:
            content_type = sniff_image_type(handle.read(16))
        headers = {"Content-Type": content_type or "application/octet-stream", "Content-Security-Policy": VIEW_CSP,
                   "Content-Disposition": _disposition("inline" if content_type else "attachment", path.name)}
        return web.FileResponse(path, headers=headers)
    loop = asyncio.get_running_loop()
    body, content_type = await loop.run_in_executor(None, _render, path, preview, channel,
                                                    state.settings.max_image_pixels)
    return web.Response(body=body, content_type=content_type, headers={
        "Content-Disposition": _disposition("inline", path.name), "Content-Security-Policy": VIEW_CSP})


# --- uploads ---------------------------------------------------------------------------------

async def read_form(request: web.Request, max_file_bytes: int) -> dict[str, Any]:
    """A multipart form: text fields as str, file fields as (filename, bytes), each bounded."""
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "invalid_form", "Expected a multipart/form-data body", f"got {request.content_type!r}")
    if request.content_length is not None and request.content_length > max_file_bytes + MAX_FIELD_BYTES * 4:
        raise ApiError(413, "upload_too_large", f"Upload exceeds the limit of {max_file_bytes} bytes")
    try:
        reader = await request.multipart()
        form: dict[str, Any] = {}
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                continue
            limit = max_file_bytes if part.filename else MAX_FIELD_BYTES
            data = bytearray()
            while chunk := await part.read_chunk(256 * 1024):
                data += chunk
                if len(data) > limit:
                    raise ApiError(413, "upload_too_large", f"Field {part.name!r} exceeds the limit of {limit} bytes")
            form[part.name] = (part.filename, bytes(data)) if part.filename else data.decode("utf-8", "replace")
        return form
    except (ValueError, AssertionError, UnicodeDecodeError, HttpProcessingError) as exc:  # e.g. a NUL in a header
        raise ApiError(400, "invalid_form", "The multipart body is malformed", str(exc).strip()) from None


def _plain_name(name: str) -> str:
    name = (name or "").strip()
    if (not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\")
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)):
        raise ApiError(400, "invalid_filename", "The file name must be a plain name without folders "
                       "or control characters", f"received {name!r}")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ApiError(400, "invalid_filename", f"The file name is longer than {MAX_NAME_BYTES} bytes",
                       f"received {name[:40]!r}...")
    return name


def _same_content(path: Path, data: bytes) -> bool:
    if path.stat().st_size != len(data):
        return False
    return hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()


def store_upload(root: Path, subfolder: str, filename: str, data: bytes, overwrite: bool) -> tuple[str, str]:
    """Write `data` as `filename` under `root/subfolder` (renaming, never clobbering); (name, subfolder)."""
    try:
        return _store_upload(root, subfolder, filename, data, overwrite)
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        raise ApiError(400, "invalid_filename", "The file name is too long for the file system",
                       f"received {filename[:40]!r}...") from None


def _store_upload(root: Path, subfolder: str, filename: str, data: bytes, overwrite: bool) -> tuple[str, str]:
    folder = resolve_request_file(root, subfolder, ".") if subfolder else root.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stem, ext = os.path.splitext(filename)
    for attempt in range(MAX_RENAMES):
        name = filename if attempt == 0 else f"{stem} ({attempt}){ext}"
        target = resolve_request_file(root, subfolder, name)
        if overwrite:
            replace_atomically(target, data)
            return name, subfolder
        if target.exists():
            if target.is_file() and _same_content(target, data):
                return name, subfolder
            continue
        try:
            with open(target, "xb") as handle:
                handle.write(data)
            return name, subfolder
        except FileExistsError:
            continue
    raise ApiError(409, "name_exhausted", f"Too many files named like {filename!r}")


def _form_fields(form: dict[str, Any]) -> tuple[str, bytes, str, str, bool]:
    upload = form.get("image")
    if not isinstance(upload, tuple):
        raise ApiError(400, "missing_image", "The form needs a file field named 'image'")
    folder_type = form.get("type") or "input"
    subfolder = form.get("subfolder") or ""
    overwrite = str(form.get("overwrite", "")).strip().lower() in ("true", "1", "yes")
    return _plain_name(upload[0]), upload[1], folder_type, subfolder, overwrite


def _save_image_upload(state: Any, form: dict[str, Any]) -> dict[str, str]:
    filename, data, folder_type, subfolder, overwrite = _form_fields(form)
    with _open_image(data, state.settings.max_image_pixels, all_frames=True):
        pass
    name, subfolder = store_upload(_folder(state, folder_type), subfolder, filename, data, overwrite)
    return {"name": name, "subfolder": subfolder, "type": folder_type}


def _save_mask_upload(state: Any, form: dict[str, Any]) -> dict[str, str]:
    """Merge the uploaded image's alpha channel into the referenced original and store the result."""
    filename, data, folder_type, subfolder, overwrite = _form_fields(form)
    try:
        ref = json.loads(form.get("original_ref") or "")
    except ValueError:
        ref = None
    if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
        raise ApiError(400, "invalid_original_ref", "'original_ref' must be JSON {filename, subfolder?, type?}")
    limit = state.settings.max_image_pixels
    original_path = resolve_request_file(_folder(state, str(ref.get("type") or "input")),
                                         str(ref.get("subfolder") or ""), ref["filename"])
    if not original_path.is_file():
        raise ApiError(404, "file_not_found", "The original image does not exist", ref["filename"])
    with _open_image(original_path, limit) as original, _open_image(data, limit) as mask:
        merged = original.convert("RGBA")
        alpha = mask.getchannel("A") if "A" in mask.getbands() else mask.convert("L")
        if alpha.size != merged.size:
            alpha = alpha.resize(merged.size, Image.Resampling.LANCZOS)
        merged.putalpha(alpha)
        out = io.BytesIO()
        merged.save(out, format="PNG", compress_level=4)
    name, subfolder = store_upload(_folder(state, folder_type), subfolder, filename, out.getvalue(), overwrite)
    return {"name": name, "subfolder": subfolder, "type": folder_type}


async def upload_image(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await read_form(request, state.settings.max_upload_bytes)
    result = await asyncio.get_running_loop().run_in_executor(None, _save_image_upload, state, form)
    return web.json_response(result)


async def upload_mask(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await read_form(request, state.settings.max_upload_bytes)
    result = await asyncio.get_running_loop().run_in_executor(None, _save_mask_upload, state, form)
    return web.json_response(result)


ROUTES = [
    ("GET", "/view", view),
    ("POST", "/upload/image", upload_image),
    ("POST", "/upload/mask", upload_mask),
]
