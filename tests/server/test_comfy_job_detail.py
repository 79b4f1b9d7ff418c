"""`GET /jobs/{id}` in ComfyUI's shape for ComfyUI's editor (its `Comfy-User` header, or `?shape=comfyui`),
while our own clients keep ours."""

from __future__ import annotations

from tests.server.helpers import connect

PROMPT = {"1": {"class_type": "Number", "inputs": {"value": 2}},
          "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
WORKFLOW = {"id": "wf-1", "nodes": [], "links": []}


async def test_comfyui_editor_gets_the_job_detail_it_reopens(server):
    async with connect(server) as api:
        prompt_id = await api.queue_prompt(PROMPT, extra_data={"extra_pnginfo": {"workflow": WORKFLOW}})
        await api.wait_done(prompt_id)
        for path, headers in ((f"/api/jobs/{prompt_id}", {"Comfy-User": ""}),
                              (f"/jobs/{prompt_id}?shape=comfyui", {})):
            status, job = await api.get(path, headers=headers)
            assert status == 200
            assert job["id"] == prompt_id and job["status"] == "completed" and job["create_time"] > 0
            assert job["workflow_id"] == "wf-1" and job["workflow"]["prompt"] == PROMPT
            assert job["workflow"]["extra_data"]["extra_pnginfo"]["workflow"] == WORKFLOW
            assert job["execution_status"]["status_str"] == "success" and job["execution_status"]["completed"]
            assert "outputs" in job


async def test_our_clients_keep_our_job_shape(server):
    async with connect(server) as api:
        prompt_id = await api.queue_prompt(PROMPT)
        await api.wait_done(prompt_id)
        status, job = await api.get(f"/api/jobs/{prompt_id}")
        assert status == 200 and job["status"] == "success" and "created_at" in job and "prompt" in job
        status, _ = await api.get("/api/jobs/nope", headers={"Comfy-User": ""})
        assert status == 404
