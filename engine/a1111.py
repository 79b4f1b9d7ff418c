"""Automatic1111 `parameters` text: parsed into typed values and rebuilt as a ComfyUI text-to-image graph.

A1111 stores its generation settings in a PNG `parameters` chunk as plain text:

    a castle on a hill,
    golden hour
    Negative prompt: blurry, lowres
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 123, Size: 512x768, Model: dreamshaper_8

The last line holds `Key: value` pairs (a value may be double-quoted, with commas inside); it is
only taken as settings when it has at least three pairs, as A1111 itself does. Everything above
it is the prompt, up to a line starting `Negative prompt:`, after which it is the negative prompt.

The text comes from files anyone can send (`POST /workflow/convert` reads every dropped PNG), so
it is bounded (`MAX_PARAMETERS_CHARS`) and scanned in linear time: A1111's own settings regex
backtracks quadratically on a long line without a colon, and `re` holds the GIL while it does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from engine.paths import MODEL_KINDS
from engine.workflow import LinkRef, NodeSpec, Workflow

DEFAULT_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
CHECKPOINT_EXTENSIONS = MODEL_KINDS["checkpoints"].extensions

# A1111 sampler label -> ComfyUI sampler_name.
SAMPLERS: dict[str, str] = {
    "Euler": "euler",
    "Euler a": "euler_ancestral",
    "Heun": "heun",
    "DPM2": "dpm_2",
    "DPM2 a": "dpm_2_ancestral",
    "LMS": "lms",
    "DPM fast": "dpm_fast",
    "DPM adaptive": "dpm_adaptive",
    "DPM++ 2S a": "dpmpp_2s_ancestral",
    "DPM++ 2M": "dpmpp_2m",
    "DPM++ SDE": "dpmpp_sde",
    "DPM++ 2M SDE": "dpmpp_2m_sde",
    "DPM++ 3M SDE": "dpmpp_3m_sde",
    "DDIM": "ddim",
    "DDPM": "ddpm",
    "DEIS": "deis",
    "UniPC": "uni_pc",
    "LCM": "lcm",
}

# A1111 `Schedule type:` label -> ComfyUI scheduler. "Automatic" and "Uniform" are A1111's
# plain schedules, which ComfyUI calls normal.
SCHEDULES: dict[str, str] = {
    "Automatic": "normal",
    "Uniform": "normal",
    "Normal": "normal",
    "Karras": "karras",
    "Exponential": "exponential",
    "SGM Uniform": "sgm_uniform",
    "Simple": "simple",
    "DDIM": "ddim_uniform",
    "Beta": "beta",
    "KL Optimal": "kl_optimal",
}

# Before A1111 1.9 the schedule was part of the sampler's name ("DPM++ 2M Karras").
_OLD_STYLE_SUFFIXES = (" Karras", " Exponential")

# The longest `parameters` text read: A1111's own texts stay far below (prompts of a few thousand
# characters); a longer one is refused rather than parsed.
MAX_PARAMETERS_CHARS = 64 * 1024

# The settings line is scanned in pieces, each regex matching from one place without retrying:
# a run of the characters a key may hold (it is a key when a `:` follows and it holds a letter),
# then optional spaces, then a double-quoted value (commas and escaped quotes inside).
_KEY_RUN = re.compile(r"[\w \-/]+")
_SPACES = re.compile(r"\s*")
_QUOTED = re.compile(r'"(?:\\.|[^\\"])*"')
_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
_LORA_TAG = re.compile(r"<(?:lora|lyco):[^<>]*>", re.IGNORECASE)  # [^<>]: each `<` starts one scan


@dataclass
class A1111Parameters:
    """The settings of one A1111 image, with sampler and scheduler already mapped to ComfyUI names.

    `settings` keeps every pair of the settings line (quotes removed) for whatever is not typed here.
    `warnings` lists what could not be understood or will not be reproduced by the rebuilt graph.
    """

    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 20
    sampler: str = "Euler a"
    schedule_type: str | None = None
    cfg_scale: float = 7.0
    seed: int = 0
    width: int = 512
    height: int = 512
    model: str | None = None
    model_hash: str | None = None
    clip_skip: int = 1
    denoising_strength: float | None = None
    sampler_name: str = "euler_ancestral"
    scheduler: str = "normal"
    settings: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class A1111ParametersError(ValueError):
    """The `parameters` text is too long to be an A1111 text; the message says how long."""


def _setting_pairs(line: str) -> list[tuple[str, str]]:
    """The raw `(key, value)` pairs of a settings line, found in one pass (linear in its length).

    A key is a run of word characters, spaces, `-` and `/` starting at a word character and
    followed by `:`; its value runs to the next comma, unless it is a quoted string followed by a
    comma or the line's end. Text between pairs that is not a key is skipped.
    """
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(line)
    while (run := _KEY_RUN.search(line, pos)) is not None:
        pos = run.end()
        key = run.group().lstrip(" -/")
        if not key or line[pos:pos + 1] != ":":
            continue
        pos = _SPACES.match(line, pos + 1).end()  # type: ignore[union-attr]  # `\s*` always matches
        quoted = _QUOTED.match(line, pos)
        if quoted is not None and line[quoted.end():quoted.end() + 1] in (",", ""):
            value, pos = quoted.group(), quoted.end() + 1
        else:
            comma = line.find(",", pos)
            stop = end if comma < 0 else comma
            value, pos = line[pos:stop], stop + 1
        pairs.append((key.strip(), value))
    return pairs


def split_settings(line: str) -> dict[str, str]:
    """The `Key: value, ...` pairs of a settings line, in order, with quoted values unquoted."""
    settings: dict[str, str] = {}
    for key, value in _setting_pairs(line):
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value[1:-1]
        settings[key] = value
    return settings


def comfy_sampler(sampler: str, schedule_type: str | None = None) -> tuple[str, str, list[str]]:
    """ComfyUI (sampler_name, scheduler) for an A1111 sampler label, plus warnings for what is unknown.

    The schedule comes from `Schedule type:` when given, else from an old-style name suffix
    ("DPM++ 2M Karras"), else it is `normal`. An unknown sampler becomes `euler`.
    """
    warnings: list[str] = []
    name = sampler.strip()
    suffix_schedule = None
    if name not in SAMPLERS:
        for suffix in _OLD_STYLE_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in SAMPLERS:
                name, suffix_schedule = name[: -len(suffix)], suffix.strip()
                break
    sampler_name = SAMPLERS.get(name)
    if sampler_name is None:
        sampler_name = "euler"
        warnings.append(f"unknown A1111 sampler {sampler!r}: using euler instead")

    scheduler = "normal"
    label = schedule_type.strip() if schedule_type is not None else suffix_schedule
    if label is not None:
        mapped = SCHEDULES.get(label)
        if mapped is None:
            warnings.append(f"unknown A1111 schedule type {label!r}: using normal instead")
        else:
            scheduler = mapped
    return sampler_name, scheduler, warnings


def parse_a1111_parameters(text: str) -> A1111Parameters:
    """Parse an A1111 `parameters` text; malformed settings become warnings, never exceptions.

    A text over `MAX_PARAMETERS_CHARS` is refused with `A1111ParametersError` (a ValueError).
    """
    if len(text) > MAX_PARAMETERS_CHARS:
        raise A1111ParametersError(f"the A1111 'parameters' text has {len(text)} characters; "
                                   f"at most {MAX_PARAMETERS_CHARS} are read")
    lines = text.strip().replace("\r\n", "\n").split("\n")
    settings: dict[str, str] = {}
    if len(lines) > 0 and len(_setting_pairs(lines[-1])) >= 3:
        settings = split_settings(lines.pop())

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)

    params = A1111Parameters(prompt="\n".join(prompt_lines), negative_prompt="\n".join(negative_lines),
                             settings=settings)
    _apply_settings(params, settings)
    return params


def _apply_settings(params: A1111Parameters, settings: dict[str, str]) -> None:
    """Fill the typed fields of `params` from the settings pairs, warning about unreadable values."""

    def number(key: str, convert: type, default):
        if key not in settings:
            return default
        try:
            if convert is int:  # "20" and "20.0" both; int() first keeps 64-bit seeds exact
                text = settings[key].strip()
                return int(text) if re.fullmatch(r"[+-]?\d+", text) else int(float(text))
            return convert(settings[key])
        except (ValueError, OverflowError):
            params.warnings.append(f"A1111 setting {key}: {settings[key]!r} is not a number; using {default}")
            return default

    params.steps = number("Steps", int, params.steps)
    params.cfg_scale = number("CFG scale", float, params.cfg_scale)
    params.seed = number("Seed", int, params.seed)
    params.clip_skip = number("Clip skip", int, params.clip_skip)
    params.denoising_strength = number("Denoising strength", float, params.denoising_strength)
    if params.seed < 0:
        params.warnings.append(f"A1111 seed {params.seed} is not a real seed; using 0")
        params.seed = 0

    if "Size" in settings:
        size = _SIZE.match(settings["Size"])
        if size:
            params.width, params.height = int(size.group(1)), int(size.group(2))
        else:
            params.warnings.append(f"A1111 setting Size: {settings['Size']!r} is not WIDTHxHEIGHT; using 512x512")

    params.model = settings.get("Model") or None
    params.model_hash = settings.get("Model hash") or None
    params.sampler = settings.get("Sampler", params.sampler)
    params.schedule_type = settings.get("Schedule type")
    params.sampler_name, params.scheduler, sampler_warnings = comfy_sampler(params.sampler, params.schedule_type)
    params.warnings.extend(sampler_warnings)

    if any(key.startswith("Hires") for key in settings):
        params.warnings.append("A1111 hires fix is not reproduced: the graph renders at the base size only")
    if _LORA_TAG.search(params.prompt) or _LORA_TAG.search(params.negative_prompt):
        params.warnings.append("the prompt has <lora:...> tags: they stay plain text; "
                               "add LoraLoader nodes to apply them")


def checkpoint_name(model: str | None) -> str:
    """The ckpt_name for an A1111 `Model:` value: `.safetensors` is added when it has no known extension."""
    if not model:
        return DEFAULT_CHECKPOINT
    if model.lower().endswith(CHECKPOINT_EXTENSIONS):
        return model
    return model + ".safetensors"


def a1111_to_workflow(params: A1111Parameters) -> Workflow:
    """A text-to-image graph of ComfyUI's core nodes reproducing `params`.

    Node ids are fixed, so scripts can address them: 1 checkpoint, 2 clip skip (only when
    `Clip skip` > 1), 3 positive prompt, 4 negative prompt, 5 empty latent, 6 KSampler,
    7 VAE decode, 8 save.
    """
    clip = LinkRef("1", 1)
    nodes: dict[str, NodeSpec] = {
        "1": NodeSpec("CheckpointLoaderSimple", {"ckpt_name": checkpoint_name(params.model)}),
    }
    if params.clip_skip > 1:
        # A1111's "Clip skip: N" stops N layers from the end; ComfyUI counts that as -N.
        nodes["2"] = NodeSpec("CLIPSetLastLayer", {"clip": clip, "stop_at_clip_layer": -min(params.clip_skip, 24)})
        clip = LinkRef("2", 0)
    nodes["3"] = NodeSpec("CLIPTextEncode", {"text": params.prompt, "clip": clip}, title="Positive prompt")
    nodes["4"] = NodeSpec("CLIPTextEncode", {"text": params.negative_prompt, "clip": clip}, title="Negative prompt")
    nodes["5"] = NodeSpec("EmptyLatentImage", {"width": params.width, "height": params.height, "batch_size": 1})
    nodes["6"] = NodeSpec("KSampler", {
        "model": LinkRef("1", 0),
        "seed": params.seed,
        "steps": params.steps,
        "cfg": params.cfg_scale,
        "sampler_name": params.sampler_name,
        "scheduler": params.scheduler,
        "positive": LinkRef("3", 0),
        "negative": LinkRef("4", 0),
        "latent_image": LinkRef("5", 0),
        "denoise": 1.0,
    })
    nodes["7"] = NodeSpec("VAEDecode", {"samples": LinkRef("6", 0), "vae": LinkRef("1", 2)})
    nodes["8"] = NodeSpec("SaveImage", {"images": LinkRef("7", 0), "filename_prefix": "A1111"})
    return Workflow(nodes)
