"""The record saved with an image comes from the node declarations: a third-party pack's sampler
and loader appear in it (seed, steps; its model file and hash) with no change to the engine."""

from __future__ import annotations

import json

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.execute import Executor
from engine.pngmeta import read_png_metadata
from engine.types import IMAGE, Link
from engine.workflow import Workflow
from nodes.image_save import SaveImage
from nodes.models.file_hash import sha256_file
from tests.engine.helpers import pack_prompt


@node("ValueToImage", category="test", outputs=[Out(IMAGE)])
class ValueToImage:
    """A 4×4 grey image whose brightness is the value (mod 256)."""

    value = Link("INT")

    def run(self, ctx: RunContext, value: int) -> tuple:
        return (torch.full((1, 4, 4, 3), (value % 256) / 255.0),)


def test_a_packs_sampler_and_model_appear_in_the_saved_images_record(pack_registry, pack_paths):
    pack_registry.register(ValueToImage)
    pack_registry.register(SaveImage)
    prompt = pack_prompt(seed=7).to_api()
    prompt["3"] = {"class_type": "ValueToImage", "inputs": {"value": ["2", 0]}}
    prompt["4"] = {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "pack"}}
    result = Executor(pack_registry, pack_paths).execute(Workflow.from_api(prompt))
    assert result.status == "success", result.error
    saved = pack_paths.output_dir / result.outputs["4"]["images"][0]["filename"]
    record = json.loads(read_png_metadata(saved).other["sdgraph"])
    assert record["samplers"] == [{"node": "2", "seed": 7, "steps": 2}]
    model = pack_paths.models_dir / "pack_models" / "a.bin"
    assert record["pack_models"] == [{"node": "1", "name": "a.bin", "sha256": sha256_file(model)}]
