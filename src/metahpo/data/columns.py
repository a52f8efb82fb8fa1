"""Find the label and input columns of a dataset from its features, never from fixed names."""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets

from metahpo.errors import DataError

IMAGE, TEXT, TABULAR = "image", "text", "tabular"

_STRING_DTYPES = {"string", "large_string"}
_NUMERIC_DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
}  # fmt: skip


@dataclass(frozen=True)
class ColumnPlan:
    """Which source columns become the canonical ``input`` and ``label``."""

    modality: str
    input_columns: list[str]  # one column for image/text; the numeric columns, in order, for tabular
    label_column: str
    ignored_columns: list[str] = field(default_factory=list)  # numeric side columns of image/text data


def _kind(feature) -> str:
    """label | image | text | numeric | other."""
    if isinstance(feature, datasets.ClassLabel):
        return "label"
    if isinstance(feature, datasets.Image):
        return "image"
    # an image stored as an integer pixel array (the bundled digits)
    if isinstance(feature, (datasets.Array2D, datasets.Array3D)) and feature.dtype == "uint8":
        return "image"
    if isinstance(feature, datasets.Value):
        if feature.dtype in _STRING_DTYPES:
            return "text"
        if feature.dtype in _NUMERIC_DTYPES:
            return "numeric"
    return "other"


def _contains_class_label(feature) -> bool:
    inner = getattr(feature, "feature", None)
    return isinstance(inner, datasets.ClassLabel) or (inner is not None and _contains_class_label(inner))


def detect_columns(features: datasets.Features, dataset: str = "the dataset") -> ColumnPlan:
    """Decide modality, input and label columns; raise DataError naming any column that does not fit."""
    kinds = {name: _kind(feature) for name, feature in features.items()}
    by_kind: dict[str, list[str]] = {}
    for name, kind in kinds.items():
        by_kind.setdefault(kind, []).append(name)

    labels = by_kind.get("label", [])
    if not labels:
        nested = [name for name, feature in features.items() if _contains_class_label(feature)]
        hint = (
            f" (column(s) {', '.join(nested)} hold per-token labels: sequence labelling is out of scope)"
            if nested
            else ""
        )
        raise DataError(
            f"{dataset} has no ClassLabel column among {list(features)}{hint}; metahpo handles "
            "single-label classification only: pick a classification dataset"
        )
    if len(labels) > 1:
        raise DataError(
            f"{dataset} has several ClassLabel columns ({', '.join(labels)}); metahpo needs exactly one "
            "label column: pick a dataset (or configuration) with a single label"
        )

    unplaceable = by_kind.get("other", [])
    if unplaceable:
        described = "; ".join(f"column {name!r} is {features[name]}" for name in unplaceable)
        raise DataError(
            f"{dataset}: {described}: cannot be placed as input (inputs are one Image column, one string "
            "column, or numeric scalar columns); pick a dataset without such columns"
        )

    images, texts, numerics = by_kind.get("image", []), by_kind.get("text", []), by_kind.get("numeric", [])
    if images and texts:
        raise DataError(
            f"{dataset} has image column(s) {images} and text column(s) {texts}; multimodal inputs are "
            "not supported: pick a single-modality dataset"
        )
    for modality, columns in ((IMAGE, images), (TEXT, texts)):
        if len(columns) > 1:
            raise DataError(
                f"{dataset} has several {modality} columns ({', '.join(columns)}); the input must be one "
                f"{modality} column: pick a dataset (or configuration) with one"
            )
        if columns:
            # numeric side columns (ids, indices) beside an image or text carry no input; recorded in info
            return ColumnPlan(modality, columns, labels[0], ignored_columns=numerics)
    if not numerics:
        raise DataError(f"{dataset} has a label column {labels[0]!r} but no input column: pick another dataset")
    return ColumnPlan(TABULAR, numerics, labels[0])
