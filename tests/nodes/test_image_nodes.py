"""Loading images from the input folder, and the image scaling and padding nodes (ComfyUI's semantics)."""

import hashlib
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from engine.context import InterruptHandle, RunContext
from engine.execute import Executor
from engine.paths import Paths, UnsafePathError
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.image_load import InputImages, LoadImage, LoadImageMask
from nodes.image_ops import ImagePadForOutpaint
from nodes.image_resize import ImageScale, ImageScaleBy, ImageScaleToTotalPixels
from tests.nodes.capture import Capture


@pytest.fixture
def paths(tmp_path):
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    paths.input_dir.mkdir()
    return paths


@pytest.fixture
def captured():
    return []


@pytest.fixture
def executor(paths, captured):
    registry = NodeRegistry([LoadImage, LoadImageMask, ImageScale, Capture])
    return Executor(registry, paths, settings={"captured": captured})


def ctx_for(paths, **settings):
    return RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings=settings)


def save(paths, name, array, **kw):
    path = paths.input_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, **kw)
    return path


def load(paths, name):
    return LoadImage().run(ctx_for(paths), image=name)


def load_graph(name="photo.png"):
    return Workflow.from_api({"1": {"class_type": "LoadImage", "inputs": {"image": name}},
                              "2": {"class_type": "Capture", "inputs": {"value": ["1", 0]}}})


RGB = [[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
       [[10, 20, 30], [128, 128, 128], [255, 255, 255]]]


# --- LoadImage: tensors --------------------------------------------------------------------------------

def test_rgb_file_gives_a_float_batch_of_one_and_comfyui_placeholder_mask(paths):
    save(paths, "photo.png", RGB)
    image, mask = load(paths, "photo.png")
    assert image.dtype == torch.float32 and image.shape == (1, 2, 3, 3)
    assert torch.equal(image[0], torch.tensor(RGB, dtype=torch.float32) / 255)
    assert mask.shape == (1, 64, 64) and not mask.any()  # no alpha: ComfyUI's 64×64 zeros


def test_mask_is_one_minus_alpha(paths):
    rgba = [[[0, 0, 0, 0], [0, 0, 0, 255], [0, 0, 0, 128]]]
    save(paths, "cutout.png", rgba)
    image, mask = load(paths, "cutout.png")
    assert image.shape == (1, 1, 3, 3)
    assert torch.allclose(mask, torch.tensor([[[1.0, 0.0, 1 - 128 / 255]]]))


def test_palette_transparency_becomes_the_mask(paths):
    picture = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), mode="P")
    picture.putpalette([0, 0, 0, 255, 255, 255])
    picture.save(paths.input_dir / "sprite.png", transparency=0)
    _, mask = load(paths, "sprite.png")
    assert mask.tolist() == [[[1.0, 0.0]]]


def test_exif_orientation_is_applied(paths):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    save(paths, "portrait.png", RGB, exif=exif)
    image, _ = load(paths, "portrait.png")
    assert image.shape == (1, 3, 2, 3)
    expected = np.rot90(np.asarray(RGB, dtype=np.float32) / 255, k=-1)
    assert torch.equal(image[0], torch.from_numpy(expected.copy()))


def test_animated_file_gives_one_batch_entry_per_frame(paths):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (4, 3), c) for c in colours]
    frames[0].save(paths.input_dir / "anim.png", save_all=True, append_images=frames[1:], duration=100)
    image, mask = load(paths, "anim.png")
    assert image.shape == (3, 3, 4, 3) and mask.shape == (3, 64, 64)
    assert [image[i, 0, 0].tolist() for i in range(3)] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_16_bit_images_keep_their_precision(paths):
    Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.uint16)).save(paths.input_dir / "depth.png")
    image, _ = load(paths, "depth.png")
    assert image.shape == (1, 1, 3, 3)
    assert torch.allclose(image[0, 0, :, 0], torch.tensor([0.0, 1000 / 65535, 1.0]))
    assert torch.equal(image[..., 0], image[..., 2])  # grey: the same value in every channel


def test_load_image_mask_reads_one_channel_and_inverts_alpha(paths):
    save(paths, "rgba.png", [[[255, 0, 0, 0], [0, 51, 0, 255]]])
    save(paths, "rgb.png", RGB)
    loader = LoadImageMask()
    (red,) = loader.run(ctx_for(paths), image="rgba.png", channel="red")
    (green,) = loader.run(ctx_for(paths), image="rgba.png", channel="green")
    (alpha,) = loader.run(ctx_for(paths), image="rgba.png", channel="alpha")
    (opaque,) = loader.run(ctx_for(paths), image="rgb.png", channel="alpha")
    assert red.tolist() == [[[1.0, 0.0]]]
    assert torch.equal(green, torch.tensor([[[0.0, 51 / 255]]]))
    assert alpha.tolist() == [[[1.0, 0.0]]]  # 1 where transparent
    assert opaque.shape == (1, 2, 3) and not opaque.any()


# --- LoadImage: caching by content --------------------------------------------------------------------

