"""Prompts, the queue, the history, interrupts and jobs, answered in the shapes of ComfyUI's API.

`POST /prompt` compiles the whole graph before queueing (every error at once, as `node_errors`;
the compiled prompt goes with the job to the dispatcher and the worker, so it is validated once)
and accepts JSON whatever the Content-Type; a UI-format workflow is converted first. `GET /jobs/{id}`
is ours: one job's status and outputs, to poll without a WebSocket (ComfyUI's shape for its editor).
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api import routes_comfy_jobs
from api.responses import (
    ApiError,
    error_body,
    error_response,
    id_list,
    in_thread,
    json_response_in_thread,
    optional_bool,
    query_int,
    read_json,
    read_json_object,
)
from api.state import STATE
from engine.events import EXECUTION_ERROR, EXECUTION_INTERRUPTED
from engine.execute import ValidationFailed
from engine.jobstore import FINISHED, PENDING, RUNNING, Job
from engine.ui_format import is_ui_format, ui_to_api
from engine.workflow import Workflow, WorkflowFormatError

MAX_PROMPT_ID = 200


def _reject(error_type: str, message: str, details: str = "", status: int = 400) -> web.Response:
    """A rejected `POST /prompt`: ComfyUI's `{error, node_errors}` (400, or 503 when the queue is full)."""
    return error_response(status, error_type, message, details, node_errors={})


def _field(body: dict[str, Any], key: str, kinds: tuple[type, ...], what: str) -> Any:
    value = body.get(key)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds):
        raise ValueError(f"'{key}' must be {what}, got {type(value).__name__}")
    return value


async def post_prompt(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await read_json(request)
    except ApiError as exc:
        return _reject(exc.error_type, exc.message, exc.details)
    if not isinstance(body, dict):
        return _reject("invalid_prompt", "Invalid prompt", f"expected a JSON object, got {type(body).__name__}")
    if body.get("prompt") is None:
        return _reject("no_prompt", "No prompt provided", "the body has no 'prompt' field")
    try:
        prompt_id = _field(body, "prompt_id", (str,), "a string")
        client_id = _field(body, "client_id", (str,), "a string")
        extra_data = dict(_field(body, "extra_data", (dict,), "an object") or {})
        number = _field(body, "number", (int, float), "a number")
        front = _field(body, "front", (bool,), "true or false") or False
        targets = _field(body, "partial_execution_targets", (list,), "a list of node ids")
    except ValueError as exc:
        error_type = "invalid_prompt_id" if "prompt_id" in str(exc) else "invalid_prompt"
        return _reject(error_type, "Invalid prompt", str(exc))
    if prompt_id is None:
        prompt_id = str(uuid.uuid4())
    elif len(prompt_id) > MAX_PROMPT_ID or not prompt_id.strip():
        return _reject("invalid_prompt_id", "Invalid prompt_id", f"must be 1 to {MAX_PROMPT_ID} characters")
    if number is not None and not math.isfinite(number):
        return _reject("invalid_prompt", "Invalid prompt", "'number' must be a finite number")
    if targets is not None:
        if not all(isinstance(t, (str, int)) and not isinstance(t, bool) for t in targets):
            return _reject("invalid_prompt", "Invalid prompt", "'partial_execution_targets' must list node ids")
        targets = [str(t) for t in targets]
    if client_id is not None:
        extra_data["client_id"] = client_id  # ComfyUI keeps it there; clients read it back from /queue

    status, text = await in_thread(_admit, state, body["prompt"], _Submission(
        prompt_id, client_id, extra_data, number, front, targets))
    return web.Response(text=text, status=status, content_type="application/json")


@dataclass
class _Submission:
    """What `POST /prompt` asks for, besides the prompt itself."""

    prompt_id: str
    client_id: str | None
    extra_data: dict[str, Any]
    number: float | None
    front: bool
    targets: list[str] | None


def _admit(state: Any, prompt: Any, ask: _Submission) -> tuple[int, str]:
    """Convert, compile and queue a prompt (in a worker thread: its cost grows with the graph).

    Returns the answer's status and JSON text. A prompt_id that is already stored with the same
    prompt is answered as the first submission was (a client's retry after a lost answer is safe).
    """
    extra_data = ask.extra_data
    try:
        if is_ui_format(prompt):
            workflow = ui_to_api(prompt, state.registry)
            extra_data.setdefault("extra_pnginfo", {}).setdefault("workflow", prompt)
            prompt = workflow.to_api()
        else:
            workflow = Workflow.from_api(prompt)
    except (WorkflowFormatError, ValueError) as exc:
        return _rejection("invalid_prompt", "Invalid prompt", str(exc))
    stored = _same_submission(state, ask.prompt_id, prompt)
    if stored is not None:
        return stored
    if state.store.remaining() >= state.settings.max_queue:
        return _rejection("queue_full", "The queue is full", f"{state.settings.max_queue} prompts are waiting; "
                          "try again when some have run", status=503)
    try:
        compiled = state.executor.compile(workflow, ask.targets, extra_data)
    except ValidationFailed as exc:
        return 400, json.dumps(exc.result.response())
    job = Job(prompt_id=ask.prompt_id, number=0, prompt=prompt, extra_data=extra_data,
              outputs_to_execute=compiled.plan.outputs, targets=ask.targets, client_id=ask.client_id,
              compiled=compiled)
    try:
        state.queue.submit(job, ask.number, ask.front)
    except KeyError:  # stored meanwhile by a concurrent request
        return _same_submission(state, ask.prompt_id, prompt) or _rejection(
            "invalid_prompt_id", "Invalid prompt_id", f"a prompt with id {ask.prompt_id!r} already exists")
    return 200, json.dumps(_accepted(job))


def _same_submission(state: Any, prompt_id: str, prompt: dict[str, Any]) -> tuple[int, str] | None:
    """The first answer again when `prompt_id` is stored with this same prompt; a 400 when with another."""
    stored = state.store.get(prompt_id)
    if stored is None:
        return None
    if stored.prompt != json.loads(json.dumps(prompt)):  # as stored: tuples read back as lists
        return _rejection("invalid_prompt_id", "Invalid prompt_id",
                          f"a different prompt with id {prompt_id!r} already exists")
    return 200, json.dumps(_accepted(stored))


def _accepted(job: Job) -> dict[str, Any]:
    return {"prompt_id": job.prompt_id, "number": job.display_number, "node_errors": {}}


def _rejection(error_type: str, message: str, details: str = "", status: int = 400) -> tuple[int, str]:
    """`_reject`'s answer as status and JSON text, for `_admit`, which runs in a worker thread."""
    return status, json.dumps(error_body(error_type, message, details, node_errors={}))


async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].queue.status())


