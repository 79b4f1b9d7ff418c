"""Would fewer multiplications make the exact path's per-step target reachable? Winograd F(4×4, 3×3).

    python bench/winograd.py [--size 512] [--repeats 3]

bench/roofline.py shows eager fp32 already near this CPU's fp32 peak, so an exact path can only win by doing
fewer multiply-adds. Winograd's F(4×4, 3×3) computes a 3×3 convolution's 4×4 output tile with 36 products
instead of 144 (Lavin & Gray, 2016), at an error far below the exact path's 45 dB bar. This measures it on
the full-size SD1.5 UNet layout (random weights, CFG batch 2), written in torch operations: the input tiles
transformed by one small matrix product, 36 batched products with the weights transformed once, the output
transformed back, a few tile rows at a time so that each chunk stays in cache.
- per 3×3, stride-1 convolution shape: oneDNN's direct convolution against the Winograd form, and the
  Winograd form's largest error against a float64 convolution;
- per UNet call: eager, and eager with each convolution whose shape Winograd won switched to it (its
  output's PSNR against eager's). The exact path's warm per-step target is ≤ 0.65× fp32 eager.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.compiled import psnr, random_unet  # noqa: E402
from bench.model_patches import cpu_model, isa_cap_note  # noqa: E402
from bench.roofline import best_seconds  # noqa: E402

# F(4×4, 3×3): input tiles 6×6 (B), weights 3×3 → 6×6 (G), products back to 4×4 outputs (A).
B_T = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
A_T = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float64)
TILE, OUT = 6, 4
INPUT_TRANSFORM = torch.kron(B_T, B_T).float()  # 36×36: a flattened 6×6 tile to its transform
OUTPUT_TRANSFORM = torch.kron(A_T, A_T).float()  # 16×36


class Winograd(torch.nn.Module):
    """A 3×3, stride-1, padding-1 convolution in F(4×4, 3×3), `rows` tile rows per chunk."""

    def __init__(self, conv: torch.nn.Conv2d, rows: int):
        super().__init__()
        weight = conv.weight.detach().double()
        self.kernel = torch.einsum("ij,kcjl,ml->imck", G, weight, G).reshape(TILE * TILE, weight.shape[1],
                                                                             weight.shape[0]).float().contiguous()
        self.bias = None if conv.bias is None else conv.bias.detach().view(1, -1, 1, 1)
        self.rows = rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tiles_h, tiles_w = -(-height // OUT), -(-width // OUT)
        padded = F.pad(x, (1, tiles_w * OUT + 1 - width, 1, tiles_h * OUT + 1 - height))
        s = padded.stride()
        outputs = self.kernel.shape[2]
        out = torch.empty(batch, outputs, tiles_h * OUT, tiles_w * OUT)
        for n in range(batch):
            for row in range(0, tiles_h, self.rows):
                rows = min(self.rows, tiles_h - row)
                tiles = padded[n].as_strided((TILE, TILE, rows, tiles_w, channels),
                                             (s[2], s[3], s[2] * OUT, s[3] * OUT, s[1]), s[0] * n + s[2] * OUT * row)
                moved = torch.mm(INPUT_TRANSFORM, tiles.reshape(TILE * TILE, -1)).view(TILE * TILE, -1, channels)
                products = torch.bmm(moved, self.kernel)
                back = torch.mm(OUTPUT_TRANSFORM, products.view(TILE * TILE, -1)).view(OUT, OUT, rows, tiles_w, -1)
                out[n, :, row * OUT:(row + rows) * OUT].view(outputs, rows, OUT, tiles_w, OUT).copy_(
                    back.permute(4, 2, 0, 3, 1))
        out = out[:, :, :height, :width]
        return out if self.bias is None else out + self.bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}{isa_cap_note()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    unet = random_unet(torch.float32)
    latent = args.size // 8
    inputs = (torch.randn(2, 4, latent, latent), torch.full((2,), 500.0), torch.randn(2, 77, 768))
    seen: dict[torch.nn.Conv2d, tuple[int, int, int, int]] = {}

    def note(module: torch.nn.Conv2d, args: tuple) -> None:
        seen.setdefault(module, (*module.weight.shape[:2], *args[0].shape[-2:]))

    hooks = [module.register_forward_pre_hook(note) for module in unet.modules()
             if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3) and module.stride == (1, 1)
             and module.padding == (1, 1) and module.in_channels >= 64]
    with torch.inference_mode():
        reference = unet(*inputs[:2], encoder_hidden_states=inputs[2]).sample
        for hook in hooks:
            hook.remove()
        counts = Counter(seen.values())
        chosen: dict[tuple[int, int, int, int], int] = {}
        direct_total = best_total = 0.0
        print(f"\n3×3 convolutions of one call at {args.size} px, batch 2 (out, in, height, width) × count: "
              "direct ms, Winograd ms (tile rows per chunk), largest error against float64")
        for shape, count in sorted(counts.items(), key=lambda item: -item[1] * math.prod(item[0])):
            conv = next(m for m, s in seen.items() if s == shape)
            x = torch.randn(2, shape[1], shape[2], shape[3])
            direct = best_seconds(args.repeats, conv, x)
            timed = {rows: best_seconds(args.repeats, Winograd(conv, rows), x) for rows in (2, 4, 16)
                     if rows <= -(-shape[2] // OUT)}
            rows, seconds = min(timed.items(), key=lambda item: item[1])
            exact = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
            error = float((Winograd(conv, rows)(x).double() - exact).abs().max())
            if seconds < direct:
                chosen[shape] = rows
            direct_total += count * direct
            best_total += count * min(direct, seconds)
            print(f"  {shape} × {count:2}: direct {direct * 1e3:7.1f}  Winograd {seconds * 1e3:7.1f} ({rows:2}) "
                  f"{seconds / direct:5.2f}×  error {error:.1e} (output up to {float(exact.abs().max()):.1f})")
        print(f"  all of them: {direct_total:.2f} s direct, {best_total:.2f} s with each shape's faster form "
              f"({best_total / direct_total:.2f}×)")
        eager = best_seconds(args.repeats, lambda: unet(*inputs[:2], encoder_hidden_states=inputs[2]))
        for module, shape in seen.items():
            if shape in chosen:
                module.forward = Winograd(module, chosen[shape]).forward  # type: ignore[method-assign]
        output = unet(*inputs[:2], encoder_hidden_states=inputs[2]).sample
        switched = best_seconds(args.repeats, lambda: unet(*inputs[:2], encoder_hidden_states=inputs[2]))
    print(f"\nUNet call at {args.size} px: eager {eager:.2f} s, with Winograd where it won {switched:.2f} s "
          f"({switched / eager:.2f}× eager; the target is ≤ 0.65×), "
          f"PSNR against eager {psnr(output, reference):.1f} dB")


if __name__ == "__main__":
    main()
