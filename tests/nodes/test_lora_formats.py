"""LyCORIS files (LoCon, LoHa, LoKr, full diffs) read, matched and applied like LoRAs: each file is
written with known factors, and the weight it gives is checked against the delta worked out here by
hand (loops and block copies, not the code's einsum/kron), in kohya's two namings and diffusers'."""

import copy

import pytest
import torch
from safetensors.torch import save_file

from engine.context import RunContext
from engine.declare import NodeResult, node
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.types import ANY, Link
from engine.workflow import Workflow
from nodes.conditioning_nodes import CLIPTextEncode
from nodes.latent import EmptyLatentImage
from nodes.loaders import CheckpointLoaderSimple
from nodes.lora import LoraLoaderModelOnly, with_model_lora
from nodes.models.family import SD15
from nodes.models.handles import ModelHandle
from nodes.models.lora_formats import DiffLayer, LohaLayer, LokrLayer
from nodes.models.lora_weights import kohya_unet_names, match_lora
from nodes.models.patching import model_patches_applied
from nodes.models.state_dict_files import load_state_dict
from nodes.sampler_nodes import KSampler
from nodes.sampling import ModelSampling
from tests.nodes.checkpoints import ldm_state_dict, tiny_modules

TO_Q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"  # [32, 32]
FF = "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"  # [256, 32]
CONV = "down_blocks.0.resnets.0.conv1.weight"  # [32, 32, 3, 3]
NAMINGS = ("kohya-diffusers", "kohya-ldm", "diffusers")


@pytest.fixture(scope="module")
def unet():
    return tiny_modules(SD15, 5)["unet"]


def layer_name(unet, parameter: str, naming: str) -> str:
    if naming == "diffusers":
        return "unet." + parameter[:-len(".weight")]
    return kohya_unet_names(unet)[parameter][0 if naming == "kohya-diffusers" else 1]


def rand(*shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def weight_with(unet, state: dict, strength: float, parameter: str) -> torch.Tensor:
    """The parameter's value while the file's changes are applied at `strength` (via the loader path)."""
    handle = with_model_lora(ModelHandle(unet, SD15, ModelSampling(), "x"), match_lora(state, "f", SD15, unet),
                             strength)
    with torch.no_grad(), model_patches_applied(handle):
        return dict(unet.named_parameters())[parameter].detach().clone()


def original(unet, parameter: str) -> torch.Tensor:
    return dict(unet.named_parameters())[parameter].detach().clone()


def matmul_by_hand(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.stack([(a[i] * b[:, j]).sum() for j in range(b.shape[1])]) for i in range(a.shape[0])])


