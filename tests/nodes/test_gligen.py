"""GLIGEN: a file in the original layout, read into diffusers' modules, makes our UNet compute what
diffusers' own gated UNet computes for the same boxes; only the grounded side of CFG is changed;
the nodes place boxes as ComfyUI does; /object_info matches ComfyUI's declarations."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from nodes.conditioning.value import CondEntry
from nodes.gligen import GLIGENLoader, GLIGENTextBoxApply
from nodes.guidance import guided_denoiser
from nodes.loaders import CheckpointLoaderSimple
from nodes.models.family import SD15
from nodes.models.gligen_loading import MAX_OBJECTS, Grounding, TextBox, read_gligen, transformer_blocks_in_order
from nodes.models.handles import ModelHandle
from nodes.models.tiny import tiny_configs, tiny_modules
from nodes.sampling import ModelSampling, unet_denoiser

# Where each tiny transformer block sits in the original layout: input block 1, the middle block, and
# output blocks 2 and 3 (two levels, one resnet each); ComfyUI reads them in this order.
LDM_BLOCKS = ("input_blocks.1.1", "middle_block.1", "output_blocks.2.1", "output_blocks.3.1")


@pytest.fixture(scope="module")
def unets():
    """Our tiny UNet, and diffusers' gated UNet with the same weights plus random GLIGEN ones."""
    ours = tiny_modules(SD15, 7)["unet"]
    config = dict(tiny_configs(SD15).unet, attention_type="gated")
    theirs = UNet2DConditionModel.from_config(config).eval()
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for name, tensor in theirs.state_dict().items():
            if "fuser." in name or name.startswith("position_net."):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    missing = theirs.load_state_dict(ours.state_dict(), strict=False).missing_keys
    assert all("fuser." in k or k.startswith("position_net.") for k in missing)
    return ours, theirs


@pytest.fixture(scope="module")
def gligen_root(tmp_path_factory, unets):
    """models/ with the tiny checkpoint and `tiny-gligen.safetensors`: diffusers' gated weights under
    the original file's names (model.diffusion_model.<block>.transformer_blocks.0.fuser.*, position_net.*)."""
    from nodes.models.tiny import save_tiny_checkpoint

    _, theirs = unets
    root = tmp_path_factory.mktemp("models")
    (root / "checkpoints").mkdir()
    save_tiny_checkpoint(root / "checkpoints", SD15, seed=3, name="tiny-sd15")
    (root / "gligen").mkdir()
    blocks = transformer_blocks_in_order(theirs)
    state = {}
    for place, block in zip(LDM_BLOCKS, blocks):
        for name, tensor in block.fuser.state_dict().items():
            state[f"model.diffusion_model.{place}.transformer_blocks.0.fuser.{name}"] = tensor.clone()
    for name, tensor in theirs.position_net.state_dict().items():
        state[f"position_net.{name}"] = tensor.clone()
    save_file(state, str(root / "gligen" / "tiny-gligen.safetensors"))
    return root


def context(root) -> RunContext:
    return RunContext(node_id="1", prompt_id="test", paths=Paths(root, root / "in", root / "out", root / "tmp"),
                      interrupt=InterruptHandle(), emit=lambda event, data: None, settings={"precision": "fp32"})


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(9)
    return (torch.randn(2, 4, 16, 16, generator=generator), torch.randn(2, 77, 32, generator=generator),
            torch.randn(2, 32, generator=generator))


def test_our_unet_with_the_gated_blocks_equals_diffusers_gated_unet(unets, gligen_root, inputs):
    ours, theirs = unets
    x, embeds, pooled = inputs
    gligen = read_gligen(gligen_root / "gligen" / "tiny-gligen.safetensors")
    boxes = (TextBox(pooled[0:1], 8, 4, 2, 6), TextBox(pooled[1:2], 16, 16, 0, 0))  # latent pixels (h, w, y, x)
    # The same boxes as diffusers takes them: corner fractions of the 16×16 latent, padded to 30.
    corners = torch.zeros(2, MAX_OBJECTS, 4)
    corners[:, 0] = torch.tensor([6 / 16, 2 / 16, 10 / 16, 10 / 16])
    corners[:, 1] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    masks = torch.zeros(2, MAX_OBJECTS)
    masks[:, :2] = 1.0
    phrases = torch.zeros(2, MAX_OBJECTS, 32)
    phrases[:, :2] = pooled
    timestep = torch.tensor([400.0, 400.0])
    with torch.no_grad():
        expected = theirs(x, timestep, encoder_hidden_states=embeds, cross_attention_kwargs={
            "gligen": {"boxes": corners, "positive_embeddings": phrases, "masks": masks}}).sample
        plain = ours(x, timestep, encoder_hidden_states=embeds).sample
        with Grounding(gligen, boxes).attached(ours, slice(0, 2), tuple(x.shape)):
            grounded = ours(x, timestep, encoder_hidden_states=embeds).sample
        after = ours(x, timestep, encoder_hidden_states=embeds).sample
    assert torch.allclose(grounded, expected, atol=1e-5)
    assert not torch.allclose(grounded, plain, atol=1e-3)
    assert torch.equal(after, plain)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in ours.modules())


