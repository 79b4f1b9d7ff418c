"""The model side of sampling: a diffusers UNet seen as a k-diffusion denoiser, with CFG and inpaint masking.

A denoiser maps (x, sigma) to a prediction of the clean latent, where x is the
latent at noise level sigma in k-diffusion form (x = x0 + sigma * eps). Samplers
only ever see this callable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from .control import PreparedHints, Residuals, batched_residuals, control_residuals
from .grounding import grounded
from .schedule import ModelSampling
from .unet_call import UnetCall, unet_call_scope


class Denoiser(Protocol):
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Cond:
    """One side of the guidance: text embeddings plus any extra UNet inputs (SDXL's `added_cond_kwargs`)
    and the ControlNets applied to it (see `control`)."""

    embeds: torch.Tensor
    added: dict[str, torch.Tensor] = field(default_factory=dict)
    control: tuple = ()
    concat: torch.Tensor | None = None  # an inpainting UNet's extra input channels (mask, masked image)
    grounding: Any = None  # GLIGEN boxes (nodes.models.gligen_loading.Grounding), run on this cond's rows


def _as_cond(value: Cond | torch.Tensor) -> Cond:
    return value if isinstance(value, Cond) else Cond(value)


def _to_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat a tensor along its first dimension (cyclically) to `batch` items."""
    if t.shape[0] == batch:
        return t
    repeats = math.ceil(batch / t.shape[0])
    return t.repeat(repeats, *([1] * (t.ndim - 1)))[:batch]


def _stack_conds(conds: list[Cond], batch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Batch several conditionings into one UNet call.

    Prompts of different token lengths are repeated to their least common multiple
    (as ComfyUI does): attention over a key sequence repeated k times gives the same
    result as over the original sequence.
    """
    length = math.lcm(*(c.embeds.shape[1] for c in conds))
    embeds = torch.cat(
        [_to_batch(c.embeds.repeat(1, length // c.embeds.shape[1], 1), batch) for c in conds]
    )
    keys = set().union(*(c.added for c in conds))
    added = {k: torch.cat([_to_batch(c.added[k], batch) for c in conds]) for k in sorted(keys)}
    return embeds, added


@dataclass
class PostCfgArgs:
    """What a term added after CFG sees (ComfyUI's post-CFG function arguments): the denoiser (to run
    the UNet again), the input, both sides' predictions and the CFG result so far."""

    denoiser: "_UNetDenoiser"
    x: torch.Tensor
    sigma: torch.Tensor
    cond_denoised: torch.Tensor
    uncond_denoised: torch.Tensor | None
    denoised: torch.Tensor


class _UNetDenoiser:
    """Shared call path of the epsilon and v denoisers; subclasses say how to read the output."""

    def __init__(
        self,
        unet: torch.nn.Module,
        model_sampling: ModelSampling,
        positive: Cond | torch.Tensor,
        negative: Cond | torch.Tensor | None = None,
        cfg: float = 1.0,
        post_cfg: tuple = (),
        hints: PreparedHints | None = None,
    ):
        self.unet = unet
        self.post_cfg = post_cfg  # callables PostCfgArgs → denoised, applied in order (PAG)
        self.model_sampling = model_sampling
        self.positive = _as_cond(positive)
        self.negative = None if negative is None else _as_cond(negative)
        self.cfg = float(cfg)
        if self.negative is None and not self.skips_uncond:
            raise ValueError(f"cfg={cfg} needs negative conditioning; only cfg == 1 may omit it")
        self._stacked: dict[tuple, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}
        # ControlNet hints, prepared on the first step for the whole run (a composite's per-step denoisers share its)
        self.hints = PreparedHints() if hints is None else hints

    @property
    def skips_uncond(self) -> bool:
        # ComfyUI skips the unconditional pass when cfg is 1: uncond + 1 * (cond - uncond) == cond.
        return math.isclose(self.cfg, 1.0)

    def _parameter(self) -> torch.Tensor:
        return next(self.unet.parameters())

    def _stacked_conds(self, conds: list[Cond], batch: int, param: torch.Tensor):
        """The batched conditioning on the UNet's device and dtype: built and cast once, not every step."""
        key = (len(conds), batch, param.device, param.dtype)
        if key not in self._stacked:
            embeds, added = _stack_conds(conds, batch)
            self._stacked[key] = (embeds.to(param.device, param.dtype),
                                  {k: v.to(param.device, param.dtype) for k, v in added.items()})
        return self._stacked[key]

    def _stacked_concat(self, conds: list[Cond], batch: int, param: torch.Tensor) -> torch.Tensor:
        """The conds' extra input channels batched like their embeddings, on the UNet's device and dtype."""
        key = ("concat", len(conds), batch, param.device, param.dtype)
        if key not in self._stacked:
            if any(c.concat is None for c in conds):
                raise ValueError("an inpainting UNet needs its mask and image channels on every conditioning")
            concat = torch.cat([_to_batch(c.concat, batch) for c in conds])  # type: ignore[arg-type]
            self._stacked[key] = (concat.to(param.device, param.dtype), {})
        return self._stacked[key][0]

    def _control(self, x_in: torch.Tensor, timestep: torch.Tensor, sigma: float, conds: list[Cond],
                 embeds: torch.Tensor, added: dict[str, torch.Tensor]) -> Residuals | None:
        """ControlNet residuals for the batched call: one pass when every cond has the same controls
        (ControlNetApply, or the Advanced node on both sides), else one per cond."""
        if not any(c.control for c in conds):
            return None
        if all(c.control == conds[0].control for c in conds):
            sample = torch.cat([x_in] * len(conds)) if len(conds) > 1 else x_in
            return control_residuals(conds[0].control, sample, timestep, sigma, embeds, added, self.model_sampling,
                                     self.hints)
        n = x_in.shape[0]
        return batched_residuals([
            control_residuals(c.control, x_in, timestep, sigma, embeds[i * n:(i + 1) * n],
                              {k: v[i * n:(i + 1) * n] for k, v in added.items()}, self.model_sampling, self.hints)
            for i, c in enumerate(conds)], n)

    def _unet_output(self, x_in: torch.Tensor, timestep: torch.Tensor, conds: list[Cond],
                     sigma: float = 0.0) -> torch.Tensor:
        param = self._parameter()
        embeds, added = self._stacked_conds(conds, x_in.shape[0], param)
        sample = torch.cat([x_in] * len(conds)) if len(conds) > 1 else x_in  # one copy; repeat() takes ~20 ops
        if any(c.concat is not None for c in conds):  # inpainting UNets: mask and masked image beside x
            sample = torch.cat([sample.to(param.device, param.dtype),
                                self._stacked_concat(conds, x_in.shape[0], param)], dim=1)
        kwargs: dict = {"added_cond_kwargs": added} if added else {}
        if "class_labels" in added:  # unCLIP's image embedding input (nodes.models.unclip_loading)
            kwargs["class_labels"] = added["class_labels"]
        residuals = self._control(x_in, timestep, sigma, conds, embeds, added)
        if residuals is not None:
            kwargs.update(residuals.unet_kwargs(param.dtype))
        call = UnetCall(sigma, tuple(int(c is self.negative) for c in conds))
        with unet_call_scope(call), grounded(self.unet, conds, x_in.shape):  # IP-Adapter, GLIGEN
            out = self.unet(
                sample.to(param.device, param.dtype),
                timestep.to(param.device).expand(sample.shape[0]),
                encoder_hidden_states=embeds,
                **kwargs,
            ).sample
        return out.to(x_in.device, torch.float32)

    def _denoised(self, x: torch.Tensor, sigma: float, output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        s = float(sigma)
        x_in = x / math.sqrt(s * s + 1.0)
        # ComfyUI calls the UNet with the nearest integer timestep of sigma (see ModelSampling.timestep).
        timestep = self.model_sampling.timestep(sigma).float().reshape(1)
        conds = [self.positive] if self.negative is None or self.skips_uncond else [self.positive, self.negative]
        outputs = self._unet_output(x_in, timestep, conds, s).chunk(len(conds))
        denoised = [self._denoised(x, s, out) for out in outputs]
        if self.skips_uncond:
            return self._after_cfg(x, sigma, denoised[0], None, denoised[0])
        cond, uncond = denoised
        return self._after_cfg(x, sigma, cond, uncond, uncond + (cond - uncond) * self.cfg)

    def _after_cfg(self, x, sigma, cond, uncond, result):
        for term in self.post_cfg:
            result = term(PostCfgArgs(self, x, sigma, cond, uncond, result))
        return result

    @torch.no_grad()
    def positive_denoised(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The positive side's prediction alone (a post-CFG term's extra UNet pass)."""
        s = float(sigma)
        timestep = self.model_sampling.timestep(torch.as_tensor(sigma, dtype=torch.float32)).float().reshape(1)
        return self._denoised(x, s, self._unet_output(x / math.sqrt(s * s + 1.0), timestep, [self.positive], s))

    @torch.no_grad()
    def negative_denoised(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The negative side's prediction alone (SAG's pass on its blurred prediction)."""
        if self.negative is None:
            raise ValueError("no negative conditioning to predict from")
        s = float(sigma)
        timestep = self.model_sampling.timestep(torch.as_tensor(sigma, dtype=torch.float32)).float().reshape(1)
        return self._denoised(x, s, self._unet_output(x / math.sqrt(s * s + 1.0), timestep, [self.negative], s))


class EpsilonDenoiser(_UNetDenoiser):
    """An epsilon-prediction UNet: denoised = x - eps * sigma."""

    def _denoised(self, x, sigma, output):
        return x - output * sigma


class VDenoiser(_UNetDenoiser):
    """A v-prediction UNet: denoised = x / (sigma^2 + 1) - v * sigma / sqrt(sigma^2 + 1)."""

    def _denoised(self, x, sigma, output):
        return x / (sigma * sigma + 1.0) - output * sigma / math.sqrt(sigma * sigma + 1.0)


class X0Denoiser(_UNetDenoiser):
    """A UNet that predicts the clean latent itself (ModelSamplingDiscrete "x0")."""

    def _denoised(self, x, sigma, output):
        return output


class LCMDenoiser(EpsilonDenoiser):
    """A latent consistency model: the epsilon prediction blended with x by LCM's boundary condition
    (sigma_data 0.5, the distilled timestep scaled by 10), as ComfyUI's "lcm" sampling type."""

    def _denoised(self, x, sigma, output):
        t = float(self.model_sampling.timestep(torch.tensor(sigma, dtype=torch.float32))) * 10.0
        c_skip, c_out = 0.25 / (t * t + 0.25), t / math.sqrt(t * t + 0.25)
        return c_out * super()._denoised(x, sigma, output) + c_skip * x


DENOISERS: dict[str, type[_UNetDenoiser]] = {
    "epsilon": EpsilonDenoiser, "v_prediction": VDenoiser, "x0": X0Denoiser, "lcm": LCMDenoiser}


def unet_denoiser(unet, model_sampling: ModelSampling, positive, negative=None, cfg: float = 1.0,
                  post_cfg: tuple = (), hints: PreparedHints | None = None) -> _UNetDenoiser:
    """The denoiser matching the model's prediction type; `hints`: a run's prepared hints to share."""
    cls = DENOISERS[model_sampling.prediction]
    return cls(unet, model_sampling, positive, negative, cfg, post_cfg, hints)


def latent_mask(mask: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """A [H, W] / [B, H, W] / [B, 1, H, W] mask resized (bilinear) and broadcast to a latent's shape."""
    mask = mask.float().reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    mask = F.interpolate(mask, size=(shape[2], shape[3]), mode="bilinear")
    mask = mask.expand(-1, shape[1], -1, -1)
    return _to_batch(mask, shape[0])


class MaskedDenoiser:
    """Inpainting: only the masked region (mask 1) is generated.

    Before each call the kept region is reset to the original latent noised to the
    current sigma (latent + noise * sigma), and after it the prediction there is
    replaced by the original latent, so the sampler converges to it exactly.
    """

    def __init__(self, inner: Denoiser, latent: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor):
        self.inner = inner
        self.latent = latent
        self.noise = noise
        self.mask = mask

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.mask
        x = x * self.mask + (self.latent + self.noise * float(sigma)) * keep
        return self.inner(x, sigma) * self.mask + self.latent * keep
