"""Every file suffix the model-kind table lists (engine.paths.MODEL_KINDS) is one the loaders read."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from engine.paths import MODEL_KINDS, SAFETENSORS_SUFFIXES
from nodes.conditioning.embeddings import EmbeddingLibrary
from nodes.models.state_dict_files import CheckpointFileError, load_state_dict

ALL_SUFFIXES = sorted({suffix for kind in MODEL_KINDS.values() for suffix in kind.extensions})


def write_tensors(path, tensors: dict) -> None:
    if path.suffix in SAFETENSORS_SUFFIXES:
        save_file(tensors, str(path))
    else:
        torch.save(tensors, path)


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_the_state_dict_reader_opens_every_listed_suffix(tmp_path, suffix):
    weights = {"layer.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    write_tensors(tmp_path / f"model{suffix}", weights)
    assert torch.equal(load_state_dict(tmp_path / f"model{suffix}")["layer.weight"], weights["layer.weight"])


def test_a_file_no_kind_lists_is_refused_by_name(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(CheckpointFileError, match="model.gguf.*unknown model file type '.gguf'"):
        load_state_dict(tmp_path / "model.gguf")


@pytest.mark.parametrize("suffix", MODEL_KINDS["embeddings"].extensions)
def test_an_embedding_is_found_by_its_bare_name_and_read_for_every_listed_suffix(tmp_path, suffix):
    vectors = torch.full((2, 768), 0.5)
    write_tensors(tmp_path / f"style{suffix}", {"emb_params": vectors})
    assert torch.equal(EmbeddingLibrary(tmp_path).vectors("style"), vectors)


@pytest.mark.parametrize("wrapper", ["state_dict", "params_ema", "adapter"])
def test_a_pickled_state_dict_inside_a_training_scripts_wrapper_is_unwrapped(tmp_path, wrapper):
    torch.save({wrapper: {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "wrapped.pth")
    assert set(load_state_dict(tmp_path / "wrapped.pth")) == {"w"}
