"""The model pool: members on disk, each a folder with its descriptor and (for trained members) weights.

A member is a classifier of a registered family: trained by the pool stage on a source dataset (or a
subset of its classes), or a pretrained checkpoint as it is (``family.pretrained``, e.g. the bundled
MiniLM). Its descriptor (``member.json``) says what it is: family, parameter count, input it reads,
source dataset and meta-features, how it was trained, and how it is fine-tuned (every layer, or the
new head alone). A member serves a target task of its task type and modality (images: the same
channel count; sizes are resized to the member's). For a target, the member's classification layer
(the model's last ``nn.Linear``) is replaced by a new one: its input is the member's feature vector
(what kNN, the linear probe, LogME and H-score read), its old output the source predictions (LEEP, NCE).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metahpo.errors import DataError, MetahpoError
from metahpo.models import FAMILIES
from metahpo.models.base import Family, PreparedData, PreparedSplit

MEMBER_FILE = "member.json"
WEIGHTS_FILE = "model.safetensors"
VOCABULARY_FILE = "vocabulary.json"
MANIFEST = "pool.json"  # the members in params order (JSON objects are written with sorted keys)
FORMAT = 1


# --- target tasks: a class subset and size of a prepared dataset ----------------------------------


def checked_classes(info: dict[str, Any], classes: Optional[list[str]], name: str) -> list[str]:
    """``classes`` (None: all) after checking they are at least two distinct labels of a classification dataset."""
    if info.get("task_type", "classification") != "classification":
        raise DataError(f"{name}: dataset {info.get('dataset')!r} is {info.get('task_type')}; model selection "
                        "needs a classification dataset")
    names = list(info["label_names"])
    classes = list(classes) if classes is not None else names
    unknown = [c for c in classes if c not in names]
    if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
        raise DataError(f"{name}: classes {classes} must be at least two distinct labels of dataset "
                        f"{info.get('dataset')!r}; its labels: {', '.join(names)}")
    return classes


def class_subset(dataset_dict, info: dict[str, Any], classes: Optional[list[str]], max_train: Optional[int],
                 seed: int, name: str):
    """(DatasetDict, info) of the rows whose label is in ``classes`` (label names; None: all), relabelled
    0..C-1 in the given order, the train split cut to ``max_train`` rows (stratified, seeded)."""
    import datasets
    import pyarrow as pa

    from metahpo.data.prepare import label_array
    from metahpo.data.splits import subsample

    classes = checked_classes(info, classes, name)
    names = list(info["label_names"])
    position = {names.index(c): i for i, c in enumerate(classes)}
    splits = {}
    for split_name, split in dataset_dict.items():
        labels = label_array(split)
        rows = np.flatnonzero(np.isin(labels, list(position)))
        if split_name == "train":
            rows = subsample(rows, labels, max_train, seed, f"{name}-train")
        if not len(rows):
            raise DataError(f"{name}: the {split_name} split of {info.get('dataset')!r} has no row of classes {classes}")
        relabelled = np.array([position[int(label)] for label in labels[rows]], dtype=np.int64)
        # in memory throughout: datasets would otherwise write cache files into the prepared folder,
        # another stage's output
        kept = split.select(rows).flatten_indices(keep_in_memory=True)
        features = kept.features.copy()
        features["label"] = datasets.ClassLabel(names=classes)
        table = kept.data.table.set_column(kept.column_names.index("label"), "label", pa.array(relabelled))
        splits[split_name] = datasets.Dataset(table, info=datasets.DatasetInfo(features=features))
    subset_info = {**info, "num_classes": len(classes), "label_names": classes,
                   "split_sizes": {s: len(d) for s, d in splits.items()}}
    return datasets.DatasetDict(splits), subset_info


# --- members ---------------------------------------------------------------------------------------


def classifier_layer(model: nn.Module) -> str:
    """The dotted name of the model's classification layer: its last ``nn.Linear``."""
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise MetahpoError(f"{type(model).__name__} has no nn.Linear classification layer: it cannot join a pool")
    return linear[-1]


def replace_layer(model: nn.Module, name: str, layer: nn.Module) -> None:
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, layer)


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _empty_split() -> PreparedSplit:
    return PreparedSplit({}, torch.zeros(0, dtype=torch.long))


