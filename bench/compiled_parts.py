"""The parts around the UNet through OpenVINO: is compiling the VAE decoder or the text encoder worth it?

    python bench/compiled_parts.py [--sizes 256,512] [--repeats 2]

Full-size SD1.5 layouts with random weights, fp32, 2 threads as configured. For the VAE decoder: the one-time
conversion + compile, then seconds per decode, eager against OpenVINO (interleaved; minimum of the repeats),
and the largest difference. For the text encoder (CLIP-L, batch 2 as positive + negative): eager seconds per
encode, and whether OpenVINO converts it at all.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.compiled import randomised  # noqa: E402
from bench.model_patches import cpu_model  # noqa: E402
from nodes.models.family import SD15  # noqa: E402
from nodes.models.modules import build_text_encoder, build_vae  # noqa: E402
from nodes.models.shipped_configs import shipped_configs  # noqa: E402


class Decode(torch.nn.Module):
    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, latent):
        return self.vae.decode(latent).sample


class Encode(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, ids):
        return self.encoder(ids).last_hidden_state


def seconds(call, *args) -> float:
    start = time.perf_counter()
    call(*args)
    return time.perf_counter() - start


def vae_part(sizes: list[int], repeats: int) -> None:
    import openvino as ov

    torch.manual_seed(0)
    config = shipped_configs(SD15).vae
    decode = Decode(randomised(build_vae(config).to_empty(device="cpu").eval()).to(memory_format=torch.channels_last))
    for size in sizes:
        latent = torch.randn(1, 4, size // 8, size // 8)
        start = time.perf_counter()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = ov.convert_model(decode, example_input=(latent,))
        compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        ready_s = time.perf_counter() - start
        compiled([latent.numpy()])
        with torch.inference_mode():
            reference = decode(latent)
        eager_s, openvino_s = [], []
        for _ in range(repeats):
            with torch.inference_mode():
                eager_s.append(seconds(decode, latent))
            openvino_s.append(seconds(compiled, [latent.numpy()]))
        output = torch.from_numpy(compiled([latent.numpy()])[0].copy())
        print(f"  VAE decode {size} px: converted and compiled in {ready_s:.1f} s; eager {min(eager_s):.2f} s, "
              f"OpenVINO {min(openvino_s):.2f} s ({min(openvino_s) / min(eager_s):.2f}x), "
              f"max difference {float((output - reference).abs().max()):.1e}", flush=True)


def text_encoder_part(repeats: int) -> None:
    import openvino as ov

    configs = shipped_configs(SD15).text_encoders
    config = next(iter(configs.values())) if isinstance(configs, dict) else configs[0]
    encode = Encode(build_text_encoder(config).eval())
    ids = torch.randint(0, 49407, (2, 77))
    with torch.inference_mode():
        encode(ids)
        eager_s = min(seconds(encode, ids) for _ in range(repeats))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ov.convert_model(encode, example_input=(ids,))
        converts = "converts"
    except Exception as exc:  # the converter's own error type; reported, not raised
        converts = f"does not convert as is ({str(exc).strip().splitlines()[-1][:80]})"
    print(f"  text encoder (CLIP-L, batch 2): eager {eager_s:.3f} s per encode; OpenVINO {converts}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    vae_part([int(s) for s in args.sizes.split(",")], args.repeats)
    text_encoder_part(max(args.repeats, 5))


if __name__ == "__main__":
    main()
