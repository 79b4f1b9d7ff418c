"""Load a whole Stable Diffusion pipeline (UNet, VAE, text encoders, tokenizers, scheduler config)
from a single-file checkpoint (`.safetensors`, or a pickled `.ckpt` read weights-only) or from a
diffusers folder. Configs and tokenizer files come from the project or the folder itself, never
from a model hub, so loading works the same with no network at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nodes.models.clip_tokenizer import END_TOKEN, load_clip_tokenizer
from nodes.models.family import (
    FAMILIES,
    SD2_EPS,
    SD2_V,
    SD15,
    SDXL_BASE,
    SDXL_REFINER,
    CheckpointFamily,
    UnknownCheckpointError,
    detect_family,
)
from nodes.models.ldm_convert import configs_for_checkpoint, convert_checkpoint, normalize_legacy_keys
from nodes.models.modules import assign_weights, build_text_encoder, build_unet, build_vae
from nodes.models.shipped_configs import FamilyConfigs, read_pipeline_configs, text_encoder_names
from nodes.models.state_dict_files import PICKLE_SUFFIXES, CheckpointFileError, StateDictFile, open_state_dict


@dataclass
class LoadedCheckpoint:
    """A loaded pipeline. `text_encoders[i]` pairs with `tokenizers[i]` (SDXL: CLIP-L, then OpenCLIP bigG).

    `vae` is None for a file that carries no VAE. `configs` holds the configs the modules were
    built from (shipped ones, adjusted to the file's shapes, or the diffusers folder's own).
    """

    path: Path
    family: CheckpointFamily
    unet: Any
    vae: Any | None
    text_encoders: list[Any]
    tokenizers: list[Any]
    scheduler_config: dict[str, Any]
    configs: FamilyConfigs

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type", self.family.prediction_type)

    @property
    def vae_scaling_factor(self) -> float:
        return float(self.configs.vae.get("scaling_factor", 0.18215))


def _tokenizers(configs: FamilyConfigs, folder: Path | None = None) -> list[Any]:
    """One tokenizer per text encoder, with the padding token its config names."""
    tokenizers = []
    for name in text_encoder_names(configs.model_index):
        tok_name = name.replace("text_encoder", "tokenizer")
        pad = configs.tokenizers.get(tok_name, {}).get("pad_token", END_TOKEN)
        if isinstance(pad, dict):  # an AddedToken written out as a dict
            pad = pad.get("content", END_TOKEN)
        own = folder / tok_name if folder is not None else None
        use_own = own is not None and (own / "vocab.json").is_file() and (own / "merges.txt").is_file()
        tokenizers.append(load_clip_tokenizer(pad, str(own) if use_own else None))
    return tokenizers


def _assemble(path: Path, family: CheckpointFamily, configs: FamilyConfigs,
              components: dict[str, dict[str, torch.Tensor]], dtype: torch.dtype | None,
              device: str | torch.device, memory_format: torch.memory_format,
              files: list[StateDictFile], folder: Path | None = None,
              unet_memory_format: torch.memory_format | None = None) -> LoadedCheckpoint:
    """The modules built and given their weights; `files` release each source tensor once it is copied."""
    def release(tensor: torch.Tensor) -> None:
        for file in files:
            file.release(tensor)

    def assign(module: Any, name: str, layout: torch.memory_format = memory_format) -> Any:
        return assign_weights(module, components[name], dtype=dtype, device=device, component=f"{path.name}: {name}",
                              memory_format=layout, release=release)

    missing = [n for n in ("unet", *text_encoder_names(configs.model_index)) if n not in components]
    if missing:
        raise CheckpointFileError(f"{path}: has no weights for {', '.join(missing)}")
    unet = assign(build_unet(configs.unet), "unet", unet_memory_format or memory_format)
    vae = assign(build_vae(configs.vae), "vae") if "vae" in components else None
    encoders = [assign(build_text_encoder(configs.text_encoders[n]), n)
                for n in text_encoder_names(configs.model_index)]
    return LoadedCheckpoint(path=path, family=family, unet=unet, vae=vae, text_encoders=encoders,
                            tokenizers=_tokenizers(configs, folder), scheduler_config=dict(configs.scheduler),
                            configs=configs)


def load_single_file(path: Path, dtype: torch.dtype | None, device: str | torch.device,
                     family: CheckpointFamily | None = None,
                     memory_format: torch.memory_format = torch.contiguous_format,
                     unet_memory_format: torch.memory_format | None = None) -> LoadedCheckpoint:
    """A `.safetensors`/`.ckpt` file in the original LDM layout."""
    source = open_state_dict(path)
    state_dict = normalize_legacy_keys(source.tensors)
    if family is None:
        shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
        try:
            family = detect_family(shapes, filename=path.name, read_tensor=state_dict.__getitem__)
        except UnknownCheckpointError as exc:
            raise UnknownCheckpointError(f"{path}: {exc}") from None
    configs = configs_for_checkpoint(state_dict, family)
    components = convert_checkpoint(state_dict, family, configs)
    del state_dict
    return _assemble(path, family, configs, components, dtype, device, memory_format, [source],
                     unet_memory_format=unet_memory_format)


def family_of_diffusers_folder(configs: FamilyConfigs) -> CheckpointFamily:
    """The family of a diffusers pipeline, from its configs."""
    if text_encoder_names(configs.model_index) == ["text_encoder_2"] or configs.model_index.get(
            "requires_aesthetics_score"):
        return SDXL_REFINER
    if "text_encoder_2" in configs.model_index or configs.unet.get("addition_embed_type") == "text_time":
        return SDXL_BASE
    width = configs.unet.get("cross_attention_dim")
    # OpenAI CLIP-L uses quick_gelu, OpenCLIP-H gelu: this tells SD1.x from SD2.x at any width.
    activation = configs.text_encoders.get("text_encoder", {}).get("hidden_act")
    if activation == "quick_gelu" or (activation is None and width == 768):
        return SD15
    if activation == "gelu" or width == 1024:
        return SD2_V if configs.scheduler.get("prediction_type") == "v_prediction" else SD2_EPS
    raise UnknownCheckpointError(
        f"a {configs.model_index.get('_class_name', 'pipeline')} whose UNet attends to width {width} "
        f"is not an SD1.x, SD2.x or SDXL model")


def _component_files(folder: Path) -> list[StateDictFile]:
    """The weights files of one diffusers component folder: a sharded index, the standard file, or
    the only weights file there (e.g. an fp16 variant)."""
    index = sorted(folder.glob("*.safetensors.index.json"))
    if index:
        import json

        shards = sorted(set(json.loads(index[0].read_text())["weight_map"].values()))
        return [open_state_dict(folder / shard) for shard in shards]
    for name in ("diffusion_pytorch_model.safetensors", "model.safetensors"):
        if (folder / name).is_file():
            return [open_state_dict(folder / name)]
    candidates = sorted(folder.glob("*.safetensors")) or sorted(
        p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if len(candidates) != 1:
        raise CheckpointFileError(f"{folder}: expected one weights file, found {[p.name for p in candidates]}")
    return [open_state_dict(candidates[0])]


def load_diffusers_folder(folder: Path, dtype: torch.dtype | None, device: str | torch.device,
                          memory_format: torch.memory_format = torch.contiguous_format,
                          unet_memory_format: torch.memory_format | None = None) -> LoadedCheckpoint:
    """A diffusers pipeline folder (with `model_index.json`), using the folder's own configs."""
    configs = read_pipeline_configs(folder)
    family = family_of_diffusers_folder(configs)
    configs.scheduler.setdefault("prediction_type", family.prediction_type)
    components, files = {}, []
    for name in ("unet", "vae", *text_encoder_names(configs.model_index)):
        if (folder / name).is_dir():
            parts = _component_files(folder / name)
            files += parts
            weights = {k: v for part in parts for k, v in part.tensors.items()}
            if name.startswith("text_encoder") and "CLIPTextModelWithProjection" not in configs.text_encoders[
                    name].get("architectures", []):
                # Folders written before transformers 5.6 keep CLIPTextModel's `text_model.` level.
                weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
            components[name] = weights
    return _assemble(folder, family, configs, components, dtype, device, memory_format, files, folder=folder,
                     unet_memory_format=unet_memory_format)


