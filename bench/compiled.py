"""Eager against compiled UNet paths on this CPU: one CFG call (batch 2) of the full-size SD1.5 UNet layout.

    python bench/compiled.py [--sizes 256,512] [--repeats 3] [--variants fp32,inductor-fp32,openvino-fp32]

Prints the CPU model, each variant's one-time compile seconds, its PSNR against fp32 eager on the same
input (peak = the reference's largest magnitude), and seconds per call (min and median of interleaved
repeats: the machine may be shared). Random weights with the real shapes: compute costs what SD1.5 costs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.model_patches import cpu_model, isa_cap_note  # noqa: E402
from nodes.models.family import SD15  # noqa: E402
from nodes.models.modules import build_unet  # noqa: E402
from nodes.models.shipped_configs import shipped_configs  # noqa: E402

Call = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


WIDTH = [320]  # first-level channels: SD1.5's 320, or less where memory is short (--width)
_UNETS: dict[torch.dtype, torch.nn.Module] = {}


def randomised(module: torch.nn.Module) -> torch.nn.Module:
    """The module with random weights of a trained model's scale: normal over fan-in for matrices and
    kernels, about 1 for norm weights, about 0 for biases (torch's global generator)."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            fan_in = math.prod(tensor.shape[1:]) if tensor.dim() >= 2 else 0
            if not tensor.is_floating_point():
                continue
            if fan_in:
                tensor.normal_(0.0, 1.0 / math.sqrt(fan_in))
            else:
                tensor.copy_(1.0 + 0.02 * torch.randn_like(tensor) if name.endswith("weight")
                             else 0.02 * torch.randn_like(tensor))
    return module


def random_unet(dtype: torch.dtype) -> torch.nn.Module:
    """One UNet per dtype, shared by the variants (the full-size fp32 UNet is 3.4 GB; compilers copy it)."""
    if dtype in _UNETS:
        return _UNETS[dtype]
    torch.manual_seed(0)
    config = shipped_configs(SD15).unet
    config.update(block_out_channels=[WIDTH[0] * k for k in (1, 2, 4, 4)])
    unet = randomised(build_unet(config).to_empty(device="cpu").eval())
    _UNETS[dtype] = unet.to(dtype=dtype, memory_format=torch.channels_last)
    return unet


class SampleOnly(torch.nn.Module):
    """The UNet returning its sample tensor (what tracers and compilers want)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, embeds):
        return self.unet(x, t, encoder_hidden_states=embeds).sample


def eager(dtype: torch.dtype) -> Callable[[tuple], Call]:
    def make(example: tuple) -> Call:
        module = SampleOnly(random_unet(dtype))
        return lambda x, t, e: module(x.to(dtype), t, e.to(dtype)).float()
    return make


def inductor(dtype: torch.dtype) -> Callable[[tuple], Call]:
    def make(example: tuple) -> Call:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        module = torch.compile(SampleOnly(random_unet(dtype)), dynamic=False)
        return lambda x, t, e: module(x.to(dtype), t, e.to(dtype)).float()
    return make


_OPENVINO_CACHE: list = []  # one graph cache for the run: the first size traces, later sizes reuse the graph


def openvino_fp32(example: tuple) -> Call:
    """What `--compile on` does (nodes/models/compiled.py): trace the graph once per architecture and shape
    class from stand-in weights, then read it, put the UNet's weights in and compile for the call's shapes."""
    import tempfile

    from nodes.models.compile_cache import CompileCache
    from nodes.models.compiled import CompiledUnets

    if not _OPENVINO_CACHE:
        _OPENVINO_CACHE.append(tempfile.TemporaryDirectory())
    unets = CompiledUnets(CompileCache(Path(_OPENVINO_CACHE[0].name)))
    unet = random_unet(torch.float32)
    inputs = tuple(t.clone() for t in example)
    start = time.perf_counter()
    unets.compiled(unet, (), inputs, lambda text: None)
    first_s = time.perf_counter() - start
    unets.clear_memory()  # as a new process with the graph on disk: read it, put the weights in, compile
    start = time.perf_counter()
    compiled = unets.compiled(unet, (), inputs, lambda text: None)
    cached_s = time.perf_counter() - start
    print(f"    openvino: {'traced and compiled' if unets.compilations else 'graph from the cache, compiled'} "
          f"in {first_s:.1f} s; from the cached graph (read, weights put in, compiled) in {cached_s:.1f} s",
          flush=True)
    return lambda x, t, e: torch.from_numpy(compiled([x.numpy(), t.numpy(), e.numpy()])[0].copy())


VARIANTS = {"fp32": eager(torch.float32), "inductor-fp32": inductor(torch.float32), "openvino-fp32": openvino_fp32,
            "bf16": eager(torch.bfloat16), "inductor-bf16": inductor(torch.bfloat16)}


def psnr(output: torch.Tensor, reference: torch.Tensor) -> float:
    mse = float(((output - reference) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(float(reference.abs().max()) ** 2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=320, help="first-level channels (SD1.5: 320)")
    parser.add_argument("--variants", default="fp32,inductor-fp32,openvino-fp32,bf16,inductor-bf16")
    args = parser.parse_args()
    names = args.variants.split(",")
    WIDTH[0] = args.width
    print(f"CPU: {cpu_model()}{isa_cap_note()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"UNet width {args.width}")
    for size in map(int, args.sizes.split(",")):
        generator = torch.Generator().manual_seed(1)
        example = (torch.randn(2, 4, size // 8, size // 8, generator=generator), torch.tensor([500.0, 500.0]),
                   torch.randn(2, 77, 768, generator=generator))
        calls: dict[str, Call] = {}
        compile_s: dict[str, float] = {}
        outputs: dict[str, torch.Tensor] = {}
        for name in names:
            start = time.perf_counter()
            with torch.inference_mode(name != "openvino-fp32"), torch.no_grad():
                call = VARIANTS[name](example)
                outputs[name] = call(*example)  # the first call compiles
            compile_s[name] = time.perf_counter() - start
            calls[name] = call
            print(f"  {size} px {name}: ready in {compile_s[name]:.1f} s", flush=True)
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeats):
            for name in names:  # interleaved: load changes on a shared machine hit every variant alike
                with torch.inference_mode(name != "openvino-fp32"), torch.no_grad():
                    start = time.perf_counter()
                    calls[name](*example)
                    times[name].append(time.perf_counter() - start)
        base = min(times[names[0]])
        print(f"{size} px, batch 2 ({args.repeats} repeats): variant, first call incl. compile, PSNR vs "
              f"{names[0]}, s/call min, median, ratio of mins")
        for name in names:
            print(f"  {name:15s} {compile_s[name]:7.1f} s  {psnr(outputs[name], outputs[names[0]]):6.1f} dB  "
                  f"{min(times[name]):6.2f}  {statistics.median(times[name]):6.2f}  {min(times[name]) / base:5.2f}×",
                  flush=True)


if __name__ == "__main__":
    main()