def test_reruns_when_the_file_content_changes_and_not_otherwise(executor, paths, captured):
    path = save(paths, "photo.png", RGB)
    assert executor.execute(load_graph()).ran == ["1", "2"]
    again = executor.execute(load_graph())
    assert "1" in again.cached and "1" not in again.ran

    path.write_bytes(path.read_bytes())  # same bytes, new modification time: still cached
    assert "1" in executor.execute(load_graph()).cached

    save(paths, "photo.png", [[[0, 0, 0]]])
    changed = executor.execute(load_graph())
    assert "1" in changed.ran
    assert captured[-1].shape == (1, 1, 1, 3)
    assert changed.report["1"].reason == "external state changed (e.g. the file's content)"


def test_fingerprint_is_the_sha256_of_the_file(paths):
    path = save(paths, "photo.png", RGB)
    assert LoadImage().fingerprint(paths, image="photo.png") == hashlib.sha256(path.read_bytes()).hexdigest()


# --- LoadImage: what it refuses -------------------------------------------------------------------------

@pytest.fixture
def outside_file(tmp_path):
    path = tmp_path / "secret.png"
    Image.new("RGB", (1, 1)).save(path)
    return path


def test_validation_refuses_paths_leaving_the_input_folder(paths, outside_file):
    (paths.input_dir / "link.png").symlink_to(outside_file)
    for name in ("../secret.png", str(outside_file), "link.png", "sub/../../secret.png"):
        message = LoadImage().validate_inputs(paths, image=name)
        assert message and message.startswith("Invalid image file:") and ("leaves" in message or "absolute" in message)
        with pytest.raises(UnsafePathError):
            load(paths, name)


def test_missing_file_is_reported_by_name(paths):
    assert LoadImage().validate_inputs(paths, image="gone.png") == (
        "Invalid image file: 'gone.png' does not exist in the input folder")
    assert LoadImageMask().validate_inputs(paths, image="gone.png", channel="alpha")
    with pytest.raises(FileNotFoundError, match="gone.png"):
        load(paths, "gone.png")


def test_escaping_names_fail_validation_through_the_executor(executor, paths, outside_file):
    result = executor.validate(load_graph("../secret.png"))
    assert not result.ok
    assert result.node_errors["1"]["errors"][0]["type"] == "value_not_in_list"


