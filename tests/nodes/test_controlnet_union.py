"""Union ControlNets (xinsir's ControlNet++ layout, diffusers' `ControlNetUnionModel`): loaded by their keys,
and with the type SetUnionControlNetType chose their residuals are those of `ControlNetUnionModel` called
directly with that type; "auto" gives ComfyUI's: no type alpha on the hint, an all-zero type one-hot.

The union net is tiny and random, its shared blocks copied from the tiny SDXL checkpoint's UNet.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from diffusers import ControlNetModel, ControlNetUnionModel, StableDiffusionXLControlNetUnionPipeline
from safetensors.torch import save_file

from nodes.conditioning.value import CondEntry
from nodes.controlnet import UNION_CONTROLNET_TYPES, ControlNetApplyAdvanced, SetUnionControlNetType
from nodes.models.controlnet_loading import load_controlnet
from nodes.models.family import SDXL_BASE
from nodes.sampling import ModelSampling
from nodes.sampling.control import control_residuals
from tests.nodes.checkpoints import tiny_modules
from tests.nodes.test_controlnet import hint, run_ours
from tests.nodes.test_controlnet_sdxl import difference, executor_with_checkpoint, reference, sdxl_graph
from tests.nodes.test_reference_diffusers import TOLERANCE

CANNY = UNION_CONTROLNET_TYPES["canny/lineart/anime_lineart/mlsd"]
STRENGTH = 0.7
HINT = 64  # pixels: the 8×8 latent's size


def tiny_union(unet, seed: int, types: int = 8) -> ControlNetUnionModel:
    """A union net on the UNet's config with random weights everywhere but the blocks it shares with the UNet."""
    accepted = inspect.signature(ControlNetUnionModel.__init__).parameters
    config = {k: v for k, v in ControlNetModel.from_unet(unet).config.items() if k in accepted}
    width = unet.config.block_out_channels[0]  # the type transformer works at the first level's width
    torch.manual_seed(seed)
    net = ControlNetUnionModel(**config, num_control_type=types, num_trans_channel=width, num_trans_head=8,
                               num_proj_channel=width)
    shared = ControlNetModel.from_unet(unet).state_dict()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name in shared and not name.startswith(("controlnet_", "controlnet_cond_embedding")):
                tensor.copy_(shared[name])
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def union(tmp_path_factory):
    folder = tmp_path_factory.mktemp("union")
    modules = tiny_modules(SDXL_BASE, seed=3)
    made = tiny_union(modules["unet"], 1)
    save_file({k: v.contiguous() for k, v in made.state_dict().items()}, str(folder / "union-promax.safetensors"))
    return made, load_controlnet(folder / "union-promax.safetensors", torch.float32, "cpu")


