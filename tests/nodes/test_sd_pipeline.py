"""Text-to-image, image-to-image and inpainting through the real nodes and executor, on a tiny
random-weight SD1.x checkpoint in the real single-file layout."""

import pytest
import torch

from engine.config import EngineConfig, build_registry
from engine.context import InterruptHandle, RunContext
from engine.events import EventLog
from engine.execute import Executor
from engine.paths import Paths
from engine.workflow import Workflow


@pytest.fixture(scope="module")
def registry():
    return build_registry(EngineConfig(extension_dirs=[]))


@pytest.fixture
def executor(registry, models_dir, tmp_path):
    return Executor(registry, Paths(models_dir, tmp_path / "input", tmp_path / "output", tmp_path / "temp"))


def txt2img(seed=1, steps=3, prompt="a red circle", cfg=7.0, sampler="euler", size=64):
    return Workflow.from_api({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler,
            "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
            "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}}})


def test_txt2img_writes_an_image_of_the_latent_size(executor, tmp_path):
    result = executor.execute(txt2img())
    assert result.status == "success", result.error
    image = result.outputs["9"]["images"][0]
    assert (tmp_path / "output" / image["filename"]).is_file()
    from PIL import Image
    assert Image.open(tmp_path / "output" / image["filename"]).size == (64, 64)


def test_seed_only_change_reruns_sampler_decoder_and_saver_only(executor):
    executor.execute(txt2img(seed=1))
    log = EventLog()
    result = executor.execute(txt2img(seed=2), listener=log)
    assert sorted(result.ran) == ["3", "8", "9"]
    assert sorted(log.of("execution_cached")[0]["nodes"]) == ["4", "5", "6", "7"]
    assert "input 'seed' changed (1 → 2)" in result.report["3"].reason


def test_same_seed_same_pixels_and_different_seed_different_pixels(registry, models_dir, tmp_path):
    def pixels(seed, folder):
        executor = Executor(registry, Paths(models_dir, tmp_path / "in", tmp_path / folder, tmp_path / "t"))
        result = executor.execute(txt2img(seed=seed))
        import numpy as np
        from PIL import Image
        return np.asarray(Image.open(tmp_path / folder / result.outputs["9"]["images"][0]["filename"]))

    first, again, other = pixels(5, "a"), pixels(5, "b"), pixels(6, "c")
    assert (first == again).all()
    assert not (first == other).all()


def test_progress_once_per_step_and_interrupt_stops_within_one_step(executor):
    interrupt = InterruptHandle()
    log = EventLog()

    def listener(event, data):
        log(event, data)
        if event == "progress" and data["value"] == 2:
            interrupt.set()

    result = executor.execute(txt2img(steps=10), listener=listener, interrupt=interrupt)
    assert result.status == "interrupted"
    assert [d["value"] for d in log.of("progress")] == [1, 2]
    assert log.of("execution_interrupted")[0]["node_type"] == "KSampler"
    again = executor.execute(txt2img(steps=4), listener=log)
    assert again.status == "success"
    assert [d["value"] for d in log.of("progress")][-4:] == [1, 2, 3, 4]


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "heun", "dpmpp_2m", "ddim", "uni_pc", "lms"])
def test_samplers_run_through_the_node(executor, sampler):
    assert executor.execute(txt2img(sampler=sampler, steps=4)).status == "success"


def test_cfg_one_skips_the_negative_prompt(executor):
    assert executor.execute(txt2img(cfg=1.0)).status == "success"


