"""One table of model kinds (engine.paths.MODEL_KINDS): which files each kind lists, and who reads it."""

from __future__ import annotations

import pytest

from engine.a1111 import checkpoint_name
from engine.paths import MODEL_KINDS, PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, ModelFiles, Paths


def test_the_kinds_and_their_names():
    assert list(MODEL_KINDS) == ["checkpoints", "vae", "loras", "embeddings", "upscale_models", "controlnet",
                                 "clip_vision", "style_models", "hypernetworks", "gligen", "ipadapter",
                                 "vae_approx", "annotators", "latent_upscale_models"]
    assert "vae" in MODEL_KINDS and "diffusion_models" not in MODEL_KINDS
    assert all(kind.name == name for name, kind in MODEL_KINDS.items())


def test_every_kind_lists_the_files_the_state_dict_reader_opens():
    for kind in MODEL_KINDS.values():
        assert set(kind.extensions) == set(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES), kind.name
        assert kind.extensions[0] == ".safetensors", "the first suffix is the one a bare embedding name tries first"


@pytest.mark.parametrize("kind", list(MODEL_KINDS))
def test_list_models_and_choices_default_to_the_kinds_suffixes(tmp_path, kind):
    folder = tmp_path / kind
    folder.mkdir()
    for name in ("a.safetensors", "b.sft", "c.CKPT", "d.pth", "e.gguf", "notes.txt"):
        (folder / name).write_bytes(b"x")
    paths = Paths(models_dir=tmp_path)
    assert paths.list_models(kind) == ["a.safetensors", "b.sft", "c.CKPT", "d.pth"]
    assert ModelFiles(kind).choices(paths) == ["a.safetensors", "b.sft", "c.CKPT", "d.pth"]
    assert paths.list_models(kind, ()) == ["a.safetensors", "b.sft", "c.CKPT", "d.pth", "e.gguf", "notes.txt"]


def test_a_kind_outside_the_table_lists_every_file(tmp_path):
    (tmp_path / "diffusion_models").mkdir()
    (tmp_path / "diffusion_models" / "4x.pth").write_bytes(b"x")
    (tmp_path / "diffusion_models" / "readme.md").write_text("x")
    assert ModelFiles("diffusion_models").choices(Paths(models_dir=tmp_path)) == ["4x.pth", "readme.md"]


@pytest.mark.parametrize("suffix", MODEL_KINDS["checkpoints"].extensions)
def test_a1111_model_names_keep_every_checkpoint_suffix(suffix):
    assert checkpoint_name("dreamshaper_8" + suffix) == "dreamshaper_8" + suffix


def test_the_readme_lists_every_model_folder():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("Models live in folders"):readme.index("To reuse the folders")]
    assert [kind for kind in MODEL_KINDS if f"| `{kind}`" not in table] == []
