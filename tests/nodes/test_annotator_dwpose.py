"""DWPreprocessor runs the pack's exported DWPose models from `models/annotators`: tiny stand-ins with the real files'
input and output names and shapes (YOLOX: `images` [1, 3, 640, 640] → `output` [1, 8400, 85]; DWPose-384: `input`
[N, 3, 384, 288] → `simcc_x` [N, 133, 576], `simcc_y` [N, 133, 768]), as ONNX and as TorchScript, give the people
the pack's geometry puts where we expect them, drawn with the pack's rules."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from nodes.models.annotators import dwpose
from nodes.models.annotators.dwpose_draw import (
    BODY_COLOURS,
    Pose,
    draw_poses,
    ellipse_polygon,
    hand_colour,
    stick_scale_for,
)
from nodes.packs import controlnet_aux as aux

HEIGHT, WIDTH = 96, 128           # letterboxed ×5 into YOLOX's 640×640
BOX = [44.0, 8.0, 84.0, 88.0]     # the person the stand-in detector finds: centre (64, 48), 40 × 80
DOT = (70, 40)                    # a white pixel the stand-in estimator reports as the nose
# The crop of BOX: grown 1.25× to 50 × 100, widened to 288:384 → 75 × 100, so 75/288 image px per crop px.
RIGHT_SHOULDER, LEFT_SHOULDER = (39.0, 73.0), (89.0, 73.0)   # crop (48, 288) and (240, 288)


def context(models_dir) -> RunContext:
    return RunContext(node_id="1", prompt_id="test", paths=Paths(models_dir), interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings={"device": "cpu"})


def grid_index(x: int, y: int, stride: int = 8) -> int:
    """The prediction row of YOLOX's grid cell (x, y) at a stride (strides 8, 16, 32 follow one another)."""
    offset = {8: 0, 16: 80 * 80, 32: 80 * 80 + 40 * 40}[stride]
    return offset + y * (640 // stride) + x


def detector_predictions() -> torch.Tensor:
    """Raw YOLOX rows: the person (score 0.81), a weaker overlapping copy NMS drops, a person scoring 0.2 (kept by
    NMS, under 0.3), and a confident non-person; the rest score nothing."""
    rows = torch.zeros(8400, 85)
    person = [0.0, 0.0, math.log(200 / 8), math.log(400 / 8), 0.9, 0.9]
    rows[grid_index(40, 30), :6] = torch.tensor(person)                     # centre (320, 240), 200 × 400
    rows[grid_index(41, 30), :6] = torch.tensor([0.0, 0.0, *person[2:4], 0.8, 0.6])
    rows[grid_index(5, 5), :6] = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.5, 0.4])
    rows[grid_index(70, 70)] = torch.tensor([0.0, 0.0, 2.0, 2.0, 0.9, 0.0, 0.9] + [0.0] * 78)
    return rows[None]


