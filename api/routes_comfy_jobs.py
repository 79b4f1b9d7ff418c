"""ComfyUI's job list (`GET /jobs?status=in_progress,pending&limit=&offset=`) and job detail
(`GET /jobs/{id}`), which its editor's queue and history panels read, answered from our job store in
ComfyUI's shape.

Our own `GET /jobs` and `GET /jobs/{id}` (api/routes_prompt.py) hand a request here when it names
ComfyUI's statuses, or when it comes from ComfyUI's editor (see `wants_comfy_shape`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.responses import ApiError, in_thread, query_int
from api.state import STATE, ServerState
from engine.events import EXECUTION_ERROR, EXECUTION_INTERRUPTED
from engine.jobstore import FINISHED, PENDING, RUNNING, Job

COMFY_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
MAX_SCAN = 10_000  # jobs read per request, newest first: the history's own cap


def is_comfy_query(status: str | None) -> bool:
    """Whether `status` is ComfyUI's list form (several statuses, or one only ComfyUI names)."""
    return status is not None and ("," in status or status in COMFY_STATUSES[1:])


def comfy_status(job: Job) -> str:
    if job.state == PENDING:
        return "pending"
    if job.state == RUNNING:
        return "in_progress"
    if job.status_str == "success":
        return "completed"
    interrupted = any(event == EXECUTION_INTERRUPTED for event, _ in job.messages)
    return "cancelled" if interrupted else "failed"


def _millis(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _preview_output(job: Job) -> tuple[dict[str, Any] | None, int]:
    """The first output file (what the panel shows as the job's thumbnail) and the number of files."""
    first, count = None, 0
    for node_id, output in job.outputs.items():
        for media_type, items in (output or {}).items():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and "filename" in item:
                    count += 1
                    if first is None:
                        first = {**item, "nodeId": node_id, "mediaType": media_type}
    return first, count


def comfy_job(job: Job) -> dict[str, Any]:
    preview, count = _preview_output(job)
    errors = [data for event, data in job.messages if event == EXECUTION_ERROR]
    workflow = ((job.extra_data or {}).get("extra_pnginfo") or {}).get("workflow") or {}
    return {"id": job.prompt_id, "status": comfy_status(job), "priority": job.display_number,
            "create_time": _millis(job.created_at) or 0, "execution_start_time": _millis(job.started_at),
            "execution_end_time": _millis(job.finished_at),
            "outputs_count": count if job.state == FINISHED else None, "preview_output": preview,
            "execution_error": errors[-1] if errors else None,
            "workflow_id": workflow.get("id") if isinstance(workflow, dict) else None}


def comfy_job_detail(job: Job) -> dict[str, Any]:
    """One job with what its editor reloads from it: the outputs, the run's status and messages, and
    the workflow as queued (`{"prompt", "extra_data"}`, whose `extra_pnginfo.workflow` it reopens)."""
    detail = comfy_job(job)
    if job.state == FINISHED:
        detail["outputs"] = job.outputs
        detail["execution_status"] = {"status_str": job.status_str, "completed": job.status_str == "success",
                                      "messages": job.messages}
    detail["workflow"] = {"prompt": job.prompt, "extra_data": job.extra_data}
    return detail


def wants_comfy_shape(request: web.Request) -> bool:
    """Whether `GET /jobs/{id}` is asked for in ComfyUI's shape: `?shape=comfyui`, or a request from
    ComfyUI's editor, which sends a `Comfy-User` header with every API call (our clients never do)."""
    return request.query.get("shape") == "comfyui" or "Comfy-User" in request.headers


def comfy_jobs(state: ServerState, wanted: set[str], limit: int, offset: int) -> dict[str, Any]:
    states = {s for s, names in ((PENDING, {"pending"}), (RUNNING, {"in_progress"}),
                                 (FINISHED, {"completed", "failed", "cancelled"})) if names & wanted}
    matching: list[Job] = []
    for job_state in states:
        matching += [job for job in state.store.jobs(job_state, MAX_SCAN, 0) if comfy_status(job) in wanted]
    matching.sort(key=lambda job: job.number, reverse=True)  # newest first, as ComfyUI lists them
    page = matching[offset:offset + limit]
    return {"jobs": [comfy_job(job) for job in page],
            "pagination": {"offset": offset, "limit": limit, "total": len(matching),
                           "has_more": offset + len(page) < len(matching)}}


async def get_comfy_jobs(request: web.Request) -> web.Response:
    wanted = {s.strip() for s in request.query.get("status", "").split(",") if s.strip()}
    unknown = wanted - set(COMFY_STATUSES)
    if unknown:
        raise ApiError(400, "invalid_query", f"status must be among {', '.join(COMFY_STATUSES)}",
                       f"received {sorted(unknown)}")
    limit = min(query_int(request, "limit", 200, minimum=1) or 200, 1000)
    offset = query_int(request, "offset", 0, minimum=0) or 0
    return web.json_response(await in_thread(comfy_jobs, request.app[STATE], wanted, limit, offset))
