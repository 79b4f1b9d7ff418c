"""Small pure-Python node types for testing the engine without any model.

Nodes record each execution in `ctx.settings["trace"]` (a list the test owns), so tests can
see exactly what ran without global state.
"""

from __future__ import annotations

import functools
import hashlib
import time

from engine.context import RunContext
from engine.declare import NodeResult, Out, node
from engine.types import Boolean, Choice, Float, Int, Link, String


def _trace(ctx, label: str) -> None:
    trace = ctx.settings.get("trace")
    if trace is not None:
        trace.append(label)


@node("Number", category="toy/math", outputs=[Out("INT", "value")])
class Number:
    """A constant integer."""

    value = Int(0, min=-1_000_000, max=1_000_000)

    def run(self, ctx: RunContext, value):
        _trace(ctx, ctx.node_id)
        return (value,)


@node("Add", category="toy/math", outputs=[Out("INT", "sum")])
class Add:
    """a + b (+ c when connected)."""

    a = Link("INT")
    b = Link("INT")
    c = Link("INT", optional=True)

    def run(self, ctx: RunContext, a, b, c):
        _trace(ctx, ctx.node_id)
        return (a + b + (c or 0),)


@node("Scale", category="toy/math", outputs=[Out("INT", "value"), Out("FLOAT", "ratio")])
class Scale:
    """value × factor, and the factor as a float."""

    value = Link("INT")
    factor = Int(2, min=0, max=100, step=1)
    offset = Float(0.0, min=-10.0, max=10.0, step=0.5, optional=True)

    def run(self, ctx: RunContext, value, factor, offset):
        _trace(ctx, ctx.node_id)
        return (value * factor + int(offset), float(factor))


@node("Text", category="toy/text", outputs=[Out("STRING", "text")])
class Text:
    """A constant text, optionally upper-cased."""

    text = String("hello", multiline=True)
    shout = Boolean(False)
    style = Choice(["plain", "fancy"], optional=True)

    def run(self, ctx: RunContext, text, shout, style):
        _trace(ctx, ctx.node_id)
        text = text.upper() if shout else text
        return (f"*{text}*" if style == "fancy" else text,)


@node("Show", category="toy/output", output_node=True, hidden=["prompt", "extra_pnginfo"])
class Show:
    """Output node: reports the value it receives as UI output."""

    value = Link("*")

    def run(self, ctx: RunContext, value):
        _trace(ctx, ctx.node_id)
        return NodeResult(ui={"values": [value]})


@node("Fail", category="toy/debug", outputs=[Out("INT", "value")])
class Fail:
    """Raises when `fail` is true, else passes its value on."""

    value = Link("INT")
    fail = Boolean(True)

    def run(self, ctx: RunContext, value, fail):
        _trace(ctx, ctx.node_id)
        if fail:
            raise RuntimeError("toy failure requested")
        return (value,)


@node("Slow", category="toy/debug", outputs=[Out("INT", "value")])
class Slow:
    """Counts `steps` steps of `delay` seconds each, reporting progress (interruptible)."""

    value = Link("INT")
    steps = Int(10, min=1, max=10_000)
    delay = Float(0.01, min=0.0, max=10.0)

    def run(self, ctx: RunContext, value, steps, delay):
        _trace(ctx, ctx.node_id)
        for step in range(steps):
            time.sleep(delay)
            on_step = ctx.settings.get("on_step")
            if on_step:
                on_step(step)
            ctx.progress(step + 1, steps)
        return (value + steps,)


@node("ReadFile", category="toy/io", outputs=[Out("STRING", "text")])
class ReadFile:
    """Reads a text file from the input folder; re-runs when the file's content changes."""

    name = String("data.txt")

    def fingerprint(self, paths, name):
        return hashlib.sha256(paths.input_path(name).read_bytes()).hexdigest()

    def validate_inputs(self, paths, name):
        if not paths.input_path(name).is_file():
            return f"file {name!r} not found in the input folder"
        return None

    def run(self, ctx: RunContext, name):
        _trace(ctx, ctx.node_id)
        return (ctx.paths.input_path(name).read_text(),)


@node("Clock", category="toy/io", outputs=[Out("FLOAT", "now")], always_rerun=True)
class Clock:
    """The current time: declared to re-run on every execution."""

    def run(self, ctx: RunContext):
        _trace(ctx, ctx.node_id)
        return (time.time(),)


