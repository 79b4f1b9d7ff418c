"""What loading a checkpoint costs in memory: a converted model never sits beside the whole file.

An fp16 file loaded as fp32 (or relaid channels_last) is copied tensor by tensor, and each
tensor's mapped pages are released once copied, so the peak is about the converted model plus
one tensor, not the model plus the file. Weights that need no copy stay views of the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nodes.models.checkpoint import load_checkpoint
from nodes.models.family import SD15
from nodes.models.ldm_export import export_ldm_checkpoint
from nodes.models.modules import build_text_encoder, build_unet, build_vae
from tests.nodes.checkpoints import save_tiny_checkpoint, tiny_configs

ROOT = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not Path("/proc/self/statm").is_file() or sys.platform != "linux",
                                reason="reads /proc and relies on MADV_DONTNEED's Linux semantics")

# Loads `argv[2]` at fp32 in a fresh process after a warm-up load of `argv[1]` (imports, first-use
# allocations), and prints the resident set before, the peak during, and the loaded model's bytes.
_MEASURE = """
import json, os, sys
import torch
from nodes.models.checkpoint import load_checkpoint
load_checkpoint(sys.argv[1], dtype=torch.float32)
with open("/proc/self/statm") as f:
    before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
loaded = load_checkpoint(sys.argv[2], dtype=torch.float32)
# VmHWM is this process's own peak; ru_maxrss would also count the parent's, which a vfork-based
# spawn hands over at exec (a whole-suite pytest parent is larger than this process ever gets).
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
modules = [loaded.unet, loaded.vae, *loaded.text_encoders]
model = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
print(json.dumps({"before": before, "peak": peak, "model": model}))
"""


def _fp16_checkpoint(path: Path) -> Path:
    """An SD1.5-layout fp16 file of about 150 MB whose bulk is many mid-sized UNet tensors (the
    largest is ~5 MB), so one tensor in flight is small against the whole file."""
    configs = tiny_configs(SD15)
    configs.unet.update(block_out_channels=[256, 512], layers_per_block=2)
    generator = torch.Generator().manual_seed(3)

    def random_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: torch.empty(tuple(v.shape), dtype=torch.float16).normal_(0, 0.02, generator=generator)
                for k, v in sorted(module.state_dict().items())}

    unet, vae = build_unet(configs.unet), build_vae(configs.vae)
    encoder = build_text_encoder(configs.text_encoders["text_encoder"])
    state = export_ldm_checkpoint(SD15, random_state(unet), unet.config, random_state(vae), vae.config,
                                  [random_state(encoder)])
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.slow
@linux_only
def test_an_fp16_file_loads_as_fp32_without_the_whole_file_resident_beside_it(tmp_path) -> None:
    warm_up, _ = save_tiny_checkpoint(tmp_path, SD15, seed=1)
    path = _fp16_checkpoint(tmp_path / "fp16-150mb.safetensors")
    file_bytes = path.stat().st_size
    assert file_bytes > 120e6
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(warm_up), str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    increase = figures["peak"] - figures["before"]
    assert abs(figures["model"] - 2 * file_bytes) < 0.05 * file_bytes  # fp32: twice the fp16 file
    # Holding the file beside the model would add all of file_bytes; a tensor in flight and the
    # allocator's slack stay far below the half of it allowed here (13 MB measured).
    assert increase <= figures["model"] + file_bytes / 2, (
        f"peak RSS rose {increase / 1e6:.0f} MB loading a {file_bytes / 1e6:.0f} MB fp16 file into a "
        f"{figures['model'] / 1e6:.0f} MB fp32 model")


def test_copied_and_mapped_weights_both_hold_the_files_values(tmp_path) -> None:
    """Channels_last copies only the convolution kernels and releases their pages; the other
    weights stay views of the file, some on pages shared with a released kernel."""
    path, modules = save_tiny_checkpoint(tmp_path, SD15, seed=4)
    loaded = load_checkpoint(path, dtype=torch.float32, memory_format=torch.channels_last)
    for name, module in (("unet", loaded.unet), ("vae", loaded.vae), ("text_encoder", loaded.text_encoders[0])):
        expected = modules[name].state_dict()
        for key, value in module.state_dict().items():
            assert torch.equal(value, expected[key]), f"{name}.{key}"
    assert loaded.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_cast_loads_every_weight_exactly(tmp_path) -> None:
    path, modules = save_tiny_checkpoint(tmp_path, SD15, seed=5)
    loaded = load_checkpoint(path, dtype=torch.bfloat16)
    expected = modules["unet"].state_dict()
    for key, value in loaded.unet.state_dict().items():
        assert value.dtype == torch.bfloat16
        assert torch.equal(value, expected[key].to(torch.bfloat16)), key
