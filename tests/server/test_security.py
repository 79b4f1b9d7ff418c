"""Secure by default: token, Origin and Host checks, size limits, and 4xx JSON for every bad request."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

import server as server_cli
from tests.server.helpers import connect, next_json, sum_graph

TOKEN = "s3cret-token"


async def test_token_required_on_every_route(make_server):
    server = make_server(token=TOKEN)
    async with connect(server) as api:
        for method, path in (("GET", "/queue"), ("GET", "/object_info"), ("POST", "/prompt"), ("GET", "/"),
                             ("GET", "/view?filename=x.png"), ("GET", "/api/history"), ("GET", "/nope")):
            status, body = await api.request(method, path, json={"prompt": sum_graph()})
            assert status == 401 and body["error"]["type"] == "unauthorized", (method, path)
        status, _ = await api.get("/queue", headers={"Authorization": "Bearer wrong"})
        assert status == 401
        status, _ = await api.get("/queue", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        status, _ = await api.get(f"/queue?token={TOKEN}")
        assert status == 200
        status, _ = await api.post(f"/prompt?token={TOKEN}", {"prompt": sum_graph()})
        assert status == 401, "a token in the URL is only accepted on GET"
        status, body = await api.post("/prompt", {"prompt": sum_graph()}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200, body


async def test_websocket_needs_the_token_too(make_server):
    server = make_server(token=TOKEN)
    async with connect(server) as api:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.session.ws_connect(server.ws_url("?clientId=x"))
        assert refused.value.status == 401
        async with api.session.ws_connect(server.ws_url(f"?clientId=x&token={TOKEN}")) as ws:
            assert (await next_json(ws))["type"] == "status"


async def test_foreign_origin_refused_for_state_changes_and_websocket(server):
    async with connect(server) as api:
        evil = {"Origin": "http://evil.example"}
        for path, body in (("/prompt", {"prompt": sum_graph()}), ("/queue", {"clear": True}),
                           ("/interrupt", {}), ("/history", {"clear": True}), ("/free", {})):
            status, answer = await api.post(path, body, headers=evil)
            assert status == 403 and answer["error"]["type"] == "origin_not_allowed", path
        other_port = {"Origin": f"http://127.0.0.1:{server.port + 1}"}
        status, _ = await api.post("/prompt", {"prompt": sum_graph()}, headers=other_port)
        assert status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.session.ws_connect(server.ws_url(), headers=evil)
        assert refused.value.status == 403
        status, _ = await api.get("/queue", headers=evil)
        assert status == 200, "reads are allowed; the browser's same-origin policy hides the answer"
        for same in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}"):
            status, body = await api.post("/prompt", {"prompt": sum_graph()}, headers={"Origin": same})
            assert status == 200, body
        status, _ = await api.post("/prompt", {"prompt": sum_graph()}, headers={"Origin": "null"})
        assert status == 403


async def test_dns_rebinding_host_refused_on_loopback_server(server):
    async with connect(server) as api:
        status, body = await api.get("/queue", headers={"Host": f"evil.example:{server.port}"})
        assert status == 403 and body["error"]["type"] == "host_not_allowed"
        status, _ = await api.get("/queue", headers={"Host": f"localhost:{server.port}"})
        assert status == 200


async def test_body_too_large_is_413_json(server):
    async with connect(server) as api:
        big = {"prompt": sum_graph(), "extra_data": {"blob": "x" * (3 * 2**20)}}
        status, body = await api.post("/prompt", data=json.dumps(big))
        assert status == 413 and body["error"]["type"] == "request_too_large"


async def test_graph_too_large_is_a_400(make_server, config):
    config.limits = type(config.limits)(max_nodes=10)
    server = make_server()
    prompt = {str(i): {"class_type": "Number", "inputs": {"value": i}} for i in range(20)}
    prompt["99"] = {"class_type": "Show", "inputs": {"value": ["1", 0]}}
    async with connect(server) as api:
        status, body = await api.post("/prompt", {"prompt": prompt})
        assert status == 400 and body["error"]["type"] == "graph_too_large"


@pytest.mark.parametrize("method, path, data", [
    ("GET", "/no/such/route", None),
    ("DELETE", "/prompt", None),
    ("PUT", "/queue", b"{}"),
    ("POST", "/queue", b"{oops"),
    ("POST", "/queue", b"[]"),
    ("POST", "/history", b"not json"),
    ("POST", "/interrupt", b"{"),
    ("POST", "/free", b'{"unload_models": "yes"}'),
    ("POST", "/workflow/convert", b"{bad"),
    ("POST", "/workflow/convert", b'{"nodes": 5, "links": []}'),
    ("POST", "/workflow/convert", b""),
    ("GET", "/history?offset=-5", None),
    ("GET", "/jobs?limit=0", None),
    ("GET", "/object_info/NoSuchNode", None),
    ("GET", "/models/secrets", None),
    ("POST", "/upload/image", b"plain body"),
    ("GET", "/api/no/such/route", None),
    ("GET", "/..%2f..%2fetc/passwd", None),
    ("GET", "/ws", None),
])
async def test_bad_requests_get_4xx_json_never_500(server, method, path, data):
    async with connect(server) as api:
        status, body = await api.request(method, path, data=data)
        assert 400 <= status < 500, (status, body)
        assert isinstance(body, dict) and set(body["error"]) >= {"type", "message"}
        assert "Traceback" not in json.dumps(body)


async def test_truncated_multipart_is_a_400(server):
    async with connect(server) as api:
        headers = {"Content-Type": "multipart/form-data; boundary=zz"}
        for data in (b"x" * 10, b'--zz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\nabc'):
            status, body = await api.post("/upload/image", data=data, headers=headers)
            assert status == 400 and body["error"]["type"] == "invalid_form"


def test_cli_listen_generates_and_prints_a_token(capsys, caplog, tmp_path):
    args = server_cli.parse_args(["--listen", "--user-dir", str(tmp_path)])
    with caplog.at_level("DEBUG"):
        config, settings = server_cli.configure(args)
    assert settings.host == "0.0.0.0" and settings.token and len(settings.token) >= 24
    printed = capsys.readouterr()
    assert printed.out.count(settings.token) == 1 and settings.token not in printed.err  # once, to the terminal
    assert settings.token not in caplog.text  # never to the log
    assert settings.loopback_only is False


def test_cli_defaults_to_loopback_without_token(tmp_path):
    config, settings = server_cli.configure(server_cli.parse_args([]))
    assert (settings.host, settings.port, settings.token, settings.loopback_only) == ("127.0.0.1", 8188, None, True)
    _, settings = server_cli.configure(server_cli.parse_args(["--listen", "192.168.1.5", "--token", "t"]))
    assert (settings.host, settings.token) == ("192.168.1.5", "t")
    _, settings = server_cli.configure(server_cli.parse_args(["--host", "0.0.0.0"]))
    assert settings.token, "any non-loopback bind needs a token"
    config, settings = server_cli.configure(server_cli.parse_args([
        "--models-dir", "m", "--input-dir", "i", "--output-dir", "o", "--user-dir", "u", "--precision", "fp16",
        "--history-max-items", "5", "--max-upload-mb", "1", "--no-builtin-nodes", "--extensions", "packs"]))
    assert (str(config.models_dir), str(config.input_dir), str(config.output_dir)) == ("m", "i", "o")
    assert config.settings["precision"] == "fp16" and settings.max_history == 5
    assert settings.max_upload_bytes == 2**20 and config.node_packages == ()
    assert [str(p) for p in config.extension_dirs] == ["packs"]


def test_the_server_sets_the_pixel_cap_of_nodes_that_allocate(tmp_path):
    from engine.validate import SETTING_LIMITS

    config, _ = server_cli.configure(server_cli.parse_args([]))
    assert config.settings["max_latent_pixels"] == SETTING_LIMITS["max_latent_pixels"] == 4096 * 4096 * 4
    config, _ = server_cli.configure(server_cli.parse_args(["--max-latent-megapixels", "256"]))
    assert config.settings["max_latent_pixels"] == 8192 * 8192 * 4


def test_cli_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        server_cli.parse_args(["--help"])
    text = capsys.readouterr().out
    for option in ("--host", "--port", "--listen", "--token", "--models-dir", "--input-dir", "--output-dir",
                   "--user-dir", "--precision", "--max-latent-megapixels"):
        assert option in text


async def test_the_token_never_appears_in_system_stats(make_server, monkeypatch):
    monkeypatch.setattr("sys.argv", ["server.py", "--listen", "--token", TOKEN, f"--token={TOKEN}"])
    server = make_server(token=TOKEN)
    async with connect(server, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        status, body = await api.get("/system_stats")
    assert status == 200 and TOKEN not in json.dumps(body)
    assert body["system"]["argv"] == ["server.py", "--listen", "--token", "***", "--token=***"]


def test_the_access_log_leaves_out_query_strings(caplog):
    import logging

    from aiohttp.test_utils import make_mocked_request

    from api.security import PathOnlyAccessLogger

    logger = logging.getLogger("test.access")
    request = make_mocked_request("GET", f"/view?filename=a.png&token={TOKEN}")
    with caplog.at_level(logging.INFO, logger="test.access"):
        PathOnlyAccessLogger(logger, "").log(request, web.Response(status=200), 0.01)
    assert "/view" in caplog.text and TOKEN not in caplog.text
