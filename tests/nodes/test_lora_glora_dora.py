"""GLoRA and DoRA files, read from safetensors in kohya's key layout and applied while the model is in use:
each patched weight is checked against ComfyUI's formula written out here by hand (loops over rows,
columns and kernel taps, not the code's tensordot/norm), and the weights are restored afterwards."""

from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from nodes.lora import with_model_lora
from nodes.models.family import SD15
from nodes.models.handles import ModelHandle
from nodes.models.lora_dora import DoraLayer
from nodes.models.lora_glora import GloraLayer
from nodes.models.lora_weights import LoraMismatchError, match_lora
from nodes.models.patching import model_patches_applied
from nodes.models.state_dict_files import load_state_dict
from nodes.sampling import ModelSampling
from tests.nodes.checkpoints import tiny_modules
from tests.nodes.test_lora_formats import CONV, FF, TO_Q, kron_by_hand, layer_name, matmul_by_hand, original, rand

EPS = torch.finfo(torch.float32).eps


@pytest.fixture(scope="module")
def unet():
    return tiny_modules(SD15, 5)["unet"]


def weight_with(unet, tmp_path, state: dict, strength: float, parameter: str, before: dict | None = None):
    """The parameter while the file (written, then read back) is applied at `strength`, after the
    optional `before` file at strength 1."""
    handle = ModelHandle(unet, SD15, ModelSampling(), "x")
    for index, layers in enumerate(s for s in (before, state) if s is not None):
        path = tmp_path / f"lora{index}.safetensors"
        save_file({k: v.contiguous() for k, v in layers.items()}, str(path))
        handle = with_model_lora(handle, match_lora(load_state_dict(path), path.name, SD15, unet),
                                 strength if layers is state else 1.0)
    with torch.no_grad(), model_patches_applied(handle):
        return dict(unet.named_parameters())[parameter].detach().clone()


def row_norms(w: torch.Tensor) -> torch.Tensor:
    """Each output row's Euclidean norm, shaped [out, 1, …] to broadcast."""
    rows = [sum(float(x) ** 2 for x in w[i].flatten()) ** 0.5 for i in range(w.shape[0])]
    return torch.tensor(rows).reshape(w.shape[0], *[1] * (w.ndim - 1))


def column_norms(w: torch.Tensor) -> torch.Tensor:
    """Each input channel's norm across every output and kernel tap, shaped [1, in, 1, …]."""
    cols = [sum(float(x) ** 2 for x in w[:, j].flatten()) ** 0.5 for j in range(w.shape[1])]
    return torch.tensor(cols).reshape(1, w.shape[1], *[1] * (w.ndim - 2))


def comfy_dora(weight, delta, dora_scale, strength):
    """comfy/weight_adapter/base.py weight_decompose, written out: the output axis normalises by the norm of
    the weight before the change, the input axis by that of the changed weight; strength interpolates."""
    changed = weight + delta
    on_output_axis = dora_scale.shape[0] == weight.shape[0]
    norm = row_norms(weight) if on_output_axis else column_norms(changed)
    decomposed = changed * (dora_scale / (norm + EPS))
    return decomposed if strength == 1.0 else weight + strength * (decomposed - weight)


