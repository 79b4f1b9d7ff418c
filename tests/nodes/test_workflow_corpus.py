"""ComfyUI's own workflows, as users download them, convert and validate with nothing but the file
names they ask for (`tools/workflow_corpus.py`), and a handful run end to end on tiny models.

The corpus: the workflows in `tests/fixtures/comfy_workflows/` and `comfy_workflow_corpus/`, and every
SD1.x/SD2/SDXL template of `comfyui-workflow-templates-json` (installed by the `test` extra).
The runs reach the tiny models through the user-visible `models/aliases.yaml`, with sizes and step
counts shrunk after conversion (`shrink`, by input names).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors.torch import save_file

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths
from engine.ui_format import ui_to_api
from engine.workflow import Workflow
from nodes.models.family import SD15, SDXL_BASE, SDXL_REFINER
from tests.nodes.checkpoints import save_tiny_checkpoint
from tests.nodes.test_comfy_workflows import save_lora, save_vae_only, shrink, written_images
from tools.workflow_corpus import (
    CorpusWorkflow,
    check,
    model_family,
    read_corpus,
    write_placeholders,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHARED, MORE = FIXTURES / "comfy_workflows", FIXTURES / "comfy_workflow_corpus"
TEMPLATES_PACKAGE = "comfyui_workflow_templates_json"
# In-scope templates of the package that do not validate yet, and the words their first error holds.
KNOWN_INVALID: dict[str, str] = {}


@pytest.fixture(scope="module")
def registry():
    return build_registry(EngineConfig(extension_dirs=[]))


def templates_folder() -> Path:
    """The package's templates; its absence fails (install the `test` extra), never skips."""
    spec = importlib.util.find_spec(TEMPLATES_PACKAGE)
    assert spec is not None and spec.origin, (
        f"{TEMPLATES_PACKAGE} is missing: pip install -e '.[test]' installs the pinned version")
    return Path(spec.origin).parent / "templates"


def in_scope(corpus: list[CorpusWorkflow]) -> list[CorpusWorkflow]:
    return [w for w in corpus if model_family(w) in ("SD1.x", "SD2", "SDXL")]


# --- classification and placeholders ---------------------------------------------------------------


def ui_with(*nodes: tuple[str, list]) -> dict:
    return {"nodes": [{"id": i + 1, "type": t, "widgets_values": v, "inputs": [], "outputs": []}
                      for i, (t, v) in enumerate(nodes)], "links": []}


@pytest.mark.parametrize("nodes, tags, family", [
    ([("CheckpointLoaderSimple", ["dreamshaper_8.safetensors"])], None, "SD1.x"),
    ([("CheckpointLoaderSimple", ["v2-1_768-ema-pruned.safetensors"])], None, "SD2"),
    ([("CheckpointLoaderSimple", ["sd_xl_base_1.0.safetensors"])], None, "SDXL"),
    ([("CheckpointLoaderSimple", ["flux1-schnell-fp8.safetensors"])], None, "other"),
    ([("CheckpointLoaderSimple", ["model.safetensors"]), ("CLIPLoader", ["t5_base.safetensors"])], None, "other"),
    ([("UNETLoader", ["lotus-depth-d-v1-1.safetensors"])], ["SD1.5"], "other"),
    ([("CheckpointLoaderSimple", ["sd_xl_base_1.0.safetensors"])], ["SVD", "Stability"], "other"),
    ([("CheckpointLoaderSimple", ["majicmixRealistic_v7.safetensors"])], ["SD1.5", "Stability"], "SD1.x"),
])
def test_the_family_comes_from_the_templates_tags_else_the_loaders_and_checkpoint_names(nodes, tags, family):
    found = model_family(CorpusWorkflow("test", "w", ui_with(*nodes), tags))
    assert found.split(":")[0] == family


def test_placeholders_go_to_the_folder_each_loader_reads(registry, tmp_path):
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sub/a.safetensors"}},
             "2": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "c.pth"}},
             "3": {"class_type": "LoadImage", "inputs": {"image": "pasted/x (2).png"}},
             "4": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "../../escape.pth"}}}
    paths = Paths(tmp_path / "models", tmp_path / "input")
    write_placeholders(Workflow.from_api(graph), registry, paths)
    assert (tmp_path / "models" / "checkpoints" / "sub" / "a.safetensors").is_file()
    assert (tmp_path / "models" / "controlnet" / "c.pth").is_file()
    assert Image.open(tmp_path / "input" / "pasted" / "x (2).png").size == (64, 64)
    assert not (tmp_path / "escape.pth").exists()


# --- the corpus: convert and validate --------------------------------------------------------------


@pytest.mark.parametrize("folder", [SHARED, MORE], ids=["comfy_workflows", "comfy_workflow_corpus"])
def test_every_fixture_workflow_is_in_scope_converts_and_validates(folder, registry, tmp_path):
    corpus = read_corpus([folder])
    assert len(corpus) == {SHARED: 8, MORE: 5}[folder]
    outcomes = [check(w, registry, tmp_path / w.name) for w in corpus]
    assert [(o.workflow.name, o.family, o.error) for o in outcomes if not o.valid] == []


