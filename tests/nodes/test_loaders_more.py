"""CheckpointLoader (a checkpoint with an original LDM yaml from models/configs) and DiffusersLoader
(a diffusers pipeline folder from models/diffusers), on tiny models written in the real layouts."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

from engine.config import EngineConfig, build_registry
from engine.declare import declaration_of
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.loaders import CheckpointLoader, DiffusersLoader
from nodes.models.family import SD2_EPS, SD2_V, SD15, SDXL_REFINER
from nodes.models.shipped_configs import CONFIGS_DIR
from tests.nodes import test_reference_diffusers as reference
from tests.nodes.checkpoints import save_tiny_checkpoint, state_dicts_equal, tiny_configs
from tests.nodes.test_reference_diffusers import CaptureValue, hub_offline  # noqa: F401  (an autouse fixture)

V1_YAML = """model:
  base_learning_rate: 1.0e-04
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    scale_factor: 0.18215
    use_ema: False
"""
V2_V_YAML = V1_YAML.replace("    use_ema: False\n", "    parameterization: \"v\"\n    use_ema: False\n")
SCALED_YAML = V1_YAML.replace("0.18215", "0.5")


def save_sd15_diffusers_folder(folder, modules) -> None:
    """A diffusers SD1.x folder as `save_pretrained` writes it (component folders, model_index.json)."""
    for name, module in modules.items():
        module.save_pretrained(folder / name)
    configs = tiny_configs(SD15)
    (folder / "model_index.json").write_text(json.dumps(configs.model_index))
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(configs.scheduler))
    shutil.copytree(CONFIGS_DIR / "sd15" / "tokenizer", folder / "tokenizer")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("loaders")
    for kind in ("checkpoints", "configs", "diffusers"):
        (root / kind).mkdir()
    _, sd15 = save_tiny_checkpoint(root / "checkpoints", SD15, seed=3, name="tiny-sd15")
    save_tiny_checkpoint(root / "checkpoints", SD2_V, seed=4, name="tiny-sd2")  # no hint in the name: v
    (root / "configs" / "v1-inference.yaml").write_text(V1_YAML)
    (root / "configs" / "v2-inference-v.yaml").write_text(V2_V_YAML)
    (root / "configs" / "scaled.yaml").write_text(SCALED_YAML)
    (root / "configs" / "notes.txt").write_text("not a config")
    save_sd15_diffusers_folder(root / "diffusers" / "tiny-sd15", sd15)
    # The refiner's own diffusers layout, written by its pipeline: `text_encoder` and `tokenizer` are null.
    refiner_file, refiner = save_tiny_checkpoint(root / "checkpoints", SDXL_REFINER, seed=5, name="tiny-refiner")
    from nodes.models.clip_tokenizer import OPEN_CLIP_PAD_TOKEN, load_clip_tokenizer

    StableDiffusionXLImg2ImgPipeline(
        vae=refiner["vae"], text_encoder=None, text_encoder_2=refiner["text_encoder_2"], tokenizer=None,
        tokenizer_2=load_clip_tokenizer(OPEN_CLIP_PAD_TOKEN), unet=refiner["unet"],
        scheduler=EulerDiscreteScheduler(**reference.SD_SCHEDULE), requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False, add_watermarker=False,
    ).save_pretrained(root / "diffusers" / "xl" / "tiny-refiner")
    return root, {"sd15": sd15, "refiner": refiner}


@pytest.fixture(scope="module")
def executor(models):
    root, _ = models
    registry = NodeRegistry([CaptureValue, *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    return Executor(registry, Paths(root, root.parent / "input", root.parent / "output", root.parent / "temp"))


def load(executor, loader: dict) -> tuple:
    graph = {"1": loader}
    for i in range(3):
        graph[f"capture_{i}"] = {"class_type": "CaptureValue", "inputs": {"value": ["1", i]}}
    reference.captured.clear()
    result = executor.execute(Workflow.from_api(graph))
    assert result.status == "success", result.error
    return tuple(reference.captured[f"capture_{i}"] for i in range(3))


def sample(executor, loader: dict, prompt: str = "a red circle") -> torch.Tensor:
    """Loader → prompts → VAEEncode of a flat image → KSampler (img2img, so a refiner runs too)."""
    graph = {
        "1": loader,
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "5": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x336699}},
        "6": {"class_type": "VAEEncode", "inputs": {"pixels": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 7, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["6", 0], "denoise": 0.5}},
        "capture": {"class_type": "CaptureValue", "inputs": {"value": ["7", 0]}},
    }
    reference.captured.clear()
    result = executor.execute(Workflow.from_api(graph))
    assert result.status == "success", result.error
    return reference.captured["capture"]["samples"]


# --- CheckpointLoader ----------------------------------------------------------------------------------

def test_config_choices_are_the_yaml_files_of_models_configs(models):
    root, _ = models
    choices = declaration_of(CheckpointLoader).inputs["config_name"].available(Paths(root))
    assert choices == ["scaled.yaml", "v1-inference.yaml", "v2-inference-v.yaml"]


def test_a_v_parameterization_config_makes_a_v_prediction_model(executor):
    model, _, _ = load(executor, {"class_type": "CheckpointLoader", "inputs": {
        "config_name": "v2-inference-v.yaml", "ckpt_name": "tiny-sd15.safetensors"}})
    assert model.model_sampling.prediction == "v_prediction"


def test_an_sd2_checkpoint_follows_its_config_over_detection(executor):
    simple, _, _ = load(executor, {"class_type": "CheckpointLoaderSimple", "inputs": {
        "ckpt_name": "tiny-sd2.safetensors"}})
    assert simple.family == SD2_V and simple.model_sampling.prediction == "v_prediction"
    model, clip, _ = load(executor, {"class_type": "CheckpointLoader", "inputs": {
        "config_name": "v1-inference.yaml", "ckpt_name": "tiny-sd2.safetensors"}})
    assert model.family == SD2_EPS and clip.family == SD2_EPS and model.model_sampling.prediction == "epsilon"


def test_without_overrides_it_loads_what_checkpoint_loader_simple_loads(executor):
    loader = {"class_type": "CheckpointLoader", "inputs": {"config_name": "v1-inference.yaml",
                                                           "ckpt_name": "tiny-sd15.safetensors"}}
    simple = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}}
    (model, _, vae), (model_s, _, _) = load(executor, loader), load(executor, simple)
    assert model.family == model_s.family == SD15 and model.model_sampling.prediction == "epsilon"
    assert vae.scaling_factor == model.latent_scale == pytest.approx(0.18215)
    assert torch.equal(sample(executor, loader), sample(executor, simple))


def test_the_configs_scale_factor_scales_latents(executor):
    model, _, vae = load(executor, {"class_type": "CheckpointLoader", "inputs": {
        "config_name": "scaled.yaml", "ckpt_name": "tiny-sd15.safetensors"}})
    assert vae.scaling_factor == model.latent_scale == 0.5


def test_a_missing_config_fails_validation(executor):
    workflow = Workflow.from_api({"1": {"class_type": "CheckpointLoader", "inputs": {
        "config_name": "v9.yaml", "ckpt_name": "tiny-sd15.safetensors"}}})
    assert not executor.validate(workflow).ok


# --- DiffusersLoader -----------------------------------------------------------------------------------

def test_choices_are_the_folders_holding_model_index_json(models):
    root, _ = models
    (root / "diffusers" / "stray.safetensors").write_bytes(b"x")
    try:
        choices = declaration_of(DiffusersLoader).inputs["model_path"].available(Paths(root))
    finally:
        (root / "diffusers" / "stray.safetensors").unlink()
    assert choices == ["tiny-sd15", "xl/tiny-refiner"]


def test_a_diffusers_folder_loads_the_weights_it_was_saved_with(executor, models):
    _, modules = models
    model, clip, vae = load(executor, {"class_type": "DiffusersLoader", "inputs": {"model_path": "tiny-sd15"}})
    assert model.family == SD15
    assert state_dicts_equal(model.unet, modules["sd15"]["unet"])
    assert state_dicts_equal(vae.vae, modules["sd15"]["vae"])
    assert state_dicts_equal(clip.text_encoders[0], modules["sd15"]["text_encoder"])


def test_a_diffusers_folder_samples_as_its_single_file_twin(executor):
    folder = sample(executor, {"class_type": "DiffusersLoader", "inputs": {"model_path": "tiny-sd15"}})
    single = sample(executor, {"class_type": "CheckpointLoaderSimple",
                               "inputs": {"ckpt_name": "tiny-sd15.safetensors"}})
    assert torch.equal(folder, single)


def test_the_refiners_diffusers_layout_loads_as_a_refiner(executor, models):
    _, modules = models
    model, clip, _ = load(executor, {"class_type": "DiffusersLoader", "inputs": {"model_path": "xl/tiny-refiner"}})
    assert model.family == SDXL_REFINER and len(clip.text_encoders) == 1
    assert state_dicts_equal(model.unet, modules["refiner"]["unet"])
    assert state_dicts_equal(clip.text_encoders[0], modules["refiner"]["text_encoder_2"])
    assert clip.tokenizers[0].pad_token_id == 0
    folder = sample(executor, {"class_type": "DiffusersLoader", "inputs": {"model_path": "xl/tiny-refiner"}})
    single = sample(executor, {"class_type": "CheckpointLoaderSimple",
                               "inputs": {"ckpt_name": "tiny-refiner.safetensors"}})
    assert torch.equal(folder, single)


def test_the_cache_key_follows_the_folders_files(models):
    root, _ = models
    paths = Paths(root)
    before = DiffusersLoader().fingerprint(paths, "tiny-sd15")
    extra = root / "diffusers" / "tiny-sd15" / "unet" / "notes.txt"
    extra.write_text("changed")
    try:
        assert DiffusersLoader().fingerprint(paths, "tiny-sd15") != before
    finally:
        extra.unlink()
    assert DiffusersLoader().fingerprint(paths, "tiny-sd15") == before
    assert DiffusersLoader().fingerprint(paths, "absent") == "missing"


def test_a_yaml_that_is_no_ldm_config_is_an_error_naming_it(tmp_path):
    from nodes.models.ldm_yaml import read_ldm_config

    (tmp_path / "other.yaml").write_text("checkpoints: models/Stable-diffusion\n")
    with pytest.raises(ValueError, match="other.yaml: no `model.params` mapping"):
        read_ldm_config(tmp_path / "other.yaml")
    (tmp_path / "v.yaml").write_text(V2_V_YAML)
    assert read_ldm_config(tmp_path / "v.yaml").prediction_type == "v_prediction"
