"""The server on the Ray backend, as a ComfyUI client meets it: POST /prompt, events over the
WebSocket (binary previews included), /workers and /system_stats listing the workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.app import create_app
from api.state import ServerSettings, build_state
from tests.backends.helpers import toy_prompt
from tests.server.helpers import LiveServer, connect, events_until_done, next_json


@pytest.mark.ray
async def test_prompt_over_http_and_events_over_the_websocket(ray_cluster, config, tmp_path: Path):
    settings = ServerSettings(user_dir=tmp_path / "user", web_dir=tmp_path / "web", preview_interval=0.0,
                              backend="ray")
    server = LiveServer(create_app(build_state(config, settings))).start()
    try:
        async with connect(server) as api:
            status, listing = await api.get("/workers")
            assert status == 200 and listing["backend"] == "ray"
            assert [(w["id"], w["state"]) for w in listing["workers"]] == [("ray-0", "idle"), ("ray-1", "idle")]
            assert sorted(w["device"]["visible_devices"] for w in listing["workers"]) == ["0", "1"], \
                "one worker per (fake) GPU"
            async with api.session.ws_connect(server.ws_url("?clientId=c1&previews=1")) as ws:
                assert (await next_json(ws))["type"] == "status"
                pid = await api.queue_prompt(toy_prompt(steps=3), client_id="c1")
                frames: list[bytes] = []
                events = [(n, d) for n, d in await events_until_done(ws, pid, timeout=60, binary=frames)
                          if n != "status"]
            assert [n for n, _ in events] == ["execution_start", "execution_cached", "executing", "executing",
                                              "progress", "progress", "progress", "executing", "executed",
                                              "executing", "executed", "execution_success", "executing"]
            assert len(frames) == 3 and all(f[:8] == b"\0\0\0\1\0\0\0\1" and f[8:10] == b"\xff\xd8" for f in frames)
            image = next(d for n, d in events if n == "executed" and d["node"] == "4")["output"]["images"][0]
            status, png = await api.get(f"/view?filename={image['filename']}&type=output")
            assert status == 200 and png[:4] == b"\x89PNG"
            history = (await api.get(f"/history/{pid}"))[1][pid]
            assert history["status"]["status_str"] == "success"
            status, stats = await api.get("/system_stats")
            assert status == 200 and {"system", "devices"} <= set(stats)
            held = {w["id"]: w["checkpoints"] for w in stats["workers"]["workers"]}
            assert sorted(held.values()) == [[], ["a.safetensors"]]
    finally:
        server.stop()


@pytest.mark.ray
def test_with_a_shared_output_folder_ray_workers_write_there_directly(make_harness, config):
    harness = make_harness("ray", shared_outputs=True)
    job = harness.wait_done(harness.submit(toy_prompt(), "shared"))
    assert not any(n == "sdgraph.file" for n, _ in harness.of("shared"))
    name = job.outputs["4"]["images"][0]["filename"]
    assert name == "contract_00001_.png" and (config.output_dir / name).stat().st_size > 0


@pytest.mark.ray
@pytest.mark.slow
def test_python_server_py_backend_ray_starts_its_own_cluster_runs_and_stops_cleanly(tmp_path):
    import signal

    from tests.server.helpers import TOY_PACK, ServerProcess, slow_graph

    (tmp_path / "custom_nodes").mkdir()
    (tmp_path / "custom_nodes" / "toy_pack.py").write_bytes(TOY_PACK.read_bytes())
    server = ServerProcess(tmp_path, "--backend", "ray", "--ray-address", "local", "--workers", "1").start()
    try:
        workers = server.call("GET", "/workers")
        assert workers["backend"] == "ray" and [w["state"] for w in workers["workers"]] == ["idle"]
        prompt_id = server.call("POST", "/prompt", {"prompt": slow_graph(steps=3, delay=0.0)})["prompt_id"]
        entry = server.wait_for(lambda: server.call("GET", f"/history/{prompt_id}"), timeout=60)[prompt_id]
        assert entry["status"]["status_str"] == "success" and entry["outputs"]["3"] == {"values": [4]}
    finally:
        assert server.stop(signal.SIGTERM, timeout=60) == 0, "SIGTERM stops the workers and the cluster cleanly"


def test_backend_flags_reach_the_server_settings():
    from server import configure, parse_args

    _, settings = configure(parse_args(["--backend", "ray", "--ray-address", "10.0.0.5:6379", "--workers", "3",
                                        "--shared-output-dir"]))
    assert (settings.backend, settings.ray_address, settings.workers, settings.shared_outputs) == \
        ("ray", "10.0.0.5:6379", 3, True)
    _, default = configure(parse_args([]))
    assert (default.backend, default.workers, default.shared_outputs) == ("local", None, False)
