"""The Conv-4 learner of MAML and ProtoNet: 4 x (3x3 conv, BatchNorm, ReLU, 2x2 max-pool), then a head.

The body (``Conv4``) is what meta-learning initialises; the head is per task: a linear layer
started at zero (so one initialization serves any number of ways, and the first inner step makes
it a prototype classifier; Kao et al., ICLR 2022, "MAML is a noisy contrastive learner"), or a
cosine classifier for Baseline++. ``forward`` runs the body on a dict of parameters with
``torch.func.functional_call``, which is how the inner loops differentiate through adaptation.

BatchNorm policy: transductive batch statistics, as in MAML. The few-shot body keeps no running
statistics (``track_running_stats=False``): every forward pass, in meta-training and in
evaluation, normalises with the statistics of the batch it sees (the support set while adapting,
the query set when scoring). Only the affine scale and shift are parameters, adapted like the rest.
Ordinary training from a meta-learned body (the ``conv4`` model family) uses running statistics.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

COSINE_SCALE = 10.0  # Baseline++'s temperature (Chen et al. 2019 use 2 for Conv-4 ... 10 for ResNets)


def conv4_block(in_channels: int, filters: int, track_running_stats: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, filters, kernel_size=3, padding=1),
        nn.BatchNorm2d(filters, track_running_stats=track_running_stats),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),  # ceil: 8x8 digits stay poolable to 1x1
    )


class Conv4(nn.Module):
    """Images (N, C, H, W) -> features (N, filters * h * w), h = w = ceil(H / 16)."""

    def __init__(self, in_channels: int, filters: int = 64, track_running_stats: bool = False) -> None:
        super().__init__()
        self.in_channels, self.filters = in_channels, filters
        self.blocks = nn.Sequential(
            *(conv4_block(in_channels if i == 0 else filters, filters, track_running_stats) for i in range(4))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1)

    def feature_dim(self, image_size: int) -> int:
        side = image_size
        for _ in range(4):
            side = -(-side // 2)
        return self.filters * side * side


def forward(body: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The body's features under ``params`` (names as in ``body.named_parameters()``; a head's and
    Meta-SGD's learning rates, also in the dict, are not the body's)."""
    own = {n: v for n, v in params.items() if not n.startswith(("head.", "lr."))}
    return functional_call(body, own, (x,))


def zero_head(ways: int, dim: int, device: torch.device) -> dict[str, torch.Tensor]:
    return {
        "head.weight": torch.zeros(ways, dim, device=device, requires_grad=True),
        "head.bias": torch.zeros(ways, device=device, requires_grad=True),
    }


def linear_logits(features: torch.Tensor, head: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return F.linear(features, head["head.weight"], head["head.bias"])


def cosine_logits(features: torch.Tensor, head: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Baseline++: scaled cosine similarity between features and class weight vectors."""
    return COSINE_SCALE * F.normalize(features, dim=1) @ F.normalize(head["head.weight"], dim=1).T


def class_means(features: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """(ways, dim) mean feature of each class: ProtoNet's prototypes, Baseline++'s imprinted weights."""
    sums = torch.zeros(ways, features.shape[1], device=features.device, dtype=features.dtype)
    sums = sums.index_add(0, labels, features)
    counts = torch.bincount(labels, minlength=ways).clamp(min=1).to(features.dtype)
    return sums / counts[:, None]


def prototype_logits(query_features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """ProtoNet: negative squared Euclidean distance to each prototype."""
    return -torch.cdist(query_features, prototypes).pow(2)
