"""NNLatentUpscale (Ttl/ComfyUi_NNLatentUpscale) against the pack's LatentResizer, written out below as plain
tensor maths from its public layout (latent_resizer.py), with the pack's scaling around it (nn_upscale.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes.models.latent_resizer import LatentResizerFileError, load_latent_resizer
from nodes.packs.known_packs import explain_missing_node
from nodes.packs.nn_latent_upscale import NNLatentUpscale

CHANNELS = 32
EMBED = 32
PACK_SCALE = 0.13025   # nn_upscale.py's self.scale_factor, for both versions


def block_kinds(blocks: int) -> list[str]:
    """The pack's block list: an attention block before residual blocks 1 and blocks-1."""
    kinds = []
    for b in range(blocks):
        if b in (1, blocks - 1):
            kinds.append("attn")
        kinds.append("res")
    return kinds


def random_resizer(seed: int, in_blocks: int = 3, out_blocks: int = 2) -> dict[str, torch.Tensor]:
    """Random weights under the pack's state dict keys and shapes."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.1, offset=0.0):
        return torch.randn(*shape, generator=gen) * scale + offset

    sd = {"conv_in.weight": rand(CHANNELS, 4, 3, 3), "conv_in.bias": rand(CHANNELS),
          "embed.0.weight": rand(EMBED, 1, scale=1.0), "embed.0.bias": rand(EMBED),
          "embed.2.weight": rand(EMBED, EMBED, scale=0.2), "embed.2.bias": rand(EMBED),
          "norm_out.weight": rand(CHANNELS, offset=1.0), "norm_out.bias": rand(CHANNELS),
          "conv_out.weight": rand(4, CHANNELS, 3, 3), "conv_out.bias": rand(4)}
    for stack, blocks in (("in_blocks", in_blocks), ("out_blocks", out_blocks)):
        for i, kind in enumerate(block_kinds(blocks)):
            p = f"{stack}.{i}."
            if kind == "attn":
                sd |= {p + "norm.weight": rand(CHANNELS, offset=1.0), p + "norm.bias": rand(CHANNELS)}
                for name in ("q", "k", "v", "proj_out"):
                    sd |= {p + name + ".weight": rand(CHANNELS, CHANNELS, 1, 1), p + name + ".bias": rand(CHANNELS)}
            else:
                sd |= {p + "in_layers.0.weight": rand(CHANNELS, offset=1.0), p + "in_layers.0.bias": rand(CHANNELS),
                       p + "in_layers.2.weight": rand(CHANNELS, CHANNELS, 3, 3), p + "in_layers.2.bias": rand(CHANNELS),
                       p + "emb_layers.1.weight": rand(CHANNELS, EMBED), p + "emb_layers.1.bias": rand(CHANNELS),
                       p + "out_layers.0.weight": rand(CHANNELS, offset=1.0), p + "out_layers.0.bias": rand(CHANNELS),
                       p + "out_layers.3.weight": rand(CHANNELS, CHANNELS, 3, 3),
                       p + "out_layers.3.bias": rand(CHANNELS)}
    return sd


def reference_resizer(sd: dict, x: torch.Tensor, scale: float) -> torch.Tensor:
    """The pack's LatentResizer.forward(x, scale=scale), step by step on the state dict."""
    size = (int(round(x.shape[-2] * scale)), int(round(x.shape[-1] * scale)))
    if size == tuple(x.shape[-2:]):
        return x

    def norm(h, p):
        return F.group_norm(h, 32, sd[p + ".weight"], sd[p + ".bias"], eps=1e-5)

    def conv(h, p, padding):
        return F.conv2d(h, sd[p + ".weight"], sd[p + ".bias"], padding=padding)

    emb = F.linear(F.silu(F.linear(torch.tensor([[scale - 1]]), sd["embed.0.weight"], sd["embed.0.bias"])),
                   sd["embed.2.weight"], sd["embed.2.bias"])

    def block(h, p):
        if p + ".q.weight" in sd:
            b, c, hh, ww = h.shape
            n = norm(h, p + ".norm")
            q, k, v = (conv(n, f"{p}.{name}", 0).reshape(b, c, hh * ww) for name in ("q", "k", "v"))
            weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(c), dim=-1)
            out = torch.einsum("bij,bcj->bci", weights, v).reshape(b, c, hh, ww)
            return h + conv(out, p + ".proj_out", 0)
        inner = conv(F.silu(norm(h, p + ".in_layers.0")), p + ".in_layers.2", 1)
        projected = F.linear(F.silu(emb), sd[p + ".emb_layers.1.weight"], sd[p + ".emb_layers.1.bias"])
        inner = inner + projected[..., None, None]
        return h + conv(F.silu(norm(inner, p + ".out_layers.0")), p + ".out_layers.3", 1)

    def stack(h, name):
        count = len({k.split(".")[1] for k in sd if k.startswith(name + ".")})
        for i in range(count):
            h = block(h, f"{name}.{i}")
        return h

    h = stack(conv(x, "conv_in", 1), "in_blocks")
    h = stack(F.interpolate(h, size=size, mode="bilinear"), "out_blocks")
    return conv(F.silu(norm(h, "norm_out")), "conv_out", 1)


