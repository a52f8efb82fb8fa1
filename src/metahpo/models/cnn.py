"""cnn family: a two-block convolutional net for small images (8x8 digits up to 32x32 and beyond)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from metahpo.models.base import FAMILIES, Family, PreparedData, PreparedSplit
from metahpo.models.mlp import SPLITS, split_arrays, standardize

POOLED_SIZE = 2


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, filters: int, dropout: float, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_block(in_channels, filters),
            # ceil_mode keeps odd sizes (and 1x1 inputs) poolable
            nn.MaxPool2d(2, ceil_mode=True),
            conv_block(filters, filters),
            # a fixed 2x2 output makes the head independent of the input size yet keeps coarse layout
            nn.AdaptiveAvgPool2d(POOLED_SIZE),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(filters * POOLED_SIZE**2, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def prepare_images(data, info: dict[str, Any]) -> PreparedData:
    """Canonical uint8 (H, W, C) images -> standardised float NCHW tensors under the input ``x``.

    Shared by every image family (cnn, resnet18, vit); ``PreparedData.info`` holds in_channels and
    input_shape ([H, W, C]).
    """
    arrays = {name: split_arrays(data[name]) for name in SPLITS}
    # uint8 HWC -> float NCHW in [0, 1], then per-channel train mean/std
    images = [(arrays[name][0] / 255.0).transpose(0, 3, 1, 2) for name in SPLITS]
    scaled = standardize(*images, axis=(0, 2, 3))
    splits = {
        name: PreparedSplit({"x": torch.from_numpy(x).contiguous()}, torch.from_numpy(arrays[name][1]))
        for name, x in zip(SPLITS, scaled)
    }
    return PreparedData(
        **splits,
        num_classes=int(info["num_classes"]),
        info={"in_channels": int(scaled[0].shape[1]), "input_shape": list(arrays["train"][0].shape[1:])},
    )


class CNNFamily(Family):
    name = "cnn"
    modalities = ("image",)
    hyperparameters = ("lr", "batch_size", "filters", "dropout")

    def prepare(self, data, info: dict[str, Any], options: BaseModel) -> PreparedData:
        return prepare_images(data, info)

    def build(self, config: dict[str, Any], data: PreparedData, options: BaseModel) -> nn.Module:
        return SmallCNN(
            in_channels=data.info["in_channels"],
            filters=int(config["filters"]),
            dropout=float(config["dropout"]),
            num_classes=data.num_classes,
        )


FAMILIES.register(CNNFamily.name, CNNFamily())