def test_every_in_scope_template_of_the_package_validates_with_placeholder_files(registry, tmp_path):
    """The list of known failures only shrinks: a template that starts to validate fails this test
    until it leaves KNOWN_INVALID."""
    corpus = read_corpus([templates_folder()])
    scoped = in_scope(corpus)
    assert len(corpus) > 600 and len(scoped) >= 5, (len(corpus), [w.name for w in scoped])
    outcomes = {w.name: check(w, registry, tmp_path / w.name) for w in scoped}
    assert all(o.converted for o in outcomes.values())
    invalid = {name: o.error for name, o in outcomes.items() if not o.valid}
    assert sorted(invalid) == sorted(KNOWN_INVALID), json.dumps(invalid, indent=1)
    for name, words in KNOWN_INVALID.items():
        assert words in invalid[name]
    assert "sdxl_revision_text_prompts" in outcomes, "the template that asks for dpmpp_3m_sde_gpu is checked"


# --- end-to-end runs on tiny models ----------------------------------------------------------------

ALIASES = {
    "checkpoints": {"DreamShaper_8_pruned.safetensors": "tiny-sd15.safetensors",
                    "v1-5-pruned-emaonly-fp16.safetensors": "tiny-sd15.safetensors",
                    "sd_xl_base_1.0.safetensors": "tiny-sdxl.safetensors",
                    "sd_xl_turbo_1.0_fp16.safetensors": "tiny-sdxl.safetensors",
                    "sd_xl_refiner_1.0.safetensors": "tiny-sdxl-refiner.safetensors"},
    "vae": {"vae-ft-mse-840000-ema-pruned.safetensors": "tiny-vae.safetensors"},
    "controlnet": {"control_v11p_sd15_scribble_fp16.safetensors": "tiny-controlnet.safetensors"},
    "upscale_models": {"RealESRGAN_x4plus.safetensors": "tiny-esrgan-4x.safetensors"},
    "loras": {"lcm-lora-sdv1-5.safetensors": "tiny-lora.safetensors"},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, registry) -> Executor:
    """Tiny SD1.x, SDXL base and refiner checkpoints, a VAE, a ControlNet made from the SD1.x UNet,
    an ESRGAN 4× model and a LoRA, under the names `ALIASES` maps the workflows' own names onto."""
    from tests.nodes.test_controlnet import original_layout, tiny_controlnet
    from tests.nodes.test_upscale import tiny_models

    root = tmp_path_factory.mktemp("corpus-runs")
    models = root / "models"
    for kind in ("checkpoints", "vae", "loras", "controlnet", "upscale_models"):
        (models / kind).mkdir(parents=True)
    sd15, modules = save_tiny_checkpoint(models / "checkpoints", SD15, seed=1, name="tiny-sd15")
    save_tiny_checkpoint(models / "checkpoints", SDXL_BASE, seed=3, name="tiny-sdxl")
    save_tiny_checkpoint(models / "checkpoints", SDXL_REFINER, seed=5, name="tiny-sdxl-refiner")
    save_vae_only(sd15, models / "vae" / "tiny-vae.safetensors")
    save_lora(models / "loras")
    save_file(original_layout(tiny_controlnet(modules["unet"], 1)),
              str(models / "controlnet" / "tiny-controlnet.safetensors"))
    esrgan = tiny_models()["esrgan-4x"]
    save_file({k: v.contiguous() for k, v in esrgan.state_dict().items()},
              str(models / "upscale_models" / "tiny-esrgan-4x.safetensors"))
    (models / "aliases.yaml").write_text(yaml.safe_dump(ALIASES))
    return Executor(registry, Paths(models, root / "input", root / "output", root / "temp"))


def run(executor: Executor, workflow: Workflow) -> list[Path]:
    """Validate (input images get placeholders, models must come through the aliases), run, and
    return the images written."""
    write_placeholders(Workflow.from_api({k: v for k, v in workflow.to_api().items()
                                          if v["class_type"] == "LoadImage"}), executor.registry, executor.paths)
    validation = executor.validate(workflow)
    assert validation.ok, json.dumps(validation.response(), indent=1)
    result = executor.execute(workflow)
    assert result.status == "success", result.error
    images = written_images(result.outputs, executor.paths)
    assert images and all(p.is_file() for p in images)
    return images


def converted(name: str, executor: Executor, factor: float = 1 / 8) -> Workflow:
    ui = json.loads((MORE / name if (MORE / name).exists() else SHARED / name).read_text())
    return shrink(ui_to_api(ui, executor.registry), executor.registry, factor=factor)


def class_types(workflow: Workflow) -> set[str]:
    return {n.class_type for n in workflow.nodes.values()}


