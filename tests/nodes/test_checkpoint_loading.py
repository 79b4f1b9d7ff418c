"""Loading Stable Diffusion checkpoints: family detection, key mapping, round trips, safety, offline."""

from __future__ import annotations

import json
import pickle
import shutil
import socket
from pathlib import Path

import pytest
import torch

from nodes.models.checkpoint import LoadedCheckpoint, load_checkpoint
from nodes.models.family import (
    SD2_EPS,
    SD2_V,
    SD15,
    SDXL_BASE,
    V_PRED_KEY,
    V_PRED_STAT_KEY,
    UnknownCheckpointError,
    detect_family,
)
from nodes.models.ldm_convert import configs_for_checkpoint, convert_checkpoint
from nodes.models.modules import WeightMismatchError
from nodes.models.shipped_configs import CONFIGS_DIR, shipped_configs
from nodes.models.state_dict_files import CheckpointFileError
from tests.nodes.checkpoints import (
    full_size_ldm_shapes,
    ldm_state_dict,
    meta_modules,
    save_tiny_checkpoint,
    state_dicts_equal,
    tiny_configs,
)

FAMILIES = [SD15, SD2_V, SDXL_BASE]


def _shapes(state_dict: dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _components(loaded: LoadedCheckpoint) -> dict:
    names = ["text_encoder", "text_encoder_2"][:len(loaded.text_encoders)]
    return {"unet": loaded.unet, "vae": loaded.vae, **dict(zip(names, loaded.text_encoders))}


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda f: f.name)
def full_size(request):
    family = request.param
    modules = meta_modules(family)
    return family, modules, ldm_state_dict(family, modules)


# --- full-size key sets -------------------------------------------------------------------------

def test_full_size_key_sets_are_recognised(full_size) -> None:
    family, _, state_dict = full_size
    assert detect_family(_shapes(state_dict)) == family


def test_full_size_shapes_yield_exactly_the_shipped_configs(full_size) -> None:
    family, _, state_dict = full_size
    inferred, shipped = configs_for_checkpoint(state_dict, family), shipped_configs(family)
    assert inferred.unet == shipped.unet
    assert inferred.vae == shipped.vae
    assert inferred.text_encoders == shipped.text_encoders


def test_full_size_keys_map_with_nothing_missing_or_unexpected(full_size) -> None:
    family, modules, state_dict = full_size
    converted = convert_checkpoint(state_dict, family, shipped_configs(family))
    assert set(converted) == set(modules)
    for name, tensors in converted.items():
        expected = modules[name].state_dict()
        assert set(tensors) == set(expected), name
        assert all(tuple(tensors[k].shape) == tuple(expected[k].shape) for k in expected), name


def test_sd2_files_keep_the_real_key_set_with_the_unused_last_block() -> None:
    keys = full_size_ldm_shapes(SD2_V)
    assert "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight" in keys
    assert "cond_stage_model.model.transformer.resblocks.24.attn.in_proj_weight" not in keys
    assert tuple(keys["cond_stage_model.model.text_projection"].shape) == (1024, 1024)
    assert shipped_configs(SD2_V).text_encoders["text_encoder"]["num_hidden_layers"] == 23


# --- family detection ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sd2_shapes() -> dict[str, tuple[int, ...]]:
    shapes = _shapes(full_size_ldm_shapes(SD2_V))
    shapes.pop(V_PRED_KEY)
    return shapes


@pytest.mark.parametrize("filename, expected", [
    ("v2-1_768-ema-pruned.safetensors", SD2_V),
    ("my-model-vpred.safetensors", SD2_V),
    ("v2-1_512-ema-pruned.safetensors", SD2_EPS),
    ("sd21-base.ckpt", SD2_EPS),
    ("something.safetensors", SD2_V),  # the default: SD2.x 768-v is the common one
    (None, SD2_V),
])
def test_sd2_prediction_type_from_the_file_name(sd2_shapes, filename, expected) -> None:
    assert detect_family(sd2_shapes, filename=filename) == expected


def test_a_v_pred_key_wins_over_the_file_name(sd2_shapes) -> None:
    assert detect_family({**sd2_shapes, V_PRED_KEY: (0,)}, filename="sd21-base.ckpt") == SD2_V


def test_without_hints_comfyuis_weight_statistic_decides(sd2_shapes) -> None:
    flat, spread = torch.zeros(1280), torch.linspace(-1, 1, 1280)
    assert detect_family(sd2_shapes, read_tensor=lambda k: flat) == SD2_EPS
    assert detect_family(sd2_shapes, read_tensor={V_PRED_STAT_KEY: spread}.__getitem__) == SD2_V


