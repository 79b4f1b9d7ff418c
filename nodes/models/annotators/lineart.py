"""The "informative drawings" line generator behind the pack's LineArtPreprocessor (`sk_model.pth`, and
`sk_model2.pth` for coarse lines): a ResNet-style image-to-image net with instance norms, 3 residual blocks.

Module names and order follow the original files' keys (model0..model4, `conv_block`), so they load as they are.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nodes.models.state_dict_files import load_state_dict

LINEART_FILE = "sk_model.pth"
LINEART_COARSE_FILE = "sk_model2.pth"


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class LineartGenerator(nn.Module):
    """RGB in 0..1 → one channel of line strength in 0..1 (1 = no line), at the input's size (a multiple of 4)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, residual_blocks: int = 3) -> None:
        super().__init__()
        self.model0 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, 64, 7), nn.InstanceNorm2d(64),
                                    nn.ReLU())
        self.model1 = nn.Sequential(
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.InstanceNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.InstanceNorm2d(256), nn.ReLU())
        self.model2 = nn.Sequential(*(ResidualBlock(256) for _ in range(residual_blocks)))
        self.model3 = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(128), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(64), nn.ReLU())
        self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, out_channels, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model4(self.model3(self.model2(self.model1(self.model0(x)))))


def load_lineart(path: Path, device: torch.device) -> LineartGenerator:
    """The generator with the weights of an `sk_model*.pth` file (strict: every key must fit)."""
    model = LineartGenerator()
    model.load_state_dict(load_state_dict(path))
    return model.to(device).eval()
