"""LoadImage against hostile files: an animation too large to load is refused by name, before decoding."""

import struct

import pytest

from engine.context import InterruptHandle, RunContext
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.image_load import MAX_LOAD_PIXELS, LoadImage
from tests.nodes.capture import Capture


def gif_frame_bomb(width: int, height: int, frames: int) -> bytes:
    """`frames` one-pixel frames on a `width` x `height` screen: each frame decodes to the whole screen."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"  # one pixel, LZW-coded
    return screen + frame * frames + b"\x3b"


@pytest.fixture
def paths(tmp_path):
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    paths.input_dir.mkdir()
    return paths


def test_a_gif_frame_bomb_fails_validation_with_its_name_and_size(paths):
    (paths.input_dir / "bomb.gif").write_bytes(gif_frame_bomb(8000, 8000, 1000))  # 15 KB; 768 GB as tensors
    captured = []
    executor = Executor(NodeRegistry([LoadImage, Capture]), paths, settings={"captured": captured})
    workflow = Workflow.from_api({"1": {"class_type": "LoadImage", "inputs": {"image": "bomb.gif"}},
                                  "2": {"class_type": "Capture", "inputs": {"value": ["1", 0]}}})

    result = executor.validate(workflow)

    assert not result.ok and captured == []
    error = result.node_errors["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed"
    assert "'bomb.gif' refused: its 1000 frames of 8000x8000 pixels" in error["message"]


def test_a_gif_frame_bomb_is_refused_at_run_time_too_before_any_frame_is_decoded(paths):
    (paths.input_dir / "bomb.gif").write_bytes(gif_frame_bomb(8000, 8000, 1000))
    ctx = RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                     emit=lambda event, data: None, settings={})

    with pytest.raises(ValueError, match=f"over the limit of {MAX_LOAD_PIXELS}"):
        LoadImage().run(ctx, image="bomb.gif")


def test_tiny_frames_count_as_their_placeholder_masks(paths):
    frames = MAX_LOAD_PIXELS // (64 * 64) + 1  # 1x1 frames, but each gets a 64x64 mask
    (paths.input_dir / "many.gif").write_bytes(gif_frame_bomb(1, 1, frames))

    assert "refused" in LoadImage().validate_inputs(paths, image="many.gif")


def test_a_small_animation_still_loads_every_frame(paths):
    (paths.input_dir / "small.gif").write_bytes(gif_frame_bomb(64, 64, 3))
    ctx = RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                     emit=lambda event, data: None, settings={})

    assert LoadImage().validate_inputs(paths, image="small.gif") is None
    image, mask = LoadImage().run(ctx, image="small.gif")
    assert tuple(image.shape) == (3, 64, 64, 3) and tuple(mask.shape) == (3, 64, 64)
