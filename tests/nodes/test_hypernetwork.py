"""HypernetworkLoader: an A1111 hypernetwork file changes every attention's key and value inputs by
x + strength·mlp(x), the MLP as worked out by hand; the model is exactly as before afterwards."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from nodes.model_patches import HypernetworkLoader
from nodes.models.family import SD15
from nodes.models.handles import ModelHandle
from nodes.models.hypernetwork import read_hypernetwork
from nodes.models.patching import model_patches_applied
from nodes.models.state_dict_files import CheckpointFileError
from nodes.models.tiny import tiny_modules
from nodes.sampling import ModelSampling

WIDTH = 32  # the tiny UNet's cross-attention context and first-level width; its second level (64) is not in the file


class A1111HypernetworkModule(torch.nn.Module):
    """The layout A1111 trains and saves: `linear` holds Linear, activation, LayerNorm, Dropout, Linear,
    LayerNorm (with layer norm on, one follows every Linear; no activation or dropout after the last)."""

    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.linear = torch.nn.Sequential(torch.nn.Linear(WIDTH, 2 * WIDTH), torch.nn.ReLU(),
                                          torch.nn.LayerNorm(2 * WIDTH), torch.nn.Dropout(0.3),
                                          torch.nn.Linear(2 * WIDTH, WIDTH), torch.nn.LayerNorm(WIDTH))
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


@pytest.fixture(scope="module")
def hypernetwork_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    (root / "hypernetworks").mkdir()
    generator = torch.Generator().manual_seed(3)
    key_net, value_net = A1111HypernetworkModule(generator), A1111HypernetworkModule(generator)
    data = {WIDTH: [key_net.state_dict(), value_net.state_dict()], "step": 100, "name": "tiny",
            "layer_structure": [1, 2, 1], "activation_func": "relu", "is_layer_norm": True,
            "weight_initialization": "Normal", "use_dropout": True, "dropout_structure": [0, 0.3, 0],
            "activate_output": False, "last_layer_dropout": False, "sd_checkpoint": None,
            "sd_checkpoint_name": None}
    torch.save(data, root / "hypernetworks" / "tiny.pt")
    return root, key_net.state_dict(), value_net.state_dict()


@pytest.fixture(scope="module")
def model():
    return ModelHandle(tiny_modules(SD15, 6)["unet"], SD15, ModelSampling("epsilon"), "tiny")


def context(root) -> RunContext:
    return RunContext(node_id="1", prompt_id="test", paths=Paths(root, root / "in", root / "out", root / "tmp"),
                      interrupt=InterruptHandle(), emit=lambda event, data: None, settings={"precision": "fp32"})


def layer_norm_by_hand(weights, name, x):
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * weights[f"{name}.weight"] + weights[f"{name}.bias"]


def mlp_by_hand(weights, x):
    hidden = torch.relu(x @ weights["linear.0.weight"].T + weights["linear.0.bias"])
    hidden = layer_norm_by_hand(weights, "linear.2", hidden)
    # ComfyUI counts the LayerNorms among the layers, so the last Linear is not "last" and is activated too
    # (A1111 would leave it linear): matched on purpose, ComfyUI's images are the reference.
    hidden = torch.relu(hidden @ weights["linear.4.weight"].T + weights["linear.4.bias"])
    return layer_norm_by_hand(weights, "linear.5", hidden)


def test_keys_and_values_are_computed_from_x_plus_strength_times_the_mlp(hypernetwork_file, model):
    root, key_weights, value_weights = hypernetwork_file
    patched = HypernetworkLoader().run(context(root), model, "tiny.pt", 0.7)[0]
    cross = model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    wider = model.unet.mid_block.attentions[0].transformer_blocks[0].attn1  # 64 wide: no net for it
    text = torch.randn(2, 7, WIDTH, generator=torch.Generator().manual_seed(0))
    hidden = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(1))
    with model_patches_applied(patched), torch.no_grad():
        keys, values, wider_keys = cross.to_k(text), cross.to_v(text), wider.to_k(hidden)
    with torch.no_grad():
        assert torch.allclose(keys, F.linear(text + 0.7 * mlp_by_hand(key_weights, text), cross.to_k.weight), atol=1e-5)
        assert torch.allclose(values, F.linear(text + 0.7 * mlp_by_hand(value_weights, text), cross.to_v.weight),
                              atol=1e-5)
        assert torch.equal(wider_keys, wider.to_k(hidden))


def test_the_unet_output_changes_only_while_sampling(hypernetwork_file, model):
    root = hypernetwork_file[0]
    patched = HypernetworkLoader().run(context(root), model, "tiny.pt", 1.0)[0]
    generator = torch.Generator().manual_seed(2)
    x, embeds = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 77, WIDTH, generator=generator)
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}

    def output(handle):
        with model_patches_applied(handle) as unet, torch.no_grad():
            return unet(x, torch.tensor([500.0]), encoder_hidden_states=embeds).sample

    plain = output(model)
    assert not torch.allclose(output(patched), plain, atol=1e-5)
    assert torch.equal(output(model), plain)
    assert all(torch.equal(v, before[k]) for k, v in model.unet.state_dict().items())
    assert not any(m._forward_pre_hooks for m in model.unet.modules())


def test_a_file_that_is_not_a_hypernetwork_is_an_error_naming_it(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointFileError, match="other.pt"):
        read_hypernetwork(tmp_path / "other.pt")
    torch.save({32: [{}, {}], "activation_func": "gelu"}, tmp_path / "gelu.pt")
    with pytest.raises(CheckpointFileError, match="gelu"):
        read_hypernetwork(tmp_path / "gelu.pt")
