"""The server's model folder options, as `python server.py` reads them, and the model lists it serves."""

import server
from engine.config import build_registry
from tests.server.helpers import connect


def test_extra_model_paths_file_adds_folders(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("a111:\n  base_path: webui\n  vae: models/VAE\n")
    config, _ = server.configure(server.parse_args(["--extra-model-paths", str(extra)]))
    assert config.paths().model_dirs("vae")[1:] == [tmp_path / "webui/models/VAE"]


def test_no_extra_model_paths_by_default():
    config, _ = server.configure(server.parse_args([]))
    assert config.extra_model_paths is None and config.paths().extra_model_dirs == {}


LOADER_INPUTS = [("CheckpointLoaderSimple", "ckpt_name", "checkpoints"), ("VAELoader", "vae_name", "vae"),
                 ("LoraLoader", "lora_name", "loras")]


async def test_models_of_a_kind_are_exactly_the_files_its_loader_offers(make_server, config, folders):
    for kind in ("checkpoints", "vae", "loras", "embeddings"):
        (folders["models"] / kind).mkdir()
        for name in ("a.safetensors", "b.sft", "c.ckpt", "d.gguf", "notes.txt"):
            (folders["models"] / kind / name).write_bytes(b"x")
    config.node_packages = ("nodes",)
    server = make_server(registry=build_registry(config))
    async with connect(server) as api:
        for class_type, input_name, kind in LOADER_INPUTS:
            status, listed = await api.get(f"/models/{kind}")
            assert status == 200 and listed == ["a.safetensors", "b.sft", "c.ckpt"], kind
            _, info = await api.get(f"/object_info/{class_type}")
            offered = info[class_type]["input"]["required"][input_name][0]
            assert offered[:3] == listed, f"{class_type} offers the user's files first, then its built-ins"
            assert not any(name.endswith((".gguf", ".txt")) for name in offered)
        assert await api.get("/embeddings") == (200, ["a", "b", "c"])
