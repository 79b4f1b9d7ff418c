"""The server's model folder options, as `python server.py` reads them."""

import server


def test_extra_model_paths_file_adds_folders(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("a111:\n  base_path: webui\n  vae: models/VAE\n")
    config, _ = server.configure(server.parse_args(["--extra-model-paths", str(extra)]))
    assert config.paths().model_dirs("vae")[1:] == [tmp_path / "webui/models/VAE"]


def test_no_extra_model_paths_by_default():
    config, _ = server.configure(server.parse_args([]))
    assert config.extra_model_paths is None and config.paths().extra_model_dirs == {}
