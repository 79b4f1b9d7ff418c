"""The real ComfyUI workflows in `tests/fixtures/comfy_workflows/` (UI format) import, convert,
validate and run on tiny random-weight checkpoints, without being edited.

The checkpoints, VAE and LoRA names they ask for reach the tiny models through the user-visible
`models/aliases.yaml`; the embedding and the input images are files placed under the requested
names. To keep the suite fast, sizes and step counts are shrunk after conversion by `shrink`,
which knows input names, never node ids; `default.json` also runs exactly as converted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.loading import load_workflow_file
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.ui_format import FRONTEND_ONLY_TYPES
from engine.workflow import Workflow
from nodes.models.builtin import BUILTIN_CHECKPOINT, BUILTIN_LORA, ensure_builtin_lora
from nodes.models.family import SD2_V, SD15, SDXL_BASE, VAE_PREFIX
from nodes.models.modules import assign_weights, build_text_encoder, build_unet, build_vae
from nodes.models.shipped_configs import text_encoder_names
from nodes.models.tiny import TINY_TEXT_WIDTH, ldm_state_dict, tiny_configs
from tests.nodes.checkpoints import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "tests" / "fixtures" / "comfy_workflows"
WORKFLOWS = sorted(p.name for p in SHARED.glob("*.json"))



def test_the_shared_workflows_are_there():
    """They ship with the repository: their absence is a failure, never a skip."""
    assert len(WORKFLOWS) == 8, f"expected the 8 ComfyUI workflows in {SHARED}, found {WORKFLOWS}"

# What a user would write in models/aliases.yaml to run these workflows on the tiny models.
ALIASES = {
    "checkpoints": {
        "v1-5-pruned-emaonly-fp16.safetensors": "tiny-sd15.safetensors",
        "DreamShaper_8_pruned.safetensors": "tiny-sd15.safetensors",
        "dreamshaper_8.safetensors": "tiny-sd15.safetensors",
        "512-inpainting-ema.safetensors": "tiny-sd15.safetensors",
        "v2-1_768-ema-pruned.safetensors": "tiny-sd2-v.safetensors",
        "sd_xl_base_1.0.safetensors": "tiny-sdxl.safetensors",
        "sd_xl_refiner_1.0.safetensors": "tiny-sdxl.safetensors",
    },
    "vae": {"vae-ft-mse-840000-ema-pruned.safetensors": "tiny-vae.safetensors"},
    "loras": {"MoXinV1.safetensors": "tiny-lora.safetensors",
              "blindbox_v1_mix.safetensors": "tiny-lora.safetensors"},
}

# Inputs that are sizes in pixels (scaled by `factor`) per node class; areas scale with factor².
PIXEL_INPUTS = {
    "EmptyLatentImage": ("width", "height"),
    "LatentUpscale": ("width", "height"),
    "ImageScale": ("width", "height"),
    "ConditioningSetArea": ("width", "height", "x", "y"),
    "ImagePadForOutpaint": ("left", "top", "right", "bottom"),
}
AREA_INPUTS = {"ImageScaleToTotalPixels": ("megapixels",)}
STEP_INPUTS = {"KSampler": ("steps",), "KSamplerAdvanced": ("steps", "start_at_step", "end_at_step")}


def snapped(spec: Any, literal: float, value: float) -> float:
    """`value` for an input declared by `spec`: on its step when the `literal` it replaces is an int,
    within its bounds."""
    step = int(getattr(spec, "step", 1) or 1)
    value = max(step, round(value / step) * step) if isinstance(literal, int) else value
    low, high = getattr(spec, "min", None), getattr(spec, "max", None)
    return min(max(value, low if low is not None else value), high if high is not None else value)


def shrink(workflow: Workflow, registry: NodeRegistry, factor: float = 1 / 8, max_steps: int = 2) -> Workflow:
    """A copy with every literal pixel size scaled by `factor` (to the input's step, within its
    bounds) and every sampler's steps cut to `max_steps`, its start/end steps in proportion."""
    graph = workflow.to_api()
    for node in graph.values():
        inputs, spec = node["inputs"], registry.get(node["class_type"]).inputs
        for name in PIXEL_INPUTS.get(node["class_type"], ()):
            if isinstance(inputs.get(name), int) and inputs[name] > 0:
                inputs[name] = snapped(spec[name], inputs[name], inputs[name] * factor)
        for name in AREA_INPUTS.get(node["class_type"], ()):
            if isinstance(inputs.get(name), (int, float)):
                inputs[name] = snapped(spec[name], inputs[name], inputs[name] * factor * factor)
        step_names = STEP_INPUTS.get(node["class_type"], ())
        steps = inputs.get("steps")
        if step_names and isinstance(steps, int) and steps > max_steps:
            for name in step_names:
                if isinstance(inputs.get(name), int) and inputs[name] <= steps:
                    inputs[name] = round(inputs[name] * max_steps / steps)
    return Workflow.from_api(graph)