def test_a_unet_alone_is_recognised_by_its_cross_attention_width(full_size) -> None:
    family, _, state_dict = full_size
    unet_only = {k: v for k, v in _shapes(state_dict).items() if k.startswith("model.diffusion_model.")}
    assert detect_family(unet_only).config_dir == family.config_dir


@pytest.mark.parametrize("shapes, message", [
    ({}, "no UNet"),
    ({"encoder.layers.0.weight": (4, 4)}, "no UNet"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3)}, "not an SD1.x, SD2.x or SDXL"),
])
def test_unknown_checkpoints_get_an_error_saying_what_was_seen(shapes, message) -> None:
    with pytest.raises(UnknownCheckpointError, match=message) as info:
        detect_family(shapes)
    assert "tensors; key prefixes" in str(info.value)


def test_text_encoders_and_unet_must_agree() -> None:
    shapes = _shapes(full_size_ldm_shapes(SD15))
    shapes["model.diffusion_model.label_emb.0.0.weight"] = (1280, 2816)
    with pytest.raises(UnknownCheckpointError, match="size/crop embedding"):
        detect_family(shapes)


# --- tiny checkpoints: round trips --------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return {f.name: save_tiny_checkpoint(folder, f, seed=7) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_tiny_checkpoints_round_trip_exactly(tiny_files, family) -> None:
    path, modules = tiny_files[family.name]
    loaded = load_checkpoint(path)
    assert loaded.family == family
    assert loaded.prediction_type == family.prediction_type
    components = _components(loaded)
    assert set(components) == set(modules)
    for name, module in modules.items():
        assert state_dicts_equal(module, components[name]), name
    # The architecture read off the shapes is the one the tiny models were built with (the
    # default sample size is the one number weights cannot tell).
    for name in ("unet", "vae"):
        built, read = dict(modules[name].config), dict(components[name].config)
        assert {k: v for k, v in built.items() if k != "sample_size"} == {
            k: v for k, v in read.items() if k != "sample_size"}, name
    for name in [n for n in modules if n.startswith("text_encoder")]:
        assert modules[name].config.to_dict() == components[name].config.to_dict(), name


