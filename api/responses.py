"""Request parsing and error answers shared by the routes.

Every error a request can meet is an `ApiError`, answered as JSON `{"error": {type, message,
details, extra_info}}` with a 4xx status (503 when the server is full); the error middleware turns it (and anything
unexpected) into a response, so no handler ever leaks a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Callable, TypeVar

from aiohttp import web

T = TypeVar("T")
# Bodies at least this large are decoded in a worker thread, so a big graph never stalls the event loop.
OFF_LOOP_BYTES = 64 * 1024


class ApiError(Exception):
    """A request's error: HTTP `status`, a machine-readable `type` and a message a user can act on."""

    def __init__(self, status: int, error_type: str, message: str, details: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.details = details
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.error_type, self.message, self.details, self.extra)


def error_body(error_type: str, message: str, details: str = "", extra_info: dict[str, Any] | None = None,
               **body: Any) -> dict[str, Any]:
    """The one shape of an error answer, `{"error": {type, message, details, extra_info}}` plus `body`'s keys."""
    return {"error": {"type": error_type, "message": message, "details": details, "extra_info": extra_info or {}},
            **body}


def error_response(status: int, error_type: str, message: str, details: str = "", **body: Any) -> web.Response:
    return web.json_response(error_body(error_type, message, details, **body), status=status)


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run work proportional to a request's size (parsing, encoding, reading the store) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(function, *args))


async def json_response_in_thread(build: Callable[[], Any], status: int = 200) -> web.Response:
    """A JSON answer built and encoded in a worker thread: a big answer never stalls other requests."""
    body = await in_thread(lambda: _encode(build()))
    return web.Response(body=body, status=status, content_type="application/json")


def _encode(data: Any) -> bytes:
    """JSON bytes; a dict item by item, so the encoder lets go of the GIL between items (a 15 MB
    history in one `json.dumps` call would hold it, and so stall the event loop, for its whole length)."""
    if not isinstance(data, dict):
        return json.dumps(data).encode()
    return ("{" + ", ".join(f"{json.dumps(str(k))}: {json.dumps(v)}" for k, v in data.items()) + "}").encode()


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    """The body as JSON whatever its Content-Type (ComfyUI clients send text/plain, form types…).

    Bodies over the app's `client_max_size` are refused by aiohttp (413); an empty body is None
    when `allow_empty`, else a 400 like any malformed JSON.
    """
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return None
        raise ApiError(400, "invalid_json", "The request body is empty; expected JSON")
    try:
        return json.loads(raw) if len(raw) < OFF_LOOP_BYTES else await in_thread(json.loads, raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "The request body is not valid JSON", str(exc)) from None


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    data = await read_json(request, allow_empty=allow_empty)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", f"Expected a JSON object, got {type(data).__name__}")
    return data


def optional_bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_input_type", f"'{key}' must be true or false", f"received {value!r}")
    return value


def id_list(data: dict[str, Any], key: str) -> list[str]:
    """A list of prompt ids (`delete: [...]`); anything else is a 400."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "invalid_input_type", f"'{key}' must be a list of prompt ids (strings)")
    return value


def query_int(request: web.Request, name: str, default: int | None = None, minimum: int = 0) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"Query parameter '{name}' must be an integer",
                       f"received {raw!r}") from None
    if value < minimum:
        raise ApiError(400, "invalid_query", f"Query parameter '{name}' must be at least {minimum}",
                       f"received {value}")
    return value