def save_vae_only(checkpoint: Path, target: Path) -> None:
    """A standalone VAE file (LDM keys without the prefix), as `models/vae` files come."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(checkpoint))
    save_file({k[len(VAE_PREFIX):]: v for k, v in state.items() if k.startswith(VAE_PREFIX)}, str(target))


def save_full_resolution_checkpoint(path: Path, seed: int = 5) -> None:
    """A tiny SD1.x checkpoint with no attention at the full latent resolution, where SD1's eight
    heads over 64×64 positions would make a 512 px run take a minute on two CPU cores."""
    from safetensors.torch import save_file

    configs = tiny_configs(SD15)
    configs.unet.update(down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"])
    built = {"unet": build_unet(configs.unet), "vae": build_vae(configs.vae)}
    for name in text_encoder_names(configs.model_index):
        built[name] = build_text_encoder(configs.text_encoders[name])
    generator = torch.Generator().manual_seed(seed)
    modules = {name: assign_weights(m, {k: torch.randn(tuple(v.shape), generator=generator) * 0.05
                                        for k, v in sorted(m.state_dict().items())},
                                    dtype=torch.float32, device="cpu", component=name)
               for name, m in built.items()}
    save_file({k: v.contiguous() for k, v in ldm_state_dict(SD15, modules).items()}, str(path))


def save_images(folder: Path) -> None:
    """`example.png` (img2img) and `input.png` (inpainting: a transparent hole is the mask)."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:96, 0:128]
    rgb = np.stack([x * 2, y * 2, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "example.png")
    alpha = np.full(x.shape, 255, dtype=np.uint8)
    alpha[24:72, 32:96] = 0
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "input.png")


def save_lora(folder: Path) -> None:
    """The built-in tiny LoRA (for the tiny SD1.x architecture) under our own name."""
    ensure_builtin_lora(folder, BUILTIN_LORA).rename(folder / "tiny-lora.safetensors")


@pytest.fixture(scope="module")
def registry():
    return build_registry(EngineConfig(extension_dirs=[]))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Paths:
    root = tmp_path_factory.mktemp("comfy")
    models = root / "models"
    for kind in ("checkpoints", "vae", "loras", "embeddings"):
        (models / kind).mkdir(parents=True)
    sd15, _ = save_tiny_checkpoint(models / "checkpoints", SD15, seed=1, name="tiny-sd15")
    save_tiny_checkpoint(models / "checkpoints", SD2_V, seed=2, name="tiny-sd2-v")
    save_tiny_checkpoint(models / "checkpoints", SDXL_BASE, seed=3, name="tiny-sdxl")
    save_vae_only(sd15, models / "vae" / "tiny-vae.safetensors")
    save_lora(models / "loras")
    # A1111's .pt embedding format, for the tiny SD2 text encoder's width.
    vectors = torch.randn(2, TINY_TEXT_WIDTH, generator=torch.Generator().manual_seed(4)) * 0.05
    torch.save({"string_to_param": {"*": vectors}, "name": "SDA768"}, models / "embeddings" / "SDA768.pt")
    import yaml

    (models / "aliases.yaml").write_text(yaml.safe_dump(ALIASES))
    save_images(root / "input")
    return Paths(models, root / "input", root / "output", root / "temp")


