"""Fannovel16/comfyui_controlnet_aux's preprocessors that need no model, rebuilt in torch from the pack's
OpenCV code (src/custom_controlnet_aux/*); MiDaS and Zoe depth, LineArt and DWPose run the pack's own model files
from `models/annotators` (nodes/models/annotators).

The pack works on uint8 images: each image is truncated to 0..255, resized so its short side is
`resolution` (bicubic up, area down), padded to a multiple of 64 with its edge, processed, and cropped
back; outputs keep that detect resolution, as the pack's do. Intermediate images are rounded to uint8
where OpenCV would.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import IMAGE, Choice, Float, Int, Link
from nodes.models.annotators.files import ANNOTATORS_REPO, AnnotatorFileMissing, annotator_file
from nodes.models.runtime import runtime_from_settings
from nodes.pixel_cap import check_image_size

PACK = "ControlNet Preprocessors"
MAX_RESOLUTION = 16384
PAD_MULTIPLE = 64


def _resolution() -> Int:
    return Int(512, min=64, max=MAX_RESOLUTION, step=64, optional=True)


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    """One IMAGE [H, W, C] → [1, 3, H, W] float holding uint8 values, truncated as numpy's cast does."""
    pixels = (image[..., :3].float() * 255.0).clamp(0, 255).floor()
    if pixels.shape[-1] == 1:
        pixels = pixels.repeat(1, 1, 3)
    return pixels.movedim(-1, 0).unsqueeze(0)


def _round8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255)


def _resize(x: torch.Tensor, width: int, height: int, upscale: str = "bicubic") -> torch.Tensor:
    """OpenCV-style resize of uint8 values: `upscale` when growing, area when shrinking; rounded to uint8."""
    if (x.shape[2], x.shape[3]) == (height, width):
        return x
    if width < x.shape[3] or height < x.shape[2]:
        out = F.interpolate(x, size=(height, width), mode="area")
    else:
        out = F.interpolate(x, size=(height, width), mode=upscale, align_corners=False)
    return _round8(out)


def _resized_with_pad(ctx: RunContext, x: torch.Tensor, resolution: int) -> tuple[torch.Tensor, int, int]:
    """The pack's resize_image_with_pad: short side to `resolution`, edge-padded to multiples of 64;
    returns the padded image and the size to crop back to."""
    height, width = x.shape[2], x.shape[3]
    k = resolution / min(height, width)
    target_h, target_w = int(np.round(height * k)), int(np.round(width * k))
    check_image_size(ctx, target_w, target_h, 1, "resolution")
    x = _resize(x, target_w, target_h)
    pad_h, pad_w = -target_h % PAD_MULTIPLE, -target_w % PAD_MULTIPLE
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, target_h, target_w


def _each(image: torch.Tensor, detect: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Runs `detect` on each image of the batch ([1, 3, H, W] uint8 values → same) and stacks the IMAGEs."""
    return torch.cat([detect(_to_uint8(one)) for one in image]).movedim(1, -1) / 255.0


def _preprocess_padded(ctx: RunContext, image: torch.Tensor, resolution: int,
                       detect: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    def one(x: torch.Tensor) -> torch.Tensor:
        padded, height, width = _resized_with_pad(ctx, x, resolution)
        return detect(padded)[:, :, :height, :width]
    return _each(image, one)


def gray(x: torch.Tensor) -> torch.Tensor:
    """OpenCV's RGB → gray (ITU-R 601 weights), rounded: [1, 3, H, W] → [1, 1, H, W]."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
    return _round8((x * weights).sum(1, keepdim=True))


def otsu_threshold(values: torch.Tensor) -> int:
    """Otsu's threshold of uint8 values: the level maximising the between-class variance."""
    hist = torch.bincount(values.flatten().long(), minlength=256).double()
    levels = torch.arange(256, dtype=torch.float64)
    weight0 = hist.cumsum(0)
    weight1 = hist.sum() - weight0
    mean0 = (hist * levels).cumsum(0) / weight0.clamp(min=1e-12)
    mean1 = ((hist * levels).sum() - (hist * levels).cumsum(0)) / weight1.clamp(min=1e-12)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return int(between.argmax())


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """OpenCV's kernel for a float image and ksize (0, 0): size round(8σ + 1) made odd."""
    size = int(round(sigma * 8 + 1)) | 1
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    return (kernel / kernel.sum()).float()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with OpenCV's default border (reflect 101, torch's "reflect")."""
    if sigma <= 0:
        return x
    kernel = gaussian_kernel(sigma)
    radius = kernel.numel() // 2
    channels = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect" if radius < x.shape[3] else "replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect" if radius < x.shape[2] else "replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def pyr_up(x: torch.Tensor) -> torch.Tensor:
    """OpenCV's pyrUp: zeros between the pixels, then the 5-tap binomial kernel times 4; rounded to uint8."""
    channels, (height, width) = x.shape[1], x.shape[2:]
    up = x.new_zeros((x.shape[0], channels, height * 2, width * 2))
    up[:, :, ::2, ::2] = x
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype) / 8.0
    kernel = (taps[:, None] * taps[None, :]).view(1, 1, 5, 5).repeat(channels, 1, 1, 1)
    # OpenCV reflects the source (101) before inserting zeros: mirror the zero-inserted image about its
    # first pixel and its last *inserted* position, which is what a reflect pad of the source gives.
    padded = F.pad(up, (2, 1, 2, 1), mode="reflect")
    padded = F.pad(padded, (0, 1, 0, 1), mode="constant", value=0.0)
    return _round8(F.conv2d(padded, kernel, groups=channels))


