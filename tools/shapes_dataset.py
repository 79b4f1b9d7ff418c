"""A procedural captioned dataset of coloured shapes, deterministic from a seed (no downloads).

Each 64×64 image holds one shape (circle, square or triangle) in one of six colours, of one of two
sizes, at one of five positions, on a plain or two-tone (top/bottom) background of other colours.
Its caption names what is drawn, e.g. "a large red circle on a blue background, top left"; the
size, the background and the position are each left out of some captions, and then drawn at random,
so that a short prompt ("a red circle") is a valid request too.

The same module renders the masks the demo model's tests compare generated images with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 64
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220),
           "yellow": (240, 220, 30), "white": (245, 245, 245), "black": (15, 15, 15)}
_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)  # COLOURS' RGB values, in their order
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 22, "large": 34}  # side of the shape's bounding box, in pixels
# Position word → centre of the shape's bounding box (x, y), in pixels.
POSITIONS = {"top left": (20, 20), "top right": (44, 20), "bottom left": (20, 44),
             "bottom right": (44, 44), "center": (32, 32)}
JITTER = 2  # the centre and the size vary by up to this many pixels
SUPERSAMPLE = 4  # edges are anti-aliased by averaging a 4×4 grid of samples per pixel


@dataclass(frozen=True)
class Scene:
    """One image's content; `background2` is the bottom half's colour of a two-tone background."""

    shape: str
    colour: str
    size: str
    position: str
    background: str
    background2: str | None = None
    dx: int = 0
    dy: int = 0
    dsize: int = 0

    def caption(self, with_size: bool = True, with_background: bool = True, with_position: bool = True) -> str:
        words = ["a"] + ([self.size] if with_size else []) + [self.colour, self.shape]
        if with_background:
            tone = self.background if self.background2 is None else f"{self.background} and {self.background2}"
            words += ["on", "a", tone, "background"]
        text = " ".join(words)
        return f"{text}, {self.position}" if with_position else text


def shape_mask(shape: str, centre: tuple[float, float], side: float, size: int = IMAGE_SIZE,
               supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Coverage in 0..1 of each pixel by `shape` with its bounding box (side × side) at `centre`.

    The triangle points up: apex at the top middle, base along the bottom of the box.
    """
    n = size * supersample
    coords = (np.arange(n) + 0.5) / supersample
    x, y = np.meshgrid(coords, coords)
    cx, cy = centre
    half = side / 2
    if shape == "circle":
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= half ** 2
    elif shape == "square":
        inside = (np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)
    elif shape == "triangle":
        top, bottom = cy - half, cy + half
        reach = half * (y - top) / side  # the half-width grows from 0 at the apex to `half` at the base
        inside = (y >= top) & (y <= bottom) & (np.abs(x - cx) <= reach)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def scene_coverage(scene: Scene) -> np.ndarray:
    """Coverage in 0..1 of each pixel by the scene's shape, [64, 64]."""
    cx, cy = POSITIONS[scene.position]
    return shape_mask(scene.shape, (cx + scene.dx, cy + scene.dy), SIZES[scene.size] + scene.dsize)


def render(scene: Scene) -> np.ndarray:
    """The scene as an RGB uint8 array [64, 64, 3]."""
    image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    image[:] = COLOURS[scene.background]
    if scene.background2 is not None:
        image[IMAGE_SIZE // 2:] = COLOURS[scene.background2]
    coverage = scene_coverage(scene)[..., None]
    image = image * (1 - coverage) + np.asarray(COLOURS[scene.colour], dtype=np.float32) * coverage
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def nearest_colours(pixels: np.ndarray) -> np.ndarray:
    """Index into COLOURS of the nearest colour (RGB distance) of each pixel of `pixels` [..., 3] in
    0..255: how the demo model's checks read an image."""
    return ((pixels[..., None, :].astype(np.float32) - _PALETTE) ** 2).sum(axis=-1).argmin(axis=-1)


def random_scene(rng: random.Random, two_tone_probability: float = 0.2) -> Scene:
    colour = rng.choice(list(COLOURS))
    others = [c for c in COLOURS if c != colour]
    background = rng.choice(others)
    background2 = None
    if rng.random() < two_tone_probability:
        background2 = rng.choice([c for c in others if c != background])
    return Scene(shape=rng.choice(SHAPES), colour=colour, size=rng.choice(list(SIZES)),
                 position=rng.choice(list(POSITIONS)), background=background, background2=background2,
                 dx=rng.randint(-JITTER, JITTER), dy=rng.randint(-JITTER, JITTER),
                 dsize=rng.randint(-JITTER, JITTER))


def random_caption(scene: Scene, rng: random.Random) -> str:
    """The scene's caption, leaving out the size (half the time), background or position (a tenth each)."""
    return scene.caption(with_size=rng.random() < 0.5, with_background=rng.random() >= 0.1,
                         with_position=rng.random() >= 0.1)


def make_dataset(count: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[Scene]]:
    """`count` images [N, 64, 64, 3] uint8 with their captions and scenes, the same for the same seed."""
    rng = random.Random(seed)
    scenes = [random_scene(rng) for _ in range(count)]
    captions = [random_caption(s, rng) for s in scenes]
    images = np.stack([render(s) for s in scenes])
    return images, captions, scenes


if __name__ == "__main__":  # a quick look: python tools/shapes_dataset.py out.png
    import sys

    from PIL import Image

    images, captions, _ = make_dataset(16, seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    grid = images.reshape(4, 4, IMAGE_SIZE, IMAGE_SIZE, 3).transpose(0, 2, 1, 3, 4).reshape(4 * 64, 4 * 64, 3)
    Image.fromarray(grid).resize((512, 512), Image.NEAREST).save(sys.argv[1] if len(sys.argv) > 1 else "shapes.png")
    print("\n".join(captions))
