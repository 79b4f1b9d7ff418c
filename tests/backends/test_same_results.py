"""The same prompt and seed give the same outputs, files and event order on both backends.

The toy graph checks events and files; one real run of the built-in tiny SD1.5 checkpoint checks
that a Ray worker's image is the in-process image, pixel for pixel.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.backends.helpers import BACKENDS, ROOT, toy_prompt

pytestmark = pytest.mark.ray


def shape(events):
    """Event names with their node and value, minus what differs run to run (timestamps, bytes)."""
    return [(name, data.get("node"), data.get("value")) for name, data in events]


def run_everywhere(make_harness, prompt, workers=2, **overrides):
    """{backend: (finished job, its events)} for one prompt run on a fresh queue of each backend."""
    results = {}
    for kind in BACKENDS:
        harness = make_harness(kind, workers=workers, **overrides)
        job = harness.wait_done(harness.submit(prompt, f"same-{kind}"), timeout=120)
        results[kind] = job, harness.of(job.prompt_id)
        harness.queue.stop()
    return results


def test_toy_graph_same_outputs_files_and_event_order(make_harness, config):
    results = run_everywhere(make_harness, toy_prompt(seed=7, steps=5))
    (local, local_events), (ray, ray_events) = results["local"], results["ray"]
    assert local.status_str == ray.status_str == "success"
    assert local.outputs["3"] == ray.outputs["3"] == {"values": [12]}
    assert shape(local_events) == shape(ray_events)
    files = [config.output_dir / job.outputs["4"]["images"][0]["filename"] for job in (local, ray)]
    assert files[0] != files[1] and files[0].read_bytes() == files[1].read_bytes()


def small_txt2img(seed: int) -> dict:
    prompt = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    prompt["4"]["inputs"]["ckpt_name"] = "tiny-sd15-random.safetensors"
    prompt["5"]["inputs"].update(width=64, height=64, batch_size=1)
    prompt["3"]["inputs"].update(steps=2, seed=seed)
    return prompt


@pytest.mark.slow
def test_tiny_sd15_same_image_for_the_same_seed(make_harness, config):
    results = run_everywhere(make_harness, small_txt2img(seed=5), workers=1, node_packages=("nodes",),
                             settings={"precision": "fp32"})
    images = []
    for kind, (job, events) in results.items():
        assert job.status_str == "success", (kind, job.messages)
        image = job.outputs["9"]["images"][0]
        images.append(np.asarray(Image.open(config.output_dir / image["filename"])))
        assert [d["value"] for n, d in events if n == "progress"] == [1, 2]
    assert images[0].shape == (64, 64, 3) and np.array_equal(images[0], images[1])
    assert shape(results["local"][1]) == shape(results["ray"][1])
