"""SaveImage / PreviewImage: ComfyUI's file naming, metadata, and never overwriting anything."""


import numpy as np
import pytest
import torch
from PIL import Image

from engine.execute import Executor
from engine.paths import Paths
from engine.pngmeta import read_png_metadata
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.image_ops import EmptyImage, ImageInvert
from nodes.image_save import PreviewImage, SaveImage, to_uint8


@pytest.fixture
def executor(tmp_path):
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    return Executor(NodeRegistry([EmptyImage, ImageInvert, SaveImage, PreviewImage]), paths)


def graph(prefix="ComfyUI", color=0x102030, batch=1, output="SaveImage"):
    inputs = {"images": ["1", 0]} | ({"filename_prefix": prefix} if output == "SaveImage" else {})
    return Workflow.from_api({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 3, "batch_size": batch, "color": color}},
        "2": {"class_type": output, "inputs": inputs}})


def test_saves_numbered_pngs_with_prompt_and_workflow_chunks(executor, tmp_path):
    extra = {"extra_pnginfo": {"workflow": {"nodes": [], "links": []}}}
    result = executor.execute(graph(batch=2), extra_data=extra)
    images = result.outputs["2"]["images"]
    assert images == [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"},
                      {"filename": "ComfyUI_00002_.png", "subfolder": "", "type": "output"}]
    path = tmp_path / "output" / "ComfyUI_00001_.png"
    meta = read_png_metadata(path)
    assert meta.prompt == graph(batch=2).to_api()
    assert meta.workflow == {"nodes": [], "links": []}
    assert np.asarray(Image.open(path)).tolist()[0][0] == [0x10, 0x20, 0x30]


def test_counter_continues_and_existing_files_are_never_overwritten(executor, tmp_path):
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "ComfyUI_00007_.png").write_bytes(b"precious")
    result = executor.execute(graph(color=1))
    assert result.outputs["2"]["images"][0]["filename"] == "ComfyUI_00008_.png"
    assert (tmp_path / "output" / "ComfyUI_00007_.png").read_bytes() == b"precious"


def test_prefix_with_subfolder(executor, tmp_path):
    result = executor.execute(graph(prefix="renders/cat"))
    assert result.outputs["2"]["images"][0] == {"filename": "cat_00001_.png", "subfolder": "renders", "type": "output"}
    assert (tmp_path / "output" / "renders" / "cat_00001_.png").is_file()


@pytest.mark.parametrize("prefix", ["../escape", "/etc/owned", "a/../../b"])
def test_prefix_leaving_the_output_folder_is_an_error(executor, tmp_path, prefix):
    result = executor.execute(graph(prefix=prefix))
    assert result.status == "error"
    assert "filename_prefix" in result.error.exception_message
    assert not any(tmp_path.parent.glob("escape*")) and not (tmp_path / "b_00001_.png").exists()


def test_preview_goes_to_temp(executor, tmp_path):
    result = executor.execute(graph(output="PreviewImage"))
    image = result.outputs["2"]["images"][0]
    assert image["type"] == "temp" and image["filename"].startswith("ComfyUI_temp_")
    assert (tmp_path / "temp" / image["filename"]).is_file()


def test_pixels_are_truncated_not_rounded_like_comfyui():
    image = torch.tensor([[[0.999, 0.5, 1.5]]])
    assert to_uint8(image).tolist() == [[[254, 127, 255]]]
