"""ComfyUI's user-data API: workflows saved on the server, listed, moved and deleted in ComfyUI's
shapes and status codes, always inside `--user-dir`/default and never over the queue database."""

from __future__ import annotations

import json
import os

import pytest
from yarl import URL

from tests.server.helpers import connect

WORKFLOW = {"last_node_id": 1, "nodes": [{"id": 1, "type": "Number"}], "links": []}


def user_folder(folders):
    return folders["user"] / "default"


async def raw_request(api, method: str, encoded_path: str, **kw):
    """A request whose path goes out byte for byte (the client would tidy up `..` and `%2E`)."""
    url = URL(api.server.url(encoded_path), encoded=True)
    async with api.session.request(method, url, **kw) as response:
        body = await response.read()
        return response.status, json.loads(body) if response.content_type == "application/json" else body


async def test_a_saved_workflow_reads_back_from_its_url_encoded_name(server, folders):
    async with connect(server) as api:
        status, body = await api.post("/userdata/workflows%2Fa.json", data=json.dumps(WORKFLOW))
        assert (status, body) == (200, "workflows/a.json")
        assert json.loads((user_folder(folders) / "workflows" / "a.json").read_text()) == WORKFLOW
        async with api.session.get(server.url("/api/userdata/workflows%2Fa.json")) as response:
            assert response.status == 200
            assert json.loads(await response.read()) == WORKFLOW
            assert response.headers["Content-Type"] == "application/json"
            assert response.headers["Content-Disposition"] == "attachment"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        status, _ = await api.get("/userdata/workflows%2Fmissing.json")
        assert status == 404


async def test_only_the_users_stylesheet_is_served_inline_and_markup_never_as_html(server):
    async with connect(server) as api:
        await api.post("/userdata/user.css", data=b"body{color:red}")
        await api.post("/userdata/page.html", data=b"<script>alert(1)</script>")
        async with api.session.get(server.url("/userdata/user.css")) as response:
            assert response.headers["Content-Type"] == "text/css"
            assert response.headers["Content-Disposition"] == "inline"
        async with api.session.get(server.url("/userdata/page.html")) as response:
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert response.headers["Content-Disposition"] == "attachment"


async def test_post_answers_full_info_and_refuses_to_overwrite_when_asked(server, folders):
    async with connect(server) as api:
        status, info = await api.post("/userdata/workflows%2Fb.json?full_info=true", data=b"first")
        assert status == 200 and set(info) == {"path", "size", "modified", "created"}
        assert info["path"] == "workflows/b.json" and info["size"] == 5 and isinstance(info["modified"], int)
        status, _ = await api.post("/userdata/workflows%2Fb.json?overwrite=false", data=b"second")
        assert status == 409
        assert (user_folder(folders) / "workflows" / "b.json").read_bytes() == b"first"
        status, body = await api.post("/userdata/workflows%2Fb.json", data=b"third")  # overwrite defaults to true
        assert (status, body) == (200, "workflows/b.json")
        assert (user_folder(folders) / "workflows" / "b.json").read_bytes() == b"third"


async def test_listing_a_folder_in_comfyuis_shapes(server, folders):
    async with connect(server) as api:
        for name in ("workflows%2Fa.json", "workflows%2Fsub%2Fb.json", "workflows%2F.hidden.json", "other.json"):
            status, _ = await api.post(f"/userdata/{name}", data=b"{}")
            assert status == 200
        status, names = await api.get("/userdata?dir=workflows")
        assert (status, names) == (200, ["a.json"])
        status, names = await api.get("/api/userdata?dir=workflows&recurse=true")
        assert names == ["a.json", "sub/b.json"]
        status, parts = await api.get("/userdata?dir=workflows&recurse=true&split=true")
        assert parts == [["a.json", "a.json"], ["sub/b.json", "sub", "b.json"]]
        status, infos = await api.get("/userdata?dir=workflows&recurse=true&full_info=true&split=true")
        assert [info["path"] for info in infos] == ["a.json", "sub/b.json"]
        assert all(info["size"] == 2 and isinstance(info["created"], int) for info in infos)
        assert (await api.get("/userdata"))[0] == 400
        assert (await api.get("/userdata?dir=nothing"))[0] == 404


async def test_v2_lists_folders_first_with_paths_from_the_users_folder(server, folders):
    async with connect(server) as api:
        status, entries = await api.get("/v2/userdata")
        assert (status, entries) == (200, [])  # no folder yet: an empty one
        for name in ("b.json", "workflows%2FZ.json", "workflows%2Fa.json", "workflows%2Fdeep%2Fc.json"):
            await api.post(f"/userdata/{name}", data=b"1234")
        status, entries = await api.get("/api/v2/userdata?path=workflows")
        assert status == 200
        assert [(e["type"], e["path"]) for e in entries] == [
            ("directory", "workflows/deep"), ("file", "workflows/a.json"), ("file", "workflows/deep/c.json"),
            ("file", "workflows/Z.json")]
        directory, file = entries[0], entries[1]
        assert directory == {"name": "deep", "path": "workflows/deep", "type": "directory"}
        assert file["name"] == "a.json" and file["size"] == 4 and isinstance(file["modified"], float)
        status, entries = await api.get("/v2/userdata")
        assert [e["name"] for e in entries] == ["deep", "workflows", "a.json", "b.json", "c.json", "Z.json"]
        assert (await api.get("/v2/userdata?path=nowhere"))[0] == 404
        assert (await api.get("/v2/userdata?path=b.json"))[0] == 400
        assert (await api.get("/v2/userdata?path=..%2F"))[0] == 400


