"""The pixel cap of image nodes that allocate from their inputs (the `max_latent_pixels` run setting).

One cap for latents, masks and images, counted in image pixels (width × height × batch). A node
checks it in `validate_inputs` where its sizes are constants (validation passes the run's
settings) and again when it runs, where sizes come from linked tensors.
"""

from __future__ import annotations

from typing import Any

from engine.validate import SETTING_LIMITS

MAX_PIXELS_SETTING = "max_latent_pixels"
DEFAULT_MAX_PIXELS = SETTING_LIMITS[MAX_PIXELS_SETTING]


class ImageTooLargeError(ValueError):
    """An image a node would make exceeds the configured pixel cap."""


def max_pixels(settings: dict[str, Any] | None) -> int:
    return int((settings or {}).get(MAX_PIXELS_SETTING, DEFAULT_MAX_PIXELS))


def image_size_problem(width: int, height: int, batch_size: int, settings: dict[str, Any] | None,
                       inputs: str) -> str | None:
    """A message naming `inputs` when width × height × batch_size exceeds the cap, else None."""
    cap = max_pixels(settings)
    total = width * height * batch_size
    if total <= cap:
        return None
    return (f"image too large: {width}×{height} pixels × batch {batch_size} = {total:,} pixels exceeds the "
            f"limit of {cap:,} (setting {MAX_PIXELS_SETTING!r}); reduce {inputs}")


def check_image_size(ctx: Any, width: int, height: int, batch_size: int, inputs: str) -> None:
    """Raise ImageTooLargeError (naming `inputs`) for an output over the cap of the run (`ctx`)."""
    problem = image_size_problem(width, height, batch_size, getattr(ctx, "settings", None), inputs)
    if problem:
        raise ImageTooLargeError(problem)
