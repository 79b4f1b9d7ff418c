"""LoraLoader: kohya/A1111 LoRAs applied to the UNet and text encoder while they run, never to
the cached modules; on the tiny SD1.x checkpoint through the real executor."""

import copy
import logging

import pytest
import torch
from safetensors.torch import save_file

from engine.config import EngineConfig, build_registry
from engine.context import InterruptHandle, RunContext
from engine.declare import NodeResult, node
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.types import ANY, Link
from engine.workflow import Workflow
from nodes.lora import LoraLoader
from nodes.models.builtin import BUILTIN_CHECKPOINT, BUILTIN_LORA
from nodes.models.family import SD15, SDXL_BASE
from nodes.models.lora_weights import LoraLayer, LoraMismatchError, match_lora, unet_layer_names
from nodes.models.patching import WeightPatch, applied
from nodes.models.tiny_lora import kohya_lora
from tests.nodes.checkpoints import ldm_state_dict, tiny_modules
from tests.nodes.loras import merge_by_hand, meta_tiny_modules, summed_lora, text_encoders, write_lora

SEED = 3
kept: dict = {}


@node("Keep", output_node=True, always_rerun=True)
class Keep:
    """Hands what reaches it back to the test, by node id."""

    value = Link(ANY)

    def run(self, ctx: RunContext, value):
        kept[ctx.node_id] = value
        return NodeResult(ui={})


@pytest.fixture(scope="module")
def registry():
    return NodeRegistry([Keep, *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])


@pytest.fixture(scope="module")
def modules():
    return tiny_modules(SD15, SEED)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, modules):
    root = tmp_path_factory.mktemp("models")
    (root / "checkpoints").mkdir()
    save_file({k: v.contiguous() for k, v in ldm_state_dict(SD15, modules).items()},
              str(root / "checkpoints" / "tiny-sd15.safetensors"))
    loras = root / "loras"
    write_lora(loras, "a.safetensors", SD15, modules, seed=1)
    write_lora(loras, "a-ldm-names.safetensors", SD15, modules, seed=1, naming="ldm")
    write_lora(loras, "b.safetensors", SD15, modules, seed=2, alpha=None)
    a = kohya_lora(SD15, modules["unet"], text_encoders(modules), seed=1)
    b = kohya_lora(SD15, modules["unet"], text_encoders(modules), seed=2, alpha=None)
    save_file(summed_lora(a, b), str(loras / "a-plus-b.safetensors"))
    write_lora(loras, "sdxl.safetensors", SDXL_BASE, meta_tiny_modules(SDXL_BASE), seed=1, naming="ldm")
    # The same UNet and text encoder with LoRA a merged in by hand: what LoRA a must compute.
    merged = copy.deepcopy(dict(modules))
    merge_by_hand(merged["unet"], a, unet_layer_names(merged["unet"]), 0.8)
    te_names = {"lora_te_text_model_" + n[:-len(".weight")].replace(".", "_"): n
                for n, _ in merged["text_encoder"].named_parameters()}
    merge_by_hand(merged["text_encoder"], a, te_names, 0.6)
    save_file({k: v.contiguous() for k, v in ldm_state_dict(SD15, merged).items()},
              str(root / "checkpoints" / "tiny-sd15-merged.safetensors"))
    return root


@pytest.fixture(scope="module")
def executor(registry, models_dir, tmp_path_factory):
    """One executor for the module: the checkpoint loads once and plain runs come from its cache."""
    tmp = tmp_path_factory.mktemp("run")
    return Executor(registry, Paths(models_dir, tmp / "in", tmp / "out", tmp / "temp"))


def graph(*loras, seed=1, steps=2, ckpt="tiny-sd15.safetensors", keep_models=False):
    """txt2img with LoraLoaders chained in (each `(name, strength_model, strength_clip)`);
    the latent is kept as "k_latent" and the positive conditioning as "k_cond"."""
    api = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}}}
    model, clip = ["4", 0], ["4", 1]
    for i, (name, strength_model, strength_clip) in enumerate(loras):
        api[f"l{i}"] = {"class_type": "LoraLoader", "inputs": {
            "model": model, "clip": clip, "lora_name": name, "strength_model": strength_model,
            "strength_clip": strength_clip}}
        model, clip = [f"l{i}", 0], [f"l{i}", 1]
    api.update({
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": clip}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": clip}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": model, "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
            "denoise": 1.0}},
        "k_latent": {"class_type": "Keep", "inputs": {"value": ["3", 0]}},
        "k_cond": {"class_type": "Keep", "inputs": {"value": ["6", 0]}},
    })
    if keep_models:
        api["k_model"] = {"class_type": "Keep", "inputs": {"value": ["4", 0]}}
        api["k_clip"] = {"class_type": "Keep", "inputs": {"value": ["4", 1]}}
    return Workflow.from_api(api)


