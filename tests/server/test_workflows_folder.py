"""`GET /workflows` and `GET /workflows/{name}`: the shipped workflows the editor offers to open."""

from __future__ import annotations

import json

from tests.server.helpers import connect


async def test_lists_and_serves_the_json_files_of_the_workflows_folder(make_server, tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "b.json").write_text(json.dumps({"1": {"class_type": "Number", "inputs": {"value": 1}}}))
    (folder / "a.json").write_text("{}")
    (folder / "notes.txt").write_text("not a workflow")
    (tmp_path / "secret.json").write_text('{"secret": true}')
    server = make_server(workflows_dir=folder)
    async with connect(server) as api:
        assert await api.get("/workflows") == (200, ["a.json", "b.json"])
        assert await api.get("/api/workflows/b.json") == (200, {"1": {"class_type": "Number", "inputs": {"value": 1}}})
        for name in ("notes.txt", "missing.json", "..%2Fsecret.json", "%2E%2E%2Fsecret.json"):
            status, body = await api.get(f"/workflows/{name}")
            assert status == 404 and body["error"]["type"] == "workflow_not_found", name


async def test_a_missing_workflows_folder_lists_nothing(make_server, tmp_path):
    server = make_server(workflows_dir=tmp_path / "absent")
    async with connect(server) as api:
        assert await api.get("/workflows") == (200, [])