class TinyDetector(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predictions = torch.nn.Parameter(detector_predictions())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.predictions + 0.0 * images.mean()


class TinyEstimator(torch.nn.Module):
    """Keypoint 0 is where the crop is brightest (red channel, its SimCC bins at half pixels); the shoulders
    (5, 6) are fixed crop points scoring 0.9; every other keypoint scores 0.1."""

    def __init__(self) -> None:
        super().__init__()
        simcc_x, simcc_y = torch.full((133, 576), -1.0), torch.full((133, 768), -1.0)
        simcc_x[:, 0], simcc_y[:, 0] = 0.1, 0.1
        for keypoint, (u, v) in ((5, (240, 288)), (6, (48, 288))):
            simcc_x[keypoint, 2 * u], simcc_y[keypoint, 2 * v] = 0.9, 0.9
        self.simcc_x, self.simcc_y = torch.nn.Parameter(simcc_x), torch.nn.Parameter(simcc_y)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        red = crops[:, 0]
        columns = red.amax(dim=1).repeat_interleave(2, dim=1)
        rows = red.amax(dim=2).repeat_interleave(2, dim=1)
        batch = crops.shape[0]
        simcc_x = torch.cat([columns[:, None], self.simcc_x[None, 1:].expand(batch, -1, -1)], dim=1)
        simcc_y = torch.cat([rows[:, None], self.simcc_y[None, 1:].expand(batch, -1, -1)], dim=1)
        return simcc_x, simcc_y


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """The four files where the pack downloads them: ONNX under yzd-v/DWPose, TorchScript under hr16's repos."""
    root = tmp_path_factory.mktemp("models") / "annotators"
    for repo in ("yzd-v/DWPose", "hr16/yolox-onnx", "hr16/DWPose-TorchScript-BatchSize5"):
        (root / repo).mkdir(parents=True)
    detector, estimator = TinyDetector().eval(), TinyEstimator().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(detector, (torch.zeros(1, 3, 640, 640),), str(root / "yzd-v/DWPose/yolox_l.onnx"),
                          input_names=["images"], output_names=["output"], dynamo=False)
        torch.onnx.export(estimator, (torch.zeros(1, 3, 384, 288),), str(root / "yzd-v/DWPose/dw-ll_ucoco_384.onnx"),
                          input_names=["input"], output_names=["simcc_x", "simcc_y"], dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}})
        torch.jit.trace(detector, torch.zeros(1, 3, 640, 640)).save(
            str(root / "hr16/yolox-onnx/yolox_l.torchscript.pt"))
        torch.jit.trace(estimator, torch.zeros(5, 3, 384, 288)).save(
            str(root / "hr16/DWPose-TorchScript-BatchSize5/dw-ll_ucoco_384_bs5.torchscript.pt"))
    return root.parent


def dot_image() -> torch.Tensor:
    image = torch.zeros(1, HEIGHT, WIDTH, 3)
    image[0, DOT[1], DOT[0]] = 1.0
    return image


