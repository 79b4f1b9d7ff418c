"""ComfyUI's users and settings API: single-user mode, one settings file per user under
`--user-dir`/default, merged and set as ComfyUI does, and still there after a restart."""

from __future__ import annotations

import asyncio
import json

from tests.server.helpers import connect


def settings_file(folders):
    return folders["user"] / "default" / "comfy.settings.json"


async def test_users_answers_single_user_mode_and_migrated_once_the_folder_exists(server):
    async with connect(server) as api:
        status, body = await api.get("/api/users")
        assert (status, body) == (200, {"storage": "server", "migrated": False})
        assert (await api.post("/settings", {"Comfy.Locale": "en"}))[0] == 200
        status, body = await api.get("/users")
        assert (status, body) == (200, {"storage": "server", "migrated": True})
        status, body = await api.post("/users", {"username": "someone"})
        assert status == 400 and isinstance(body["error"], str)


async def test_post_settings_merges_an_object_and_get_answers_one_or_all(server, folders):
    async with connect(server) as api:
        assert await api.get("/settings") == (200, {})
        assert (await api.post("/settings", {"a": 1, "b": {"c": [1, 2]}}))[0] == 200
        assert (await api.post("/api/settings", {"b": "replaced", "d": None}))[0] == 200
        assert await api.get("/settings") == (200, {"a": 1, "b": "replaced", "d": None})
        assert await api.get("/settings/a") == (200, 1)
        assert await api.get("/api/settings/unset") == (200, None)
    assert json.loads(settings_file(folders).read_text()) == {"a": 1, "b": "replaced", "d": None}


async def test_post_one_setting_stores_any_json_value(server):
    async with connect(server) as api:
        for value in (["x", 2], "text", 0.5, False, None, {"nested": {"k": 1}}):
            assert (await api.post("/settings/Comfy.Some.Setting", data=json.dumps(value)))[0] == 200
            assert await api.get("/settings/Comfy.Some.Setting") == (200, value)
        assert await api.get("/settings") == (200, {"Comfy.Some.Setting": {"nested": {"k": 1}}})


async def test_malformed_bodies_are_refused_and_change_nothing(server):
    async with connect(server) as api:
        await api.post("/settings", {"kept": True})
        assert (await api.post("/settings", [1, 2]))[0] == 400
        assert (await api.post("/settings", data=b"{not json"))[0] == 400
        assert (await api.post("/settings/x", data=b""))[0] == 400
        assert await api.get("/settings") == (200, {"kept": True})


async def test_settings_survive_a_restart_over_the_same_user_folder(make_server, folders):
    first = make_server()
    async with connect(first) as api:
        await api.post("/settings", {"Comfy.ColorPalette": "dark"})
        await api.post("/userdata/workflows%2Fsaved.json", data=b'{"nodes": []}')
    first.stop()
    second = make_server()
    async with connect(second) as api:
        assert await api.get("/settings/Comfy.ColorPalette") == (200, "dark")
        assert await api.get("/userdata?dir=workflows") == (200, ["saved.json"])
        assert await api.get("/users") == (200, {"storage": "server", "migrated": True})


async def test_a_damaged_settings_file_reads_as_none_and_is_replaced_on_save(server, folders):
    settings_file(folders).parent.mkdir(parents=True)
    settings_file(folders).write_text('{"half": ')
    async with connect(server) as api:
        assert await api.get("/settings") == (200, {})
        assert (await api.post("/settings/fresh", data=b"1"))[0] == 200
    assert json.loads(settings_file(folders).read_text()) == {"fresh": 1}


async def test_the_comfy_user_header_reaches_the_single_user(server):
    async with connect(server) as api:
        await api.post("/settings", {"shared": 1}, headers={"comfy-user": "someone-else"})
        assert await api.get("/settings") == (200, {"shared": 1})
        assert await api.get("/settings/shared", headers={"comfy-user": "../.."}) == (200, 1)


async def test_concurrent_saves_of_different_settings_all_survive(server, folders):
    async with connect(server) as api:
        answers = await asyncio.gather(*(api.post(f"/settings/key{i}", data=str(i)) for i in range(20)))
        assert all(status == 200 for status, _ in answers)
        assert await api.get("/settings") == (200, {f"key{i}": i for i in range(20)})
    assert sorted(p.name for p in settings_file(folders).parent.iterdir()) == ["comfy.settings.json"]


async def test_settings_live_beside_the_users_files_never_over_the_database(server, folders):
    async with connect(server) as api:
        await api.post("/settings", {"a": 1})
        assert await api.get("/userdata?dir=.") == (200, ["comfy.settings.json"])
    assert (folders["user"] / "queue.sqlite3").is_file()
    assert settings_file(folders).is_file()
