"""A test-only output node that hands whatever reaches it back to the test."""

from engine.context import RunContext
from engine.declare import node
from engine.types import ANY, Link
from engine.workflow import Workflow


@node("Capture", output_node=True)
class Capture:
    """Appends what it receives to ctx.settings["captured"] (a list the test owns)."""

    value = Link(ANY)

    def run(self, ctx: RunContext, value):
        ctx.settings["captured"].append(value)


def captured_txt2img(executor_for, **settings):
    """Run a 4-step euler txt2img on the tiny SD1.5 checkpoint at these run settings, capturing the final
    latent, the decoded image and the MODEL handle: (result, {"latent", "image", "model"} or None on failure).
    `executor_for(settings)` makes the Executor (the test's registry and paths)."""
    captured: list = []
    result = executor_for({**settings, "captured": captured}).execute(Workflow.from_api({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": 1, "steps": 4, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "c1": {"class_type": "Capture", "inputs": {"value": ["3", 0]}},
        "c2": {"class_type": "Capture", "inputs": {"value": ["8", 0]}},
        "c3": {"class_type": "Capture", "inputs": {"value": ["4", 0]}}}))
    if result.status != "success":
        return result, None
    by_type = {type(v).__name__: v for v in captured}
    return result, {"latent": by_type["dict"]["samples"], "image": by_type["Tensor"], "model": by_type["ModelHandle"]}