async def get_queue(request: web.Request) -> web.Response:
    store = request.app[STATE].store

    def build() -> dict[str, Any]:
        running, pending = store.queue()
        return {"queue_running": [j.queue_item() for j in running], "queue_pending": [j.queue_item() for j in pending]}
    return await json_response_in_thread(build)


async def post_queue(request: web.Request) -> web.Response:
    queue = request.app[STATE].queue
    body = await read_json_object(request)
    removed = 0
    if optional_bool(body, "clear"):
        removed += queue.clear()
    ids = id_list(body, "delete")
    if ids:
        removed += queue.delete(ids)
    return web.json_response({"removed": removed})


async def post_interrupt(request: web.Request) -> web.Response:
    body = await read_json_object(request, allow_empty=True)
    prompt_id = body.get("prompt_id")
    if prompt_id is not None and not isinstance(prompt_id, str):
        raise ApiError(400, "invalid_input_type", "'prompt_id' must be a string")
    return web.json_response({"interrupted": request.app[STATE].queue.interrupt(prompt_id)})


async def get_history(request: web.Request) -> web.Response:
    """ComfyUI's history (`max_items`, `offset`); read and encoded in a thread, as it can be megabytes."""
    max_items = query_int(request, "max_items", None, minimum=0)
    offset = query_int(request, "offset", None, minimum=-1)
    store = request.app[STATE].store
    text = await in_thread(store.history_json, max_items, offset)
    return web.Response(text=text, content_type="application/json")


async def get_history_item(request: web.Request) -> web.Response:
    text = request.app[STATE].store.history_item_json(request.match_info["prompt_id"])
    return web.Response(text=text, content_type="application/json")


async def post_history(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    body = await read_json_object(request)
    removed = store.clear_history() if optional_bool(body, "clear") else 0
    ids = id_list(body, "delete")
    if ids:
        removed += store.delete_history(ids)
    return web.json_response({"removed": removed})


def job_summary(job: Job, state: Any, detail: bool = False) -> dict[str, Any]:
    """Our job view: status is pending, running, success, error or interrupted."""
    status = job.status_str if job.state == FINISHED else job.state
    summary: dict[str, Any] = {
        "id": job.prompt_id, "status": status, "number": job.display_number, "client_id": job.client_id,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "outputs_to_execute": job.outputs_to_execute,
    }
    if job.state == PENDING:
        summary["position"] = state.store.position(job.prompt_id)
    if job.state == RUNNING:
        running = next((r for r in state.queue.running_jobs() if r["prompt_id"] == job.prompt_id), None)
        summary["current_node"] = running["node"] if running else None
        summary["worker"] = running["worker"] if running else None
    if job.state == FINISHED:
        summary["outputs"] = job.outputs
        errors = [data for event, data in job.messages if event in (EXECUTION_ERROR, EXECUTION_INTERRUPTED)]
        summary["error"] = errors[-1] if errors else None
    if detail:
        summary["prompt"] = job.prompt
        summary["extra_data"] = job.extra_data
        summary["messages"] = job.messages
    return summary


async def get_job(request: web.Request) -> web.Response:
    """One job with its prompt: read and encoded in a thread, as a 100,000-node prompt takes a second."""
    state = request.app[STATE]
    job = await in_thread(state.store.get, request.match_info["prompt_id"])
    if job is None:
        raise ApiError(404, "job_not_found", "No job with this id", request.match_info["prompt_id"])
    if routes_comfy_jobs.wants_comfy_shape(request):  # ComfyUI's editor reopening a job
        return await json_response_in_thread(lambda: routes_comfy_jobs.comfy_job_detail(job))
    return await json_response_in_thread(lambda: job_summary(job, state, detail=True))


async def get_jobs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    wanted = request.query.get("status")
    if routes_comfy_jobs.is_comfy_query(wanted):  # ComfyUI's editor's form of this route
        return await routes_comfy_jobs.get_comfy_jobs(request)
    if wanted not in (None, PENDING, RUNNING, FINISHED):
        raise ApiError(400, "invalid_query", "status must be pending, running or finished", f"received {wanted!r}")
    limit = min(query_int(request, "limit", 100, minimum=1) or 100, 1000)
    offset = query_int(request, "offset", 0, minimum=0) or 0
    return await json_response_in_thread(
        lambda: {"jobs": [job_summary(job, state) for job in state.store.jobs(wanted, limit, offset)]})


ROUTES = [
    ("POST", "/prompt", post_prompt),
    ("GET", "/prompt", get_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("POST", "/interrupt", post_interrupt),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_item),
    ("POST", "/history", post_history),
    ("GET", "/jobs", get_jobs),
    ("GET", "/jobs/{prompt_id}", get_job),
]
