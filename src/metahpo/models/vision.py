"""Image families built on transformers' architectures, trained from random init: ``resnet18``, ``vit``.

Both take the tensors of ``metahpo.models.cnn.prepare_images`` (standardised NCHW under ``x``) and
wrap a transformers ``*ForImageClassification`` model so that ``model(x=...)`` returns logits, as
the shared training loop expects. No pretrained weights: the machines are offline, and the inputs
(8x8 to 32x32) are far from the 224x224 ImageNet checkpoints anyway.

Small inputs. The ImageNet ResNet stem (7x7 stride-2 conv + stride-2 max-pool) divides the size by
4 before the first stage, and the stages by 8 more: a 28x28 MNIST digit is 7x7 after the stem and
1x1 before the last stage. The ``small`` stem (default) is the usual CIFAR ResNet one, a 3x3 stride-1
conv with no max-pool, so stage 1 sees the full image (32 -> 32, 16, 8, 4 over the four stages;
8x8 digits -> 8, 4, 2, 1). The ``imagenet`` stem keeps the paper's layout and instead upsamples
inputs (bilinear) to at least 32x32, the smallest size whose last stage is still 1x1 rather than
a border-padded artefact. The ViT pads images (bottom/right, with 0 = the train mean after
standardisation) to a multiple of its patch size.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from metahpo.models.base import FAMILIES, Family, PreparedData
from metahpo.models.cnn import prepare_images

SGD_MOMENTUM = 0.9
IMAGENET_STEM_MIN_SIZE = 32  # total stride 32: the smallest input whose last stage is 1x1


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups that decay weight matrices and kernels but not biases and norm scales.

    Decaying BatchNorm/LayerNorm scales and biases only fights the normalisation; both the modern
    ResNet and the ViT (DeiT/timm) recipes exclude them, i.e. every parameter with fewer than 2 dims.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


class ImageFamily(Family):
    """An image classifier from the shared image tensors; subclasses set the model and its optimizer."""

    modalities = ("image",)

    def prepare(self, data, info: dict[str, Any], options: BaseModel) -> PreparedData:
        return prepare_images(data, info)


# --- resnet18 -------------------------------------------------------------------------------------


class ResNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stem: Literal["small", "imagenet"] = Field(
        "small",
        description="small: 3x3 stride-1 conv, no max-pool (CIFAR ResNet; full resolution into stage 1); "
        f"imagenet: 7x7 stride-2 conv + max-pool, inputs upsampled to at least {IMAGENET_STEM_MIN_SIZE}x"
        f"{IMAGENET_STEM_MIN_SIZE}",
    )


def resnet18_config(num_channels: int, num_labels: int):
    from transformers import ResNetConfig

    return ResNetConfig(
        num_channels=num_channels,
        embedding_size=64,
        hidden_sizes=[64, 128, 256, 512],
        depths=[2, 2, 2, 2],
        layer_type="basic",
        hidden_act="relu",
        downsample_in_first_stage=False,
        num_labels=num_labels,
    )


class ResNetClassifier(nn.Module):
    """transformers' ResNet-18 behind ``forward(x) -> logits``, with the stem chosen for small images."""

    def __init__(self, num_channels: int, num_classes: int, stem: str) -> None:
        super().__init__()
        from transformers import ResNetForImageClassification
        from transformers.models.resnet.modeling_resnet import ResNetConvLayer

        self.model = ResNetForImageClassification(resnet18_config(num_channels, num_classes))
        self.min_size = IMAGENET_STEM_MIN_SIZE if stem == "imagenet" else 0
        if stem == "small":
            embeddings = self.model.resnet.embedder
            embeddings.embedder = ResNetConvLayer(num_channels, 64, kernel_size=3, stride=1)
            embeddings.pooler = nn.Identity()
            # the same init transformers gives every other ResNet conv
            nn.init.kaiming_normal_(embeddings.embedder.convolution.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if min(height, width) < self.min_size:
            size = (max(height, self.min_size), max(width, self.min_size))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.model(pixel_values=x).logits


class ResNet18Family(ImageFamily):
    """ResNet-18 (basic blocks, depths 2-2-2-2, widths 64-512), random init, SGD with momentum 0.9.

    Search space (3 x 3 x 2 = 18 configs), the usual ResNet SGD recipe around its defaults:
    - ``lr`` {0.001, 0.01, 0.1}: 0.1 is the He et al. rate for batch 256 with BatchNorm; small data
      and few epochs often prefer 0.01 or less, and 0.1 can diverge on some tasks.
    - ``batch_size`` {64, 128, 256}: the lr that works scales with batch size (linear scaling rule),
      so the pair is searched jointly; 256 is the reference batch.
    - ``weight_decay`` {5e-4, 5e-5}: 5e-4 is the CIFAR recipe, 5e-5 tests whether short training
      on small sets wants less regularisation (the ImageNet recipe uses 1e-4, between the two).
    Biases and BatchNorm parameters are not decayed (``decay_groups``).
    """

    name = "resnet18"
    hyperparameters = ("lr", "batch_size", "weight_decay")
    Options = ResNetOptions

    def build(self, config: dict[str, Any], data: PreparedData, options: BaseModel) -> nn.Module:
        return ResNetClassifier(data.info["in_channels"], data.num_classes, options.stem)

    def optimizer(self, model: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            decay_groups(model, float(config["weight_decay"])), lr=float(config["lr"]), momentum=SGD_MOMENTUM
        )


# --- vit ------------------------------------------------------------------------------------------


class ViTOptions(BaseModel):
    """A ViT-Tiny-width encoder (hidden 192, 3 heads) at half the depth, for 8x8 to 32x32 images."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patch_size: int = Field(4, gt=0, description="pixels per patch side; images are padded to a multiple of it")
    hidden_size: int = Field(192, gt=0, description="token width")
    num_hidden_layers: int = Field(6, gt=0, description="encoder blocks")
    num_attention_heads: int = Field(3, gt=0, description="heads per block; must divide hidden_size")
    intermediate_size: int = Field(384, gt=0, description="MLP width inside each block")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ViTOptions":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )
        return self


def padded_size(size: int, patch_size: int) -> int:
    return -(-size // patch_size) * patch_size


class ViTClassifier(nn.Module):
    """transformers' ViT behind ``forward(x) -> logits``; pads images to whole patches first."""

    def __init__(self, num_channels: int, height: int, width: int, num_classes: int, options: ViTOptions) -> None:
        super().__init__()
        from transformers import ViTConfig, ViTForImageClassification

        self.image_size = (padded_size(height, options.patch_size), padded_size(width, options.patch_size))
        config = ViTConfig(
            image_size=self.image_size,
            patch_size=options.patch_size,
            num_channels=num_channels,
            hidden_size=options.hidden_size,
            num_hidden_layers=options.num_hidden_layers,
            num_attention_heads=options.num_attention_heads,
            intermediate_size=options.intermediate_size,
            num_labels=num_classes,
        )
        self.model = ViTForImageClassification(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, self.image_size[1] - width, 0, self.image_size[0] - height))
        return self.model(pixel_values=x).logits