def run(executor, workflow, **kw):
    kept.clear()
    result = executor.execute(workflow, **kw)
    assert result.status == "success", result.error
    return kept["k_latent"]["samples"], kept["k_cond"][0].embeds


def snapshot(*modules):
    return [{k: (v.data_ptr(), v.clone()) for k, v in m.state_dict().items()} for m in modules]


def assert_unchanged(before, *modules):
    for saved, module in zip(before, modules):
        for key, value in module.state_dict().items():
            ptr, original = saved[key]
            assert value.data_ptr() == ptr and torch.equal(value, original), key


# --- strength and pass-through -------------------------------------------------------------------

def test_strength_zero_is_exactly_no_lora(executor):
    plain_latent, plain_cond = run(executor, graph())
    latent, cond = run(executor, graph(("a.safetensors", 0.0, 0.0)))
    assert torch.equal(latent, plain_latent) and torch.equal(cond, plain_cond)


def test_strength_zero_returns_the_input_handles_themselves():
    model, clip = object(), object()
    assert LoraLoader().run(None, model, clip, "anything.safetensors", 0.0, 0.0) == (model, clip)


def test_a_nonzero_strength_changes_the_latent(executor):
    plain, _ = run(executor, graph())
    with_lora, _ = run(executor, graph(("a.safetensors", 1.0, 1.0)))
    assert (with_lora - plain).abs().max() > 1e-3


def test_the_clip_strength_changes_the_conditioning_only(executor):
    plain_latent, plain_cond = run(executor, graph())
    _, clip_only_cond = run(executor, graph(("a.safetensors", 0.0, 1.0)))
    model_only_latent, model_only_cond = run(executor, graph(("a.safetensors", 1.0, 0.0)))
    assert not torch.allclose(clip_only_cond, plain_cond, atol=1e-4)
    assert torch.equal(model_only_cond, plain_cond)
    assert not torch.allclose(model_only_latent, plain_latent, atol=1e-4)


# --- the arithmetic --------------------------------------------------------------------------------

def test_the_lora_run_equals_a_checkpoint_with_the_lora_merged_in_by_hand(executor):
    lora_latent, lora_cond = run(executor, graph(("a.safetensors", 0.8, 0.6)))
    merged_latent, merged_cond = run(executor, graph(ckpt="tiny-sd15-merged.safetensors"))
    torch.testing.assert_close(lora_cond, merged_cond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lora_latent, merged_latent, atol=1e-4, rtol=1e-4)


def test_kohya_diffusers_names_and_ldm_names_apply_the_same_change(executor):
    by_diffusers_names = run(executor, graph(("a.safetensors", 1.0, 1.0)))
    by_ldm_names = run(executor, graph(("a-ldm-names.safetensors", 1.0, 1.0)))
    assert all(torch.equal(x, y) for x, y in zip(by_diffusers_names, by_ldm_names))


def test_two_stacked_loras_equal_one_lora_with_their_deltas_summed(executor):
    stacked = run(executor, graph(("a.safetensors", 1.0, 1.0), ("b.safetensors", 1.0, 1.0)))
    summed = run(executor, graph(("a-plus-b.safetensors", 1.0, 1.0)))
    for x, y in zip(stacked, summed):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_patched_unet_equals_a_copy_with_the_delta_added_by_hand(modules):
    unet = modules["unet"]
    state = kohya_lora(SD15, unet, [], seed=4)
    lora = match_lora(state, "by-hand", SD15, unet)
    by_hand = copy.deepcopy(unet)
    merge_by_hand(by_hand, state, unet_layer_names(unet), -1.5)
    x, t, context = torch.randn(1, 4, 8, 8), torch.tensor([500.0]), torch.randn(1, 77, 32)
    with torch.no_grad(), applied(unet, [WeightPatch("unet", -1.5, lora.parts["unet"])]):
        patched = unet(x, t, encoder_hidden_states=context).sample
    with torch.no_grad():
        expected = by_hand(x, t, encoder_hidden_states=context).sample
    torch.testing.assert_close(patched, expected, atol=1e-6, rtol=1e-5)


