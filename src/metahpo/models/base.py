"""The model-family interface: one small class per family, registered in ``FAMILIES``.

A family turns a prepared dataset (``metahpo.data`` canonical columns) into tensors once per task
(``prepare``), and builds a fresh ``torch.nn.Module`` per trial config (``build``). The training loop
in ``metahpo.training`` is shared by every family; what differs by task type (classification,
extractive QA, token classification) is the loss of a batch (``step``), how raw outputs become
predictions (``predictions``) and how a split's predictions are scored (``score``). The defaults
here are sequence/image classification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from metahpo.registry import Registry


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class PreparedSplit:
    """Row-aligned tensors: ``model(**inputs)`` returns logits; ``labels`` are class indices."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    # per-split data that is not batched, for scoring: e.g. QA windows -> examples and gold answers
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, index: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {k: v[index] for k, v in self.inputs.items()}, self.labels[index]


@dataclass
class PreparedData:
    train: PreparedSplit
    validation: PreparedSplit
    test: PreparedSplit
    num_classes: int
    info: dict[str, Any] = field(default_factory=dict)  # e.g. input_shape, vocab_size


class Family:
    """Subclass, set the class attributes, implement ``prepare`` and ``build``, then register."""

    name: ClassVar[str]
    task_type: ClassVar[str] = "classification"  # | extractive_qa | token_classification
    modalities: ClassVar[tuple[str, ...]]  # dataset modalities it accepts: image, tabular, text, ...
    primary_metric: ClassVar[str] = "accuracy"  # the key of ``score`` that sweeps optimise (higher is better)
    hyperparameters: ClassVar[tuple[str, ...]]  # the exact keys of its search space
    Options: ClassVar[type[BaseModel]] = NoOptions
    pretrained: ClassVar[bool] = False  # starts from pretrained weights (the report says which)

    def options(self, raw: dict[str, Any]) -> BaseModel:
        return self.Options(**raw)

    def check_dataset(self, info: dict[str, Any], task: str) -> None:
        """Refuse a dataset of another task type or modality, naming both, before any training."""
        from metahpo.errors import MetahpoError

        task_type = info.get("task_type", "classification")
        modality = info.get("modality")
        if task_type != self.task_type or modality not in self.modalities:
            raise MetahpoError(
                f"task {task}: dataset {info.get('dataset')!r} is {task_type} on {modality} data, but model "
                f"family {self.name!r} does {self.task_type} on {', '.join(self.modalities)}; "
                "pair the dataset with another family"
            )

    def prepare(self, data, info: dict[str, Any], options: BaseModel) -> PreparedData:
        raise NotImplementedError

    def build(self, config: dict[str, Any], data: PreparedData, options: BaseModel) -> torch.nn.Module:
        raise NotImplementedError

    def optimizer(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=float(config["lr"]))

    def step(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor):
        """One forward pass: (mean loss as a float32 scalar tensor, raw outputs for ``predictions``)."""
        logits = model(**inputs)
        return F.cross_entropy(logits.float(), labels), logits

    def predictions(self, outputs: Any) -> Any:
        """A batch's raw outputs -> CPU predictions (collected in a list for ``score``)."""
        return outputs.argmax(dim=1).cpu()

    def score(self, split: PreparedSplit, predictions: list[Any]) -> dict[str, float]:
        """Metrics of a whole split from its batches' predictions; must contain ``primary_metric``."""
        from metahpo.metrics import classification_metrics

        return classification_metrics(split.labels.numpy(), torch.cat(predictions).numpy())


def require_splits(data, splits=("train", "validation", "test")) -> None:
    """A prepared dataset has every split a family trains and scores on."""
    from metahpo.errors import DataError

    missing = [split for split in splits if split not in data]
    if missing:
        raise DataError(f"prepared dataset lacks split(s) {missing}; re-run the download stage")


FAMILIES: Registry[Family] = Registry("model family")