def kron_by_hand(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Block (i, j) of the Kronecker product is a[i, j] × b."""
    out = torch.zeros(a.shape[0] * b.shape[0], a.shape[1] * b.shape[1], *b.shape[2:])
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i * b.shape[0]:(i + 1) * b.shape[0], j * b.shape[1]:(j + 1) * b.shape[1]] = a[i, j] * b
    return out


def tucker_by_hand(core: torch.Tensor, b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """out[p, r, k, l] = Σ_i Σ_j core[i, j, k, l] × b[j, r] × a[i, p] (a: [rank, out], b: [rank, in])."""
    out = torch.zeros(a.shape[1], b.shape[1], *core.shape[2:])
    for i in range(core.shape[0]):
        for j in range(core.shape[1]):
            out += a[i][:, None, None, None] * b[j][None, :, None, None] * core[i, j][None, None]
    return out


# --- LoCon (LoRA on a 3×3 convolution) ----------------------------------------------------------

@pytest.mark.parametrize("naming", NAMINGS[:2])
def test_a_locon_file_changes_a_3x3_convolution_by_up_times_down(unet, naming):
    name = layer_name(unet, CONV, naming)
    down, up = rand(4, 32, 3, 3, seed=1), rand(32, 4, 1, 1, seed=2)
    state = {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(2.0)}
    delta = matmul_by_hand(up.reshape(32, 4), down.reshape(4, -1)).reshape(32, 32, 3, 3) * (2.0 / 4)
    torch.testing.assert_close(weight_with(unet, state, 0.7, CONV), original(unet, CONV) + 0.7 * delta)


# --- LoHa ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("naming", NAMINGS)
def test_a_loha_file_changes_a_linear_layer_by_the_hadamard_product(unet, naming):
    name = layer_name(unet, TO_Q, naming)
    w1a, w1b, w2a, w2b = rand(32, 3, seed=3), rand(3, 32, seed=4), rand(32, 3, seed=5), rand(3, 32, seed=6)
    state = {f"{name}.hada_w1_a": w1a, f"{name}.hada_w1_b": w1b, f"{name}.hada_w2_a": w2a,
             f"{name}.hada_w2_b": w2b, f"{name}.alpha": torch.tensor(1.5)}
    delta = matmul_by_hand(w1a, w1b) * matmul_by_hand(w2a, w2b) * (1.5 / 3)
    torch.testing.assert_close(weight_with(unet, state, -1.2, TO_Q), original(unet, TO_Q) - 1.2 * delta)


def test_a_loha_without_alpha_has_scale_one_and_a_3x3_kernel_flattened(unet):
    name = layer_name(unet, CONV, "kohya-ldm")
    w1a, w1b, w2a, w2b = rand(32, 2, seed=7), rand(2, 288, seed=8), rand(32, 2, seed=9), rand(2, 288, seed=10)
    state = {f"{name}.hada_w1_a": w1a, f"{name}.hada_w1_b": w1b, f"{name}.hada_w2_a": w2a, f"{name}.hada_w2_b": w2b}
    delta = (matmul_by_hand(w1a, w1b) * matmul_by_hand(w2a, w2b)).reshape(32, 32, 3, 3)
    torch.testing.assert_close(weight_with(unet, state, 1.0, CONV), original(unet, CONV) + delta)


def test_a_tucker_loha_on_a_convolution(unet):
    name = layer_name(unet, CONV, "kohya-diffusers")
    t1, t2 = rand(2, 2, 3, 3, seed=11), rand(2, 2, 3, 3, seed=12)
    w1a, w1b, w2a, w2b = rand(2, 32, seed=13), rand(2, 32, seed=14), rand(2, 32, seed=15), rand(2, 32, seed=16)
    state = {f"{name}.hada_w1_a": w1a, f"{name}.hada_w1_b": w1b, f"{name}.hada_w2_a": w2a, f"{name}.hada_w2_b": w2b,
             f"{name}.hada_t1": t1, f"{name}.hada_t2": t2, f"{name}.alpha": torch.tensor(1.0)}
    delta = tucker_by_hand(t1, w1b, w1a) * tucker_by_hand(t2, w2b, w2a) * 0.5
    torch.testing.assert_close(weight_with(unet, state, 1.0, CONV), original(unet, CONV) + delta,
                               atol=1e-5, rtol=1e-5)


# --- LoKr ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("naming", NAMINGS)
def test_a_lokr_file_with_a_whole_w1_and_a_low_rank_w2(unet, naming):
    name = layer_name(unet, FF, naming)
    w1, w2a, w2b = rand(16, 4, seed=17), rand(16, 2, seed=18), rand(2, 8, seed=19)
    state = {f"{name}.lokr_w1": w1, f"{name}.lokr_w2_a": w2a, f"{name}.lokr_w2_b": w2b,
             f"{name}.alpha": torch.tensor(1.0)}
    delta = kron_by_hand(w1, matmul_by_hand(w2a, w2b)) * (1.0 / 2)
    torch.testing.assert_close(weight_with(unet, state, 0.9, FF), original(unet, FF) + 0.9 * delta)


def test_a_lokr_with_both_factors_whole_ignores_alpha(unet):
    name = layer_name(unet, FF, "kohya-ldm")
    w1, w2 = rand(8, 2, seed=20), rand(32, 16, seed=21)
    state = {f"{name}.lokr_w1": w1, f"{name}.lokr_w2": w2, f"{name}.alpha": torch.tensor(7.0)}
    torch.testing.assert_close(weight_with(unet, state, 1.0, FF), original(unet, FF) + kron_by_hand(w1, w2))


def test_a_lokr_with_a_low_rank_w1_and_a_tucker_w2_on_a_convolution(unet):
    name = layer_name(unet, CONV, "kohya-diffusers")
    w1a, w1b = rand(4, 1, seed=22), rand(1, 2, seed=23)
    t2, w2a, w2b = rand(3, 3, 3, 3, seed=24), rand(3, 8, seed=25), rand(3, 16, seed=26)
    state = {f"{name}.lokr_w1_a": w1a, f"{name}.lokr_w1_b": w1b, f"{name}.lokr_w2_a": w2a,
             f"{name}.lokr_w2_b": w2b, f"{name}.lokr_t2": t2, f"{name}.alpha": torch.tensor(6.0)}
    w1 = matmul_by_hand(w1a, w1b)
    w2 = tucker_by_hand(t2, w2b, w2a)  # [8, 16, 3, 3]
    delta = kron_by_hand(w1, w2) * (6.0 / 3)  # dim: w2's rank (ComfyUI's rule when both are low-rank)
    torch.testing.assert_close(weight_with(unet, state, 1.0, CONV), original(unet, CONV) + delta,
                               atol=1e-4, rtol=1e-5)


# --- full diffs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("naming", NAMINGS)
def test_a_full_diff_file_adds_its_weight_and_bias_differences(unet, naming):
    name = layer_name(unet, CONV, naming)
    bias = CONV[:-len("weight")] + "bias"
    diff, diff_b = rand(32, 32, 3, 3, seed=27), rand(32, seed=28)
    state = {f"{name}.diff": diff, f"{name}.diff_b": diff_b}
    lora = match_lora(state, "full", SD15, unet)
    assert set(lora.parts["unet"]) == {CONV, bias}
    handle = with_model_lora(ModelHandle(unet, SD15, ModelSampling(), "x"), lora, 0.5)
    before = original(unet, bias)
    with torch.no_grad(), model_patches_applied(handle):
        params = dict(unet.named_parameters())
        patched_weight, patched_bias = params[CONV].detach().clone(), params[bias].detach().clone()
    torch.testing.assert_close(patched_weight, original(unet, CONV) + 0.5 * diff)
    torch.testing.assert_close(patched_bias, before + 0.5 * diff_b)
    torch.testing.assert_close(original(unet, bias), before)  # undone afterwards


# --- files mixing formats, and what does not fit --------------------------------------------------

def test_one_file_may_mix_formats_layer_by_layer(unet):
    q, ff, conv = (layer_name(unet, p, "kohya-diffusers") for p in (TO_Q, FF, CONV))
    state = {f"{q}.hada_w1_a": rand(32, 2, seed=1), f"{q}.hada_w1_b": rand(2, 32, seed=2),
             f"{q}.hada_w2_a": rand(32, 2, seed=3), f"{q}.hada_w2_b": rand(2, 32, seed=4),
             f"{q}.alpha": torch.tensor(2.0),
             f"{ff}.lokr_w1": rand(16, 4, seed=5), f"{ff}.lokr_w2": rand(16, 8, seed=6),
             f"{conv}.diff": rand(32, 32, 3, 3, seed=7)}
    parts = match_lora(state, "mixed", SD15, unet).parts["unet"]
    assert isinstance(parts[TO_Q], LohaLayer) and isinstance(parts[FF], LokrLayer)
    assert isinstance(parts[CONV], DiffLayer)


def test_a_loha_of_the_wrong_size_is_named_in_the_error(unet):
    name = layer_name(unet, TO_Q, "kohya-diffusers")
    state = {f"{name}.hada_w1_a": torch.zeros(48, 2), f"{name}.hada_w1_b": torch.zeros(2, 48),
             f"{name}.hada_w2_a": torch.zeros(48, 2), f"{name}.hada_w2_b": torch.zeros(2, 48)}
    with pytest.raises(ValueError, match=r"does not fit.*attn1_to_q \(LoRA 48×48, model 32×32\)"):
        match_lora(state, "wrong", SD15, unet)


def test_a_loha_layer_missing_a_factor_is_reported_not_applied(unet, caplog):
    q, conv = layer_name(unet, TO_Q, "kohya-diffusers"), layer_name(unet, CONV, "kohya-diffusers")
    state = {f"{q}.hada_w1_a": torch.zeros(32, 2), f"{q}.hada_w1_b": torch.zeros(2, 32),
             f"{conv}.diff": torch.zeros(32, 32, 3, 3)}
    lora = match_lora(state, "partial", SD15, unet)
    assert set(lora.not_loaded) == {f"{q}.hada_w1_a", f"{q}.hada_w1_b"}
    assert list(lora.parts["unet"]) == [CONV]


def test_patch_memory_counts_every_format_by_its_factors():
    layers = {"a": LohaLayer(torch.zeros(4, 2), torch.zeros(2, 4), torch.zeros(4, 2), torch.zeros(2, 4)),
              "b": LokrLayer(w1=torch.zeros(2, 2), w2=torch.zeros(2, 2)), "c": DiffLayer(torch.zeros(4, 4))}
    from dataclasses import replace

    from nodes.models.patching import WeightPatch
    handle = replace(ModelHandle(torch.nn.Linear(4, 4), SD15, ModelSampling(), "x"),
                     patches=(WeightPatch("unet", 1.0, layers),))
    assert handle.estimated_nbytes == 4 * (4 * 8 + 2 * 4 + 16)


# --- end to end: a LoKr/LoHa file through LoraLoader equals the checkpoint with it merged --------

kept: dict = {}


@node("KeepLatent", output_node=True, always_rerun=True)
class KeepLatent:
    """Hands the latent that reaches it back to the test."""

    value = Link(ANY)

    def run(self, ctx: RunContext, value):
        kept[ctx.node_id] = value
        return NodeResult(ui={})


def test_a_lycoris_file_through_lora_loader_equals_a_checkpoint_with_its_delta_merged(tmp_path):
    modules = tiny_modules(SD15, 3)
    unet = modules["unet"]
    q, ff, conv = (layer_name(unet, p, "kohya-ldm") for p in (TO_Q, FF, CONV))
    state = {f"{q}.hada_w1_a": rand(32, 2, seed=1) * 0.2, f"{q}.hada_w1_b": rand(2, 32, seed=2) * 0.2,
             f"{q}.hada_w2_a": rand(32, 2, seed=3) * 0.2, f"{q}.hada_w2_b": rand(2, 32, seed=4) * 0.2,
             f"{ff}.lokr_w1": rand(16, 4, seed=5) * 0.1, f"{ff}.lokr_w2": rand(16, 8, seed=6) * 0.1,
             f"{conv}.diff": rand(32, 32, 3, 3, seed=7) * 0.01, f"{conv}.diff_b": rand(32, seed=8) * 0.01}
    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    (root / "loras").mkdir()
    save_file(state, str(root / "loras" / "lycoris.safetensors"))
    save_file({k: v.contiguous() for k, v in ldm_state_dict(SD15, modules).items()},
              str(root / "checkpoints" / "plain.safetensors"))
    merged = copy.deepcopy(modules)
    lora = match_lora(load_state_dict(root / "loras" / "lycoris.safetensors"), "x", SD15, merged["unet"])
    with torch.no_grad():
        params = dict(merged["unet"].named_parameters())
        for parameter, layer in lora.parts["unet"].items():
            params[parameter] += 0.8 * layer.delta(params[parameter].shape)
    save_file({k: v.contiguous() for k, v in ldm_state_dict(SD15, merged).items()},
              str(root / "checkpoints" / "merged.safetensors"))

    registry = NodeRegistry([KeepLatent, CheckpointLoaderSimple, LoraLoaderModelOnly, CLIPTextEncode,
                             EmptyLatentImage, KSampler])
    executor = Executor(registry, Paths(root, tmp_path / "in", tmp_path / "out", tmp_path / "temp"))

    def latent(ckpt: str, lora_strength: float | None) -> torch.Tensor:
        api = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}}}
        model = ["4", 0]
        if lora_strength is not None:
            api["l"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
                "model": model, "lora_name": "lycoris.safetensors", "strength_model": lora_strength}}
            model = ["l", 0]
        api.update({
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "3": {"class_type": "KSampler", "inputs": {
                "model": model, "seed": 1, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
                "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0], "denoise": 1.0}},
            "k": {"class_type": "KeepLatent", "inputs": {"value": ["3", 0]}}})
        result = executor.execute(Workflow.from_api(api))
        assert result.status == "success", result.error
        return kept["k"]["samples"]

    with_lora, by_merge = latent("plain.safetensors", 0.8), latent("merged.safetensors", None)
    torch.testing.assert_close(with_lora, by_merge, atol=1e-4, rtol=1e-4)
    assert (with_lora - latent("plain.safetensors", None)).abs().max() > 1e-3, "the file changes the result"


def test_half_precision_factors_give_a_float32_delta():
    w1, w2 = rand(2, 2, seed=1).half(), rand(2, 2, seed=2).bfloat16()
    delta = LokrLayer(w1=w1, w2=w2).delta((4, 4))
    assert delta.dtype == torch.float32
    torch.testing.assert_close(delta, kron_by_hand(w1.float(), w2.float()))
