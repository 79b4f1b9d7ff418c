"""DWPose, as comfyui_controlnet_aux runs it: a YOLOX person detector and the DWPose whole-body estimator (133
COCO-WholeBody keypoints by SimCC), both exported models (ONNX, run by onnxruntime, or TorchScript).

The steps around the two networks follow the pack's `Wholebody` (dwpose/wholebody.py, dw_onnx, dw_torchscript):
YOLOX's letterbox to 640×640 (grey 114 padding), its grid decoding and class-aware NMS, people scoring over 0.3;
each box grown by 1.25 to the estimator's aspect ratio and warped to its input; SimCC's arg-max decoded back to the
image; a neck added between the shoulders and the keypoints reordered to OpenPose's body order.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

DETECTOR_INPUT = (640, 640)
# Where the pack downloads each file (`ckpts/<repo>/<file>`); the choices of its bbox_detector/pose_estimator inputs.
DETECTOR_REPOS = {"yolox_l.onnx": "yzd-v/DWPose", "yolox_l.torchscript.pt": "hr16/yolox-onnx"}
UNSUPPORTED_DETECTORS = ("yolo_nas_l_fp16.onnx", "yolo_nas_m_fp16.onnx", "yolo_nas_s_fp16.onnx")
ESTIMATOR_REPOS = {"dw-ll_ucoco_384.onnx": "yzd-v/DWPose", "dw-ll_ucoco.onnx": "hr16/UnJIT-DWPose",
                   "dw-ll_ucoco_384_bs5.torchscript.pt": "hr16/DWPose-TorchScript-BatchSize5"}
TORCHSCRIPT_BATCH = 5   # the pack's TorchScript estimator takes crops five at a time (zero crops fill the last five)
_MEAN = np.array([123.675, 116.28, 103.53])
_STD = np.array([58.395, 57.12, 57.375])
SCORE_THRESHOLD = 0.3
# mmpose's body order → OpenPose's (after the neck is inserted at 17): new[OPENPOSE] = old[MMPOSE]
_MMPOSE = [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3]
_OPENPOSE = [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17]


def estimator_input_size(filename: str) -> tuple[int, int]:
    """(width, height) of the estimator's input, from its file name as the pack guesses it."""
    if "384" in filename:
        return 288, 384
    return (256, 256) if "256" in filename else (192, 256)


@dataclass
class ExportedModel:
    """An ONNX session or a TorchScript module behind one call: NCHW float32 batch → its outputs as arrays."""
    run: Callable[[np.ndarray], list[np.ndarray]]
    torchscript: bool


def load_exported(path: Path, device: torch.device) -> ExportedModel:
    """An `.onnx` file on onnxruntime's CPU provider (in its input's dtype, and a batch at a time where the file
    fixes the batch size), anything else as TorchScript (`torch.jit.load`)."""
    if path.name.endswith(".onnx"):
        try:
            import onnxruntime
        except ImportError as missing:
            raise RuntimeError(f"{path.name} is an ONNX model: install onnxruntime to run it, or choose the "
                               f".torchscript.pt file") from missing
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        dtype = np.float16 if spec.type == "tensor(float16)" else np.float32
        fixed = spec.shape[0] if spec.shape and isinstance(spec.shape[0], int) else None

        def run_onnx(batch: np.ndarray) -> list[np.ndarray]:
            return [np.asarray(o, np.float32) for o in session.run(None, {spec.name: batch.astype(dtype)})]
        return ExportedModel(lambda batch: in_batches(run_onnx, batch, fixed), torchscript=False)
    with warnings.catch_warnings():   # torch deprecates TorchScript; the pack's files are TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location=device).eval()
    weights = next(iter(module.parameters()), torch.empty(0))

    def run(batch: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(torch.from_numpy(batch).to(device, weights.dtype))
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.float().cpu().numpy() for o in outputs]
    return ExportedModel(run, torchscript=True)


