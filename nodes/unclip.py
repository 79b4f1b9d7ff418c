"""unCLIP nodes: load an SD2.1-unCLIP checkpoint (with its image encoder), and condition on images.

unCLIPConditioning only records the image embedding on the entries; the sampler turns it into the
UNet's image input, noised with the sampler's seed (nodes.models.unclip_loading).
"""

from __future__ import annotations

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import ModelFiles, Paths
from engine.types import CLIP, CONDITIONING, MODEL, VAE, Choice, Float, Link
from nodes.clip_vision import CLIP_VISION, CLIP_VISION_OUTPUT
from nodes.conditioning.value import Conditioning
from nodes.loaders import checkpoint_path, file_stamp
from nodes.models.clip_vision_loading import ClipVisionOutput
from nodes.models.handles import ClipHandle, VaeHandle
from nodes.models.runtime import runtime_from_settings
from nodes.models.unclip_loading import UnclipImage, UnclipModelHandle, load_unclip_checkpoint
from nodes.sampling import ModelSampling


@node("unCLIPCheckpointLoader", category="loaders",
      outputs=[Out(MODEL, "MODEL"), Out(CLIP, "CLIP"), Out(VAE, "VAE"), Out(CLIP_VISION, "CLIP_VISION")],
      uses_settings=["precision", "device"])
class unCLIPCheckpointLoader:  # noqa: N801 - ComfyUI's class name
    """Loads an SD2.1-unCLIP checkpoint: the model, its text and image encoders and its VAE."""

    ckpt_name = Choice(ModelFiles("checkpoints"))

    def fingerprint(self, paths: Paths, ckpt_name: str) -> str:
        try:
            return file_stamp(paths.model_path("checkpoints", ckpt_name))
        except FileNotFoundError:
            return "missing"

    def run(self, ctx: RunContext, ckpt_name: str) -> tuple:
        runtime = runtime_from_settings(ctx.settings)
        unclip = load_unclip_checkpoint(checkpoint_path(ctx.paths, ckpt_name), runtime.dtype, runtime.device,
                                        runtime.memory_format)
        loaded = unclip.checkpoint
        if loaded.vae is None:
            raise ValueError(f"checkpoint {ckpt_name!r} has no VAE weights: add a VAELoader")
        model = UnclipModelHandle(loaded.unet, loaded.family, ModelSampling(loaded.prediction_type), ckpt_name,
                                  latent_scale=loaded.vae_scaling_factor, image_noise=unclip.image_noise)
        clip = ClipHandle(tuple(loaded.text_encoders), tuple(loaded.tokenizers), loaded.family, source=ckpt_name)
        vae = VaeHandle(loaded.vae, loaded.vae_scaling_factor, ckpt_name)
        return (model, clip, vae, unclip.clip_vision)


@node("unCLIPConditioning", category="conditioning", outputs=[Out(CONDITIONING, "CONDITIONING")])
class unCLIPConditioning:  # noqa: N801 - ComfyUI's class name
    """Adds an image (its CLIP vision embedding) to the conditioning of an unCLIP model; several add up.
    `noise_augmentation` noises the embedding first (more noise: looser variations)."""

    conditioning = Link(CONDITIONING)
    clip_vision_output = Link(CLIP_VISION_OUTPUT)
    strength = Float(1.0, min=-10.0, max=10.0, step=0.01)
    noise_augmentation = Float(0.0, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, conditioning: Conditioning, clip_vision_output: ClipVisionOutput,
            strength: float, noise_augmentation: float) -> tuple:
        if strength == 0:
            return (conditioning,)
        image = UnclipImage(clip_vision_output.image_embeds, strength, noise_augmentation)
        return (tuple(entry.with_(unclip=entry.unclip + (image,)) for entry in conditioning),)
