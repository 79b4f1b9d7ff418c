"""SaveAnimatedWEBP / SaveAnimatedPNG: one animated file per batch, named like SaveImage's, never overwriting."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.context import InterruptHandle, RunContext
from engine.execute import Executor
from engine.paths import Paths
from engine.pngmeta import read_png_metadata
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.image_animated import SaveAnimatedPNG, SaveAnimatedWEBP
from nodes.image_batch import ImageBatch
from nodes.image_ops import EmptyImage

PROMPT = {"1": {"class_type": "EmptyImage", "inputs": {}}}
WORKFLOW = {"nodes": [], "links": []}


@pytest.fixture
def paths(tmp_path):
    return Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")


def ctx(paths):
    return RunContext(node_id="2", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                      emit=lambda event, data: None, prompt=PROMPT, extra_pnginfo={"workflow": WORKFLOW})


def frames(count=3, height=4, width=5):
    """`count` frames, each one flat grey level: frame i is i × 60 / 255."""
    return torch.stack([torch.full((height, width, 3), i * 60 / 255) for i in range(count)])


def save_png(paths, images, prefix="ComfyUI", fps=10.0):
    return SaveAnimatedPNG().run(ctx(paths), images, prefix, fps, 4)


def save_webp(paths, images, prefix="ComfyUI", fps=10.0):
    return SaveAnimatedWEBP().run(ctx(paths), images, prefix, fps, True, 80, "default")


def read_frames(path):
    with Image.open(path) as picture:
        assert picture.is_animated
        decoded = []
        for index in range(picture.n_frames):
            picture.seek(index)
            decoded.append((np.asarray(picture.convert("RGB")).copy(), picture.info.get("duration")))
        return decoded


@pytest.mark.parametrize("save, extension", [(save_png, "png"), (save_webp, "webp")])
def test_batch_becomes_one_animated_file_with_every_frame(paths, save, extension):
    result = save(paths, frames(3))
    name = f"ComfyUI_00001_.{extension}"
    assert result.ui == {"images": [{"filename": name, "subfolder": "", "type": "output"}], "animated": [True]}
    decoded = read_frames(paths.output_dir / name)
    assert len(decoded) == 3
    assert [int(pixels[0, 0, 0]) for pixels, _ in decoded] == [0, 60, 120]  # lossless both
    assert all(duration == 100 for _, duration in decoded)  # 1000 / fps milliseconds


def test_png_carries_prompt_and_workflow_text_chunks(paths):
    save_png(paths, frames(2))
    meta = read_png_metadata(paths.output_dir / "ComfyUI_00001_.png")
    assert meta.prompt == PROMPT and meta.workflow == WORKFLOW


def test_webp_carries_prompt_and_workflow_in_exif_as_comfyui(paths):
    save_webp(paths, frames(2))
    with Image.open(paths.output_dir / "ComfyUI_00001_.webp") as picture:
        exif = picture.getexif()
    assert exif[0x0110] == "prompt:" + json.dumps(PROMPT)
    assert exif[0x010F] == "workflow:" + json.dumps(WORKFLOW)


@pytest.mark.parametrize("save, extension", [(save_png, "png"), (save_webp, "webp")])
def test_existing_files_are_never_overwritten(paths, save, extension):
    paths.output_dir.mkdir(parents=True)
    (paths.output_dir / f"ComfyUI_00001_.{extension}").write_bytes(b"precious")
    first, second = (save(paths, frames(2)).ui["images"][0]["filename"] for _ in range(2))
    assert (first, second) == (f"ComfyUI_00002_.{extension}", f"ComfyUI_00003_.{extension}")
    names = sorted(p.name for p in paths.output_dir.iterdir())
    assert names == [f"ComfyUI_0000{i}_.{extension}" for i in (1, 2, 3)]
    assert (paths.output_dir / f"ComfyUI_00001_.{extension}").read_bytes() == b"precious"


def test_animated_png_continues_the_counter_of_saved_pngs_in_a_subfolder(paths):
    (paths.output_dir / "clips").mkdir(parents=True)
    (paths.output_dir / "clips" / "run_00007_.png").write_bytes(b"a SaveImage file")
    result = save_png(paths, frames(1), prefix="clips/run")
    assert result.ui == {"images": [{"filename": "run_00008_.png", "subfolder": "clips", "type": "output"}],
                         "animated": [False]}


def test_prefix_leaving_the_output_folder_is_refused(paths, tmp_path):
    with pytest.raises(ValueError, match="filename_prefix"):
        save_webp(paths, frames(2), prefix="../escape")
    assert not list(tmp_path.glob("escape*"))


def test_executor_records_the_saved_file_as_the_nodes_output(paths):
    executor = Executor(NodeRegistry([EmptyImage, ImageBatch, SaveAnimatedWEBP]), paths)
    empty = {"width": 8, "height": 8, "batch_size": 2}
    workflow = Workflow.from_api({
        "1": {"class_type": "EmptyImage", "inputs": {**empty, "color": 0xFF0000}},
        "3": {"class_type": "EmptyImage", "inputs": {**empty, "color": 0x0000FF}},
        "4": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["3", 0]}},
        "2": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["4", 0], "filename_prefix": "anim", "fps": 2.0,
                                                          "lossless": False, "quality": 50, "method": "fastest"}}})
    result = executor.execute(workflow)
    assert result.outputs["2"] == {"images": [{"filename": "anim_00001_.webp", "subfolder": "", "type": "output"}],
                                   "animated": [True]}
    decoded = read_frames(paths.output_dir / "anim_00001_.webp")
    # Pillow merges identical neighbouring frames, as in ComfyUI: red for two frames' time, then blue.
    assert [(int(pixels[0, 0, 0]) > 128, duration) for pixels, duration in decoded] == [(True, 1000), (False, 1000)]