def inputs(batch: int = 2, hints: int = 1):
    generator = torch.Generator().manual_seed(11)
    x = torch.randn((batch, 4, 8, 8), generator=generator)
    embeds = torch.randn((batch, 77, 64), generator=generator)
    added = {"text_embeds": torch.randn((batch, 32), generator=generator),
             "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * batch)}
    hint = (torch.rand((hints, HINT, HINT, 3), generator=generator) > 0.6).float()
    return x, torch.tensor([500.0]), embeds, added, hint


def applied(handle, type_name: str, image: torch.Tensor):
    """The control as the nodes record it: SetUnionControlNetType, then Apply ControlNet on one entry."""
    typed = SetUnionControlNetType().run(None, handle, type_name)[0]  # type: ignore[arg-type]
    entry = (CondEntry(torch.zeros(1, 77, 64)),)
    positive, _ = ControlNetApplyAdvanced().run(None, entry, entry, typed, image, STRENGTH, 0.0,  # type: ignore[arg-type]
                                                1.0)
    return positive[0].control


def ours(handle, type_name: str, batch: int = 2, hints: int = 1):
    x, t, embeds, added, image = inputs(batch, hints)
    residuals = control_residuals(applied(handle, type_name, image), x, t, 1.0, embeds, added, ModelSampling())
    assert residuals is not None
    return residuals


def direct(net, one_hot: list[float], index: int, batch: int = 2, rows: slice = slice(None)):
    """`ControlNetUnionModel` called as its pipeline calls it, on rows of the same inputs."""
    x, t, embeds, added, image = inputs(batch, batch if rows != slice(None) else 1)
    hint = image.movedim(-1, 1)[rows].expand(x[rows].shape[0], -1, -1, -1)
    down, mid = net(x[rows], t.expand(x[rows].shape[0]), encoder_hidden_states=embeds[rows],
                    controlnet_cond=[hint], control_type=torch.tensor([one_hot] * x[rows].shape[0]),
                    control_type_idx=[index], conditioning_scale=[STRENGTH],
                    added_cond_kwargs={k: v[rows] for k, v in added.items()}, return_dict=False)
    return list(down), mid


def assert_same(residuals, expected) -> None:
    down, mid = expected
    assert len(residuals.down) == len(down)
    for got, want in zip(residuals.down, down):
        assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(residuals.mid, mid, atol=1e-5)


def test_a_union_file_loads_as_the_union_model_it_was_made_from(union):
    made, handle = union
    assert isinstance(handle.net, ControlNetUnionModel)
    fields = ("num_control_type", "num_trans_channel", "num_trans_layer", "num_proj_channel", "addition_time_embed_dim")
    assert {f: handle.net.config[f] for f in fields} == {f: made.config[f] for f in fields}
    got, want = handle.net.state_dict(), made.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_a_typed_union_controlnet_gives_the_union_models_residuals_for_that_type(union):
    made, handle = union
    one_hot = [1.0 if i == CANNY else 0.0 for i in range(8)]
    assert_same(ours(handle, "canny/lineart/anime_lineart/mlsd"), direct(made, one_hot, CANNY))


def test_each_image_of_a_batch_of_hints_gets_its_own_type_alpha(union):
    """diffusers' type transformer attends across the batch; ComfyUI's (and ours) within each image."""
    made, handle = union
    one_hot = [1.0 if i == CANNY else 0.0 for i in range(8)]
    got = ours(handle, "canny/lineart/anime_lineart/mlsd", batch=2, hints=2)
    for row in range(2):
        down, mid = direct(made, one_hot, CANNY, batch=2, rows=slice(row, row + 1))
        assert torch.allclose(got.mid[row:row + 1], mid, atol=1e-5)
        assert all(torch.allclose(g[row:row + 1], d, atol=1e-5) for g, d in zip(got.down, down))


def test_auto_adds_the_hint_without_a_type_alpha_and_an_all_zero_type_embedding(union):
    made, handle = union
    bare = copy.deepcopy(made)
    with torch.no_grad():
        bare.spatial_ch_projs.weight.zero_()
        bare.spatial_ch_projs.bias.zero_()
    got = ours(handle, "auto")
    assert_same(got, direct(bare, [0.0] * 8, 0))
    typed = ours(handle, "canny/lineart/anime_lineart/mlsd")
    assert float((typed.mid - got.mid).abs().max()) > 1e-3, "the type must matter"


def test_a_type_the_net_was_not_trained_on_is_refused(tmp_path):
    net = tiny_union(tiny_modules(SDXL_BASE, seed=3)["unet"], 2, types=6)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "union-6.safetensors"))
    handle = load_controlnet(tmp_path / "union-6.safetensors", torch.float32, "cpu")
    with pytest.raises(ValueError, match="union-6.safetensors.*6 control types.*type 7"):
        ours(handle, "repaint")


@pytest.mark.slow  # three SDXL samplings: ~35 s on a shared 2-core machine
def test_ksampler_with_a_typed_union_controlnet_equals_the_union_pipeline(tmp_path):
    """ControlNetLoader → SetUnionControlNetType → Apply ControlNet, against StableDiffusionXLControlNetUnionPipeline
    given the same type (its control_mode numbers are ComfyUI's)."""
    executor, modules, folder = executor_with_checkpoint(tmp_path, SDXL_BASE, "tiny-sdxl")
    made = tiny_union(modules["unet"], 1)
    save_file({k: v.contiguous() for k, v in made.state_dict().items()}, str(folder / "union.safetensors"))
    graph = sdxl_graph()
    graph["cn"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "union.safetensors"}}
    graph["type"] = {"class_type": "SetUnionControlNetType", "inputs": {
        "control_net": ["cn", 0], "type": "canny/lineart/anime_lineart/mlsd"}}
    graph["hint"] = {"class_type": "TestHintImage", "inputs": {"seed": 5}}
    graph["apply"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "control_net": ["type", 0], "image": ["hint", 0],
        "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}}
    graph["3"]["inputs"].update(positive=["apply", 0], negative=["apply", 1])
    ours = run_ours(executor, graph)
    expected = reference(ours, made, None, 0.8, StableDiffusionXLControlNetUnionPipeline,
                         control_image=[hint(5)], control_mode=[CANNY])
    assert difference(ours, expected) < TOLERANCE
    assert difference(run_ours(executor, sdxl_graph()), expected) > 100 * TOLERANCE, "the ControlNet must matter"
