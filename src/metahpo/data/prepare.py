"""download: any source -> ``results/data/<dataset>/`` with the canonical columns of its task type.

The steps, in order: load the raw DatasetDict (bundled, offline mirror or Hub), find the task type
and columns from the features (and a sample of string values), map split names, carve missing
splits from train, subsample each split, and only then decode and convert the rows that are kept
(decoding 60000 PNGs to keep 2000 would be wasteful).
"""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import datasets
import numpy as np
from tqdm.auto import tqdm

from metahpo.data.columns import IMAGE, TABULAR, TEXT, ColumnPlan, detect_columns
from metahpo.data.sources import (
    CLASSIFICATION,
    EXTRACTIVE_QA,
    TOKEN_CLASSIFICATION,
    BundledSource,
    HubSource,
    resolve_source,
)
from metahpo.data.splits import CANONICAL_SPLITS, VALIDATION_ALIASES, carve, subsample
from metahpo.errors import DataError
from metahpo.io import atomic_dir, read_json, write_json

INFO_FILE = "metahpo.json"
MIRROR_ENV = "METAHPO_HF_MIRROR"
HUB_PROBE_SECONDS = 3.0
DETECTION_SAMPLE_ROWS = 256  # string values read to tell id / question / context columns apart

QA_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "context": datasets.Value("string"),
        "answers": {
            "text": datasets.List(datasets.Value("string")),
            "answer_start": datasets.List(datasets.Value("int32")),
        },
    }
)


# --- loading the raw data -----------------------------------------------------------------------


def mirror_root(mirror: str | None) -> Path | None:
    """The offline mirror folder: download.mirror, else $METAHPO_HF_MIRROR, else none."""
    root = mirror or os.environ.get(MIRROR_ENV)
    return Path(root).expanduser() if root else None