@pytest.fixture(scope="module")
def resizers(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    folder = root / "latent_upscale_models"
    folder.mkdir()
    weights = {"SDXL": random_resizer(1), "SD 1.x": random_resizer(2, in_blocks=2, out_blocks=3)}
    torch.save(weights["SDXL"], folder / "sdxl_resizer.pt")
    torch.save(weights["SD 1.x"], folder / "sd15_resizer.pt")
    return root, weights


def ctx_for(root):
    return RunContext(node_id="1", prompt_id="test", paths=Paths(root, root / "in", root / "out", root / "tmp"),
                      interrupt=InterruptHandle(), emit=lambda *_: None, settings={"precision": "fp32"})


def test_the_reference_block_list_is_the_packs():
    # LatentResizer(in_blocks=10): attention before blocks 1 and 9, so 12 modules, attention at 1 and 10.
    assert [i for i, kind in enumerate(block_kinds(10)) if kind == "attn"] == [1, 10]
    assert len(block_kinds(10)) == 12


@pytest.mark.parametrize("version", ["SDXL", "SD 1.x"])
@pytest.mark.parametrize("upscale", [1.5, 1.37, 2.0])
def test_the_node_equals_the_packs_resizer_with_its_latent_scaling(resizers, version, upscale):
    root, weights = resizers
    latent = torch.randn(2, 4, 8, 10, generator=torch.Generator().manual_seed(5)) * 6
    (out,) = NNLatentUpscale().run(ctx_for(root), {"samples": latent, "batch_index": [0, 1]}, version, upscale)
    expected = reference_resizer(weights[version], PACK_SCALE * latent, upscale) / PACK_SCALE
    assert set(out) == {"samples"}   # the pack returns samples only
    assert out["samples"].shape == (2, 4, round(8 * upscale), round(10 * upscale))
    torch.testing.assert_close(out["samples"], expected, atol=1e-4, rtol=1e-4)


def test_each_version_reads_its_own_file(resizers):
    root, _ = resizers
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    sdxl = NNLatentUpscale().run(ctx_for(root), {"samples": latent}, "SDXL", 1.5)[0]["samples"]
    sd15 = NNLatentUpscale().run(ctx_for(root), {"samples": latent}, "SD 1.x", 1.5)[0]["samples"]
    assert (sdxl - sd15).abs().max() > 1e-2


def test_an_upscale_that_keeps_the_size_returns_the_latent(resizers):
    root, _ = resizers
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7))
    # round(8 * 1.06) == 8: the pack's resizer hands its input back.
    out = NNLatentUpscale().run(ctx_for(root), {"samples": latent}, "SDXL", 1.06)[0]["samples"]
    torch.testing.assert_close(out, latent)


def test_a_missing_resizer_file_fails_validation_naming_the_file_and_folder(tmp_path):
    problem = NNLatentUpscale().validate_inputs(Paths(tmp_path), version="SD 1.x")
    assert isinstance(problem, str)
    assert "sd15_resizer.pt" in problem and str(tmp_path / "latent_upscale_models") in problem
    assert "Ttl/ComfyUi_NNLatentUpscale" in problem
    with pytest.raises(FileNotFoundError, match="sd15_resizer.pt"):
        NNLatentUpscale().run(ctx_for(tmp_path), {"samples": torch.zeros(1, 4, 8, 8)}, "SD 1.x", 1.5)


def test_the_validation_passes_and_the_fingerprint_follows_the_file(resizers, tmp_path):
    root, weights = resizers
    assert NNLatentUpscale().validate_inputs(Paths(root), version="SDXL") is None
    assert NNLatentUpscale().fingerprint(Paths(tmp_path), version="SDXL") == "missing"
    assert NNLatentUpscale().fingerprint(Paths(root), version="SDXL") != "missing"


def test_a_file_of_another_model_is_refused_by_name(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(LatentResizerFileError, match="other.pt"):
        load_latent_resizer(tmp_path / "other.pt")
    broken = random_resizer(3)
    del broken["in_blocks.0.in_layers.2.weight"]
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(LatentResizerFileError, match="broken.pt"):
        load_latent_resizer(tmp_path / "broken.pt")


def test_object_info_matches_the_packs_declaration():
    registry = NodeRegistry()
    registry.load_package("nodes.packs")
    info = registry.object_info()["NNLatentUpscale"]
    # INPUT_TYPES of nn_upscale.py ("display": "number" is how the frontend draws it, not declared here).
    assert list(info["input"]["required"]) == ["latent", "version", "upscale"]
    assert info["input"]["required"]["latent"][0] == "LATENT"
    assert list(info["input"]["required"]["version"][0]) == ["SDXL", "SD 1.x"]
    upscale = info["input"]["required"]["upscale"]
    assert upscale[0] == "FLOAT"
    assert {k: upscale[1][k] for k in ("default", "min", "max", "step")} == {
        "default": 1.5, "min": 1.0, "max": 2.0, "step": 0.01}
    assert info["output"] == ["LATENT"] and info["category"] == "latent"
    # The pack's display-name entry is keyed "NNlLatentUpscale" (sic), so ComfyUI shows the class name.
    assert info["display_name"] == "NNLatentUpscale"
    assert explain_missing_node("NNLatentUpscale") is None   # no longer listed as a pack we do not build