@node("Blob", category="toy/memory", outputs=[Out("BLOB", "data")])
class Blob:
    """`size` bytes of data (to exercise the cache's byte bound)."""

    size = Int(1024, min=0, max=10**9)
    fill = Int(0, min=0, max=255)

    def run(self, ctx: RunContext, size, fill):
        _trace(ctx, ctx.node_id)
        return (bytes([fill]) * size,)


@node("BadReturn", category="toy/debug", outputs=[Out("INT", "a"), Out("INT", "b")])
class BadReturn:
    """Breaks its contract: returns one value though it declares two outputs."""

    value = Link("INT")

    def run(self, ctx: RunContext, value):
        return (value,)


TOY_NODES = [Number, Add, Scale, Text, Show, Fail, Slow, ReadFile, Clock, Blob, BadReturn]


# --- ComfyUI-like toys: core node names, input order and widgets, no models -----------------
# For UI-format conversion and validation tests: what matters is each node's signature (input
# order, which inputs are widgets, seed controls, upload buttons), which follows ComfyUI's.
# They are built on demand, not at import: the CLI tests load this file as a node pack, and
# module-level classes named KSampler or SaveImage would then shadow the real core nodes.

SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_sde",
            "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddim", "uni_pc", "uni_pc_bh2", "lcm", "deis", "ddpm"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"]
UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
SEED_MAX = 2**64 - 1


def _no_files(paths):
    """Toy model folders are empty: any file name is accepted by the converter, none by validation."""
    return []


class _ComfyToy:
    """Returns a placeholder string per declared output: these toys only exercise the graph."""

    def run(self, ctx: RunContext, **inputs):
        _trace(ctx, ctx.node_id)
        decl = type(self).__node_declaration__
        return tuple(f"{decl.class_type}.{out.name}" for out in decl.outputs)