def _hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """One TCP connect to the Hub (or the HTTPS proxy): datasets itself retries for ~25 s offline."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _load_hub(source: HubSource, config_name: str | None, mirror: str | None, dataset: str):
    """(DatasetDict, where it came from): the mirror copy when there is one, else the Hub."""
    root = mirror_root(mirror)
    mirrored = root / source.hub_id if root else None
    config_args = [config_name] if config_name else []
    how_to_fix = (
        f"set download.mirror in params.yaml (or ${MIRROR_ENV}) to a folder holding a Hub-layout copy "
        f"at <mirror>/{source.hub_id}, or run where huggingface.co is reachable"
    )
    if mirrored is not None and mirrored.is_dir():
        origin, target = "mirror", str(mirrored)
    else:
        looked = f"not in the mirror ({mirrored})" if mirrored else "not mirrored (no mirror configured)"
        # HF_HUB_OFFLINE lets datasets answer from its cache without touching the network
        if not _offline_mode() and not _hub_reachable():
            raise DataError(
                f"dataset {dataset!r}: the Hugging Face Hub is unreachable and {source.hub_id} is {looked}; "
                f"{how_to_fix} (or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache)"
            )
        origin, target = "hub", source.hub_id
    try:
        raw = datasets.load_dataset(target, *config_args)
    except (OSError, ValueError) as err:  # ConnectionError, DatasetNotFoundError, unknown config, ...
        raise DataError(
            f"dataset {dataset!r}: cannot load {source.hub_id} from the {origin} ({type(err).__name__}: {err}); "
            f"check the id and config_name, or {how_to_fix}"
        ) from None
    if not isinstance(raw, datasets.DatasetDict):
        raise DataError(f"dataset {dataset!r}: {target} did not load as a set of splits")
    return raw, origin


def _load_raw(dataset: str, spec, mirror: str | None):
    source = resolve_source(spec.source)
    if isinstance(source, BundledSource):
        if spec.config_name:
            raise DataError(
                f"datasets.{dataset}.config_name: bundled source {spec.source!r} has no configurations; remove it"
            )
        return source.load(), "bundled"
    return _load_hub(source, spec.config_name, mirror, dataset)


def _canonical_splits(raw, dataset: str) -> tuple[dict[str, datasets.Dataset], list[str]]:
    """Map split names (valid/dev -> validation); return the kept splits and the ignored names."""
    kept: dict[str, datasets.Dataset] = {}
    ignored = []
    for name, split in raw.items():
        canonical = VALIDATION_ALIASES.get(name.lower(), name.lower())
        if canonical not in CANONICAL_SPLITS:
            ignored.append(name)
        elif canonical in kept:
            raise DataError(f"{dataset}: splits {sorted(raw)} name the {canonical} split twice; pick one configuration")
        else:
            kept[canonical] = split
    if not kept:
        raise DataError(f"{dataset}: splits {sorted(raw)} include none of train/validation/test (or valid/dev)")
    first = next(iter(kept.values())).features
    for name, split in kept.items():
        if split.features != first:
            raise DataError(f"{dataset}: split {name!r} has different columns from the others: {split.features}")
    return kept, ignored


# --- converting the kept rows --------------------------------------------------------------------


def _arrow_column(split: datasets.Dataset, column: str):
    # the arrow view reads a column in milliseconds; the numpy/python formatters take seconds
    return split.with_format("arrow")[column]


def _images(split: datasets.Dataset, column: str, dataset: str, split_name: str, size: int | None = None) -> np.ndarray:
    """uint8 array (N, H, W, C); grayscale images get C=1, everything else RGB; ``size``: each resized
    to size x size (bilinear), for sources whose images differ in size (Caltech-256, Flowers-102, ...)."""
    feature = split.features[column]
    if not isinstance(feature, datasets.Image):  # pixel arrays (bundled digits)
        pixels = split.with_format("numpy")[:][column].astype(np.uint8)
        return pixels[..., None] if pixels.ndim == 3 else pixels
    import PIL.Image

    encoded = split.cast_column(column, datasets.Image(decode=False))[column]
    arrays = []
    for row, item in enumerate(tqdm(encoded, desc=f"{dataset}/{split_name}: decoding images", unit="img", leave=False)):
        image = PIL.Image.open(io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"])
        grayscale = image.mode in {"1", "L", "LA", "I", "I;16", "F"}
        image = image.convert("L" if grayscale else "RGB")
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), PIL.Image.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
        array = array[..., None] if grayscale else array
        if arrays and array.shape[:2] != arrays[0].shape[:2]:
            raise DataError(
                f"{dataset}: images differ in size ({arrays[0].shape[1]}x{arrays[0].shape[0]} and "
                f"{array.shape[1]}x{array.shape[0]} at row {row} of {split_name}); set "
                f"`datasets.{dataset}.image_size` to resize them to one size"
            )
        arrays.append(array)
    channels = max(array.shape[2] for array in arrays)
    # a few grayscale images among colour ones: repeat their channel
    return np.stack([np.repeat(array, channels // array.shape[2], axis=2) for array in arrays])


def _tabular(split: datasets.Dataset, columns: list[str]) -> np.ndarray:
    return np.stack(
        [_arrow_column(split, c).to_numpy(zero_copy_only=False).astype(np.float32) for c in columns], axis=1
    )


def _convert_classification(split: datasets.Dataset, plan: ColumnPlan, features, dataset: str, split_name: str,
                            image_size: int | None = None):  # fmt: skip
    labels = _arrow_column(split, plan.label_column).to_numpy(zero_copy_only=False).astype(np.int64)
    if plan.modality == IMAGE:
        values = _images(split, plan.input_columns[0], dataset, split_name, image_size)
        input_feature = datasets.Array3D(shape=values.shape[1:], dtype="uint8")
    elif plan.modality == TEXT:
        values = [text or "" for text in _arrow_column(split, plan.input_columns[0]).to_pylist()]
        input_feature = datasets.Value("string")
    else:
        values = _tabular(split, plan.input_columns)
        input_feature = datasets.List(datasets.Value("float32"), length=values.shape[1])
    canonical = {"input": input_feature, "label": features[plan.label_column]}
    columns = {"input": values, "label": labels}
    if "group" in plan.roles:  # kept as its integer code; info's group_names names them
        columns["group"] = _arrow_column(split, plan.roles["group"]).to_numpy(zero_copy_only=False).astype(np.int64)
        canonical["group"] = datasets.Value("int64")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(canonical))


def _convert_qa(split: datasets.Dataset, plan: ColumnPlan, source_split: str, rows: np.ndarray):
    roles = plan.roles
    # without an id column, the source position names the row: stable across runs and splits
    ids = (
        [str(value) for value in _arrow_column(split, roles["id"]).to_pylist()]
        if "id" in roles
        else [f"{source_split}-{row}" for row in rows]
    )
    answers = [
        {"text": list(item["text"]), "answer_start": [int(start) for start in item["answer_start"]]}
        for item in _arrow_column(split, roles["answers"]).to_pylist()
    ]
    columns = {
        "id": ids,
        "question": [text or "" for text in _arrow_column(split, roles["question"]).to_pylist()],
        "context": [text or "" for text in _arrow_column(split, roles["context"]).to_pylist()],
        "answers": answers,  # empty lists: unanswerable, kept
    }
    return datasets.Dataset.from_dict(columns, features=QA_FEATURES)


def _convert_tokens(split: datasets.Dataset, plan: ColumnPlan, features):
    tag_feature = features[plan.roles["tags"]].feature
    canonical = datasets.Features(
        {"tokens": datasets.List(datasets.Value("string")), "tags": datasets.List(tag_feature)}
    )
    columns = {
        "tokens": [[token or "" for token in row] for row in _arrow_column(split, plan.roles["tokens"]).to_pylist()],
        "tags": _arrow_column(split, plan.roles["tags"]).to_pylist(),
    }
    return datasets.Dataset.from_dict(columns, features=canonical)


def _convert(split, plan: ColumnPlan, features, dataset: str, split_name: str, source_split: str, rows: np.ndarray,
             image_size: int | None = None):  # fmt: skip
    if plan.task_type == EXTRACTIVE_QA:
        return _convert_qa(split, plan, source_split, rows)
    if plan.task_type == TOKEN_CLASSIFICATION:
        return _convert_tokens(split, plan, features)
    return _convert_classification(split, plan, features, dataset, split_name, image_size)


def _string_sample(split: datasets.Dataset) -> dict[str, list]:
    """Values of the string columns at rows spread evenly over the split (deterministic, no seed)."""
    strings = [name for name, feature in split.features.items()
               if isinstance(feature, datasets.Value) and feature.dtype in {"string", "large_string"}]  # fmt: skip
    if not strings or not len(split):
        return {}
    rows = np.unique(np.linspace(0, len(split) - 1, min(DETECTION_SAMPLE_ROWS, len(split))).astype(np.int64))
    sampled = split.select_columns(strings).select(rows)
    return {name: _arrow_column(sampled, name).to_pylist() for name in strings}


def _group_names(features, plan: ColumnPlan) -> list[str] | None:
    """The names of the group codes (a ClassLabel's names); None without a group or for plain integers."""
    group = plan.roles.get("group")
    feature = features[group] if group else None
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def group_array(split: datasets.Dataset) -> np.ndarray:
    """A prepared classification split's group codes (the ``group`` role); DataError when it has none."""
    if "group" not in split.column_names:
        raise DataError("the dataset has no group column; set `datasets.<name>.columns: {group: <column>}`")
    return _arrow_column(split, "group").to_numpy(zero_copy_only=False).astype(np.int64)


def _input_shape(converted: datasets.Dataset, modality: str) -> list[int] | None:
    if modality == IMAGE:
        return list(converted.features["input"].shape)
    if modality == TABULAR:
        return [converted.features["input"].length]
    return None


# --- the stage ---------------------------------------------------------------------------------


def prepare_dataset(name: str, spec, download, seed: int, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write dataset ``name`` to ``out_dir`` (atomically); return its info dict.

    ``spec`` is its ``datasets.<name>`` entry, ``download`` the params' ``download`` section.
    """
    raw, origin = _load_raw(name, spec, download.mirror)
    splits, ignored_splits = _canonical_splits(raw, name)
    first = next(iter(splits.values()))
    features = first.features
    # the source's defaults (e.g. conll2003's tags), overridden per role by params
    columns = {**getattr(resolve_source(spec.source), "columns", {}), **(spec.columns or {})}
    plan = detect_columns(features, dataset=name, columns=columns, sample=_string_sample(first))

    # only classification has one label per row to drop unlabelled rows and stratify by
    labels = (
        {
            split_name: _arrow_column(split, plan.label_column).to_numpy(zero_copy_only=False).astype(np.int64)
            for split_name, split in splits.items()
        }
        if plan.task_type == CLASSIFICATION
        else None
    )
    assignment, carved = carve(
        {split_name: len(split) for split_name, split in splits.items()},
        labels,
        download.test_fraction,
        download.validation_fraction,
        seed,
        name,
    )
    limits = {"train": spec.max_train, "validation": spec.max_validation, "test": spec.max_test}
    converted = {}
    for split_name in CANONICAL_SPLITS:
        source_split, rows = assignment[split_name]
        source_labels = None if labels is None else labels[source_split]
        rows = subsample(rows, source_labels, limits[split_name], seed, split_name)
        converted[split_name] = _convert(
            splits[source_split].select(rows), plan, features, name, split_name, source_split, rows,
            spec.image_size,
        )
    prepared = datasets.DatasetDict(converted)

    if plan.task_type == CLASSIFICATION:
        label_names = list(features[plan.label_column].names)
        input_column = plan.input_columns[0] if plan.modality != TABULAR else plan.input_columns
    elif plan.task_type == TOKEN_CLASSIFICATION:
        label_names = list(features[plan.label_column].feature.names)
        input_column = plan.roles["tokens"]
    else:
        label_names, input_column = [], plan.input_columns
    info = {
        "dataset": name,
        "source": spec.source,
        "config_name": spec.config_name,
        "origin": origin,
        "task_type": plan.task_type,
        "modality": plan.modality,
        "input_column": input_column,
        "label_column": plan.label_column,
        "columns": plan.roles,
        "ignored_columns": plan.ignored_columns,
        "ignored_splits": ignored_splits,
        "num_classes": len(label_names) if label_names else None,
        "label_names": label_names,
        "group_names": _group_names(features, plan),
        "input_shape": _input_shape(converted["train"], plan.modality),
        "split_sizes": {split_name: len(split) for split_name, split in converted.items()},
        "source_split_sizes": {split_name: len(split) for split_name, split in splits.items()},
        "carved": carved,
        "seed": seed,
    }
    with atomic_dir(out_dir) as tmp:
        prepared.save_to_disk(str(tmp))
        write_json(Path(tmp) / INFO_FILE, info)
    return info


def load_prepared(path: str | os.PathLike) -> tuple[datasets.DatasetDict, dict[str, Any]]:
    """Read a prepared dataset folder: (DatasetDict with train/validation/test, info dict)."""
    path = Path(path)
    if not (path / INFO_FILE).is_file():
        raise DataError(f"{path} is not a prepared dataset (no {INFO_FILE}); run the download stage for it first")
    return datasets.load_from_disk(str(path)), read_json(path / INFO_FILE)


def _require_classification(info: dict[str, Any]) -> None:
    task_type = info.get("task_type", CLASSIFICATION)  # folders written before task types were classification
    if task_type != CLASSIFICATION:
        raise DataError(
            f"dataset {info['dataset']!r} is {task_type}: it has no input/label columns; read its canonical "
            "columns (docs/ARCHITECTURE.md) instead"
        )


def input_array(split: datasets.Dataset, info: dict[str, Any]):
    """A prepared split's inputs: uint8 (N, H, W, C) images, float32 (N, d) tabular, or a list of str."""
    _require_classification(info)
    if info["modality"] == TEXT:
        return _arrow_column(split, "input").to_pylist()
    # the numpy formatter widens uint8 to int64: cast back
    values = split.with_format("numpy")[:]["input"]
    return values.astype(np.uint8 if info["modality"] == IMAGE else np.float32)


def label_array(split: datasets.Dataset) -> np.ndarray:
    return _arrow_column(split, "label").to_numpy(zero_copy_only=False).astype(np.int64)