def test_inpainting_leaves_the_unmasked_latent_untouched(registry, models_dir, tmp_path):
    from engine.declare import NodeResult, Out, node
    from engine.registry import NodeRegistry
    from engine.types import LATENT, Link

    captured = {}

    @node("CaptureLatent", output_node=True)
    class CaptureLatent:
        samples = Link(LATENT)

        def run(self, ctx: RunContext, samples):
            captured[ctx.node_id] = samples
            return NodeResult(ui={})

    reg = NodeRegistry([CaptureLatent, *[d.cls for d in registry]])
    executor = Executor(reg, Paths(models_dir, tmp_path / "in", tmp_path / "out", tmp_path / "t"))
    graph = txt2img(steps=4).to_api()
    del graph["8"], graph["9"]
    graph["10"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                           "color": 0x3366CC}}
    graph["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    graph["13"] = {"class_type": "CaptureLatent", "inputs": {"samples": ["11", 0]}}
    executor.execute(Workflow.from_api(graph))
    original = captured["13"]["samples"]

    mask = torch.zeros(1, 64, 64)
    mask[:, :, 32:] = 1.0  # regenerate the right half only

    @node("HalfMask", outputs=[Out("MASK")])
    class HalfMask:
        def run(self, ctx: RunContext):
            return (mask,)

    reg.register(HalfMask)
    graph["12"] = {"class_type": "HalfMask", "inputs": {}}
    graph["14"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["11", 0], "mask": ["12", 0]}}
    graph["3"]["inputs"]["latent_image"] = ["14", 0]
    graph["15"] = {"class_type": "CaptureLatent", "inputs": {"samples": ["3", 0]}}
    result = executor.execute(Workflow.from_api(graph))
    assert result.status == "success", result.error
    out = captured["15"]["samples"]
    assert torch.allclose(out[..., :4], original[..., :4], atol=1e-5), "the kept (left) half is unchanged"
    assert not torch.allclose(out[..., 4:], original[..., 4:], atol=1e-2), "the masked half is regenerated"


def test_img2img_with_partial_denoise_runs(executor):
    graph = txt2img(steps=4).to_api()
    graph["10"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                           "color": 0x3366CC}}
    graph["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    graph["3"]["inputs"].update(latent_image=["11", 0], denoise=0.5)
    assert executor.execute(Workflow.from_api(graph)).status == "success"


def test_saved_image_carries_a_reproducibility_record(executor, tmp_path, models_dir):
    import json

    from engine.pngmeta import read_png_metadata
    from nodes.models.file_hash import sha256_file

    result = executor.execute(txt2img(seed=77, steps=2))
    meta = read_png_metadata(tmp_path / "output" / result.outputs["9"]["images"][0]["filename"])
    record = json.loads(meta.other["sdgraph"])
    assert record["samplers"] == [{"node": "3", "seed": 77, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                   "scheduler": "normal", "denoise": 1.0}]
    assert record["checkpoints"][0]["sha256"] == sha256_file(models_dir / "checkpoints" / "tiny-sd15.safetensors")
    assert record["device"] == "cpu" and record["dtype"] == "fp32"
    assert meta.prompt == txt2img(seed=77, steps=2).to_api()


def test_precision_setting_reloads_the_model_and_is_recorded(executor, tmp_path):
    import json

    from engine.pngmeta import read_png_metadata

    executor.execute(txt2img(steps=2))
    result = executor.execute(txt2img(steps=2), extra_data={"settings": {"precision": "bf16"}})
    assert result.status == "success", result.error
    assert "4" in result.ran, "the loader re-runs for the new precision"
    meta = read_png_metadata(tmp_path / "output" / result.outputs["9"]["images"][0]["filename"])
    assert json.loads(meta.other["sdgraph"])["dtype"] == "bf16"


def test_latent_previews_once_per_step_when_asked(executor):
    import io

    from PIL import Image

    executor.settings["previews"] = True
    log = EventLog()
    executor.execute(txt2img(seed=9, steps=3), listener=log)
    previews = log.of("preview")
    assert len(previews) == 3 and all(p["node"] == "3" and p["format"] == "JPEG" for p in previews)
    assert Image.open(io.BytesIO(previews[0]["data"])).size == (64, 64), "upscaled to the image size"
    del executor.settings["previews"]
    quiet = EventLog()
    executor.execute(txt2img(seed=10, steps=3), listener=quiet)
    assert quiet.of("preview") == []