def test_loaded_tiny_models_run_and_match_the_originals(tiny_files) -> None:
    path, modules = tiny_files["sd15"]
    loaded = load_checkpoint(path)
    ids = loaded.tokenizers[0]("a red cube", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        context = loaded.text_encoders[0](ids).last_hidden_state
        assert torch.equal(context, modules["text_encoder"](ids).last_hidden_state)
        latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
        eps = loaded.unet(latent, 500, encoder_hidden_states=context).sample
        # Same weights; convolution kernels may still sum in a different order for mapped memory.
        torch.testing.assert_close(eps, modules["unet"](latent, 500, encoder_hidden_states=context).sample,
                                   rtol=1e-5, atol=1e-6)
        assert loaded.vae.decode(eps).sample.shape == (1, 3, 64, 64), "the VAE upsamples 8x, like a real one"


def test_tokenizers_and_scheduler_follow_the_family(tiny_files) -> None:
    sd15, sd2, sdxl = (load_checkpoint(tiny_files[f.name][0]) for f in FAMILIES)
    assert [t.pad_token_id for t in sd15.tokenizers] == [49407]
    assert [t.pad_token_id for t in sd2.tokenizers] == [0]
    assert [t.pad_token_id for t in sdxl.tokenizers] == [49407, 0]
    assert sd2.scheduler_config["prediction_type"] == "v_prediction"
    assert (sd15.vae_scaling_factor, sdxl.vae_scaling_factor) == (0.18215, 0.13025)


def test_extra_keys_real_files_carry_are_ignored(tmp_path) -> None:
    """EMA copies, the training schedule's buffers and CLIP's position ids, in the old layout too."""
    from safetensors.torch import load_file, save_file

    path, modules = save_tiny_checkpoint(tmp_path, SD15, seed=2)
    state = load_file(str(path))
    prefix = "cond_stage_model.transformer."
    state = {(prefix + k[len(prefix + "text_model."):] if k.startswith(prefix) else k): v for k, v in state.items()}
    state[prefix + "embeddings.position_ids"] = torch.arange(77)[None]
    state["alphas_cumprod"] = torch.linspace(1, 0, 1000)
    state["model_ema.decay"] = torch.tensor(0.9999)
    state["model_ema.diffusion_modelout2bias"] = torch.zeros(4)
    save_file(state, str(tmp_path / "old-style.safetensors"))
    loaded = load_checkpoint(tmp_path / "old-style.safetensors")
    assert state_dicts_equal(modules["text_encoder"], loaded.text_encoders[0])
    assert state_dicts_equal(modules["unet"], loaded.unet)


def test_family_can_be_overridden(tiny_files) -> None:
    loaded = load_checkpoint(tiny_files["sd2_v"][0], family="sd2")
    assert (loaded.family, loaded.prediction_type) == (SD2_EPS, "epsilon")


def test_dtype_and_device_apply_to_every_weight(tiny_files) -> None:
    loaded = load_checkpoint(tiny_files["sdxl_base"][0], dtype=torch.float16, device="cpu")
    for module in _components(loaded).values():
        assert {p.dtype for p in module.parameters()} == {torch.float16}
        assert {p.device.type for p in module.parameters()} == {"cpu"}
        assert not any(b.is_meta for b in module.buffers())


def test_weights_in_the_files_dtype_stay_in_the_mapped_file(tiny_files) -> None:
    path, _ = tiny_files["sd15"]
    loaded = load_checkpoint(path, dtype=torch.float32)
    regions = [tuple(int(x, 16) for x in line.split()[0].split("-"))
               for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith(str(path))]
    for weight in (loaded.unet.conv_in.weight, loaded.text_encoders[0].embeddings.token_embedding.weight):
        assert any(start <= weight.data_ptr() < end for start, end in regions)


def test_ckpt_files_load_weights_only(tiny_files, tmp_path, monkeypatch) -> None:
    path, modules = save_tiny_checkpoint(tmp_path, SD15, seed=7, suffix=".ckpt")
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    loaded = load_checkpoint(path)
    assert calls and all(c.get("weights_only") is True for c in calls)
    assert state_dicts_equal(modules["unet"], loaded.unet)


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_that_runs_code_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Payload()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointFileError, match="evil.ckpt"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name, content, error", [
    ("broken.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all", CheckpointFileError),
    ("garbage.safetensors", b"", CheckpointFileError),
    ("garbage.ckpt", b"this is not a zip or a pickle", CheckpointFileError),
    ("notes.txt", b"hello", CheckpointFileError),
])
def test_corrupt_or_unknown_files_give_an_error_naming_the_file(tmp_path, name, content, error) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(error, match=name.replace(".", r"\.")):
        load_checkpoint(tmp_path / name)


def test_a_valid_file_of_something_else_names_the_file(tmp_path) -> None:
    from safetensors.torch import save_file

    save_file({"encoder.layers.0.weight": torch.zeros(2, 2)}, str(tmp_path / "bert.safetensors"))
    with pytest.raises(UnknownCheckpointError, match=r"bert\.safetensors.*no UNet"):
        load_checkpoint(tmp_path / "bert.safetensors")


def test_a_missing_file_is_file_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_tensors_that_do_not_fit_are_listed(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    path, _ = save_tiny_checkpoint(tmp_path, SD15, seed=1)
    state = load_file(str(path))
    del state["model.diffusion_model.out.2.bias"]
    save_file(state, str(tmp_path / "cut.safetensors"))
    with pytest.raises(WeightMismatchError, match=r"cut\.safetensors: unet.*missing: conv_out\.bias"):
        load_checkpoint(tmp_path / "cut.safetensors")


# --- diffusers folders and offline use ----------------------------------------------------------

def test_a_diffusers_folder_loads_with_its_own_configs(tmp_path) -> None:
    from tests.nodes.checkpoints import tiny_modules

    modules = tiny_modules(SDXL_BASE, seed=3)
    folder = tmp_path / "tiny-sdxl"
    for name, module in modules.items():
        module.save_pretrained(folder / name)
    configs = tiny_configs(SDXL_BASE)
    (folder / "model_index.json").write_text(json.dumps(configs.model_index))
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(configs.scheduler))
    for tokenizer in ("tokenizer", "tokenizer_2"):
        shutil.copytree(CONFIGS_DIR / "sdxl" / tokenizer, folder / tokenizer)
    loaded = load_checkpoint(folder)
    assert loaded.family == SDXL_BASE
    for name, module in _components(loaded).items():
        assert state_dicts_equal(modules[name], module), name
    assert [t.pad_token_id for t in loaded.tokenizers] == [49407, 0]


def test_loading_never_touches_the_network(tiny_files, monkeypatch) -> None:
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is not allowed in this test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for family in FAMILIES:
        assert load_checkpoint(tiny_files[family.name][0]).family == family
    assert attempts == []
