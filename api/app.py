"""The aiohttp application: middlewares, every route (also under `/api/`), start-up and shutdown.

Routes live in one module per resource, each exposing `ROUTES`; the state they share is the
`ServerState` stored under `STATE` (see api/state.py).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from aiohttp import web

from api import (
    openapi,
    routes_files,
    routes_frontend,
    routes_info,
    routes_prompt,
    routes_settings,
    routes_static,
    routes_userdata,
    routes_workflow,
    routes_ws,
)
from api.security import error_middleware, security_middleware
from api.state import STATE, ServerState


def _add_routes(app: web.Application, routes: list[tuple[str, str, Any]]) -> None:
    """Each route at its ComfyUI path and again under `/api/` (the new front end's prefix)."""
    for method, path, handler in routes:
        for full_path in (path, "/api" + path):
            if method == "GET":
                app.router.add_get(full_path, handler)  # HEAD too
            else:
                app.router.add_route(method, full_path, handler)


async def _on_startup(app: web.Application) -> None:
    state = app[STATE]
    state.hub.attach(asyncio.get_running_loop())
    routes_frontend.attach_log_buffer(state)
    if state.settings.front_end_dir is not None:
        routes_frontend.prepare_user_folders(state)
    state.queue.start()


async def _on_shutdown(app: web.Application) -> None:
    await app[STATE].hub.close_all()


async def _on_cleanup(app: web.Application) -> None:
    state = app[STATE]
    routes_frontend.detach_log_buffer(state)
    await asyncio.get_running_loop().run_in_executor(None, state.queue.stop)
    state.store.close()


def create_app(state: ServerState) -> web.Application:
    app = web.Application(middlewares=[error_middleware, security_middleware],
                          client_max_size=state.settings.max_body_bytes)
    app[STATE] = state
    _add_routes(app, routes_frontend.USER_CSS_ROUTES)
    for module in (routes_prompt, routes_files, routes_info, routes_workflow, routes_userdata, routes_settings,
                   routes_ws, routes_frontend, openapi):
        _add_routes(app, module.ROUTES)
    routes_static.add_static_routes(app)  # last: its catch-all must not shadow the API
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app


def tune_garbage_collector() -> None:
    """Rare full collections, over what was made after start-up only: the server process's choice.

    A full collection walks every object and holds the interpreter while it does, so every request
    waits; big requests (a long history, a huge graph) allocate enough to start one after another.
    Freezing what start-up made (modules, node declarations, torch) takes it out of every walk, and
    a higher first threshold makes collections rarer; objects are still freed by reference counting.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
