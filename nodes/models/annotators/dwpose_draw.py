"""DWPose's keypoints as OpenPose people, drawn as comfyui_controlnet_aux draws them (dwpose/util.py: draw_bodypose,
draw_handpose, draw_facepose) and written as its POSE_KEYPOINT (OpenPose's JSON format).

The geometry and colours are the pack's: limbs are ellipses (OpenCV's ellipse2Poly, reproduced) 4 px half-wide
filled with 60 % of the limb's colour, body keypoints discs of radius 4, hand bones 2 px lines coloured around the
hue circle with blue keypoints, face keypoints white discs of radius 3. Pillow rasterises them, so edge pixels may
differ from OpenCV's by one.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

Keypoint = tuple[float, float]
KEYPOINT_SCORE = 0.3
_EPS = 0.01
# OpenPose's limbs (1-based keypoints) and the colours of limbs and keypoints alike
LIMBS = [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13), (13, 14),
         (2, 1), (1, 15), (15, 17), (1, 16), (16, 18)]
BODY_COLOURS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
                (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
                (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
HAND_BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
              (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
STICK_WIDTH = 4


@dataclass
class Pose:
    """One person: 18 body keypoints (None where unsure), and hands and face (None where none is sure)."""
    body: list[Keypoint | None]
    left_hand: list[Keypoint | None] | None
    right_hand: list[Keypoint | None] | None
    face: list[Keypoint | None] | None


def _part(rows: np.ndarray) -> list[Keypoint | None] | None:
    points: list[Keypoint | None] = [(float(x), float(y)) if score >= KEYPOINT_SCORE else None for x, y, score in rows]
    return None if all(point is None for point in points) else points


def poses_of(people: np.ndarray) -> list[Pose]:
    """OpenPose-ordered keypoints [n, 134, 3] as people: body 0–17, face 24–91 (with the two eyes appended, as
    OpenPose's face has 70 points), left hand 92–112, right hand 113–133."""
    poses = []
    for person in people:
        body = _part(person[:18]) or [None] * 18
        face = _part(person[24:92])
        if face is not None:
            face += [body[14], body[15]]
        poses.append(Pose(body, _part(person[92:113]), _part(person[113:134]), face))
    return poses


def _scale_of(points: list[Keypoint | None], height: int, width: int) -> tuple[float, float]:
    """(H, W) to multiply coordinates by: the canvas size when every point lies within 0..1 (normalised), else 1."""
    present = [p for p in points if p is not None]
    if present and all(abs(x) <= 1 and abs(y) <= 1 for x, y in present):
        return float(height), float(width)
    return 1.0, 1.0


def ellipse_polygon(centre: tuple[int, int], axes: tuple[int, int], angle: int) -> list[tuple[int, int]]:
    """OpenCV's ellipse2Poly for a whole ellipse at 1° steps: rotated points rounded half to even, repeats dropped."""
    angle %= 360
    cos_a, sin_a = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    points: list[tuple[int, int]] = []
    for degree in range(0, 361):
        x = axes[0] * math.cos(math.radians(degree))
        y = axes[1] * math.sin(math.radians(degree))
        point = (round(centre[0] + x * cos_a - y * sin_a), round(centre[1] + x * sin_a + y * cos_a))
        if not points or point != points[-1]:
            points.append(point)
    return points


def _disc(draw: ImageDraw.ImageDraw, x: int, y: int, radius: int, colour: tuple[int, int, int]) -> None:
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)


def draw_body(draw: ImageDraw.ImageDraw, keypoints: list[Keypoint | None], height: int, width: int,
              stick_scale: int) -> None:
    scale_h, scale_w = _scale_of(keypoints, height, width)
    for (first, second), colour in zip(LIMBS, BODY_COLOURS):
        a, b = keypoints[first - 1], keypoints[second - 1]
        if a is None or b is None:
            continue
        xs, ys = np.array([a[0], b[0]]) * scale_w, np.array([a[1], b[1]]) * scale_h
        length = float(np.hypot(xs[0] - xs[1], ys[0] - ys[1]))
        angle = int(math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1])))
        polygon = ellipse_polygon((int(xs.mean()), int(ys.mean())), (int(length / 2), STICK_WIDTH * stick_scale),
                                  angle)
        draw.polygon(polygon, fill=tuple(int(c * 0.6) for c in colour))
    for point, colour in zip(keypoints, BODY_COLOURS):
        if point is not None:
            _disc(draw, int(point[0] * scale_w), int(point[1] * scale_h), 4, colour)