class ViTFamily(ImageFamily):
    """A small ViT (patch 4, hidden 192, 6 layers, 3 heads, MLP 384), random init, AdamW.

    Search space (3 x 2 x 2 x 2 = 24 configs), the DeiT/timm AdamW recipe around its defaults:
    - ``lr`` {1e-4, 3e-4, 1e-3}: transformers from scratch train in a narrow band; DeiT's rule
      (5e-4 x batch / 512) gives ~1e-4 at these batches, the safe end; small-image ViT recipes
      (CIFAR from scratch, few epochs) go up to 1e-3 with warmup.
    - ``batch_size`` {64, 128}: smaller than ResNet's because small sets give few steps per epoch
      and a ViT without convolutional priors needs the steps.
    - ``weight_decay`` {0.05, 0.1}: ViTs lack the conv inductive bias and over-fit small data; DeiT
      uses 0.05, the original ViT 0.1. Biases and LayerNorm are not decayed (``decay_groups``).
    - ``warmup_steps`` {0, 200}: Adam's early updates destabilise attention (the reason every ViT
      recipe warms up); the loop then decays linearly to 0. On small sets 200 steps can exceed the
      run, leaving lr still rising at the end: that interaction with dataset size is for the
      meta-learner to find.
    """

    name = "vit"
    hyperparameters = ("lr", "batch_size", "weight_decay", "warmup_steps")
    Options = ViTOptions

    def build(self, config: dict[str, Any], data: PreparedData, options: BaseModel) -> nn.Module:
        height, width, channels = data.info["input_shape"]
        return ViTClassifier(channels, height, width, data.num_classes, options)

    def optimizer(self, model: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(decay_groups(model, float(config["weight_decay"])), lr=float(config["lr"]))


FAMILIES.register(ResNet18Family.name, ResNet18Family())
FAMILIES.register(ViTFamily.name, ViTFamily())
