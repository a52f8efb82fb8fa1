"""conv4 family: the few-shot Conv-4 learner as an ordinary classifier, from random or a meta-learned init.

``options: {init: meta, init_path: results/meta_init/inits/maml.safetensors}`` starts the body from
an initialization the meta_init stage wrote (its filters, channels and image size come from the
file); the head is new (zeros, as in few-shot adaptation). Ordinary training uses BatchNorm with
running statistics; the init holds the affine parameters only (few-shot bodies keep no running
statistics), so those start fresh. Inputs are scaled to [0, 1] and resized as in meta-training,
without standardisation, so a meta-learned body sees what it was trained on.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from metahpo.fewshot.backbone import Conv4
from metahpo.fewshot.episodes import resize
from metahpo.fewshot.inits import load_init
from metahpo.models.base import FAMILIES, Family, PreparedData, PreparedSplit
from metahpo.models.mlp import SPLITS, split_arrays


class Conv4Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    init: Literal["random", "meta"] = Field("random", description="meta: start the body from init_path")
    init_path: Optional[str] = Field(None, description="a safetensors init written by the meta_init stage")
    filters: int = Field(64, gt=0, description="Conv-4 width (random init; a meta init sets its own)")
    image_size: Optional[int] = Field(None, gt=0, description="resize to SxS (random init; a meta init sets its own)")

    @model_validator(mode="after")
    def _path_for_meta(self) -> "Conv4Options":
        if (self.init == "meta") != (self.init_path is not None):
            raise ValueError("init: meta needs init_path (and init_path needs init: meta)")
        return self


class Conv4Classifier(nn.Module):
    def __init__(self, in_channels: int, filters: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        self.body = Conv4(in_channels, filters, track_running_stats=True)
        self.head = nn.Linear(self.body.feature_dim(image_size), num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def load_body(self, state: dict[str, torch.Tensor]) -> None:
        """The init's body weights; only BatchNorm's running statistics may be absent."""
        weights = {n: v for n, v in state.items() if not n.startswith("lr.")}
        own = self.body.state_dict()
        stats = ("running_mean", "running_var", "num_batches_tracked")
        missing = [name for name in own if name not in weights and not name.endswith(stats)]
        unexpected = [name for name in weights if name not in own]
        misshapen = [f"{n} {tuple(v.shape)} vs {tuple(own[n].shape)}" for n, v in weights.items()
                     if n in own and v.shape != own[n].shape]  # fmt: skip
        if missing or unexpected or misshapen:
            raise ValueError(f"the init does not fit this Conv-4 (check its filters and in_channels): missing {missing}, "
                             f"unexpected {unexpected}, shapes (init vs model) {misshapen}")  # fmt: skip
        self.body.load_state_dict(weights, strict=False)


def init_config(options: Conv4Options) -> dict[str, Any]:
    return load_init(options.init_path)[1] if options.init == "meta" else {}


class Conv4Family(Family):
    name = "conv4"
    modalities = ("image",)
    hyperparameters = ("lr", "batch_size")
    Options = Conv4Options

    def prepare(self, data, info: dict[str, Any], options: Conv4Options) -> PreparedData:
        size = init_config(options).get("image_size", options.image_size)
        splits = {}
        for name in SPLITS:
            images, labels = split_arrays(data[name])
            x = resize(torch.from_numpy(images / 255.0).permute(0, 3, 1, 2).float(), size).contiguous()
            splits[name] = PreparedSplit({"x": x}, torch.from_numpy(labels))
        shape = list(splits["train"].inputs["x"].shape[1:])
        return PreparedData(**splits, num_classes=int(info["num_classes"]),
                            info={"in_channels": shape[0], "input_shape": shape[1:] + shape[:1]})  # fmt: skip

    def build(self, config: dict[str, Any], data: PreparedData, options: Conv4Options) -> nn.Module:
        channels, side = data.info["in_channels"], data.info["input_shape"][0]
        if options.init == "random":
            return Conv4Classifier(channels, options.filters, side, data.num_classes)
        state, meta = load_init(options.init_path)
        if meta["in_channels"] != channels:
            raise ValueError(f"{options.init_path} was trained on {meta['in_channels']}-channel images, the data has {channels}")
        model = Conv4Classifier(channels, int(meta["filters"]), side, data.num_classes)
        model.load_body(state)
        return model


def prepared_from_arrays(x: dict[str, torch.Tensor], y: dict[str, np.ndarray], num_classes: int) -> PreparedData:
    """PreparedData of [0, 1] image tensors already at the init's size (the few-shot transfer task)."""
    splits = {name: PreparedSplit({"x": x[name].contiguous()}, torch.as_tensor(y[name])) for name in SPLITS}
    shape = list(x["train"].shape[1:])
    return PreparedData(**splits, num_classes=num_classes, info={"in_channels": shape[0], "input_shape": shape[1:] + shape[:1]})


FAMILIES.register(Conv4Family.name, Conv4Family())
