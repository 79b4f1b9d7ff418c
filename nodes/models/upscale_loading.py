"""Upscale models (ESRGAN, SwinIR, HAT, DAT, SPAN, ...) read with spandrel, with or without torchvision.

spandrel detects the architecture and its hyperparameters from the state dict alone. Every release
imports torchvision when it is imported, for two architectures only (LaMa's `rotate`,
RestoreFormer's `normalize`). Where torchvision is missing or broken (a wheel built for another
torch fails at import), spandrel is imported with a stand-in for those two functions: every other
architecture works, and a LaMa or RestoreFormer file is refused with an error that says why.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

from nodes.models.state_dict_files import CheckpointFileError, load_state_dict

# The architectures (spandrel ids) that call torchvision when they run.
TORCHVISION_ARCHITECTURES = ("LaMa", "RestoreFormer")
# A SwinIR trained with DataParallel keeps its `module.` prefix (ComfyUI strips it on this key too).
_DATA_PARALLEL_KEY = "module.layers.0.residual_group.blocks.0.norm1.weight"


class UpscaleModelError(ValueError):
    """An upscale model file that cannot be used: unreadable, unknown or unsupported. Names the file."""


@functools.cache
def torchvision_problem() -> str | None:
    """Why torchvision cannot be used here (its import error), or None when it imports."""
    try:
        import torchvision.transforms.functional  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken wheel raises RuntimeError, not ImportError
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _unavailable(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise UpscaleModelError(f"torchvision.transforms.functional.{name} is needed by this model, and torchvision "
                                f"cannot be imported here ({torchvision_problem()})")
    return call


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    """Modules named like torchvision's that give spandrel the three names it imports."""
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = types.SimpleNamespace(  # type: ignore[attr-defined]
        NEAREST="nearest", BILINEAR="bilinear", BICUBIC="bicubic")
    functional.rotate = _unavailable("rotate")  # type: ignore[attr-defined]
    functional.normalize = _unavailable("normalize")  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional  # type: ignore[attr-defined]
    package = types.ModuleType("torchvision")
    package.transforms = transforms  # type: ignore[attr-defined]
    return {"torchvision": package, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional}


SPANDREL_INSTALL = "pip install --no-deps spandrel==0.4.2"


@functools.cache
def import_spandrel() -> types.ModuleType:
    """spandrel, imported once; without a working torchvision, through the stand-in (see the module doc)."""
    if importlib.util.find_spec("spandrel") is None:
        raise UpscaleModelError(f"upscale models need the spandrel package: {SPANDREL_INSTALL} (--no-deps: its "
                                "torchvision requirement would pull another torch build; it works without it)")
    if torchvision_problem() is None:
        import spandrel
        return spandrel
    # A failed import can leave torchvision's submodules behind; the stand-in replaces them only
    # while spandrel is imported, so nothing else ever sees it.
    leftovers = {name: sys.modules.pop(name) for name in list(sys.modules)
                 if name == "torchvision" or name.startswith("torchvision.")}
    stand_in = _torchvision_stand_in()
    sys.modules.update(stand_in)
    try:
        import spandrel
    finally:
        for name in stand_in:
            sys.modules.pop(name, None)
        sys.modules.update(leftovers)
    return spandrel


def load_upscale_model(path: Path, device: Any = "cpu", dtype: Any = None) -> Any:
    """The spandrel `ImageModelDescriptor` of the file at `path`, in eval mode on `device`.

    `dtype` (e.g. torch.float16) is used when the architecture supports it, else the weights stay fp32.
    Pickles are read weights-only (never spandrel's own unpickler, which allows more).
    """
    import torch

    try:
        state_dict = load_state_dict(path)
    except CheckpointFileError as exc:
        raise UpscaleModelError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - a truncated safetensors header and the like
        raise UpscaleModelError(f"{path}: cannot be read as a model file ({type(exc).__name__}: {exc})") from exc
    if _DATA_PARALLEL_KEY in state_dict:
        state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    spandrel = import_spandrel()
    state_dict = spandrel.canonicalize_state_dict(state_dict)
    # Detected first, built after: a torchvision architecture is refused before it is built.
    support = next((s for s in spandrel.MAIN_REGISTRY.architectures("detection") if s.detect(state_dict)), None)
    if support is None:
        raise UpscaleModelError(f"{path}: not an upscale model of any architecture spandrel "
                                f"{spandrel.__version__} knows ({len(state_dict)} tensors)")
    arch = support.architecture.id
    if arch in TORCHVISION_ARCHITECTURES and torchvision_problem() is not None:
        raise UpscaleModelError(f"{path}: a {arch} model, which spandrel runs only with torchvision, and torchvision "
                                f"cannot be imported here ({torchvision_problem()}); install a torchvision that "
                                f"matches your torch")
    try:
        descriptor = support.architecture.load(state_dict)
    except Exception as exc:  # noqa: BLE001 - a detected architecture whose tensors do not fit it
        raise UpscaleModelError(f"{path}: a {arch} model that spandrel could not build "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UpscaleModelError(f"{path}: a {arch} model ({descriptor.purpose}); an upscale model must be a "
                                f"single-image model")
    supported = {torch.float16: descriptor.supports_half, torch.bfloat16: descriptor.supports_bfloat16}
    weights_dtype = dtype if dtype is not None and supported.get(dtype, True) else torch.float32
    return descriptor.to(device, weights_dtype).eval()
