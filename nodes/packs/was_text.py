"""WAS Node Suite's text and resize nodes (WASasquatch/was-node-suite-comfyui, WAS_Node_Suite.py).

Text nodes expand WAS tokens: `[time]` (Unix seconds), `[time(FORMAT)]` (strftime, local time),
`[hostname]`, `[user]`, `[cuda_device]`, `[cuda_name]`, and custom tokens added by
`Text Add Token by Input` (WAS keeps them in its settings file; we keep them in the temp folder).
"""

from __future__ import annotations

import getpass
import io
import json
import random
import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine.context import RunContext
from engine.declare import NodeResult, Out, node
from engine.paths import Paths
from engine.types import CLIP, CONDITIONING, IMAGE, LATENT, Choice, Float, Int, Link, String
from nodes.conditioning_nodes import CLIPTextEncode
from nodes.pixel_cap import check_image_size

PACK = "WAS Suite"
CUSTOM_TOKENS_FILE = "was_custom_tokens.json"
SEED_MAX = 0xFFFFFFFFFFFFFFFF
NO_DEFAULT: Any = None   # link-only text inputs (forceInput) declare no default, as in WAS


def custom_tokens(paths: Paths) -> dict[str, str]:
    """The custom tokens added by `Text Add Token by Input` (none when the file is absent or unreadable)."""
    try:
        tokens = json.loads((Path(paths.temp_dir) / CUSTOM_TOKENS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in tokens.items()} if isinstance(tokens, dict) else {}


def _device_tokens() -> dict[str, str]:
    if torch.cuda.is_available():
        return {"[cuda_device]": str(torch.device("cuda", torch.cuda.current_device())),
                "[cuda_name]": torch.cuda.get_device_name()}
    return {"[cuda_device]": "cpu", "[cuda_name]": "cpu"}


def _user() -> str:
    try:
        return getpass.getuser() or "null"
    except Exception:      # no user name on this platform: WAS writes 'null'
        return "null"


def parse_tokens(text: str, paths: Paths | None = None) -> str:
    """WAS's TextTokens.parseTokens: fixed tokens, custom tokens (they may override), then [time(FORMAT)]."""
    tokens = {"[time]": str(int(time.time())), "[hostname]": socket.gethostname(), "[user]": _user(),
              **_device_tokens()}
    if paths is not None:
        tokens.update(custom_tokens(paths))
    for token, value in tokens.items():
        text = text.replace(token, value)
    return re.sub(r"\[time\((.*?)\)\]", lambda m: time.strftime(m.group(1), time.localtime()), text)


def _uncommented_lines(text: str) -> list[str]:
    """The lines not starting with '#' (after leading whitespace), newlines removed."""
    return [line.replace("\n", "").replace("\r", "") for line in io.StringIO(text)
            if not line.strip().startswith("#")]


@node("Text Multiline", category=f"{PACK}/Text", outputs=[Out("STRING")])
class TextMultiline:
    """The text without its '#' comment lines, tokens expanded."""

    text = String("", multiline=True, dynamic_prompts=True)

    def run(self, ctx: RunContext, text: str) -> tuple:
        return (parse_tokens("\n".join(_uncommented_lines(text)), ctx.paths),)


@node("Text String", category=f"{PACK}/Text",
      outputs=[Out("STRING", "TEXT"), Out("STRING", "TEXT_B"), Out("STRING", "TEXT_C"), Out("STRING", "TEXT_D")])
class TextString:
    """Up to four one-line texts, tokens expanded."""

    text = String("")
    text_b = String("", optional=True)
    text_c = String("", optional=True)
    text_d = String("", optional=True)

    def run(self, ctx: RunContext, text: str, text_b: str | None, text_c: str | None, text_d: str | None) -> tuple:
        return tuple(parse_tokens(value or "", ctx.paths) for value in (text, text_b, text_c, text_d))


@node("Text Concatenate", category=f"{PACK}/Text", outputs=[Out("STRING")])
class TextConcatenate:
    """The connected, non-empty texts (by input name order) joined by the delimiter."""

    delimiter = String(", ")
    clean_whitespace = Choice(["true", "false"])
    text_a = String(NO_DEFAULT, optional=True, force_input=True)
    text_b = String(NO_DEFAULT, optional=True, force_input=True)
    text_c = String(NO_DEFAULT, optional=True, force_input=True)
    text_d = String(NO_DEFAULT, optional=True, force_input=True)

    def run(self, ctx: RunContext, delimiter: str, clean_whitespace: str, text_a: str | None, text_b: str | None,
            text_c: str | None, text_d: str | None) -> tuple:
        if delimiter in ("\n", "\\n"):   # WAS reads a typed "\n" as a newline
            delimiter = "\n"
        parts = []
        for value in (text_a, text_b, text_c, text_d):
            if isinstance(value, str):
                value = value.strip() if clean_whitespace == "true" else value
                if value != "":
                    parts.append(value)
        return (delimiter.join(parts),)


@node("Text to Conditioning", category=f"{PACK}/Text/Operations", outputs=[Out(CONDITIONING)])
class TextToConditioning:
    """CLIPTextEncode with the inputs in WAS's order (clip, then text as a link)."""

    clip = Link(CLIP)
    text = String(NO_DEFAULT, force_input=True)

    def run(self, ctx: RunContext, clip: Any, text: str) -> tuple:
        return CLIPTextEncode().run(ctx, text=text, clip=clip)


@node("Text to Console", category=f"{PACK}/Debug", outputs=[Out("STRING")], output_node=True)
class TextToConsole:
    """Prints the text under its label and passes it on."""

    text = String(NO_DEFAULT, force_input=True)
    label = String("Text Output")

    def run(self, ctx: RunContext, text: str, label: str) -> tuple:
        print(f"{label if label.strip() else 'Text to Console'}:\n{text}\n", flush=True)
        return (text,)


@node("Text Random Line", category=f"{PACK}/Text", outputs=[Out("STRING")])
class TextRandomLine:
    """One line of the text, chosen by Python's `random` seeded with `seed` (the line WAS picks)."""

    text = String(NO_DEFAULT, force_input=True)
    seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)

    def run(self, ctx: RunContext, text: str, seed: int) -> tuple:
        return (random.Random(seed).choice(text.split("\n")),)