def test_a_linear_lora_fits_the_same_layer_as_a_1x1_convolution():
    conv = torch.nn.Conv2d(6, 5, 1)
    layer = LoraLayer(torch.randn(2, 6), torch.randn(5, 2), alpha=1.0)
    with torch.no_grad(), applied(conv, [WeightPatch("unet", 1.0, {"weight": layer})]):
        patched = conv.weight.clone()
    torch.testing.assert_close(patched, conv.weight + (0.5 * layer.up @ layer.down)[:, :, None, None])


def test_half_precision_weights_get_the_float32_sum_rounded_once_and_then_their_own_tensor_back():
    linear = torch.nn.Linear(8, 6).to(torch.bfloat16)
    original, pointer = linear.weight.detach().clone(), linear.weight.data_ptr()
    layer = LoraLayer(torch.randn(2, 8), torch.randn(6, 2))
    with torch.no_grad(), applied(linear, [WeightPatch("unet", 0.7, {"weight": layer})]):
        assert linear.weight.dtype == torch.bfloat16
        assert torch.equal(linear.weight, (original.float() + 0.7 * (layer.up @ layer.down)).to(torch.bfloat16))
    assert linear.weight.data_ptr() == pointer and torch.equal(linear.weight, original)


def test_a_tucker_locon_equals_its_three_convolutions_in_a_row():
    down, mid, up = torch.randn(3, 4, 1, 1), torch.randn(3, 3, 3, 3), torch.randn(5, 3, 1, 1)
    layer = LoraLayer(down, up, alpha=3.0, mid=mid)
    x = torch.randn(1, 4, 7, 7)
    chained = torch.nn.functional.conv2d(torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, down), mid,
                                                                      padding=1), up)
    single = torch.nn.functional.conv2d(x, layer.delta((5, 4, 3, 3)), padding=1)
    torch.testing.assert_close(single, chained, atol=1e-4, rtol=1e-4)


# --- the cached modules are never changed ------------------------------------------------------------

def test_a_lora_run_leaves_the_loaded_modules_bit_identical(registry, models_dir, tmp_path):
    paths = Paths(models_dir, tmp_path / "in", tmp_path / "out", tmp_path / "temp")
    executor = Executor(registry, paths)
    run(executor, graph(keep_models=True))
    model, clip = kept["k_model"], kept["k_clip"]
    before = snapshot(model.unet, *clip.text_encoders)
    result = executor.execute(graph(("a.safetensors", 1.0, 1.0), ("b.safetensors", -2.0, 3.0)))
    assert result.status == "success" and "4" not in result.ran, "the same loaded modules, from the cache"
    assert_unchanged(before, model.unet, *clip.text_encoders)
    # ...so a later run without the LoRA equals one on a fresh executor that never saw it.
    after_lora = run(executor, graph(seed=7))
    never_patched = run(Executor(registry, paths), graph(seed=7))
    assert all(torch.equal(x, y) for x, y in zip(after_lora, never_patched))


def test_an_interrupt_mid_sampling_still_restores_the_weights(executor):
    run(executor, graph(keep_models=True))
    model = kept["k_model"]
    before = snapshot(model.unet)
    interrupt = InterruptHandle()

    def listener(event, data):
        if event == "progress" and data["value"] == 2:
            interrupt.set()

    result = executor.execute(graph(("a.safetensors", 1.0, 1.0), steps=6), listener=listener, interrupt=interrupt)
    assert result.status == "interrupted"
    assert_unchanged(before, model.unet)


def test_an_error_inside_the_block_still_restores_the_weights(modules):
    encoder = modules["text_encoder"]
    lora = match_lora(kohya_lora(SD15, None, [encoder], seed=5), "x", SD15, modules["unet"], [encoder])
    before = snapshot(encoder)
    with pytest.raises(RuntimeError, match="boom"):
        with applied(encoder, [WeightPatch("text_encoder", 1.0, lora.parts["text_encoder"])]):
            assert not torch.equal(encoder.state_dict()["encoder.layers.0.self_attn.q_proj.weight"],
                                   before[0]["encoder.layers.0.self_attn.q_proj.weight"][1])
            raise RuntimeError("boom")
    assert_unchanged(before, encoder)


