"""What the server knows: node declarations, system stats, model lists, and `POST /free`, in ComfyUI's shapes."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from importlib import metadata
from typing import Any

from aiohttp import web

from api.responses import ApiError, optional_bool, read_json_object
from api.security import redacted_argv
from api.state import STATE
from engine.device_facts import read_memory
from engine.paths import MODEL_KINDS


async def object_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    info = await asyncio.get_running_loop().run_in_executor(None, state.registry.object_info, state.paths)
    return web.json_response(info)


async def object_info_one(request: web.Request) -> web.Response:
    state = request.app[STATE]
    decl = state.registry.get(request.match_info["class_type"])
    if decl is None:
        raise ApiError(404, "missing_node_type", "Node type not found", request.match_info["class_type"])
    info = await asyncio.get_running_loop().run_in_executor(None, decl.object_info, state.paths)
    return web.json_response({decl.class_type: info})


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _devices(ram_total: int, ram_free: int) -> list[dict[str, Any]]:
    """GPUs if torch is already loaded by the node packs (never imported here), else the CPU."""
    torch = sys.modules.get("torch")
    devices = []
    try:
        if torch is not None and torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(index)
                devices.append({"name": torch.cuda.get_device_name(index), "type": "cuda", "index": index,
                                "vram_total": total, "vram_free": free,
                                "torch_vram_total": torch.cuda.memory_reserved(index),
                                "torch_vram_free": torch.cuda.memory_reserved(index)
                                - torch.cuda.memory_allocated(index)})
    except Exception:  # a broken driver must not break the stats page
        devices = []
    return devices or [{"name": "cpu", "type": "cpu", "index": None, "vram_total": ram_total, "vram_free": ram_free,
                        "torch_vram_total": 0, "torch_vram_free": 0}]


def _argv(serving_comfyui: bool) -> list[str]:
    """The command line, token hidden. ComfyUI's API nodes (its paid cloud nodes) do not exist here:
    its editor reads `--disable-api-nodes` here to make no calls to api.comfy.org."""
    argv = redacted_argv(sys.argv)
    return [*argv, "--disable-api-nodes"] if serving_comfyui and "--disable-api-nodes" not in argv else argv


async def system_stats(request: web.Request) -> web.Response:
    ram_total, ram_free = read_memory()
    queue = request.app[STATE].queue
    argv = _argv(request.app[STATE].settings.front_end_dir is not None)
    return web.json_response({
        "system": {"os": os.name, "platform": platform.platform(), "ram_total": ram_total, "ram_free": ram_free,
                   "python_version": sys.version, "pytorch_version": _version("torch"),
                   "sdgraph_version": _version("sdgraph"), "embedded_python": False, "argv": argv},
        "devices": _devices(ram_total, ram_free),
        "workers": {"backend": queue.backend.name, "workers": queue.workers()},  # ours; ComfyUI has no such key
    })


async def workers(request: web.Request) -> web.Response:
    """Each worker: its device, state, running prompt, and the checkpoints and cache entries it holds."""
    queue = request.app[STATE].queue
    return web.json_response({"backend": queue.backend.name, "workers": queue.workers()})


def _models(state: Any, kind: str) -> list[str]:
    """The files of `kind` its loaders read: the suffixes of the one table, `MODEL_KINDS`."""
    return state.paths.list_models(kind)


async def embeddings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    names = await asyncio.get_running_loop().run_in_executor(None, _models, state, "embeddings")
    return web.json_response(sorted({os.path.splitext(name)[0] for name in names}))


async def model_kinds(request: web.Request) -> web.Response:
    return web.json_response(list(MODEL_KINDS))


async def models_of_kind(request: web.Request) -> web.Response:
    kind = request.match_info["folder"]
    if kind not in MODEL_KINDS:
        raise ApiError(404, "unknown_model_folder", f"No model folder {kind!r}", f"known: {', '.join(MODEL_KINDS)}")
    state = request.app[STATE]
    return web.json_response(await asyncio.get_running_loop().run_in_executor(None, _models, state, kind))


async def free(request: web.Request) -> web.Response:
    body = await read_json_object(request, allow_empty=True)
    unload, release = optional_bool(body, "unload_models"), optional_bool(body, "free_memory")
    request.app[STATE].queue.request_free(unload, release)
    return web.json_response({"unload_models": unload, "free_memory": release})


async def features(request: web.Request) -> web.Response:
    """The server's feature flags (ComfyUI's `/features`), as also sent over the WebSocket."""
    return web.json_response({"supports_preview_metadata": True,
                              "max_upload_size": request.app[STATE].settings.max_upload_bytes})


async def extensions(request: web.Request) -> web.Response:
    """Front-end extension scripts: none (ComfyUI's front end asks for this list on start)."""
    return web.json_response([])


ROUTES = [
    ("GET", "/object_info", object_info),
    ("GET", "/object_info/{class_type}", object_info_one),
    ("GET", "/system_stats", system_stats),
    ("GET", "/workers", workers),
    ("GET", "/embeddings", embeddings),
    ("GET", "/models", model_kinds),
    ("GET", "/models/{folder}", models_of_kind),
    ("POST", "/free", free),
    ("GET", "/features", features),
    ("GET", "/extensions", extensions),
]