def load_checkpoint(path: str | Path, dtype: torch.dtype | None = torch.float32,
                    device: str | torch.device = "cpu", family: str | CheckpointFamily | None = None,
                    memory_format: torch.memory_format = torch.contiguous_format,
                    unet_memory_format: torch.memory_format | None = None) -> LoadedCheckpoint:
    """Load the pipeline in `path`: a single-file checkpoint or a diffusers folder.

    `dtype` applies to floating-point weights (None keeps the file's); `family` overrides
    detection, e.g. `"sd2"` for an SD2.x epsilon model that detection would call v-prediction.
    `memory_format` is the layout of convolution weights (channels_last for the CPU, see `runtime`), and
    `unet_memory_format`, where given, the UNet's.
    Errors name the file: FileNotFoundError, CheckpointFileError (unreadable), UnknownCheckpointError
    (not a supported family), WeightMismatchError (tensors that do not fit).
    """
    path = Path(path)
    chosen = FAMILIES[family] if isinstance(family, str) else family
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise CheckpointFileError(f"{path}: a folder without model_index.json is not a diffusers pipeline")
        loaded = load_diffusers_folder(path, dtype, device, memory_format, unet_memory_format)
        if chosen is not None:
            loaded.family = chosen
            loaded.scheduler_config["prediction_type"] = chosen.prediction_type
        return loaded
    return load_single_file(path, dtype, device, chosen, memory_format, unet_memory_format)


__all__ = ["LoadedCheckpoint", "load_checkpoint", "load_single_file", "load_diffusers_folder"]