@node("Text Add Token by Input", category=f"{PACK}/Text/Tokens", outputs=[], output_node=True, always_rerun=True)
class TextAddTokenByInput:
    """Adds (or replaces) a custom token that later token expansion substitutes."""

    token_name = String(NO_DEFAULT, force_input=True)
    token_value = String(NO_DEFAULT, force_input=True)
    print_current_tokens = Choice(["false", "true"])

    def run(self, ctx: RunContext, token_name: str, token_value: str, print_current_tokens: str) -> NodeResult:
        if not token_name.strip():
            raise ValueError("Text Add Token by Input: token_name is empty; a token needs a name")
        tokens = {**custom_tokens(ctx.paths), token_name: token_value}
        folder = Path(ctx.paths.temp_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CUSTOM_TOKENS_FILE).write_text(json.dumps(tokens, indent=1), encoding="utf-8")
        if print_current_tokens == "true":
            print(f"Current Custom Tokens:\n{json.dumps(tokens, indent=4)}", flush=True)
        return NodeResult(outputs=())


@node("Text Parse Tokens", category=f"{PACK}/Text/Tokens", outputs=[Out("STRING")], always_rerun=True)
class TextParseTokens:
    """The text with its tokens expanded (re-run every time: [time] changes)."""

    text = String(NO_DEFAULT, force_input=True)

    def run(self, ctx: RunContext, text: str) -> tuple:
        return (parse_tokens(text, ctx.paths),)


@node("Text Find and Replace Input", category=f"{PACK}/Text/Search",
      outputs=[Out("STRING", "result_text"), Out("NUMBER", "replacement_count_number"),
               Out("FLOAT", "replacement_count_float"), Out("INT", "replacement_count_int")])
class TextFindAndReplaceInput:
    """Replaces the first occurrence of `find` until none is left, counting replacements (WAS's loop)."""

    text = String(NO_DEFAULT, force_input=True)
    find = String(NO_DEFAULT, force_input=True)
    replace = String(NO_DEFAULT, force_input=True)

    def run(self, ctx: RunContext, text: str, find: str, replace: str) -> tuple:
        if find == "" or find in replace:   # WAS's loop never ends on these; say so instead
            raise ValueError(f"Text Find and Replace Input: find {find!r} would be found again after "
                             f"replacing it with {replace!r} (endless in WAS)")
        count = 0
        while find in text:
            text = text.replace(find, replace, 1)
            count += 1
        return (text, count, float(count), count)