def test_the_detector_keeps_people_over_0_3_after_nms():
    predictions = detector_predictions()[0].numpy()
    batch, ratio = dwpose.letterbox(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    assert ratio == 5.0 and batch.shape == (1, 3, 640, 640)
    assert (batch[0, :, :480] == 0).all() and (batch[0, :, 480:] == 114).all()   # grey below the scaled image
    assert np.allclose(dwpose.people_boxes(predictions, ratio), [BOX], atol=1e-3)


def test_the_crop_follows_the_box_grown_to_the_estimators_aspect():
    centre, scale = dwpose.crop_geometry(np.array(BOX), (288, 384))
    assert centre.tolist() == [64.0, 48.0] and scale.tolist() == [75.0, 100.0]
    image = torch.zeros(HEIGHT, WIDTH, 3)
    image[73, 39] = 255.0   # image (39, 73) is crop (48, 288)
    crop = dwpose.warp_crop(image, centre, scale, (288, 384))
    assert crop.shape == (384, 288, 3) and crop[288, 48, 0] == 255.0
    lit = crop[:, :, 0].nonzero()   # the pixel spread bilinearly over 3.84 × 3.84 crop pixels around it
    assert (lit[:, 0] - 288).abs().max() < 4 and (lit[:, 1] - 48).abs().max() < 4


@pytest.mark.parametrize("detector, estimator", [("yolox_l.onnx", "dw-ll_ucoco_384.onnx"),
                                                 ("yolox_l.torchscript.pt", "dw-ll_ucoco_384_bs5.torchscript.pt")])
def test_detection_crop_and_pose_put_the_keypoints_back_on_the_image(models_dir, detector, estimator):
    pose_map, keypoints = aux.DWPreprocessor().run(context(models_dir), dot_image(), resolution=96,
                                                   bbox_detector=detector, pose_estimator=estimator)
    assert pose_map.shape == (1, HEIGHT, WIDTH, 3) and len(keypoints) == 1
    people = keypoints[0]["people"]
    assert len(people) == 1 and (keypoints[0]["canvas_height"], keypoints[0]["canvas_width"]) == (HEIGHT, WIDTH)
    body = np.array(people[0]["pose_keypoints_2d"]).reshape(18, 3)
    assert np.allclose(body[0], [*DOT, 1.0], atol=0.3)                       # the brightest crop pixel, mapped back
    assert np.allclose(body[[1, 2, 5]], [[64, 73, 1], [*RIGHT_SHOULDER, 1], [*LEFT_SHOULDER, 1]], atol=1e-3)
    assert body[[3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]].sum() == 0   # scores 0.1: left out
    assert people[0]["face_keypoints_2d"] is None and people[0]["hand_left_keypoints_2d"] is None
    drawn = (pose_map[0] * 255).round()
    assert drawn[73, 51].tolist() == [153.0, 0.0, 0.0]             # neck → right shoulder: 60 % of red
    assert drawn[73, 76].tolist() == [153.0, 51.0, 0.0]            # neck → left shoulder: 60 % of orange
    assert drawn[73, 64].tolist() == list(BODY_COLOURS[1])          # the neck's disc over the limbs
    assert drawn[73, 89].tolist() == list(BODY_COLOURS[5])          # the left shoulder's disc
    assert drawn[39, 69].tolist() == list(BODY_COLOURS[0])          # the nose at int(69.99), int(39.9)
    assert drawn[80, 51].sum() == 0 and drawn[5, 5].sum() == 0      # beyond the limb's half-width of 4


def test_onnx_and_torchscript_files_agree(models_dir):
    image = dot_image()
    onnx = aux.DWPreprocessor().run(context(models_dir), image, resolution=64, bbox_detector="yolox_l.onnx",
                                    pose_estimator="dw-ll_ucoco_384.onnx")
    script = aux.DWPreprocessor().run(context(models_dir), image, resolution=64, bbox_detector="yolox_l.torchscript.pt",
                                      pose_estimator="dw-ll_ucoco_384_bs5.torchscript.pt")
    assert onnx[0].shape == (1, 64, 85, 3)   # the drawing resized to the short side 64
    assert torch.equal(onnx[0], script[0])
    assert np.allclose(onnx[1][0]["people"][0]["pose_keypoints_2d"], script[1][0]["people"][0]["pose_keypoints_2d"])


def test_two_people_through_a_fixed_batch_onnx_estimator(models_dir, tmp_path, monkeypatch):
    """An estimator exported with batch 1 (as some published files are) takes the crops one at a time; the second
    person's box, shifted 20 px right, moves its shoulders 20 px right."""
    flat = tmp_path / "annotators"
    flat.mkdir()
    (flat / "yolox_l.onnx").write_bytes((models_dir / "annotators/yzd-v/DWPose/yolox_l.onnx").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TinyEstimator().eval(), (torch.zeros(1, 3, 384, 288),), str(flat / "dw-ll_ucoco_384.onnx"),
                          input_names=["input"], output_names=["simcc_x", "simcc_y"], dynamo=False)
    boxes = np.array([BOX, [BOX[0] + 20, BOX[1], BOX[2] + 20, BOX[3]]])
    monkeypatch.setattr(dwpose, "people_boxes", lambda predictions, ratio: boxes)
    _, keypoints = aux.DWPreprocessor().run(context(tmp_path), dot_image(), resolution=96,
                                            pose_estimator="dw-ll_ucoco_384.onnx")
    people = [np.array(person["pose_keypoints_2d"]).reshape(18, 3) for person in keypoints[0]["people"]]
    assert len(people) == 2
    assert np.allclose(people[0][2], [*RIGHT_SHOULDER, 1.0], atol=1e-3)
    assert np.allclose(people[1][2], [RIGHT_SHOULDER[0] + 20, RIGHT_SHOULDER[1], 1.0], atol=1e-3)


def test_without_a_detector_the_whole_image_is_one_person(models_dir):
    """The whole image as the box: centre (64, 48), 160 × 120 grown; 160 > 120 · 0.75, so 160 × 213.3 px."""
    pose_map, keypoints = aux.DWPreprocessor().run(context(models_dir), dot_image(), resolution=96,
                                                   bbox_detector="None", pose_estimator="dw-ll_ucoco_384.onnx")
    body = np.array(keypoints[0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    assert np.allclose(body[2], [64 - 96 * 160 / 288, 48 + 96 * 160 / 288, 1.0], atol=1e-3)
    assert np.allclose(body[0, :2], DOT, atol=0.6)


def test_the_parts_not_asked_for_are_neither_drawn_nor_written(models_dir):
    pose_map, keypoints = aux.DWPreprocessor().run(context(models_dir), dot_image(), "enable", "disable", "enable", 96,
                                                   "yolox_l.onnx", "dw-ll_ucoco_384.onnx")
    assert pose_map.sum() == 0
    assert keypoints[0]["people"][0]["pose_keypoints_2d"] == [0.0] * 54


def test_nobody_found_gives_a_black_map_and_no_people(models_dir, monkeypatch):
    monkeypatch.setattr(dwpose, "people_boxes", lambda predictions, ratio: np.zeros((0, 4)))
    pose_map, keypoints = aux.DWPreprocessor().run(context(models_dir), dot_image(), resolution=96,
                                                   pose_estimator="dw-ll_ucoco_384.onnx")
    assert pose_map.sum() == 0 and keypoints == [{"people": [], "canvas_height": HEIGHT, "canvas_width": WIDTH}]


def test_limbs_are_opencv_ellipses_of_half_width_4():
    polygon = ellipse_polygon((50, 50), (10, 4), 0)
    assert {(60, 50), (50, 54), (40, 50), (50, 46)} <= set(polygon) and polygon[0] == polygon[-1]
    rotated = ellipse_polygon((50, 50), (10, 4), 90)
    assert {(50, 60), (46, 50), (50, 40), (54, 50)} <= set(rotated)


def test_hands_and_face_are_drawn_with_the_packs_colours():
    hand = [(20.0 + 2 * i, 20.0) if i < 2 else None for i in range(21)]
    hand[1] = (40.0, 20.0)
    face = [None] * 68 + [(70.0, 60.0), None]
    canvas = draw_poses([Pose([None] * 18, hand, None, face)], 80, 100)
    assert canvas[20, 30].tolist() == list(hand_colour(0)) == [255, 0, 0]   # bone 0 → 1, a 2 px line
    assert canvas[20, 20].tolist() == [0, 0, 255] and canvas[20, 40].tolist() == [0, 0, 255]   # blue keypoints
    assert canvas[60, 70].tolist() == [255, 255, 255] and canvas[60, 74].sum() == 0   # face discs of radius 3
    assert canvas[25, 30].sum() == 0
    assert hand_colour(1) == (255, 77, 0)   # hue 1/20: 0.05 · 6 · 255 is 76.50000000000001 in floats, rounded


def test_xinsr_sticks_thicken_with_the_canvas():
    assert [stick_scale_for(side, side, True) for side in (499, 500, 999, 1000, 2048, 9000)] == [1, 2, 2, 3, 4, 7]
    assert stick_scale_for(4000, 4000, False) == 1


def test_aio_runs_dwpose_and_gives_only_the_image(models_dir):
    image = dot_image()
    expected = aux.DWPreprocessor().run(context(models_dir), image, resolution=96)
    assert torch.equal(aux.AIOPreprocessor().run(context(models_dir), image, "DWPreprocessor", 96)[0], expected[0])
    assert len(aux.AIOPreprocessor().run(context(models_dir), image, "DWPreprocessor", 96)) == 1


def test_missing_files_and_yolo_nas_say_what_to_do(tmp_path, models_dir):
    with pytest.raises(aux.AnnotatorModelMissing, match=r"yolox_l\.onnx.*yzd-v/DWPose/yolox_l\.onnx"):
        aux.DWPreprocessor().run(context(tmp_path), dot_image())
    with pytest.raises(aux.AnnotatorModelMissing, match=r"dw-ll_ucoco\.onnx.*hr16/UnJIT-DWPose"):
        aux.DWPreprocessor().run(context(models_dir), dot_image(), pose_estimator="dw-ll_ucoco.onnx")
    with pytest.raises(aux.AnnotatorModelMissing, match="YOLO-NAS.*yolox_l.onnx"):
        aux.DWPreprocessor().run(context(models_dir), dot_image(), bbox_detector="yolo_nas_s_fp16.onnx")