def noise_disk(height: int, width: int, period: int, rng: np.random.Generator) -> torch.Tensor:
    """The pack's make_noise_disk: coarse uniform noise, bicubic-enlarged, cropped, scaled to 0..1."""
    coarse = torch.from_numpy(rng.uniform(0.0, 1.0, size=(height // period + 2, width // period + 2)))
    noise = F.interpolate(coarse[None, None], size=(height + 2 * period, width + 2 * period), mode="bicubic",
                          align_corners=False)[0, 0, period:period + height, period:period + width]
    noise = noise - noise.min()
    return noise / noise.max()


def content_shuffle(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Remaps the image through two smooth random fields (x and y), as the pack's ContentShuffleDetector;
    seed 0 draws from numpy's global generator, as the pack does."""
    height, width = x.shape[2], x.shape[3]
    rng = np.random.default_rng(seed) if seed else np.random.default_rng(np.random.randint(0, 2 ** 31))
    flow_x = noise_disk(height, width, 256, rng) * (width - 1)
    flow_y = noise_disk(height, width, 256, rng) * (height - 1)
    grid = torch.stack([flow_x / (width - 1) * 2 - 1, flow_y / (height - 1) * 2 - 1], dim=-1).float()
    return _round8(F.grid_sample(x, grid[None], mode="bilinear", padding_mode="zeros", align_corners=True))


def color_grid(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """The pack's apply_color: short side to `resolution`, then one colour per 64×64 cell."""
    height, width = x.shape[2], x.shape[3]
    if height < width:
        new_h, new_w = resolution, int(round(width / height * resolution))
    else:
        new_h, new_w = int(round(height / width * resolution)), resolution
    x = _resize(x, new_w, new_h, upscale="bilinear")
    cells = _round8(F.interpolate(x, size=(max(new_h // 64, 1), max(new_w // 64, 1)), mode="bicubic",
                                  align_corners=False))
    return F.interpolate(cells, size=(new_h, new_w), mode="nearest")


def lineart_standard(x: torch.Tensor, sigma: float, intensity_threshold: int) -> torch.Tensor:
    """Dark lines: how much darker each pixel is than its blurred surroundings (least over RGB),
    normalised by the median of the values above the threshold."""
    intensity = (gaussian_blur(x, sigma) - x).amin(1, keepdim=True).clamp(0, 255)
    above = intensity[intensity > intensity_threshold]
    median = float(np.median(above.numpy())) if above.numel() else 0.0
    intensity = intensity / max(16.0, median) * 127
    return intensity.clamp(0, 255).floor().repeat(1, 3, 1, 1)


def binary_lines(x: torch.Tensor, threshold: int) -> torch.Tensor:
    """White where the gray level is above the threshold (Otsu's when it is 0 or 255), else black."""
    levels = gray(x)
    if threshold in (0, 255):
        threshold = otsu_threshold(levels)
    return torch.where(levels > threshold, 255.0, 0.0).repeat(1, 3, 1, 1)


def tile_blur(x: torch.Tensor, pyr_up_iters: int) -> torch.Tensor:
    """The pack's TileDetector: sizes rounded to multiples of 64, shrunk 2^n times (area), pyrUp n times."""
    height = int(np.round(x.shape[2] / 64.0)) * 64
    width = int(np.round(x.shape[3] / 64.0)) * 64
    factor = 2 ** pyr_up_iters
    small_h, small_w = height // factor, width // factor
    if small_h < 1 or small_w < 1:
        raise ValueError(f"TilePreprocessor: an image of {x.shape[3]}×{x.shape[2]} is too small for "
                         f"pyrUp_iters {pyr_up_iters} (its sides, rounded to 64, must reach {factor})")
    out = _round8(F.interpolate(x, size=(small_h, small_w), mode="area"))
    for _ in range(pyr_up_iters):
        out = pyr_up(out)
    return out


@node("CannyEdgePreprocessor", display_name="Canny Edge", category=f"{PACK}/Line Extractors",
      outputs=[Out(IMAGE, "IMAGE")])
class CannyEdgePreprocessor:
    """Canny edges at the detect resolution, by kornia as ComfyUI's own Canny node (OpenCV's thresholds
    0..255 become kornia's 0..1; kornia smooths first, OpenCV does not)."""

    image = Link(IMAGE)
    low_threshold = Int(100, min=0, max=255, step=1, optional=True)
    high_threshold = Int(200, min=0, max=255, step=1, optional=True)
    resolution = _resolution()

    def run(self, ctx: RunContext, image: torch.Tensor, low_threshold: int = 100, high_threshold: int = 200,
            resolution: int = 512) -> tuple:
        from kornia.filters import canny

        # OpenCV swaps thresholds given the wrong way round; kornia wants them strictly inside 0..1
        low, high = (min(max(t / 255.0, 1e-6), 1 - 1e-6) for t in sorted((low_threshold, high_threshold)))

        def edges(x: torch.Tensor) -> torch.Tensor:
            _, found = canny(x / 255.0, low, high)
            return (found * 255.0).round().repeat(1, 3, 1, 1)
        return (_preprocess_padded(ctx, image, resolution, edges),)


@node("LineartStandardPreprocessor", display_name="Standard Lineart", category=f"{PACK}/Line Extractors",
      outputs=[Out(IMAGE, "IMAGE")])
class LineartStandardPreprocessor:
    """Lines where the image is darker than its Gaussian-blurred self (no model)."""

    image = Link(IMAGE)
    guassian_sigma = Float(6.0, min=0.0, max=100.0, step=0.01, optional=True)   # the pack's spelling
    intensity_threshold = Int(8, min=0, max=16, step=1, optional=True)
    resolution = _resolution()

    def run(self, ctx: RunContext, image: torch.Tensor, guassian_sigma: float = 6.0, intensity_threshold: int = 8,
            resolution: int = 512) -> tuple:
        return (_preprocess_padded(ctx, image, resolution,
                                   lambda x: lineart_standard(x, guassian_sigma, intensity_threshold)),)


@node("BinaryPreprocessor", display_name="Binary Lines", category=f"{PACK}/Line Extractors",
      outputs=[Out(IMAGE, "IMAGE")])
class BinaryPreprocessor:
    """Black and white by a gray-level threshold (0 or 255: Otsu's)."""

    image = Link(IMAGE)
    bin_threshold = Int(100, min=0, max=255, step=1, optional=True)
    resolution = _resolution()

    def run(self, ctx: RunContext, image: torch.Tensor, bin_threshold: int = 100, resolution: int = 512) -> tuple:
        return (_preprocess_padded(ctx, image, resolution, lambda x: binary_lines(x, bin_threshold)),)


@node("ColorPreprocessor", display_name="Color Pallete", category=f"{PACK}/T2IAdapter-only",
      outputs=[Out(IMAGE, "IMAGE")])
class ColorPreprocessor:
    """A palette: the image as a grid of 64×64 cells of one colour each (for the colour T2I-Adapter)."""

    image = Link(IMAGE)
    resolution = _resolution()

    def run(self, ctx: RunContext, image: torch.Tensor, resolution: int = 512) -> tuple:
        height, width = image.shape[1], image.shape[2]
        long_side = math.ceil(max(height, width) / min(height, width) * resolution)
        check_image_size(ctx, long_side, resolution, image.shape[0], "resolution")
        return (_each(image, lambda x: color_grid(x, resolution)),)


@node("ShufflePreprocessor", display_name="Content Shuffle", category=f"{PACK}/T2IAdapter-only",
      outputs=[Out(IMAGE, "IMAGE")])
class ShufflePreprocessor:
    """The image's content moved around by smooth random fields; a seed other than 0 repeats the shuffle."""

    image = Link(IMAGE)
    resolution = _resolution()
    seed = Int(0, min=0, max=0xffffffffffffffff, optional=True)

    def run(self, ctx: RunContext, image: torch.Tensor, resolution: int = 512, seed: int = 0) -> tuple:
        return (_preprocess_padded(ctx, image, resolution, lambda x: content_shuffle(x, seed)),)


@node("TilePreprocessor", display_name="Tile", category=f"{PACK}/tile", outputs=[Out(IMAGE, "IMAGE")])
class TilePreprocessor:
    """A blurred copy for tile ControlNets: shrunk 2^pyrUp_iters times and grown back (the resolution is
    not used, as in the pack)."""

    image = Link(IMAGE)
    pyrUp_iters = Int(3, min=1, max=10, step=1, optional=True)
    resolution = _resolution()

    def run(self, ctx: RunContext, image: torch.Tensor, pyrUp_iters: int = 3, resolution: int = 512) -> tuple:
        return (_each(image, lambda x: tile_blur(x, pyrUp_iters)),)


class AnnotatorModelMissing(RuntimeError):
    """A preprocessor whose annotator model this engine does not build, or whose weight file is missing."""


def _needs_model(class_type: str, missing: AnnotatorFileMissing | None = None) -> AnnotatorModelMissing:
    reason = (str(missing) if missing is not None
              else "and this engine does not build this one's annotator model yet")
    return AnnotatorModelMissing(
        f"{class_type} (comfyui_controlnet_aux) needs an annotator model: {reason}; the model-free preprocessors "
        f"({', '.join(MODEL_FREE)}) are available, or make the hint image elsewhere and load it with LoadImage")


def _annotator(ctx: RunContext, class_type: str, filename: str, repo: str = ANNOTATORS_REPO) -> Path:
    try:
        return annotator_file(ctx.paths, filename, repo)
    except AnnotatorFileMissing as missing:
        raise _needs_model(class_type, missing) from None


def midas_depth_map(model: Any, x: torch.Tensor) -> torch.Tensor:
    """The pack's MidasDetector on one padded image: pixels to -1..1, depth scaled to its own 0..255 range and
    truncated to uint8 (a flat depth map, which the pack divides by zero, is black)."""
    from nodes.models.annotators.midas import predict_depth

    weights = next(model.parameters())
    with torch.no_grad():
        depth = predict_depth(model, (x / 127.5 - 1.0).to(weights.device, weights.dtype))[0].float().cpu()
    depth = depth - depth.min()
    top = depth.max()
    depth = depth / top if top > 0 else depth
    return (depth * 255.0).clamp(0, 255).floor()[None, None].repeat(1, 3, 1, 1)


def lineart_map(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pack's LineartDetector on one padded image: the generator's line strength, truncated to uint8 and
    inverted (white lines on black)."""
    weights = next(model.parameters())
    with torch.no_grad():
        line = model((x / 255.0).to(weights.device, weights.dtype))[0, 0].float().cpu()
    return (255.0 - (line * 255.0).clamp(0, 255).floor())[None, None].repeat(1, 3, 1, 1)


@node("MiDaS-DepthMapPreprocessor", display_name="MiDaS Depth Map",
      category=f"{PACK}/Normal and Depth Estimators", outputs=[Out(IMAGE, "IMAGE")])
class MiDaSDepthMapPreprocessor:
    """Relative depth (near is white) by MiDaS v3 DPT-hybrid, `dpt_hybrid-midas-501f0c75.pt` in
    models/annotators; `a` and `bg_threshold` only matter to the pack's normal map, as in the pack."""

    image = Link(IMAGE)
    a = Float(math.pi * 2.0, min=0.0, max=math.pi * 5.0, step=0.01, optional=True)
    bg_threshold = Float(0.1, min=0.0, max=1.0, step=0.01, optional=True)
    resolution = _resolution()

    def run(self, ctx: RunContext, image: torch.Tensor, a: float = math.pi * 2.0, bg_threshold: float = 0.1,
            resolution: int = 512) -> tuple:
        from nodes.models.annotators.midas import MIDAS_FILE, load_midas

        model = load_midas(_annotator(ctx, "MiDaS-DepthMapPreprocessor", MIDAS_FILE),
                           runtime_from_settings(ctx.settings).device)
        return (_preprocess_padded(ctx, image, resolution, lambda x: midas_depth_map(model, x)),)


@node("Zoe-DepthMapPreprocessor", display_name="Zoe Depth Map", category=f"{PACK}/Normal and Depth Estimators",
      outputs=[Out(IMAGE, "IMAGE")])
class ZoeDepthMapPreprocessor:
    """Relative depth (near is white) by ZoeDepth-N, `ZoeD_M12_N.pt` in models/annotators, with ZoeDepth's
    padding and flip averaging; each map stretched between its 2nd and 85th percentiles, as in the pack."""

    image = Link(IMAGE)
    resolution = _resolution()

    def run(self, ctx: RunContext, image: torch.Tensor, resolution: int = 512) -> tuple:
        from nodes.models.annotators.zoe import ZOE_FILE, load_zoe, zoe_depth_map

        model = load_zoe(_annotator(ctx, "Zoe-DepthMapPreprocessor", ZOE_FILE),
                         runtime_from_settings(ctx.settings).device)
        return (_preprocess_padded(ctx, image, resolution, lambda x: zoe_depth_map(model, x)),)


@node("LineArtPreprocessor", display_name="Realistic Lineart", category=f"{PACK}/Line Extractors",
      outputs=[Out(IMAGE, "IMAGE")])
class LineArtPreprocessor:
    """Lines drawn by the "informative drawings" generator (`sk_model.pth`; coarse: `sk_model2.pth`) from
    models/annotators; LineartStandardPreprocessor needs no model."""

    image = Link(IMAGE)
    coarse = Choice(["disable", "enable"], default="disable", optional=True)
    resolution = _resolution()

    def run(self, ctx: RunContext, image: torch.Tensor, coarse: str = "disable", resolution: int = 512) -> tuple:
        from nodes.models.annotators.lineart import LINEART_COARSE_FILE, LINEART_FILE, load_lineart

        filename = LINEART_COARSE_FILE if coarse == "enable" else LINEART_FILE
        model = load_lineart(_annotator(ctx, "LineArtPreprocessor", filename),
                             runtime_from_settings(ctx.settings).device)
        return (_preprocess_padded(ctx, image, resolution, lambda x: lineart_map(model, x)),)


@node("DWPreprocessor", display_name="DWPose Estimator", category=f"{PACK}/Faces and Poses Estimators",
      outputs=[Out(IMAGE, "IMAGE"), Out("POSE_KEYPOINT", "POSE_KEYPOINT")])
class DWPreprocessor:
    """OpenPose-style skeletons by DWPose: the YOLOX person detector (`bbox_detector`; "None": the whole image is
    one person) and the whole-body estimator, from models/annotators (flat, or where the pack downloads them: e.g.
    yzd-v/DWPose/yolox_l.onnx). Drawn at the image's size, resized to `resolution`; POSE_KEYPOINT holds OpenPose's
    JSON for each image. ONNX files need onnxruntime; YOLO-NAS detectors are not supported."""

    image = Link(IMAGE)
    detect_hand = Choice(["enable", "disable"], default="enable", optional=True)
    detect_body = Choice(["enable", "disable"], default="enable", optional=True)
    detect_face = Choice(["enable", "disable"], default="enable", optional=True)
    resolution = _resolution()
    bbox_detector = Choice(["None", "yolox_l.torchscript.pt", "yolox_l.onnx", "yolo_nas_l_fp16.onnx",
                            "yolo_nas_m_fp16.onnx", "yolo_nas_s_fp16.onnx"], default="yolox_l.onnx", optional=True)
    pose_estimator = Choice(["dw-ll_ucoco_384_bs5.torchscript.pt", "dw-ll_ucoco_384.onnx", "dw-ll_ucoco.onnx"],
                            default="dw-ll_ucoco_384_bs5.torchscript.pt", optional=True)
    scale_stick_for_xinsr_cn = Choice(["disable", "enable"], default="disable", optional=True)

    def run(self, ctx: RunContext, image: torch.Tensor, detect_hand: str = "enable", detect_body: str = "enable",
            detect_face: str = "enable", resolution: int = 512, bbox_detector: str = "yolox_l.onnx",
            pose_estimator: str = "dw-ll_ucoco_384_bs5.torchscript.pt",
            scale_stick_for_xinsr_cn: str = "disable") -> tuple:
        from nodes.models.annotators import dwpose
        from nodes.models.annotators.dwpose_draw import draw_poses, openpose_json, poses_of

        if bbox_detector in dwpose.UNSUPPORTED_DETECTORS:
            raise AnnotatorModelMissing(f"DWPreprocessor: bbox_detector {bbox_detector} (YOLO-NAS) is not supported "
                                        f"here; choose yolox_l.onnx, yolox_l.torchscript.pt or None")
        detector = (None if bbox_detector == "None" else
                    _annotator(ctx, "DWPreprocessor", bbox_detector, dwpose.DETECTOR_REPOS[bbox_detector]))
        estimator = _annotator(ctx, "DWPreprocessor", pose_estimator, dwpose.ESTIMATOR_REPOS[pose_estimator])
        model = dwpose.load_dwpose(detector, estimator, runtime_from_settings(ctx.settings).device)
        parts = {"body": detect_body == "enable", "hands": detect_hand == "enable", "face": detect_face == "enable"}
        height, width = image.shape[1], image.shape[2]
        k = resolution / min(height, width)
        target_h, target_w = int(np.round(height * k)), int(np.round(width * k))
        check_image_size(ctx, target_w, target_h, image.shape[0], "resolution")
        maps, keypoints = [], []
        for one in image:
            poses = poses_of(model(dwpose.as_uint8_image(_to_uint8(one))))
            canvas = draw_poses(poses, height, width, xinsr_sticks=scale_stick_for_xinsr_cn == "enable", **parts)
            keypoints.append(openpose_json(poses, height, width, **parts))
            maps.append(_resize(torch.from_numpy(canvas).permute(2, 0, 1)[None].float(), target_w, target_h))
        return (torch.cat(maps).movedim(1, -1) / 255.0, keypoints)


MODEL_FREE: dict[str, type] = {
    "CannyEdgePreprocessor": CannyEdgePreprocessor, "LineartStandardPreprocessor": LineartStandardPreprocessor,
    "BinaryPreprocessor": BinaryPreprocessor, "ColorPreprocessor": ColorPreprocessor,
    "ShufflePreprocessor": ShufflePreprocessor, "TilePreprocessor": TilePreprocessor,
}
WITH_MODEL: dict[str, type] = {
    "LineArtPreprocessor": LineArtPreprocessor, "MiDaS-DepthMapPreprocessor": MiDaSDepthMapPreprocessor,
    "Zoe-DepthMapPreprocessor": ZoeDepthMapPreprocessor, "DWPreprocessor": DWPreprocessor,
}
NEEDS_MODEL = ("DWPreprocessor", "LineArtPreprocessor", "MiDaS-DepthMapPreprocessor", "Zoe-DepthMapPreprocessor")


@node("AIO_Preprocessor", display_name="AIO Aux Preprocessor", category=PACK, outputs=[Out(IMAGE, "IMAGE")])
class AIOPreprocessor:
    """Runs the named preprocessor with its default options and this resolution ("none": the image as is).
    Only the preprocessors this engine builds are offered."""

    image = Link(IMAGE)
    preprocessor = Choice(["none", *sorted((*MODEL_FREE, *NEEDS_MODEL))], default="none", optional=True)
    resolution = _resolution()

    def run(self, ctx: RunContext, image: torch.Tensor, preprocessor: str = "none", resolution: int = 512) -> tuple:
        if preprocessor == "none":
            return (image,)
        built = MODEL_FREE.get(preprocessor) or WITH_MODEL.get(preprocessor)
        if built is None:
            raise _needs_model(preprocessor)
        return built().run(ctx, image, resolution=resolution)[:1]   # DWPose's keypoints are not AIO's output