def in_batches(run: Callable[[np.ndarray], list[np.ndarray]], batch: np.ndarray,
               size: int | None) -> list[np.ndarray]:
    """`run` on batches of exactly `size` (None: all at once), the last filled with zeros, outputs cut back."""
    count = len(batch)
    if size is None or count == size:
        return run(batch)
    filled = np.concatenate([batch, np.zeros((-count % size, *batch.shape[1:]), batch.dtype)])
    parts = [run(filled[i:i + size]) for i in range(0, len(filled), size)]
    return [np.concatenate([part[k] for part in parts])[:count] for k in range(len(parts[0]))]


def _resize_linear(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """OpenCV's INTER_LINEAR resize of HWC uint8 values (no antialiasing), rounded to uint8."""
    chw = image.permute(2, 0, 1)[None].float()
    out = F.interpolate(chw, size=(height, width), mode="bilinear", align_corners=False)
    return out[0].round().clamp(0, 255).permute(1, 2, 0)


def letterbox(image: np.ndarray) -> tuple[np.ndarray, float]:
    """YOLOX's input: the image scaled by r to fit 640×640 at the top left, grey 114 around; [1, 3, 640, 640]."""
    height, width = image.shape[:2]
    ratio = min(DETECTOR_INPUT[0] / height, DETECTOR_INPUT[1] / width)
    new_h, new_w = int(height * ratio), int(width * ratio)
    padded = np.full((*DETECTOR_INPUT, 3), 114, dtype=np.float32)
    padded[:new_h, :new_w] = _resize_linear(torch.from_numpy(image), new_w, new_h).numpy()
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None]), ratio


def decode_yolox(output: np.ndarray) -> np.ndarray:
    """YOLOX's raw predictions [N, 5 + classes] (x, y, log w, log h per grid cell of strides 8, 16, 32) as
    centre/size boxes in input pixels."""
    grids, strides = [], []
    for stride in (8, 16, 32):
        rows, cols = DETECTOR_INPUT[0] // stride, DETECTOR_INPUT[1] // stride
        xv, yv = np.meshgrid(np.arange(cols), np.arange(rows))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((rows * cols, 1), stride))
    grid, stride_of = np.concatenate(grids), np.concatenate(strides)
    decoded = output.copy()
    decoded[:, :2] = (output[:, :2] + grid) * stride_of
    decoded[:, 2:4] = np.exp(output[:, 2:4]) * stride_of
    return decoded


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy non-maximum suppression with the pack's +1 pixel box areas."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = w * h / (areas[best] + areas[rest] - w * h)
        order = rest[overlap <= threshold]
    return keep


def people_boxes(predictions: np.ndarray, ratio: float) -> np.ndarray:
    """Boxes [n, 4] (x1, y1, x2, y2 in image pixels) of people: NMS (IoU 0.45) over the person scores
    (objectness × class 0) above 0.1, then those over 0.3. The pack's NMS runs per class: other classes do not
    change the people it keeps."""
    decoded = decode_yolox(predictions)
    centre, size = decoded[:, :2], decoded[:, 2:4]
    boxes = np.concatenate([centre - size / 2.0, centre + size / 2.0], axis=1) / ratio
    scores = decoded[:, 4] * decoded[:, 5]
    valid = scores > 0.1
    boxes, scores = boxes[valid], scores[valid]
    kept = _nms(boxes, scores, 0.45) if len(scores) else []
    return np.array([boxes[i] for i in kept if scores[i] > SCORE_THRESHOLD], dtype=np.float64).reshape(-1, 4)