@dataclass
class Member:
    """One pool member as its descriptor says; ``folder`` is where it lives (weights relative to the pool)."""

    name: str
    descriptor: dict[str, Any]
    pool: Path

    @property
    def family(self) -> Family:
        return FAMILIES.get(self.descriptor["family"])

    @property
    def finetune(self) -> str:
        return self.descriptor["finetune"]

    @property
    def source_classes(self) -> Optional[int]:
        """Classes of the member's own classification layer; None for a checkpoint without one."""
        return self.descriptor["source"].get("num_classes")

    def options(self):
        raw = dict(self.descriptor["options"])
        if self.descriptor.get("vocabulary"):
            raw["vocabulary"] = str(self.pool / self.descriptor["vocabulary"])
        return self.family.options(raw)

    def serves(self, info: dict[str, Any]) -> Optional[str]:
        """None if the member can be fine-tuned on a dataset with this info; else why not."""
        family = self.family
        if info.get("task_type", "classification") != family.task_type or info.get("modality") not in family.modalities:
            return (f"{self.name} ({family.name}) does {family.task_type} on {', '.join(family.modalities)}, the "
                    f"dataset is {info.get('task_type')} on {info.get('modality')}")
        built_for = self.descriptor["input"]
        if "in_features" in built_for:  # flat inputs (an MLP): the same width, no resizing
            width = int(np.prod(info["input_shape"]))
            if width != built_for["in_features"]:
                return f"{self.name} reads {built_for['in_features']} input features, the dataset has {width}"
        elif info.get("modality") == "image" and built_for:
            channels = built_for["input_shape"][2]
            if int(info["input_shape"][2]) != int(channels):
                return f"{self.name} reads {channels}-channel images, the dataset has {info['input_shape'][2]}"
        return None

    def prepare(self, dataset_dict, info: dict[str, Any]) -> PreparedData:
        """The target's tensors as the member reads them (its vocabulary, its image size)."""
        data = self.family.prepare(dataset_dict, info, self.options())
        if info.get("modality") == "image" and "in_channels" in self.descriptor["input"]:
            height, width = self.descriptor["input"]["input_shape"][:2]
            for split in (data.train, data.validation, data.test):
                x = split.inputs["x"]
                if tuple(x.shape[-2:]) != (height, width):
                    split.inputs["x"] = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True,
                                                      align_corners=False).contiguous()
            data.info = {**data.info, "input_shape": [height, width, data.info["in_channels"]]}
        return data

    def load(self) -> nn.Module:
        """The member as trained (or as the checkpoint ships), in eval mode on the CPU."""
        family, built_for = self.family, self.descriptor["input"]
        num_classes = self.source_classes or 2  # a checkpoint's head is replaced before any use
        data = PreparedData(_empty_split(), _empty_split(), _empty_split(), num_classes, dict(built_for))
        model = family.build(self.descriptor["config"], data, self.options())
        weights = self.descriptor.get("weights")
        if weights:
            from safetensors.torch import load_model

            path = self.pool / weights
            try:
                load_model(model, str(path), strict=True, device="cpu")
            except Exception as err:  # a missing, truncated or mismatched file
                raise MetahpoError(f"pool member {self.name}: cannot load its weights {path} ({err}); rebuild the "
                                   "pool (run the pool stage) or remove the member") from None
        return model.eval()

    def for_target(self, num_classes: int, seed: int) -> nn.Module:
        """The member with a new classification layer for ``num_classes`` (seeded), body frozen for ``head``."""
        model = self.load()
        name = classifier_layer(model)
        old = model.get_submodule(name)
        generator = torch.random.fork_rng()
        with generator:
            torch.manual_seed(seed)
            replace_layer(model, name, nn.Linear(old.in_features, num_classes))
        if self.finetune == "head":
            return HeadOnly(model, name)
        return model


