"""The pixel cap is the server's: a request may lower it, never raise it, and every node that
allocates from constant sizes is refused at validation, before anything is allocated."""

from __future__ import annotations

import pytest
import torch

from engine.context import InterruptHandle, RunContext
from engine.execute import Executor, ValidationFailed
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.image_ops import EmptyImage, ImagePadForOutpaint
from nodes.image_resize import ImageScale, ImageScaleBy, ImageScaleToTotalPixels
from nodes.latent import EmptyLatentImage
from nodes.pixel_cap import DEFAULT_MAX_PIXELS, ImageTooLargeError
from tests.nodes.capture import Capture

CAP = 512 * 512 * 2


@pytest.fixture
def executor(tmp_path):
    registry = NodeRegistry([EmptyLatentImage, EmptyImage, ImageScale, Capture])
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    return Executor(registry, paths, settings={"captured": [], "max_latent_pixels": CAP})


def graph(class_type: str, **inputs) -> Workflow:
    return Workflow.from_api({"1": {"class_type": class_type, "inputs": inputs},
                              "2": {"class_type": "Capture", "inputs": {"value": ["1", 0]}}})


def ctx(**settings) -> RunContext:
    return RunContext(node_id="1", prompt_id="test", paths=Paths(), interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings=settings)


def node_error(executor: Executor, workflow: Workflow, extra_data=None) -> str:
    with pytest.raises(ValidationFailed) as refused:
        executor.compile(workflow, extra_data=extra_data)
    return refused.value.result.node_errors["1"]["errors"][0]["message"]


def test_a_request_cannot_raise_the_servers_cap(executor):
    raised = {"settings": {"max_latent_pixels": CAP * 16}}
    assert executor.run_settings(raised)["max_latent_pixels"] == CAP
    message = node_error(executor, graph("EmptyLatentImage", width=1024, height=1024, batch_size=1), raised)
    assert "exceeds the limit of 524,288" in message


def test_a_request_may_lower_the_cap(executor):
    lowered = {"settings": {"max_latent_pixels": 64 * 64}}
    assert executor.run_settings(lowered)["max_latent_pixels"] == 64 * 64
    assert "limit of 4,096" in node_error(executor, graph("EmptyLatentImage", width=128, height=128, batch_size=1),
                                          lowered)


def test_without_a_server_value_the_default_is_the_ceiling(tmp_path):
    executor = Executor(NodeRegistry([EmptyLatentImage, Capture]), Paths(tmp_path))
    assert executor.run_settings({"settings": {"max_latent_pixels": DEFAULT_MAX_PIXELS * 16}}).get(
        "max_latent_pixels", DEFAULT_MAX_PIXELS) == DEFAULT_MAX_PIXELS
    assert executor.run_settings({"settings": {"max_latent_pixels": 100}})["max_latent_pixels"] == 100


@pytest.mark.parametrize("value", ["999999999999", True, float("nan"), None, [1]])
def test_a_limit_that_is_not_a_number_is_ignored(executor, value):
    assert executor.run_settings({"settings": {"max_latent_pixels": value}})["max_latent_pixels"] == CAP


def test_unknown_limits_are_ignored_and_other_settings_still_apply(executor):
    settings = executor.run_settings({"settings": {"max_anything": 5, "precision": "fp32"}})
    assert "max_anything" not in settings and settings["precision"] == "fp32"


def test_empty_image_is_capped_at_validation(executor):
    message = node_error(executor, graph("EmptyImage", width=16384, height=16384, batch_size=4096, color=0))
    assert "image too large" in message and "reduce width, height or batch_size" in message
    assert executor.execute(graph("EmptyImage", width=512, height=512, batch_size=2, color=0)).status == "success"


def test_image_scale_to_constant_sizes_is_capped_at_validation(executor):
    workflow = Workflow.from_api({
        "1": {"class_type": "ImageScale", "inputs": {"image": ["3", 0], "upscale_method": "nearest-exact",
                                                      "width": 4096, "height": 4096, "crop": "disabled"}},
        "2": {"class_type": "Capture", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}})
    assert "reduce width or height" in node_error(executor, workflow)


def test_nodes_sized_by_their_inputs_check_the_cap_when_they_run():
    small = ctx(max_latent_pixels=100)
    image = torch.zeros(1, 8, 8, 3)
    with pytest.raises(ImageTooLargeError, match="reduce scale_by"):
        ImageScaleBy().run(small, image, "nearest-exact", 2.0)
    with pytest.raises(ImageTooLargeError, match="reduce megapixels"):
        ImageScaleToTotalPixels().run(small, image, "nearest-exact", 1.0)
    with pytest.raises(ImageTooLargeError, match="reduce width or height"):
        ImageScale().run(small, torch.zeros(2, 8, 8, 3), "nearest-exact", 8, 0, "disabled")
    with pytest.raises(ImageTooLargeError, match="reduce left, top, right or bottom"):
        ImagePadForOutpaint().run(small, image, 8, 0, 0, 0, 0)
    with pytest.raises(ImageTooLargeError):
        EmptyImage().run(small, 16, 16, 1, 0)
    assert ImageScaleBy().run(small, image, "nearest-exact", 1.0)[0].shape == (1, 8, 8, 3)