@functools.cache
def comfy_toy_nodes() -> tuple[type, ...]:
    """Toy declarations of the core nodes used by ComfyUI's example workflows."""

    @node("CheckpointLoaderSimple", display_name="Load Checkpoint", category="loaders",
          outputs=[Out("MODEL"), Out("CLIP"), Out("VAE")])
    class CheckpointLoaderSimple(_ComfyToy):
        ckpt_name = Choice(_no_files)

    @node("VAELoader", display_name="Load VAE", category="loaders", outputs=[Out("VAE")])
    class VAELoader(_ComfyToy):
        vae_name = Choice(_no_files)

    @node("LoraLoader", display_name="Load LoRA", category="loaders", outputs=[Out("MODEL"), Out("CLIP")])
    class LoraLoader(_ComfyToy):
        model = Link("MODEL")
        clip = Link("CLIP")
        lora_name = Choice(_no_files)
        strength_model = Float(1.0, min=-100.0, max=100.0, step=0.01)
        strength_clip = Float(1.0, min=-100.0, max=100.0, step=0.01)

    @node("CLIPSetLastLayer", display_name="CLIP Set Last Layer", category="conditioning", outputs=[Out("CLIP")])
    class CLIPSetLastLayer(_ComfyToy):
        clip = Link("CLIP")
        stop_at_clip_layer = Int(-1, min=-24, max=-1, step=1)

    @node("CLIPTextEncode", display_name="CLIP Text Encode (Prompt)", category="conditioning",
          outputs=[Out("CONDITIONING")])
    class CLIPTextEncode(_ComfyToy):
        text = String("", multiline=True, dynamic_prompts=True)
        clip = Link("CLIP")

    @node("ConditioningCombine", display_name="Conditioning (Combine)", category="conditioning",
          outputs=[Out("CONDITIONING")])
    class ConditioningCombine(_ComfyToy):
        conditioning_1 = Link("CONDITIONING")
        conditioning_2 = Link("CONDITIONING")

    @node("ConditioningSetArea", display_name="Conditioning (Set Area)", category="conditioning",
          outputs=[Out("CONDITIONING")])
    class ConditioningSetArea(_ComfyToy):
        conditioning = Link("CONDITIONING")
        width = Int(64, min=64, max=16384, step=8)
        height = Int(64, min=64, max=16384, step=8)
        x = Int(0, min=0, max=16384, step=8)
        y = Int(0, min=0, max=16384, step=8)
        strength = Float(1.0, min=0.0, max=10.0, step=0.01)

    @node("EmptyLatentImage", display_name="Empty Latent Image", category="latent", outputs=[Out("LATENT")])
    class EmptyLatentImage(_ComfyToy):
        width = Int(512, min=16, max=16384, step=8)
        height = Int(512, min=16, max=16384, step=8)
        batch_size = Int(1, min=1, max=4096)

    @node("KSampler", category="sampling", outputs=[Out("LATENT")])
    class KSampler(_ComfyToy):
        model = Link("MODEL")
        seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
        steps = Int(20, min=1, max=10000)
        cfg = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)
        sampler_name = Choice(SAMPLERS)
        scheduler = Choice(SCHEDULERS)
        positive = Link("CONDITIONING")
        negative = Link("CONDITIONING")
        latent_image = Link("LATENT")
        denoise = Float(1.0, min=0.0, max=1.0, step=0.01)

    @node("KSamplerAdvanced", display_name="KSampler (Advanced)", category="sampling", outputs=[Out("LATENT")])
    class KSamplerAdvanced(_ComfyToy):
        model = Link("MODEL")
        add_noise = Choice(["enable", "disable"])
        noise_seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
        steps = Int(20, min=1, max=10000)
        cfg = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)
        sampler_name = Choice(SAMPLERS)
        scheduler = Choice(SCHEDULERS)
        positive = Link("CONDITIONING")
        negative = Link("CONDITIONING")
        latent_image = Link("LATENT")
        start_at_step = Int(0, min=0, max=10000)
        end_at_step = Int(10000, min=0, max=10000)
        return_with_leftover_noise = Choice(["disable", "enable"])

    @node("VAEDecode", display_name="VAE Decode", category="latent", outputs=[Out("IMAGE")])
    class VAEDecode(_ComfyToy):
        samples = Link("LATENT")
        vae = Link("VAE")

    @node("VAEEncode", display_name="VAE Encode", category="latent", outputs=[Out("LATENT")])
    class VAEEncode(_ComfyToy):
        pixels = Link("IMAGE")
        vae = Link("VAE")

    @node("VAEEncodeForInpaint", display_name="VAE Encode (for Inpainting)", category="latent/inpaint",
          outputs=[Out("LATENT")])
    class VAEEncodeForInpaint(_ComfyToy):
        pixels = Link("IMAGE")
        vae = Link("VAE")
        mask = Link("MASK")
        grow_mask_by = Int(6, min=0, max=64, step=1)

    @node("LatentUpscale", display_name="Upscale Latent", category="latent", outputs=[Out("LATENT")])
    class LatentUpscale(_ComfyToy):
        samples = Link("LATENT")
        upscale_method = Choice(UPSCALE_METHODS)
        width = Int(512, min=0, max=16384, step=8)
        height = Int(512, min=0, max=16384, step=8)
        crop = Choice(["disabled", "center"])

    @node("LoadImage", display_name="Load Image", category="image", outputs=[Out("IMAGE"), Out("MASK")])
    class LoadImage(_ComfyToy):
        image = Choice(_no_files, image_upload=True)

    @node("ImageScaleToTotalPixels", display_name="Scale Image to Total Pixels", category="image/upscaling",
          outputs=[Out("IMAGE")])
    class ImageScaleToTotalPixels(_ComfyToy):
        image = Link("IMAGE")
        upscale_method = Choice(UPSCALE_METHODS)
        megapixels = Float(1.0, min=0.01, max=16.0, step=0.01)

    @node("SaveImage", display_name="Save Image", category="image", output_node=True,
          hidden=["prompt", "extra_pnginfo"])
    class SaveImage(_ComfyToy):
        images = Link("IMAGE")
        filename_prefix = String("ComfyUI")

    @node("PreviewImage", display_name="Preview Image", category="image", output_node=True,
          hidden=["prompt", "extra_pnginfo"])
    class PreviewImage(_ComfyToy):
        images = Link("IMAGE")

    return (CheckpointLoaderSimple, VAELoader, LoraLoader, CLIPSetLastLayer, CLIPTextEncode,
            ConditioningCombine, ConditioningSetArea, EmptyLatentImage, KSampler, KSamplerAdvanced,
            VAEDecode, VAEEncode, VAEEncodeForInpaint, LatentUpscale, LoadImage,
            ImageScaleToTotalPixels, SaveImage, PreviewImage)