async def test_move_respects_overwrite_and_answers_the_new_path(server, folders):
    root = user_folder(folders)
    async with connect(server) as api:
        await api.post("/userdata/workflows%2Fa.json", data=b"A")
        await api.post("/userdata/workflows%2Fb.json", data=b"B")
        status, _ = await api.post("/userdata/workflows%2Fa.json/move/workflows%2Fb.json?overwrite=false")
        assert status == 409
        assert (root / "workflows" / "a.json").read_bytes() == b"A"
        assert (root / "workflows" / "b.json").read_bytes() == b"B"
        status, body = await api.post("/userdata/workflows%2Fa.json/move/workflows%2Fb.json")
        assert (status, body) == (200, "workflows/b.json")
        assert not (root / "workflows" / "a.json").exists() and (root / "workflows" / "b.json").read_bytes() == b"A"
        status, info = await api.post("/userdata/workflows%2Fb.json/move/archive%2Fc.json"
                                      "?overwrite=false&full_info=true")
        assert status == 200 and info["path"] == "archive/c.json" and info["size"] == 1
        assert (root / "archive" / "c.json").read_bytes() == b"A"
        status, _ = await api.post("/userdata/workflows%2Fgone.json/move/x.json")
        assert status == 404


async def test_delete_answers_204_then_404(server, folders):
    async with connect(server) as api:
        await api.post("/userdata/workflows%2Fa.json", data=b"A")
        status, _ = await api.request("DELETE", "/userdata/workflows%2Fa.json")
        assert status == 204 and not (user_folder(folders) / "workflows" / "a.json").exists()
        status, _ = await api.request("DELETE", "/api/userdata/workflows%2Fa.json")
        assert status == 404
        status, _ = await api.request("DELETE", "/userdata/workflows")
        assert status == 400 and (user_folder(folders) / "workflows").is_dir()


@pytest.mark.parametrize("name", ["..%2Fqueue.sqlite3", "%2E%2E%2Fqueue.sqlite3", "%252E%252E%252Fqueue.sqlite3",
                                  "workflows%2F..%2F..%2Fqueue.sqlite3", "%2Fetc%2Fpasswd", "a%00b.json"])
async def test_no_name_leaves_the_users_folder(server, folders, name):
    database = folders["user"] / "queue.sqlite3"
    before = database.read_bytes()
    async with connect(server) as api:
        await api.post("/userdata/inside.json", data=b"{}")
        assert (await raw_request(api, "GET", f"/userdata/{name}"))[0] == 403
        assert (await raw_request(api, "POST", f"/userdata/{name}", data=b"x"))[0] == 403
        assert (await raw_request(api, "DELETE", f"/userdata/{name}"))[0] == 403
        assert (await raw_request(api, "POST", f"/userdata/inside.json/move/{name}"))[0] == 403
        assert (await raw_request(api, "POST", f"/userdata/{name}/move/stolen.json"))[0] == 403
        assert (await raw_request(api, "GET", f"/userdata?dir={name}"))[0] == 403
    assert database.read_bytes() == before and (user_folder(folders) / "inside.json").exists()


async def test_a_symlink_out_of_the_folder_is_neither_followed_nor_listed(server, folders, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    async with connect(server) as api:
        await api.post("/userdata/workflows%2Fa.json", data=b"{}")
        os.symlink(outside, user_folder(folders) / "workflows" / "escape")
        os.symlink(folders["user"] / "queue.sqlite3", user_folder(folders) / "workflows" / "db.json")
        assert (await api.get("/userdata/workflows%2Fescape%2Fsecret.json"))[0] == 403
        assert (await api.get("/userdata/workflows%2Fdb.json"))[0] == 403
        assert (await api.post("/userdata/workflows%2Fescape%2Fnew.json", data=b"x"))[0] == 403
        assert not (outside / "new.json").exists()
        assert (await api.get("/userdata?dir=workflows&recurse=true"))[1] == ["a.json"]
        status, entries = await api.get("/v2/userdata")
        assert [e["name"] for e in entries] == ["workflows", "a.json"]


async def test_a_body_over_the_servers_limit_is_refused_and_leaves_nothing(make_server, folders):
    server = make_server(max_body_bytes=1024)
    async with connect(server) as api:
        status, _ = await api.post("/userdata/big.json", data=b"x" * 2048)
        assert status == 413
        status, _ = await api.post("/userdata/small.json", data=b"x" * 1000)
        assert status == 200
    assert sorted(p.name for p in user_folder(folders).iterdir()) == ["small.json"]


async def test_a_failed_write_keeps_the_old_file_whole(server, folders, monkeypatch):
    async with connect(server) as api:
        await api.post("/userdata/workflows%2Fa.json", data=b"old content")

        def failing_fsync(fd):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", failing_fsync)
        status, body = await api.post("/userdata/workflows%2Fa.json", data=b"new")
        assert status == 400 and "No space left" in body["error"]["details"]
    folder = user_folder(folders) / "workflows"
    assert (folder / "a.json").read_bytes() == b"old content"
    assert [p.name for p in folder.iterdir()] == ["a.json"]  # no partial file left behind