# --- files that do not fit ---------------------------------------------------------------------------

def test_a_lora_for_another_family_fails_with_a_clear_error(executor):
    result = executor.execute(graph(("sdxl.safetensors", 1.0, 1.0)))
    assert result.status == "error"
    message = result.error.exception_message
    assert "sdxl.safetensors" in message and "does not fit" in message and "SDXL" in message


def test_unknown_layers_warn_and_the_rest_applies(modules, caplog):
    state = kohya_lora(SD15, modules["unet"], [], seed=6)
    state["lora_unet_no_such_layer.lora_down.weight"] = torch.zeros(2, 3)
    state["lora_unet_no_such_layer.lora_up.weight"] = torch.zeros(3, 2)
    state["lora_unet_down_blocks_0_attentions_0_norm.w_norm"] = torch.ones(1)  # LyCORIS norm layers: not applied
    with caplog.at_level(logging.WARNING):
        lora = match_lora(state, "partly.safetensors", SD15, modules["unet"])
    assert set(lora.not_loaded) == {"lora_unet_no_such_layer",
                                    "lora_unet_down_blocks_0_attentions_0_norm.w_norm"}
    assert "2 key(s) not loaded" in caplog.text and "lora_unet_no_such_layer" in caplog.text
    assert lora.parts["unet"]


def test_a_file_with_no_matching_layer_is_an_error(modules):
    state = {"lora_unet_nowhere.lora_down.weight": torch.zeros(2, 3),
             "lora_unet_nowhere.lora_up.weight": torch.zeros(3, 2)}
    with pytest.raises(LoraMismatchError, match="none of its 1 layers match"):
        match_lora(state, "x", SD15, modules["unet"], text_encoders(modules))
    with pytest.raises(LoraMismatchError, match="LoHa/LoKr"):
        match_lora({"lora_unet_x.hada_w1_a": torch.zeros(2, 2)}, "x", SD15, modules["unet"])


def test_diffusers_peft_names_are_read_too(modules):
    state = {"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.randn(2, 32),
             "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight": torch.randn(32, 2),
             "text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_A.weight": torch.randn(2, 32),
             "text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_B.weight": torch.randn(64, 2)}
    lora = match_lora(state, "peft", SD15, modules["unet"], text_encoders(modules))
    assert list(lora.parts["unet"]) == ["down_blocks.0.attentions.0.proj_in.weight"]
    assert list(lora.parts["text_encoder"]) == ["encoder.layers.1.mlp.fc1.weight"]


# --- the built-in LoRA ---------------------------------------------------------------------------------

def test_the_builtin_lora_runs_on_the_builtin_model_with_nothing_installed(registry, tmp_path):
    executor = Executor(registry, Paths(tmp_path / "models", tmp_path / "in", tmp_path / "out", tmp_path / "t"))
    choices = registry.get("LoraLoader").inputs["lora_name"].available(executor.paths)
    assert BUILTIN_LORA in choices
    plain, _ = run(executor, graph(ckpt=BUILTIN_CHECKPOINT, steps=2))
    with_lora, _ = run(executor, graph((BUILTIN_LORA, 1.0, 1.0), ckpt=BUILTIN_CHECKPOINT, steps=2))
    assert (with_lora - plain).abs().max() > 1e-3
    first = (tmp_path / "models" / "loras" / BUILTIN_LORA).read_bytes()
    from nodes.models.builtin import ensure_builtin_lora
    assert ensure_builtin_lora(tmp_path / "again").read_bytes() == first, "generated deterministically"


def test_a_lora_model_is_counted_by_its_patches_not_as_a_second_unet():
    from dataclasses import replace

    from nodes.models.family import SD15
    from nodes.models.handles import ModelHandle, module_nbytes
    from nodes.models.lora_weights import LoraLayer
    from nodes.models.patching import WeightPatch
    from nodes.sampling import ModelSampling

    unet = torch.nn.Linear(100, 100)
    base = ModelHandle(unet, SD15, ModelSampling(), "x")
    layer = LoraLayer(down=torch.zeros(4, 100), up=torch.zeros(100, 4), alpha=None)
    patched = replace(base, patches=(WeightPatch("unet", 1.0, {"weight": layer}),))
    assert base.estimated_nbytes == module_nbytes(unet)
    assert patched.estimated_nbytes == 2 * 4 * 100 * 4