@node("Load Text File", category=f"{PACK}/IO", outputs=[Out("STRING"), Out("DICT")])
class LoadTextFile:
    """A text file from the input folder, without its '#' comment lines, and as {name: lines}."""

    file_path = String("")
    dictionary_name = String("[filename]")

    def fingerprint(self, paths: Paths, file_path: str = "", **_: Any) -> str:
        try:
            stat = paths.input_path(file_path).stat()
        except (OSError, ValueError):
            return "absent"
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def run(self, ctx: RunContext, file_path: str, dictionary_name: str) -> tuple:
        base = Path(file_path).name
        name = base.split(".", 1)[0] if dictionary_name == "[filename]" else dictionary_name
        path = ctx.paths.input_path(file_path)   # resolved inside the input folder, or refused
        if not path.is_file():
            raise FileNotFoundError(f"Load Text File: {file_path!r} is not a file in the input folder")
        lines = _uncommented_lines(path.read_text(encoding="utf-8"))
        return ("\n".join(lines), {name: lines})


@node("Latent Upscale by Factor (WAS)", category=f"{PACK}/Latent/Transform", outputs=[Out(LATENT)])
class LatentUpscaleByFactorWAS:
    """Latents resized by a factor (sides rounded), align_corners as chosen for the smooth modes."""

    samples = Link(LATENT)
    mode = Choice(["area", "bicubic", "bilinear", "nearest"])
    factor = Float(2.0, min=0.1, max=8.0, step=0.01)
    align = Choice(["true", "false"])

    def run(self, ctx: RunContext, samples: dict, mode: str, factor: float, align: str) -> tuple:
        latent = samples["samples"]
        height, width = (int(round(side * factor)) for side in latent.shape[-2:])
        check_image_size(ctx, width * 8, height * 8, latent.shape[0], "factor")
        if mode in ("bilinear", "bicubic"):
            out = torch.nn.functional.interpolate(latent, size=(height, width), mode=mode,
                                                  align_corners=align == "true")
        else:
            out = torch.nn.functional.interpolate(latent, size=(height, width), mode=mode)
        return ({**samples, "samples": out},)


PIL_FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
               "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


def _round_up_to_8(side: int) -> int:
    return side if side % 8 == 0 else side + 8 - side % 8


@node("Image Resize", category=f"{PACK}/Image/Transform", outputs=[Out(IMAGE)])
class ImageResizeWAS:
    """Rescale by a factor, or resize to a size rounded up to multiples of 8, with PIL's filters;
    supersampling first resizes to 8× the target."""

    image = Link(IMAGE)
    mode = Choice(["rescale", "resize"])
    supersample = Choice(["true", "false"])
    resampling = Choice(["lanczos", "nearest", "bilinear", "bicubic"])
    rescale_factor = Float(2, min=0.01, max=16.0, step=0.01)
    resize_width = Int(1024, min=1, max=48000, step=1)
    resize_height = Int(1536, min=1, max=48000, step=1)

    def run(self, ctx: RunContext, image: torch.Tensor, mode: str, supersample: str, resampling: str,
            rescale_factor: float, resize_width: int, resize_height: int) -> tuple:
        if mode == "rescale":
            width, height = int(image.shape[2] * rescale_factor), int(image.shape[1] * rescale_factor)
        else:
            width, height = _round_up_to_8(resize_width), _round_up_to_8(resize_height)
        check_image_size(ctx, width * (8 if supersample == "true" else 1),
                         height * (8 if supersample == "true" else 1), 1, "rescale_factor or resize size")
        check_image_size(ctx, width, height, image.shape[0], "rescale_factor or resize size")
        out = []
        for frame in image:
            pil = Image.fromarray(np.clip(255.0 * frame.cpu().numpy(), 0, 255).astype(np.uint8))
            if supersample == "true":
                pil = pil.resize((width * 8, height * 8), resample=PIL_FILTERS[resampling])
            pil = pil.resize((width, height), resample=PIL_FILTERS[resampling])
            out.append(torch.from_numpy(np.array(pil).astype(np.float32) / 255.0))
        return (torch.stack(out),)