def crop_geometry(box: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(centre, scale) of the estimator's view of a box: grown by 1.25, widened or heightened to the input's
    aspect ratio (scale = the view's width and height in image pixels)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    centre = np.array([x1 + x2, y1 + y2]) * 0.5
    w, h = np.array([x2 - x1, y2 - y1]) * 1.25
    aspect = input_size[0] / input_size[1]
    scale = np.array([w, w / aspect]) if w > h * aspect else np.array([h * aspect, h])
    return centre, scale


def warp_crop(image: torch.Tensor, centre: np.ndarray, scale: np.ndarray, input_size: tuple[int, int]) -> torch.Tensor:
    """OpenCV's warpAffine of HWC uint8 values onto the estimator's input (bilinear, black outside): output pixel
    (u, v) samples the image at centre + ((u, v) - size / 2) · scale_w / width; rounded to uint8."""
    width, height = input_size
    step = scale[0] / width
    xs = (np.arange(width) - width / 2) * step + centre[0]
    ys = (np.arange(height) - height / 2) * step + centre[1]
    src_h, src_w = image.shape[:2]
    grid_x = torch.from_numpy(2 * xs / max(src_w - 1, 1) - 1).float()
    grid_y = torch.from_numpy(2 * ys / max(src_h - 1, 1) - 1).float()
    grid = torch.stack(torch.meshgrid(grid_x, grid_y, indexing="xy"), dim=-1)[None]
    chw = image.permute(2, 0, 1)[None].float()
    out = F.grid_sample(chw, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[0].round().clamp(0, 255).permute(1, 2, 0)


def estimate_keypoints(estimator: ExportedModel, image: np.ndarray, boxes: np.ndarray,
                       input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [n, 133, 2] in image pixels and their scores [n, 133], one set per box (the whole image when there
    is none): SimCC's arg-max at half-pixel resolution, mapped back through each crop."""
    if len(boxes) == 0:
        boxes = np.array([[0, 0, image.shape[1], image.shape[0]]], dtype=np.float64)
    pixels = torch.from_numpy(image)
    crops, geometry = [], []
    for box in boxes:
        centre, scale = crop_geometry(box, input_size)
        crops.append((warp_crop(pixels, centre, scale, input_size).double().numpy() - _MEAN) / _STD)
        geometry.append((centre, scale))
    batch = np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32)
    simcc_x, simcc_y = _run_estimator(estimator, batch)
    locations = np.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], axis=-1).astype(np.float32)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1))
    locations[scores <= 0.0] = -1
    locations /= 2.0   # SimCC's split ratio
    keypoints = np.stack([locations[i] / np.array(input_size) * scale + centre - scale / 2
                          for i, (centre, scale) in enumerate(geometry)])
    return keypoints, scores


def _run_estimator(estimator: ExportedModel, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    simcc_x, simcc_y = (in_batches(estimator.run, batch, TORCHSCRIPT_BATCH) if estimator.torchscript
                        else estimator.run(batch))[:2]
    return simcc_x, simcc_y


def openpose_order(keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[n, 134, 3] (x, y, score): a neck between the shoulders (score 1 when both score over 0.3, else 0) inserted
    at 17, the first 18 reordered to OpenPose's body keypoints."""
    info = np.concatenate([keypoints, scores[..., None]], axis=-1)
    neck = info[:, [5, 6]].mean(axis=1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > SCORE_THRESHOLD, info[:, 6, 2] > SCORE_THRESHOLD)
    info = np.insert(info, 17, neck, axis=1)
    info[:, _OPENPOSE] = info[:, _MMPOSE]
    return info


@dataclass
class DWPose:
    """The detector (None: the whole image is one person) and the estimator with its input size."""
    detector: ExportedModel | None
    estimator: ExportedModel
    input_size: tuple[int, int]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """OpenPose-ordered keypoints [n, 134, 3] of the people in an HWC uint8 image (n = 0: nobody found)."""
        boxes = np.zeros((0, 4))
        if self.detector is not None:
            batch, ratio = letterbox(image)
            boxes = people_boxes(self.detector.run(batch)[0][0], ratio)
            if len(boxes) == 0:
                return np.zeros((0, 134, 3))
        keypoints, scores = estimate_keypoints(self.estimator, image, boxes, self.input_size)
        return openpose_order(keypoints, scores)


def load_dwpose(detector: Path | None, estimator: Path, device: torch.device) -> DWPose:
    return DWPose(None if detector is None else load_exported(detector, device), load_exported(estimator, device),
                  estimator_input_size(estimator.name))


def as_uint8_image(x: torch.Tensor) -> Any:
    """[1, 3, H, W] of uint8 values → an HWC uint8 numpy array."""
    return x[0].permute(1, 2, 0).to(torch.uint8).numpy()