class HeadOnly(nn.Module):
    """Fine-tunes the classification layer alone: the body stays frozen and in eval mode (BatchNorm too)."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model, self.head = model, head
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for parameter in model.get_submodule(head).parameters():
            parameter.requires_grad_(True)

    def train(self, mode: bool = True) -> "HeadOnly":
        super().train(mode)
        self.model.eval()
        self.model.get_submodule(self.head).train(mode)
        return self

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**inputs)


def read_pool(folder: str | os.PathLike) -> list[Member]:
    """The members of a pool folder, in the pool's order; a clear error for a folder that is not one."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise MetahpoError(f"{folder} is not a model pool (no {MANIFEST}); the pool stage writes one under results/pool/members")
    try:
        order = json.loads(manifest.read_text(encoding="utf-8"))["members"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise MetahpoError(f"{manifest} is damaged ({err}); rebuild the pool (run the pool stage)") from None
    members = []
    for name in order:
        path = folder / name / MEMBER_FILE
        try:
            descriptor = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise MetahpoError(f"pool member {name}: cannot read {path} ({err}); rebuild the pool") from None
        if descriptor.get("format") != FORMAT:
            raise MetahpoError(f"pool member {name}: descriptor format {descriptor.get('format')}, this metahpo reads {FORMAT}")
        if descriptor["family"] not in FAMILIES:
            raise MetahpoError(f"pool member {name}: unknown model family {descriptor['family']!r}")
        members.append(Member(name, descriptor, folder))
    return members


# --- embedding and fine-tuning -----------------------------------------------------------------------


@torch.inference_mode()
def embed(model: nn.Module, split: PreparedSplit, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(features, softmax of the member's own classification layer) for every row of ``split``."""
    layer = model.get_submodule(classifier_layer(model))
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _, inputs, __: captured.append(inputs[0].detach().float().reshape(len(inputs[0]), -1)))
    features, probabilities = [], []
    try:
        model.eval()
        for index in torch.arange(len(split)).split(batch_size):
            inputs, _ = split.batch(index)
            captured.clear()
            logits = model(**inputs)
            features.append(captured[-1])
            probabilities.append(torch.softmax(logits.float(), dim=1))
    finally:
        hook.remove()
    return torch.cat(features).numpy().astype(np.float64), torch.cat(probabilities).numpy().astype(np.float64)


@dataclass(frozen=True)
class FinetuneSettings:
    """The one fine-tuning recipe of every member (the ground truth and the chosen model alike)."""

    lr: float
    batch_size: int
    epochs: int
    weight_decay: float


class MemberFamily(Family):
    """A pool member as a family for ``metahpo.training.train_model``: builds the member with a new head."""

    def __init__(self, member: Member, settings: FinetuneSettings, seed: int) -> None:
        base = member.family
        self.member, self.settings, self.seed, self.base = member, settings, seed, base
        self.name = f"pool:{member.name}"
        self.task_type, self.modalities, self.primary_metric = base.task_type, base.modalities, base.primary_metric
        self.hyperparameters = ("lr", "batch_size", "epochs")

    def build(self, config: dict[str, Any], data: PreparedData, options) -> nn.Module:
        model = self.member.for_target(data.num_classes, self.seed)
        return model.train()

    def optimizer(self, model: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
        trainable = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(trainable, lr=float(config["lr"]), weight_decay=self.settings.weight_decay)

    def step(self, model, inputs, labels):
        return self.base.step(model, inputs, labels)

    def predictions(self, outputs):
        return self.base.predictions(outputs)

    def score(self, split, predictions):
        return self.base.score(split, predictions)


def finetune(member: Member, data: PreparedData, settings: FinetuneSettings, seed: int, device, precision: str):
    """Fine-tune ``member`` on a target's train split with the shared recipe; the ``TrainResult``."""
    from metahpo.training import train_model

    family = MemberFamily(member, settings, seed)
    config = {"lr": settings.lr, "batch_size": settings.batch_size, "epochs": settings.epochs}
    return train_model(family, data, config, epochs=settings.epochs, seed=seed, device=device, precision=precision)


# --- building a member (the pool stage) -----------------------------------------------------------------


@dataclass
class MemberSpec:
    """What the pool stage builds: params ``selection.pool.<name>`` resolved against the datasets."""

    name: str
    family: str
    config: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    dataset: Optional[str] = None  # None: a pretrained checkpoint as it is
    classes: Optional[list[str]] = None
    epochs: int = 5
    finetune: str = "all"
    weights_of: Optional[str] = None  # another member's weights (a variant: e.g. head-only fine-tuning)


def save_member(folder: Path, descriptor: dict[str, Any], model: Optional[nn.Module]) -> None:
    """Write a member's folder (inside a pool being written atomically)."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    if model is not None:
        save_model(model, str(folder / WEIGHTS_FILE))
    (folder / MEMBER_FILE).write_text(json.dumps({"format": FORMAT, **descriptor}, indent=2, sort_keys=True) + "\n",
                                      encoding="utf-8")


def target_data(name: str, dataset: str, classes: Optional[list[str]], max_train: Optional[int], data_root, seed: int):
    """(DatasetDict, info) of target task ``name``: its class subset and train size of a prepared dataset."""
    from metahpo.data.prepare import load_prepared

    dataset_dict, info = load_prepared(Path(data_root) / dataset)
    return class_subset(dataset_dict, info, classes, max_train, seed, name)


def serving(members: list[Member], info: dict[str, Any], target: str) -> list[Member]:
    """The members that serve a target; a clear error naming why when none does."""
    reasons = {m.name: m.serves(info) for m in members}
    chosen = [m for m in members if reasons[m.name] is None]
    if not chosen:
        raise MetahpoError(f"{target}: no pool member serves a {info.get('task_type')} task on {info.get('modality')} "
                           "data (" + "; ".join(reasons.values()) + "); add a member of that kind to the pool")
    return chosen