def test_only_the_grounded_side_of_cfg_goes_through_gligen(unets, gligen_root, inputs):
    ours = unets[0]
    x, embeds, pooled = inputs
    model = ModelHandle(ours, SD15, ModelSampling("epsilon"), "tiny")
    grounding = Grounding(read_gligen(gligen_root / "gligen" / "tiny-gligen.safetensors"),
                          (TextBox(pooled[0:1], 8, 8, 0, 8),))
    positive, negative = CondEntry(embeds[0:1], gligen=grounding), CondEntry(embeds[1:2])
    sigma = torch.tensor(2.5)
    with torch.no_grad():
        guided = guided_denoiser(model, (positive,), (negative,), 4.0, x[:1].shape)(x[:1], sigma)
        cond = guided_denoiser(model, (positive,), (negative,), 1.0, x[:1].shape)(x[:1], sigma)
        uncond = unet_denoiser(ours, model.model_sampling, embeds[1:2])(x[:1], sigma)
        plain_cond = unet_denoiser(ours, model.model_sampling, embeds[0:1])(x[:1], sigma)
    assert not torch.allclose(cond, plain_cond, atol=1e-3)
    assert torch.allclose(guided, uncond + (cond - uncond) * 4.0, atol=1e-5)


def test_text_boxes_accumulate_in_latent_pixels_and_the_latest_model_reads_them(gligen_root):
    ctx = context(gligen_root)
    _, clip, _ = CheckpointLoaderSimple().run(ctx, "tiny-sd15.safetensors")
    (gligen,) = GLIGENLoader().run(ctx, "tiny-gligen.safetensors")
    start = (CondEntry(torch.zeros(1, 77, 32)), CondEntry(torch.ones(1, 77, 32)))
    (once,) = GLIGENTextBoxApply().run(ctx, start, clip, gligen, "a red circle", 64, 128, 8, 16)
    (twice,) = GLIGENTextBoxApply().run(ctx, once, clip, gligen, "a blue square", 256, 64, 0, 200)
    assert [len(e.gligen.boxes) for e in twice] == [2, 2] and all(e.gligen.model is gligen for e in twice)
    first, second = twice[0].gligen.boxes
    assert (first.height, first.width, first.y, first.x) == (16, 8, 2, 1)  # ComfyUI's pixels // 8
    assert (second.height, second.width, second.y, second.x) == (8, 32, 25, 0)
    assert first.pooled.shape == (1, 32) and not torch.equal(first.pooled, second.pooled)
    assert start[0].gligen is None  # the input conditioning is not changed


def test_more_boxes_than_gligen_takes_is_an_error(gligen_root):
    gligen = read_gligen(gligen_root / "gligen" / "tiny-gligen.safetensors")
    boxes = tuple(TextBox(torch.zeros(1, 32), 8, 8, 0, 0) for _ in range(MAX_OBJECTS + 1))
    with pytest.raises(ValueError, match="at most 30"):
        Grounding(gligen, boxes).objects(1, 16, 16)


def test_object_info_of_the_gligen_nodes_matches_comfyui():
    from engine.registry import NodeRegistry
    from tests.nodes.comfy_patches_object_info import COMFY_GLIGEN_NODES
    from tests.nodes.test_toolbox_object_info import comparable

    registry = NodeRegistry()
    registry.register_module(__import__("nodes.gligen", fromlist=["_"]))
    info = registry.object_info()
    for class_type, theirs in COMFY_GLIGEN_NODES.items():
        ours = info[class_type]
        assert list(ours["input"]["required"]) == list(theirs["required"]), class_type
        for name, entry in theirs["required"].items():
            assert comparable(ours["input"]["required"][name]) == comparable(entry), (class_type, name)
        assert (ours["output"], ours["category"], ours["display_name"]) == (
            theirs["output"], theirs["category"], theirs["display_name"]), class_type