def load(name: str, registry: NodeRegistry) -> Workflow:
    loaded = load_workflow_file(SHARED / name, registry)
    assert loaded.source_format == "ui"
    return loaded.workflow


def run(workflow: Workflow, registry: NodeRegistry, paths: Paths) -> dict[str, Any]:
    executor = Executor(registry, paths)
    validation = executor.validate(workflow)
    assert validation.ok, json.dumps(validation.response(), indent=1)
    result = executor.execute(workflow)
    assert result.status == "success", result.error
    return result.outputs


def written_images(outputs: dict[str, Any], paths: Paths) -> list[Path]:
    return [paths.folder(image["type"]) / image["subfolder"] / image["filename"]
            for ui in outputs.values() for image in ui.get("images", [])]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_node_type_is_declared(name, registry):
    ui = json.loads((SHARED / name).read_text())
    used = {n["type"] for n in ui["nodes"]} - FRONTEND_ONLY_TYPES
    assert sorted(t for t in used if t not in registry) == []


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "area_composition.json" else n
                                  for n in WORKFLOWS])
def test_runs_on_tiny_models_through_the_aliases(name, registry, folders):
    workflow = shrink(load(name, registry), registry)
    outputs = run(workflow, registry, folders)
    images = written_images(outputs, folders)
    assert images and all(p.is_file() for p in images)
    for path in images:
        assert min(Image.open(path).size) >= 8


def test_shrink_scales_sizes_and_steps_by_input_name_only(registry):
    workflow = shrink(load("sdxl_simple_example.json", registry), registry, factor=1 / 8, max_steps=5)
    graph = workflow.to_api()
    latent = next(n for n in graph.values() if n["class_type"] == "EmptyLatentImage")["inputs"]
    assert (latent["width"], latent["height"]) == (128, 128)
    base, refiner = sorted((n["inputs"] for n in graph.values() if n["class_type"] == "KSamplerAdvanced"),
                           key=lambda i: i["start_at_step"])
    assert (base["steps"], base["start_at_step"], base["end_at_step"]) == (5, 0, 4)
    assert (refiner["steps"], refiner["start_at_step"], refiner["end_at_step"]) == (5, 4, 10000)


@pytest.mark.slow  # full size, as converted
def test_default_workflow_runs_exactly_as_converted(registry, folders, tmp_path):
    """512×512, 20 steps, as the file says; only its checkpoint name goes through an alias."""
    save_full_resolution_checkpoint(folders.models_dir / "checkpoints" / "tiny-sd15-fast.safetensors")
    paths = Paths(folders.models_dir, folders.input_dir, tmp_path, tmp_path,
                  model_aliases={"checkpoints": {"v1-5-pruned-emaonly-fp16.safetensors": "tiny-sd15-fast.safetensors"}})
    workflow = load("default.json", registry)
    outputs = run(workflow, registry, paths)
    (image,) = written_images(outputs, paths)
    assert Image.open(image).size == (512, 512)


def test_aliases_may_name_the_built_in_models_before_they_exist(registry, tmp_path):
    """Nothing installed: the LoRA workflow's checkpoint and LoRA names map onto the built-in
    tiny model and LoRA, which are generated when the run first needs them."""
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp", model_aliases={
        "checkpoints": {"dreamshaper_8.safetensors": BUILTIN_CHECKPOINT},
        "loras": {"blindbox_v1_mix.safetensors": BUILTIN_LORA}})
    outputs = run(shrink(load("lora.json", registry), registry), registry, paths)
    assert all(p.is_file() for p in written_images(outputs, paths))
    assert (tmp_path / "models" / "checkpoints" / BUILTIN_CHECKPOINT).is_file()
    assert (tmp_path / "models" / "loras" / BUILTIN_LORA).is_file()