def hand_colour(bone: int) -> tuple[int, int, int]:
    """The bone's hue, a 20th of the circle each, as matplotlib's hsv_to_rgb × 255 given to OpenCV (rounded)."""
    r, g, b = colorsys.hsv_to_rgb(bone / len(HAND_BONES), 1.0, 1.0)
    return round(r * 255), round(g * 255), round(b * 255)


def draw_hand(draw: ImageDraw.ImageDraw, keypoints: list[Keypoint | None] | None, height: int, width: int) -> None:
    if not keypoints:
        return
    scale_h, scale_w = _scale_of(keypoints, height, width)
    pixels = [None if p is None else (int(p[0] * scale_w), int(p[1] * scale_h)) for p in keypoints]
    for bone, (first, second) in enumerate(HAND_BONES):
        a, b = pixels[first], pixels[second]
        if a is not None and b is not None and min(*a, *b) > _EPS:
            draw.line([a, b], fill=hand_colour(bone), width=2)
    for point in pixels:
        if point is not None and min(point) > _EPS:
            _disc(draw, point[0], point[1], 4, (0, 0, 255))


def draw_face(draw: ImageDraw.ImageDraw, keypoints: list[Keypoint | None] | None, height: int, width: int) -> None:
    if not keypoints:
        return
    scale_h, scale_w = _scale_of(keypoints, height, width)
    for point in keypoints:
        if point is not None:
            x, y = int(point[0] * scale_w), int(point[1] * scale_h)
            if x > _EPS and y > _EPS:
                _disc(draw, x, y, 3, (255, 255, 255))


def stick_scale_for(height: int, width: int, xinsr: bool) -> int:
    """Thicker limbs for xinsir's SDXL OpenPose ControlNet on large canvases (1 below 500 px, up to 7)."""
    longest = max(height, width)
    return 1 if not xinsr or longest < 500 else min(2 + longest // 1000, 7)


def draw_poses(poses: list[Pose], height: int, width: int, body: bool = True, hands: bool = True,
               face: bool = True, xinsr_sticks: bool = False) -> np.ndarray:
    """The people drawn on a black HWC uint8 canvas, each body, then hands, then face, in the pack's order."""
    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    for pose in poses:
        if body:
            draw_body(draw, pose.body, height, width, stick_scale_for(height, width, xinsr_sticks))
        if hands:
            draw_hand(draw, pose.left_hand, height, width)
            draw_hand(draw, pose.right_hand, height, width)
        if face:
            draw_face(draw, pose.face, height, width)
    return np.asarray(canvas).copy()


def _flat(points: list[Keypoint | None] | None) -> list[float] | None:
    if not points:
        return None
    return [value for point in points for value in ((point[0], point[1], 1.0) if point else (0.0, 0.0, 0.0))]


def openpose_json(poses: list[Pose], height: int, width: int, body: bool = True, hands: bool = True,
                  face: bool = True) -> dict:
    """The pack's POSE_KEYPOINT entry for one image: OpenPose's people (x, y, 1 per keypoint; 0, 0, 0 where none),
    with the parts not asked for left out (a body not asked for is 18 empty keypoints)."""
    return {
        "people": [{"pose_keypoints_2d": _flat(pose.body if body else [None] * 18),
                    "face_keypoints_2d": _flat(pose.face) if face else None,
                    "hand_left_keypoints_2d": _flat(pose.left_hand) if hands else None,
                    "hand_right_keypoints_2d": _flat(pose.right_hand) if hands else None} for pose in poses],
        "canvas_height": height, "canvas_width": width,
    }
