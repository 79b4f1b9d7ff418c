"""IP-Adapter files (cubiq's ComfyUI_IPAdapter_plus layouts) and their image projection.

A file holds `image_proj` (the projection of CLIP vision embeddings into prompt-like tokens) and
`ip_adapter` (one bias-free to_k_ip / to_v_ip pair per cross-attention, keyed "{2n+1}.to_k_ip.weight"
for the n-th cross-attention in diffusers' module order: down, up, mid). `.bin` files nest the two
dicts; `.safetensors` files prefix their keys. The projection is diffusers' own module, converted
from the file by diffusers' loader, so our tokens are the ones diffusers' `load_ip_adapter` makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from engine.paths import PICKLE_SUFFIXES
from nodes.models.state_dict_files import load_state_dict


class IPAdapterFileError(ValueError):
    """The file is not an IP-Adapter this loader knows."""


@dataclass(frozen=True)
class IPAdapterWeights:
    """The tensors of one IP-Adapter file and what kind of adapter they make."""

    image_proj: Mapping[str, torch.Tensor]
    ip_adapter: Mapping[str, torch.Tensor]
    source: str = ""

    @property
    def is_full(self) -> bool:
        """Full-face: an MLP over all CLIP tokens."""
        return "proj.3.weight" in self.image_proj

    @property
    def is_faceid(self) -> bool:
        return "0.to_q_lora.down.weight" in self.ip_adapter or "perceiver_resampler.proj_in.weight" in self.image_proj \
            or ("proj.2.weight" in self.image_proj and not self.is_full)

    @property
    def is_plus(self) -> bool:
        """Plus, plus-face and full-face read the penultimate hidden states instead of the image embedding."""
        return self.is_full or "latents" in self.image_proj

    @property
    def cross_attention_dim(self) -> int:
        return int(self.ip_adapter["1.to_k_ip.weight"].shape[1])

    @property
    def is_sdxl(self) -> bool:
        return self.cross_attention_dim == 2048

    @property
    def layers(self) -> int:
        """The pack's count of spatial transformers its weight types index: 11 (SDXL) or 16 (SD1.5)."""
        return 11 if "101.to_k_ip.weight" in self.ip_adapter else 16

    def kv(self, number: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(to_k_ip, to_v_ip) weights of the `number`-th cross-attention."""
        key = 2 * number + 1
        try:
            return self.ip_adapter[f"{key}.to_k_ip.weight"], self.ip_adapter[f"{key}.to_v_ip.weight"]
        except KeyError:
            raise IPAdapterFileError(f"{self.source or 'IP-Adapter'}: no to_k_ip/to_v_ip for cross-attention "
                                     f"{number} (key {key}): the adapter does not fit this model") from None

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (*self.image_proj.values(), *self.ip_adapter.values()))


def split_ipadapter_state_dict(state_dict: Mapping[str, Any], source: str = "") -> IPAdapterWeights:
    """The two parts from a nested (`.bin`) or prefixed (`.safetensors`) state dict."""
    if "image_proj" in state_dict and isinstance(state_dict["image_proj"], Mapping):
        image_proj = dict(state_dict["image_proj"])
        ip_adapter = dict(state_dict.get("ip_adapter") or state_dict.get("adapter_modules") or {})
    else:
        image_proj, ip_adapter = {}, {}
        for key, value in state_dict.items():
            for prefix, part in (("image_proj.", image_proj), ("ip_adapter.", ip_adapter),
                                 ("adapter_modules.", ip_adapter)):
                if key.startswith(prefix):
                    part[key[len(prefix):]] = value
    if not ip_adapter or "1.to_k_ip.weight" not in ip_adapter or not image_proj:
        raise IPAdapterFileError(f"invalid IPAdapter model {source}: no `image_proj` and `ip_adapter` tensors")
    return IPAdapterWeights(image_proj, ip_adapter, source)


def _read_file(path: Path) -> Mapping[str, Any]:
    """The file's tensors; pickles keep their two nested dicts (the shared loader keeps only flat tensors)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - one clear, file-naming error
            raise IPAdapterFileError(f"{path}: cannot be read as a weights-only PyTorch file ({exc})") from exc
        if not isinstance(obj, Mapping):
            raise IPAdapterFileError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
        return obj
    return load_state_dict(path)


def load_ipadapter(path: Path, name: str = "") -> IPAdapterWeights:
    """An `ipadapter` model file."""
    weights = split_ipadapter_state_dict(_read_file(path), name or path.name)
    if weights.is_faceid:
        raise IPAdapterFileError(f"{name or path.name}: FaceID adapters need InsightFace, which is not supported")
    return weights


def image_projection(weights: IPAdapterWeights) -> torch.nn.Module:
    """diffusers' projection module for the file (ImageProjection, IPAdapterFullImageProjection or
    IPAdapterPlusImageProjection), with the file's weights, in fp32."""
    from diffusers.loaders.unet import UNet2DConditionLoadersMixin

    # diffusers' converter reads only the state dict; it builds the module and loads the weights.
    convert = UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers
    module = convert(None, dict(weights.image_proj), low_cpu_mem_usage=False)  # type: ignore[arg-type]
    return module.float().eval()


@torch.no_grad()
def project_embeds(weights: IPAdapterWeights, embeds: torch.Tensor) -> torch.Tensor:
    """CLIP vision embeddings → IP tokens [B, T, C]."""
    projection = image_projection(weights)
    tokens = projection(embeds.float())
    return tokens if tokens.ndim == 3 else tokens.reshape(embeds.shape[0], -1, tokens.shape[-1])
