"""Control-LoRA files: a ControlNet stored as low-rank differences from the UNet plus full tensors, rebuilt on
the sampled model's UNet with ComfyUI's formula (ControlLoraOps: weight + up.flatten(1) @ down.flatten(1)).

The file is made here from a tiny ControlNet whose shared blocks were "trained" away from the tiny SD1.x
UNet: each shared weight's difference is cut to rank 2 (so the formula, not the original ControlNet, is what
the loaded one must equal), the rest stored whole, one bias left out (so the UNet's is used).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from diffusers import ControlNetModel
from safetensors.torch import save_file

from nodes.conditioning.value import AppliedControl
from nodes.models.control_lora import ControlLora
from nodes.models.controlnet_loading import controls_for_model, load_controlnet
from nodes.models.family import SD15, SDXL_BASE
from nodes.models.handles import ModelHandle
from nodes.models.lora_weights import UNET_PART
from nodes.models.patching import WeightPatch
from nodes.sampling import ModelSampling
from tests.nodes.checkpoints import tiny_modules
from tests.nodes.test_controlnet import (
    apply_advanced,
    base_graph,
    hint,
    original_layout,
    reference,
    run_ours,
    tiny_controlnet,
)
from tests.nodes.test_controlnet_sdxl import executor_with_checkpoint
from tests.nodes.test_reference_diffusers import TOLERANCE

RANK = 2
LEFT_OUT = "time_embedding.linear_1.bias"  # not in the file: the UNet's is used


def original_names(net: ControlNetModel) -> dict[str, str]:
    """diffusers key → the original layout's key (unprefixed), through the test layout converter."""
    keys = list(net.state_dict())
    numbered = {k: torch.tensor(float(i)) for i, k in enumerate(keys)}
    converted = original_layout(SimpleNamespace(state_dict=lambda: numbered, config=net.config))  # type: ignore[arg-type]
    return {keys[int(v.item())]: k.removeprefix("control_model.") for k, v in converted.items()}


def low_rank(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`up` [out, r(, 1, 1)] and `down` [r, in(, kh, kw)] whose product is the best rank-RANK `delta`."""
    u, s, vh = torch.linalg.svd(delta.flatten(1), full_matrices=False)
    up, down = u[:, :RANK] * s[:RANK], vh[:RANK]
    if delta.ndim == 4:
        return up[:, :, None, None].contiguous(), down.reshape(RANK, *delta.shape[1:]).contiguous()
    return up.contiguous(), down.contiguous()


def control_lora_file(unet, trained: ControlNetModel) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the Control-LoRA file's tensors, the ControlNet weights ComfyUI's formula gives on `unet`)."""
    names, base = original_names(trained), unet.state_dict()
    tensors: dict[str, torch.Tensor] = {"lora_controlnet": torch.tensor([])}
    expected = {}
    for key, value in trained.state_dict().items():
        if key in base and value.ndim >= 2:
            up, down = low_rank(value - base[key])
            stem = names[key].removesuffix(".weight")
            tensors[stem + ".up"], tensors[stem + ".down"] = up, down
            expected[key] = base[key] + (up.flatten(1) @ down.flatten(1)).reshape(value.shape)
        elif key == LEFT_OUT:
            expected[key] = base[key]
        else:
            tensors[names[key]] = value.contiguous()
            expected[key] = value
    return tensors, expected


def trained_controlnet(unet) -> ControlNetModel:
    net = tiny_controlnet(unet, 1)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.03)
    return net


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    executor, modules, folder = executor_with_checkpoint(tmp_path_factory.mktemp("control_lora"), SD15, "tiny-sd15")
    tensors, expected = control_lora_file(modules["unet"], trained_controlnet(modules["unet"]))
    save_file(tensors, str(folder / "control-lora-canny-rank2.safetensors"))
    return executor, modules, folder / "control-lora-canny-rank2.safetensors", expected


def model_of(unet, patches: tuple = ()) -> ModelHandle:
    return ModelHandle(unet, SD15, ModelSampling(), "tiny-sd15.safetensors", patches=patches)