@pytest.mark.slow
def test_controlnet_template_runs(tiny):
    workflow = converted("controlnet_example.json", tiny)
    assert {"ControlNetLoader", "ControlNetApplyAdvanced", "Canny", "LoadImage"} <= class_types(workflow)
    run(tiny, workflow)


@pytest.mark.slow
def test_upscale_model_template_runs_and_upscales_four_times(tiny):
    workflow = converted("esrgan_example.json", tiny)
    latent = next(n for n in workflow.nodes.values() if n.class_type == "EmptyLatentImage").inputs
    sizes = {Image.open(p).size for p in run(tiny, workflow)}
    assert (latent["width"] * 4, latent["height"] * 4) in sizes


@pytest.mark.slow
def test_area_composition_template_runs(tiny):
    workflow = converted("area_composition_square_area_for_subject.json", tiny)
    assert "ConditioningSetArea" in class_types(workflow)
    run(tiny, workflow)


@pytest.mark.slow
def test_sdxl_refiner_template_runs_base_then_refiner(tiny):
    workflow = converted("sdxl_refiner_prompt_example.json", tiny, factor=1 / 16)
    loaders = sorted(n.inputs["ckpt_name"] for n in workflow.nodes.values() if n.class_type == "CheckpointLoaderSimple")
    assert loaders == ["sd_xl_base_1.0.safetensors", "sd_xl_refiner_1.0.safetensors"]
    run(tiny, workflow)


@pytest.mark.slow
def test_sdxl_turbo_template_runs_with_custom_sampling(tiny):
    workflow = converted("sdxlturbo_example.json", tiny)
    assert {"SamplerCustom", "SDTurboScheduler", "KSamplerSelect"} <= class_types(workflow)
    run(tiny, workflow)


def default_graph(executor: Executor) -> dict:
    """ComfyUI's default workflow (checkpoint 4, prompts 6/7, latent 5, KSampler 3, decode 8), shrunk."""
    return converted("default.json", executor).to_api()


@pytest.mark.slow
def test_default_workflow_with_freeu_and_samplercustomadvanced_runs(tiny):
    """The default graph with FreeU on the model and KSampler replaced by SamplerCustomAdvanced's parts."""
    graph = default_graph(tiny)
    sampler = graph.pop("3")["inputs"]
    graph.update({
        "20": {"class_type": "FreeU", "inputs": {"model": ["4", 0], "b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}},
        "21": {"class_type": "RandomNoise", "inputs": {"noise_seed": 7}},
        "22": {"class_type": "CFGGuider", "inputs": {"model": ["20", 0], "positive": sampler["positive"],
                                                     "negative": sampler["negative"], "cfg": 7.0}},
        "23": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "24": {"class_type": "BasicScheduler", "inputs": {"model": ["20", 0], "scheduler": "normal", "steps": 2,
                                                          "denoise": 1.0}},
        "3": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["21", 0], "guider": ["22", 0],
                                                                "sampler": ["23", 0], "sigmas": ["24", 0],
                                                                "latent_image": sampler["latent_image"]}},
    })
    run(tiny, Workflow.from_api(graph))


@pytest.mark.slow
def test_default_workflow_as_lcm_runs(tiny):
    """LCM as ComfyUI's examples set it up: an LCM LoRA, ModelSamplingDiscrete(lcm), the lcm sampler, cfg 1."""
    graph = default_graph(tiny)
    graph["10"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1],
                                                          "lora_name": "lcm-lora-sdv1-5.safetensors",
                                                          "strength_model": 1.0, "strength_clip": 1.0}}
    graph["11"] = {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["10", 0], "sampling": "lcm",
                                                                     "zsnr": False}}
    graph["3"]["inputs"].update(model=["11", 0], sampler_name="lcm", scheduler="sgm_uniform", cfg=1.0)
    for node in ("6", "7"):
        graph[node]["inputs"]["clip"] = ["10", 1]
    images = run(tiny, Workflow.from_api(graph))
    assert np.asarray(Image.open(images[0]), dtype=np.float32).std() > 0


@pytest.mark.slow
def test_sdxl_revision_template_runs_with_unclip_conditioning(tiny):
    """The package's revision template (CLIP vision image prompts through unCLIPConditioning); its
    `dpmpp_3m_sde_gpu` sampler (KNOWN_INVALID) becomes the CPU `dpmpp_3m_sde`."""
    from tests.nodes.vision_models import save_clip_vision

    save_clip_vision(tiny.paths.models_dir / "clip_vision", "clip_vision_g.safetensors")
    ui = json.loads((templates_folder() / "sdxl_revision_text_prompts.json").read_text())
    graph = shrink(ui_to_api(ui, tiny.registry), tiny.registry, factor=1 / 16).to_api()
    for node in graph.values():
        if node["class_type"] == "KSampler":
            node["inputs"]["sampler_name"] = "dpmpp_3m_sde"
    workflow = Workflow.from_api(graph)
    assert {"CLIPVisionLoader", "CLIPVisionEncode", "unCLIPConditioning"} <= class_types(workflow)
    run(tiny, workflow)