def bomb_png(width, height):
    """A tiny PNG whose header claims width × height pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_with_the_file_named(executor, paths, captured):
    limit = Image.MAX_IMAGE_PIXELS
    (paths.input_dir / "bomb.png").write_bytes(bomb_png(60_000, 60_000))
    with pytest.raises(ValueError, match="'bomb.png' refused: it is too large"):
        load(paths, "bomb.png")
    with pytest.raises(ValueError, match="bomb.png"):
        LoadImageMask().run(ctx_for(paths), image="bomb.png", channel="red")
    result = executor.execute(load_graph("bomb.png"))
    assert result.status == "error" and "bomb.png" in result.error.exception_message
    assert captured == [] and Image.MAX_IMAGE_PIXELS == limit and limit is not None


def test_a_file_that_is_not_an_image_is_named_in_the_error(paths):
    (paths.input_dir / "fake.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="'fake.png' is not in a format that can be read"):
        load(paths, "fake.png")


# --- LoadImage: declaration -----------------------------------------------------------------------------

def test_object_info_lists_input_images_recursively_with_the_upload_flag(paths, outside_file):
    save(paths, "b.png", RGB)
    save(paths, "sub/a.jpg", RGB)
    (paths.input_dir / "notes.txt").write_text("not an image")
    (paths.input_dir / ".hidden.png").write_bytes(b"")
    (paths.input_dir / "escape.png").symlink_to(outside_file)
    info = LoadImage.__node_declaration__.object_info(paths)
    assert info["input"]["required"] == {"image": [["b.png", "sub/a.jpg"], {"image_upload": True}]}
    assert info["output"] == ["IMAGE", "MASK"] and info["display_name"] == "Load Image"
    mask_info = LoadImageMask.__node_declaration__.object_info(paths)
    assert mask_info["input"]["required"]["channel"] == [["alpha", "red", "green", "blue"]]
    assert mask_info["input"]["required"]["image"][1] == {"image_upload": True}
    assert InputImages().choices(None) == []


# --- ImageScale / ImageScaleBy / ImageScaleToTotalPixels ------------------------------------------------

def ramp(height, width, channels=3):
    return torch.arange(height * width * channels, dtype=torch.float32).reshape(1, height, width, channels) / 100


def test_declarations_match_comfyui():
    scale = ImageScale.__node_declaration__.object_info()["input"]["required"]
    assert list(scale) == ["image", "upscale_method", "width", "height", "crop"]
    assert scale["upscale_method"] == [["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]]
    assert scale["width"] == ["INT", {"default": 512, "min": 0, "max": 16384, "step": 1}]
    assert scale["crop"] == [["disabled", "center"]]
    by = ImageScaleBy.__node_declaration__.object_info()["input"]["required"]
    assert by["scale_by"] == ["FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01}]
    total = ImageScaleToTotalPixels.__node_declaration__.object_info()["input"]
    assert total["required"]["megapixels"] == ["FLOAT", {"default": 1.0, "min": 0.01, "max": 16.0, "step": 0.01}]
    assert total["optional"]["resolution_steps"] == ["INT", {"default": 1, "min": 1, "max": 256}]
    pad = ImagePadForOutpaint.__node_declaration__.object_info()
    assert list(pad["input"]["required"]) == ["image", "left", "top", "right", "bottom", "feathering"]
    assert pad["input"]["required"]["feathering"] == ["INT", {"default": 40, "min": 0, "max": 16384, "step": 1}]
    assert pad["output"] == ["IMAGE", "MASK"]


def test_nearest_exact_doubling_repeats_each_pixel():
    image = ramp(2, 2)
    (out,) = ImageScale().run(None, image, "nearest-exact", 4, 4, "disabled")
    assert torch.equal(out, image.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2))


def test_bilinear_and_area_use_half_pixel_centres():
    row = torch.tensor([0.0, 1.0]).reshape(1, 1, 2, 1)
    (wide,) = ImageScale().run(None, row, "bilinear", 4, 1, "disabled")
    assert wide.flatten().tolist() == [0.0, 0.25, 0.75, 1.0]
    (narrow,) = ImageScale().run(None, torch.tensor([0.0, 0.5, 1.0, 1.0]).reshape(1, 1, 4, 1), "area", 2, 1,
                                 "disabled")
    assert narrow.flatten().tolist() == [0.25, 1.0]


def test_center_crop_keeps_the_middle_at_the_target_aspect():
    image = ramp(2, 6)
    (out,) = ImageScale().run(None, image, "nearest-exact", 2, 2, "center")
    assert torch.equal(out, image[:, :, 2:4, :])


def test_a_zero_side_follows_the_aspect_ratio_and_two_zeros_change_nothing():
    image = ramp(3, 6)
    assert ImageScale().run(None, image, "bilinear", 0, 6, "disabled")[0].shape == (1, 6, 12, 3)
    assert ImageScale().run(None, image, "bilinear", 3, 0, "disabled")[0].shape == (1, 2, 3, 3)
    assert ImageScale().run(None, image, "bilinear", 0, 0, "disabled")[0] is image


def test_lanczos_goes_through_8_bit_like_comfyui():
    flat = torch.full((1, 3, 3, 3), 0.5)
    (out,) = ImageScale().run(None, flat, "lanczos", 6, 5, "disabled")
    assert out.shape == (1, 5, 6, 3)
    assert torch.all(out == 127 / 255)  # 0.5 × 255 = 127.5, truncated


def test_scale_by_rounds_each_side_half_to_even():
    (out,) = ImageScaleBy().run(None, ramp(3, 5), "bicubic", 1.5)
    assert out.shape == (1, 4, 8, 3)  # round(4.5) = 4, round(7.5) = 8


def test_scale_to_total_pixels_keeps_the_aspect_ratio():
    image = ramp(50, 100)
    assert ImageScaleToTotalPixels().run(None, image, "area", 0.01)[0].shape == (1, 72, 145, 3)
    assert ImageScaleToTotalPixels().run(None, image, "area", 0.01, 8)[0].shape == (1, 72, 144, 3)


def test_scaling_never_modifies_its_input():
    image = ramp(4, 4)
    before = image.clone()
    for method in ("nearest-exact", "bilinear", "area", "bicubic", "lanczos"):
        ImageScale().run(None, image, method, 3, 5, "center")
    assert torch.equal(image, before)


# --- ImagePadForOutpaint --------------------------------------------------------------------------------

def test_padding_is_grey_and_the_mask_covers_it():
    image = torch.zeros((2, 3, 4, 3))
    padded, mask = ImagePadForOutpaint().run(None, image, left=8, top=0, right=0, bottom=16, feathering=0)
    assert padded.shape == (2, 19, 12, 3) and mask.shape == (19, 12)
    assert torch.all(padded[:, :3, 8:] == 0) and torch.all(padded[:, :, :8] == 0.5) and torch.all(padded[:, 3:] == 0.5)
    assert torch.all(mask[:3, 8:] == 0) and torch.all(mask[:, :8] == 1) and torch.all(mask[3:] == 1)
    assert torch.equal(image, torch.zeros((2, 3, 4, 3)))


def test_feathering_ramps_quadratically_with_comfyuis_distances():
    image = torch.ones((1, 6, 6, 3))
    _, mask = ImagePadForOutpaint().run(None, image, left=2, top=0, right=0, bottom=2, feathering=2)
    inner = mask[:6, 2:]
    assert inner[0].tolist() == [1.0, 0.25, 0, 0, 0, 0]  # distance to the left edge: 0, 1, 2...
    assert inner[:, 5].tolist() == [0, 0, 0, 0, 0, 0.25]  # bottom row counts as 1 away, as in ComfyUI
    assert inner[5, 0] == 1.0


def test_feathering_is_skipped_when_it_does_not_fit_twice():
    _, mask = ImagePadForOutpaint().run(None, torch.ones((1, 4, 4, 3)), left=8, top=0, right=0, bottom=0,
                                        feathering=2)
    assert not mask[:, 8:].any()