def test_the_built_controlnet_has_the_unets_weights_plus_the_low_rank_products_and_the_files_tensors(setup):
    _, modules, path, expected = setup
    handle = load_controlnet(path, torch.float32, "cpu")
    assert isinstance(handle.net, ControlLora)
    built = handle.net.controlnet_for(model_of(modules["unet"]))
    got = built.state_dict()
    assert set(got) == set(expected)
    for key, want in expected.items():
        assert torch.allclose(got[key], want, atol=1e-6), key


def test_an_sdxl_control_lora_builds_on_the_sdxl_unet_with_its_pooled_and_size_embedding(tmp_path):
    """Stability's Control-LoRAs are SDXL ones: `label_emb` and depth-2 transformers go through the same path."""
    unet = tiny_modules(SDXL_BASE, seed=3)["unet"]
    tensors, expected = control_lora_file(unet, trained_controlnet(unet))
    assert any(k.startswith("label_emb.") and k.endswith(".up") for k in tensors)
    save_file(tensors, str(tmp_path / "control-lora-sdxl.safetensors"))
    lora = load_controlnet(tmp_path / "control-lora-sdxl.safetensors", torch.float32, "cpu").net
    built = lora.controlnet_for(ModelHandle(unet, SDXL_BASE, ModelSampling(), "tiny-sdxl.safetensors")).state_dict()
    assert set(built) == set(expected)
    assert all(torch.allclose(built[k], want, atol=1e-6) for k, want in expected.items())


@dataclass
class ShiftLayer:
    """A LoRA layer whose delta is a constant."""

    value: float
    nbytes: int = 0

    def delta(self, shape, device):
        return torch.full(shape, self.value, device=device)


def test_the_models_lora_patches_are_in_the_copy_and_a_patched_model_gets_its_own_build(setup):
    _, modules, path, expected = setup
    lora = ControlLora(load_controlnet(path, torch.float32, "cpu").net.weights, "control-lora.safetensors")
    plain, patched = model_of(modules["unet"]), model_of(modules["unet"], (
        WeightPatch(UNET_PART, 0.5, {"conv_in.weight": ShiftLayer(0.2)}),))
    unet_conv_in = modules["unet"].conv_in.weight.detach().clone()
    first = lora.controlnet_for(plain)
    assert lora.controlnet_for(plain) is first, "built once per model"
    shifted = lora.controlnet_for(patched)
    assert torch.allclose(shifted.state_dict()["conv_in.weight"], expected["conv_in.weight"] + 0.1, atol=1e-6)
    assert torch.equal(modules["unet"].conv_in.weight, unet_conv_in), "the UNet itself is never changed"


def test_positive_and_negative_sharing_a_control_lora_share_the_built_control(setup):
    _, modules, path, _ = setup
    lora = load_controlnet(path, torch.float32, "cpu").net
    applied = AppliedControl(lora, "control-lora.safetensors", torch.zeros(1, 3, 64, 64))
    model = model_of(modules["unet"])
    positive, negative = controls_for_model((applied,), model), controls_for_model((applied,), model)
    assert positive == negative and isinstance(positive[0].net, ControlNetModel)


def test_a_low_rank_layer_without_its_down_half_is_refused_by_name():
    with pytest.raises(ValueError, match="broken.safetensors.*input_blocks.1.1.proj_in.up"):
        ControlLora({"lora_controlnet": torch.tensor([]), "input_blocks.1.1.proj_in.up": torch.zeros(4, 2)},
                    "broken.safetensors")


@pytest.mark.slow  # two samplings: ~15 s on a shared 2-core machine
def test_ksampler_with_a_control_lora_equals_the_controlnet_pipeline_with_the_formulas_weights(setup):
    executor, modules, path, expected = setup
    net = ControlNetModel.from_unet(modules["unet"])
    net.load_state_dict(expected)
    graph = base_graph()
    after = apply_advanced(graph, "a1", (["6", 0], ["7", 0]), path.name, 5, 0.9)
    graph["3"]["inputs"].update(positive=after[0], negative=after[1])
    ours = run_ours(executor, graph)
    latent = reference(ours, net.eval(), hint(5), 0.9)
    assert float((ours["latent"]["samples"] * ours["model"].latent_scale - latent).abs().max()) < TOLERANCE