def input_axis_by_hand(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """W with its input axis multiplied by m ([in, in]), kernel tap by kernel tap."""
    if w.ndim == 2:
        return matmul_by_hand(w, m)
    out = torch.zeros_like(w)
    for k in range(w.shape[2]):
        for i in range(w.shape[3]):
            out[:, :, k, i] = matmul_by_hand(w[:, :, k, i], m)
    return out


# --- GLoRA ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("parameter", [TO_Q, FF])
def test_a_new_layout_glora_changes_a_linear_layer_by_w_a_plus_b(unet, tmp_path, parameter):
    name = layer_name(unet, parameter, "kohya-ldm")
    out, inp = dict(unet.named_parameters())[parameter].shape
    a1, a2, b1, b2 = rand(inp, 3, seed=1), rand(3, inp, seed=2), rand(out, 3, seed=3), rand(3, inp, seed=4)
    state = {f"{name}.a1.weight": a1, f"{name}.a2.weight": a2, f"{name}.b1.weight": b1, f"{name}.b2.weight": b2,
             f"{name}.alpha": torch.tensor(1.5)}
    w = original(unet, parameter)
    change = (matmul_by_hand(matmul_by_hand(w, a1), a2) + matmul_by_hand(b1, b2)) * (1.5 / 3)
    torch.testing.assert_close(weight_with(unet, tmp_path, state, 0.8, parameter), w + 0.8 * change,
                               atol=1e-5, rtol=1e-5)


def test_an_old_layout_glora_multiplies_w_by_a2_then_a1(unet, tmp_path):
    name = layer_name(unet, FF, "kohya-diffusers")
    a1, a2, b1, b2 = rand(2, 32, seed=5), rand(32, 2, seed=6), rand(2, 32, seed=7), rand(256, 2, seed=8)
    state = {f"{name}.a1.weight": a1, f"{name}.a2.weight": a2, f"{name}.b1.weight": b1, f"{name}.b2.weight": b2,
             f"{name}.alpha": torch.tensor(1.0)}
    w = original(unet, FF)
    change = (matmul_by_hand(matmul_by_hand(w, a2), a1) + matmul_by_hand(b2, b1)) * (1.0 / 2)
    assert GloraLayer(a1, a2, b1, b2)._old_layout((256, 32)) is True
    torch.testing.assert_close(weight_with(unet, tmp_path, state, 1.0, FF), w + change, atol=1e-5, rtol=1e-5)


def test_a_glora_on_a_3x3_convolution_mixes_input_channels_at_every_kernel_tap(unet, tmp_path):
    name = layer_name(unet, CONV, "kohya-ldm")
    a1, a2 = rand(32, 2, 1, 1, seed=9), rand(2, 32, 1, 1, seed=10)
    b1, b2 = rand(32, 2, 1, 1, seed=11), rand(2, 32, 3, 3, seed=12)
    state = {f"{name}.a1.weight": a1, f"{name}.a2.weight": a2, f"{name}.b1.weight": b1, f"{name}.b2.weight": b2}
    w = original(unet, CONV)
    change = input_axis_by_hand(w, matmul_by_hand(a1.flatten(1), a2.flatten(1))) + matmul_by_hand(
        b1.flatten(1), b2.flatten(1)).reshape(w.shape)  # no alpha: scale 1
    torch.testing.assert_close(weight_with(unet, tmp_path, state, -0.5, CONV), w - 0.5 * change,
                               atol=1e-5, rtol=1e-5)


def test_a_glora_reads_the_weight_as_earlier_loras_left_it(unet, tmp_path):
    name = layer_name(unet, TO_Q, "kohya-diffusers")
    down, up = rand(2, 32, seed=13), rand(32, 2, seed=14)
    first = {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up}
    a1, a2, b1, b2 = rand(32, 2, seed=15), rand(2, 32, seed=16), rand(32, 2, seed=17), rand(2, 32, seed=18)
    state = {f"{name}.a1.weight": a1, f"{name}.a2.weight": a2, f"{name}.b1.weight": b1, f"{name}.b2.weight": b2}
    w = original(unet, TO_Q) + matmul_by_hand(up, down)
    expected = w + matmul_by_hand(matmul_by_hand(w, a1), a2) + matmul_by_hand(b1, b2)
    torch.testing.assert_close(weight_with(unet, tmp_path, state, 1.0, TO_Q, before=first), expected,
                               atol=1e-4, rtol=1e-5)


def test_a_glora_of_another_size_is_named_in_the_error(unet):
    name = layer_name(unet, TO_Q, "kohya-diffusers")
    state = {f"{name}.a1.weight": torch.zeros(48, 2), f"{name}.a2.weight": torch.zeros(2, 48),
             f"{name}.b1.weight": torch.zeros(48, 2), f"{name}.b2.weight": torch.zeros(2, 48)}
    with pytest.raises(LoraMismatchError, match="does not fit.*attn1_to_q"):
        match_lora(state, "wrong", SD15, unet)


# --- DoRA ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_a_dora_lora_on_the_output_axis_as_comfyui_decomposes_it(unet, tmp_path, strength):
    name = layer_name(unet, FF, "kohya-ldm")
    down, up, scale = rand(4, 32, seed=19), rand(256, 4, seed=20), rand(256, 1, seed=21).abs() + 0.5
    state = {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(2.0),
             f"{name}.dora_scale": scale}
    w = original(unet, FF)
    expected = comfy_dora(w, matmul_by_hand(up, down) * (2.0 / 4), scale, strength)
    torch.testing.assert_close(weight_with(unet, tmp_path, state, strength, FF), expected, atol=1e-5, rtol=1e-5)


def test_a_dora_locon_on_the_input_axis_normalises_each_input_channel_over_its_kernel(unet, tmp_path):
    name = layer_name(unet, CONV, "kohya-diffusers")
    down, up = rand(4, 32, 3, 3, seed=22), rand(32, 4, 1, 1, seed=23)
    scale = rand(1, 32, 1, 1, seed=24).abs() + 0.5
    state = {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.dora_scale": scale}
    w = original(unet, CONV)
    delta = matmul_by_hand(up.flatten(1), down.flatten(1)).reshape(w.shape)
    torch.testing.assert_close(weight_with(unet, tmp_path, state, 0.5, CONV), comfy_dora(w, delta, scale, 0.5),
                               atol=1e-5, rtol=1e-5)


def test_dora_on_a_loha_and_on_a_lokr(unet, tmp_path):
    q, ff = layer_name(unet, TO_Q, "kohya-ldm"), layer_name(unet, FF, "kohya-ldm")
    w1a, w1b, w2a, w2b = rand(32, 2, seed=25), rand(2, 32, seed=26), rand(32, 2, seed=27), rand(2, 32, seed=28)
    k1, k2 = rand(16, 4, seed=29), rand(16, 8, seed=30)
    q_scale, ff_scale = rand(32, 1, seed=31).abs() + 0.5, rand(1, 32, seed=32).abs() + 0.5
    state = {f"{q}.hada_w1_a": w1a, f"{q}.hada_w1_b": w1b, f"{q}.hada_w2_a": w2a, f"{q}.hada_w2_b": w2b,
             f"{q}.alpha": torch.tensor(1.0), f"{q}.dora_scale": q_scale,
             f"{ff}.lokr_w1": k1, f"{ff}.lokr_w2": k2, f"{ff}.dora_scale": ff_scale}
    loha = matmul_by_hand(w1a, w1b) * matmul_by_hand(w2a, w2b) * 0.5
    torch.testing.assert_close(weight_with(unet, tmp_path, state, 0.5, TO_Q),
                               comfy_dora(original(unet, TO_Q), loha, q_scale, 0.5), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weight_with(unet, tmp_path, state, 0.5, FF),
                               comfy_dora(original(unet, FF), kron_by_hand(k1, k2), ff_scale, 0.5),
                               atol=1e-5, rtol=1e-5)


def test_dora_on_a_glora(unet, tmp_path):
    name = layer_name(unet, TO_Q, "kohya-ldm")
    a1, a2, b1, b2 = rand(32, 2, seed=33), rand(2, 32, seed=34), rand(32, 2, seed=35), rand(2, 32, seed=36)
    scale = rand(32, 1, seed=37).abs() + 0.5
    state = {f"{name}.a1.weight": a1, f"{name}.a2.weight": a2, f"{name}.b1.weight": b1, f"{name}.b2.weight": b2,
             f"{name}.alpha": torch.tensor(4.0), f"{name}.dora_scale": scale}
    w = original(unet, TO_Q)
    change = (matmul_by_hand(matmul_by_hand(w, a1), a2) + matmul_by_hand(b1, b2)) * 2.0
    assert isinstance(match_lora(state, "g", SD15, unet).parts["unet"][TO_Q], DoraLayer)
    torch.testing.assert_close(weight_with(unet, tmp_path, state, 0.5, TO_Q), comfy_dora(w, change, scale, 0.5),
                               atol=1e-4, rtol=1e-5)


def test_strength_zero_and_leaving_the_block_restore_the_weights_exactly(unet, tmp_path):
    name = layer_name(unet, FF, "kohya-ldm")
    glora = layer_name(unet, TO_Q, "kohya-ldm")
    state = {f"{name}.lora_down.weight": rand(4, 32, seed=38), f"{name}.lora_up.weight": rand(256, 4, seed=39),
             f"{name}.dora_scale": rand(256, 1, seed=40).abs() + 0.5,
             f"{glora}.a1.weight": rand(32, 2, seed=41), f"{glora}.a2.weight": rand(2, 32, seed=42),
             f"{glora}.b1.weight": rand(32, 2, seed=43), f"{glora}.b2.weight": rand(2, 32, seed=44)}
    before = {p: original(unet, p) for p in (FF, TO_Q)}
    lora = match_lora(state, "x", SD15, unet)
    handle = with_model_lora(ModelHandle(unet, SD15, ModelSampling(), "x"), lora, 1.0)
    zero = replace(handle, patches=tuple(replace(p, strength=0.0) for p in handle.patches))
    for parameter in (FF, TO_Q):
        assert torch.equal(weight_with(unet, tmp_path, state, 0.0, parameter), before[parameter])
        with torch.no_grad(), model_patches_applied(zero):
            assert torch.equal(dict(unet.named_parameters())[parameter], before[parameter])
        with torch.no_grad(), model_patches_applied(handle):
            assert not torch.equal(dict(unet.named_parameters())[parameter], before[parameter])
        assert torch.equal(original(unet, parameter), before[parameter])


def test_dora_scales_that_apply_to_nothing_are_reported_not_loaded(unet):
    conv, q = layer_name(unet, CONV, "kohya-ldm"), layer_name(unet, TO_Q, "kohya-ldm")
    state = {f"{conv}.diff": torch.zeros(32, 32, 3, 3), f"{conv}.dora_scale": torch.ones(32, 1, 1, 1),
             f"{q}.dora_scale": torch.ones(32, 1)}
    lora = match_lora(state, "x", SD15, unet)
    assert set(lora.not_loaded) == {f"{conv}.dora_scale", f"{q}.dora_scale"}
    assert list(lora.parts["unet"]) == [CONV]
