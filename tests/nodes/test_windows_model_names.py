"""Workflows saved on Windows name models in subfolders with backslashes (`SD1_5\\model.safetensors`, as
ComfyUI lists them there): they validate and load here when that file exists, with `/` read for each `\\`,
while names that would leave the model folders stay refused, naming the node and the input."""

import shutil

import pytest

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths, UnsafePathError, posix_model_name
from engine.ui_format import ui_to_api


def txt2img_ui(ckpt_name: str) -> dict:
    """A UI-format txt2img workflow (one step, 64×64) whose loader asks for `ckpt_name`."""
    def node(id_, type_, inputs=(), outputs=(), widgets=()):
        return {"id": id_, "type": type_, "mode": 0,
                "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
                "outputs": [{"name": n, "type": t, "links": links} for n, t, links in outputs],
                "widgets_values": list(widgets)}
    nodes = [
        node(4, "CheckpointLoaderSimple", outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]),
                                                   ("VAE", "VAE", [8])], widgets=[ckpt_name]),
        node(6, "CLIPTextEncode", inputs=[("clip", "CLIP", 2)], outputs=[("CONDITIONING", "CONDITIONING", [4])],
             widgets=["a red circle"]),
        node(7, "CLIPTextEncode", inputs=[("clip", "CLIP", 3)], outputs=[("CONDITIONING", "CONDITIONING", [5])],
             widgets=[""]),
        node(5, "EmptyLatentImage", outputs=[("LATENT", "LATENT", [6])], widgets=[64, 64, 1]),
        node(3, "KSampler", inputs=[("model", "MODEL", 1), ("positive", "CONDITIONING", 4),
                                    ("negative", "CONDITIONING", 5), ("latent_image", "LATENT", 6)],
             outputs=[("LATENT", "LATENT", [7])], widgets=[1, "fixed", 1, 7.0, "euler", "normal", 1.0]),
        node(8, "VAEDecode", inputs=[("samples", "LATENT", 7), ("vae", "VAE", 8)],
             outputs=[("IMAGE", "IMAGE", [9])]),
        node(9, "PreviewImage", inputs=[("images", "IMAGE", 9)]),
    ]
    links = [[1, 4, 0, 3, 0, "MODEL"], [2, 4, 1, 6, 0, "CLIP"], [3, 4, 1, 7, 0, "CLIP"],
             [4, 6, 0, 3, 1, "CONDITIONING"], [5, 7, 0, 3, 2, "CONDITIONING"], [6, 5, 0, 3, 3, "LATENT"],
             [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"], [9, 8, 0, 9, 0, "IMAGE"]]
    return {"last_node_id": 9, "last_link_id": 9, "nodes": nodes, "links": links, "version": 0.4}


@pytest.fixture(scope="module")
def registry():
    return build_registry(EngineConfig(extension_dirs=[]))


@pytest.fixture(scope="module")
def paths(models_dir, tmp_path_factory):
    """The tiny checkpoint moved into a subfolder, `checkpoints/SD1_5/tiny.safetensors`."""
    root = tmp_path_factory.mktemp("windows")
    subfolder = root / "models" / "checkpoints" / "SD1_5"
    subfolder.mkdir(parents=True)
    shutil.copy(models_dir / "checkpoints" / "tiny-sd15.safetensors", subfolder / "tiny.safetensors")
    return Paths(root / "models", root / "input", root / "output", root / "temp")


def test_a_backslash_name_validates_and_loads_the_file_in_the_subfolder(registry, paths):
    workflow = ui_to_api(txt2img_ui("SD1_5\\tiny.safetensors"), registry)
    executor = Executor(registry, paths)
    validation = executor.validate(workflow)
    assert validation.ok, validation.response()
    assert validation.plan.constants["4"]["ckpt_name"] == "SD1_5/tiny.safetensors"
    result = executor.execute(workflow)
    assert result.status == "success", result.error
    assert len(result.outputs["9"]["images"]) == 1


def test_a_backslash_name_of_no_file_is_not_in_the_list(registry, paths):
    workflow = ui_to_api(txt2img_ui("SD2\\tiny.safetensors"), registry)
    response = Executor(registry, paths).validate(workflow).response()
    [error] = response["node_errors"]["4"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert error["extra_info"]["input_name"] == "ckpt_name"
    assert "SD1_5/tiny.safetensors" in error["details"]


@pytest.mark.parametrize("name", ["..\\tiny.safetensors", "SD1_5\\..\\..\\tiny.safetensors",
                                  "C:\\tiny.safetensors", "c:SD1_5\\tiny.safetensors", "\\SD1_5\\tiny.safetensors"])
def test_backslash_names_that_leave_the_model_folders_are_refused_naming_node_and_input(registry, paths, name):
    workflow = ui_to_api(txt2img_ui(name), registry)
    validation = Executor(registry, paths).validate(workflow)
    assert not validation.ok
    [error] = validation.response()["node_errors"]["4"]["errors"]
    assert error["message"] == "Unsafe model file name"
    assert error["extra_info"]["input_name"] == "ckpt_name"
    assert "leaves the model folders" in error["details"] and name in error["details"].replace("\\\\", "\\")


def test_posix_model_name_reads_backslashes_as_folder_separators():
    assert posix_model_name("SD1_5\\sub\\model.safetensors") == "SD1_5/sub/model.safetensors"
    assert posix_model_name("plain.safetensors") == "plain.safetensors"
    for hostile in ("..\\x", "a\\..\\x", "C:\\x", "\\\\server\\share\\x", "/etc/x"):
        with pytest.raises(UnsafePathError):
            posix_model_name(hostile)
