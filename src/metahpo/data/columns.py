"""Find the task type and the source column of each canonical role from the features, never from fixed names.

The rules, in order (``datasets.<name>.columns`` overrides any role; its roles also fix the task type):

- **extractive_qa** when a struct column holds ``text`` (a sequence of strings) and ``answer_start``
  (a sequence of ints): that column is ``answers``. Among the other string columns, id-like ones
  are set aside (see ``_is_id_like``); the one with the longest mean length over a sample of rows is
  the ``context``, the second longest the ``question``; the first id-like column is the ``id``.
- **token_classification** when a column is a sequence of ClassLabel: it is ``tags`` (several ->
  an error listing them, to be settled with ``columns: {tags: <column>}``); the one sequence-of-strings
  column is ``tokens``.
- **classification** otherwise: one ClassLabel ``label`` and one Image / string column or numeric
  scalar columns as ``input``; optionally a ``group`` column (only by ``columns``), kept beside them
  so few-shot splits can hold out whole groups of classes (Omniglot's alphabets).

Columns given no role are recorded as ignored; a column that fits no role of a classification
dataset (a list, a struct) is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import datasets

from metahpo.data.sources import (
    CLASSIFICATION,
    COLUMN_ROLES,
    EXTRACTIVE_QA,
    ROLES_BY_TASK_TYPE,
    TOKEN_CLASSIFICATION,
)
from metahpo.errors import DataError

IMAGE, TEXT, TABULAR = "image", "text", "tabular"

_STRING_DTYPES = {"string", "large_string"}
_INT_DTYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_NUMERIC_DTYPES = {"bool", "float16", "float32", "float64", *_INT_DTYPES}


@dataclass(frozen=True)
class ColumnPlan:
    """Which source columns become the canonical columns of the dataset's task type."""

    modality: str
    input_columns: list[str]  # classification: one column for image/text, the numeric columns for tabular
    label_column: Optional[str]  # classification: the ClassLabel; token_classification: the tags column
    ignored_columns: list[str] = field(default_factory=list)
    task_type: str = CLASSIFICATION
    roles: dict[str, str] = field(default_factory=dict)  # canonical role -> source column, every task type


def _kind(feature) -> str:
    """label | image | text | numeric | answers | tokens | tags | other."""
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
    if isinstance(feature, dict) and _is_answers(feature):
        return "answers"
    inner = _sequence_item(feature)
    if isinstance(inner, datasets.ClassLabel):
        return "tags"
    if isinstance(inner, datasets.Value) and inner.dtype in _STRING_DTYPES:
        return "tokens"
    return "other"


def _sequence_item(feature):
    """The item feature of a List / Sequence / LargeList (or a one-item python list), else None."""
    if isinstance(feature, list) and len(feature) == 1:
        return feature[0]
    return getattr(feature, "feature", None)


def _is_answers(feature: dict) -> bool:
    """A SQuAD-style struct: ``text`` a sequence of strings, ``answer_start`` a sequence of ints."""
    text, start = _sequence_item(feature.get("text")), _sequence_item(feature.get("answer_start"))
    return (
        isinstance(text, datasets.Value) and text.dtype in _STRING_DTYPES
        and isinstance(start, datasets.Value) and start.dtype in _INT_DTYPES
    )  # fmt: skip


def _is_id_like(values: Sequence[Any]) -> bool:
    """Identifiers, not prose: over the sample, no value holds whitespace, all are distinct, and they
    share one length (hashes, UUIDs, SQuAD's 24-hex ids) or are all digits (row numbers).

    Titles (``Super_Bowl_50``) repeat across rows or differ in length; questions and contexts hold spaces.
    """
    strings = [value for value in values if value]
    if len(strings) < len(values) or not strings:
        return False
    if any(any(ch.isspace() for ch in value) for value in strings) or len(set(strings)) < len(strings):
        return False
    return len({len(value) for value in strings}) == 1 or all(value.isdigit() for value in strings)


def _mean_length(values: Sequence[Any]) -> float:
    return sum(len(value or "") for value in values) / max(len(values), 1)


def _several(dataset: str, what: str, columns: list[str], role: str) -> DataError:
    return DataError(
        f"{dataset} has several {what} columns ({', '.join(columns)}); set "
        f"`datasets.{dataset}.columns: {{{role}: <column>}}` in params.yaml to pick one"
    )


def _checked_overrides(features: datasets.Features, columns: Optional[Mapping[str, str]], dataset: str) -> dict:
    overrides = dict(columns or {})
    for role, column in overrides.items():
        if role not in COLUMN_ROLES:
            raise DataError(
                f"datasets.{dataset}.columns: unknown role {role!r}; valid roles: {', '.join(COLUMN_ROLES)}"
            )
        if column not in features:
            raise DataError(
                f"datasets.{dataset}.columns.{role}: {dataset} has no column {column!r}; its columns: "
                f"{', '.join(features)}"
            )
    return overrides


def _task_type(kinds: dict[str, str], overrides: dict[str, str], dataset: str) -> str:
    """From the overridden roles when there are any, else QA > token classification > classification."""
    assigned = set(overrides) - {"id"}  # id alone says nothing: prepared QA data carries one, others ignore it
    if assigned:
        fitting = [task_type for task_type, roles in ROLES_BY_TASK_TYPE.items() if assigned <= set(roles)]
        if not fitting:
            valid = "; ".join(f"{task_type}: {', '.join(roles)}" for task_type, roles in ROLES_BY_TASK_TYPE.items())
            raise DataError(f"datasets.{dataset}.columns: roles {sorted(overrides)} mix task types ({valid})")
        return fitting[0]
    if "answers" in kinds.values():
        return EXTRACTIVE_QA
    if "tags" in kinds.values():
        return TOKEN_CLASSIFICATION
    return CLASSIFICATION


def detect_columns(
    features: datasets.Features,
    dataset: str = "the dataset",
    columns: Optional[Mapping[str, str]] = None,
    sample: Optional[Mapping[str, Sequence[Any]]] = None,
) -> ColumnPlan:
    """Decide task type, modality and the column of each role; raise DataError naming what does not fit.

    ``columns``: role -> source column overrides. ``sample``: column -> values of some rows, for the
    rules that look at values (id-like columns, context vs question by length); only QA uses it.
    """
    overrides = _checked_overrides(features, columns, dataset)
    kinds = {name: _kind(feature) for name, feature in features.items()}
    task_type = _task_type(kinds, overrides, dataset)
    if task_type == EXTRACTIVE_QA:
        return _qa_plan(features, kinds, overrides, sample or {}, dataset)
    if task_type == TOKEN_CLASSIFICATION:
        return _token_plan(features, kinds, overrides, dataset)
    return _classification_plan(features, kinds, overrides, dataset)


def _unassigned(kinds: dict[str, str], overrides: dict[str, str], kind: str) -> list[str]:
    taken = set(overrides.values())
    return [name for name, k in kinds.items() if k == kind and name not in taken]


def _id_column(kinds, overrides, sample) -> tuple[Optional[str], list[str]]:
    """(the id column or None, all id-like string columns); the first id-like one unless overridden."""
    id_like = [name for name in _unassigned(kinds, overrides, "text") if name in sample and _is_id_like(sample[name])]
    return overrides.get("id", id_like[0] if id_like else None), id_like


def _plan(task_type: str, kinds: dict[str, str], roles: dict[str, str], input_columns, label_column) -> ColumnPlan:
    roles = {role: column for role, column in roles.items() if column is not None}
    ignored = [name for name in kinds if name not in roles.values()]
    return ColumnPlan(TEXT, input_columns, label_column, ignored, task_type, roles)


def _qa_plan(features, kinds, overrides, sample, dataset) -> ColumnPlan:
    answers = overrides.get("answers")
    if answers is None:
        candidates = _unassigned(kinds, overrides, "answers")
        if not candidates:
            raise DataError(
                f"{dataset}: cannot place the answers column: no struct of text (strings) and answer_start "
                f"(ints) among {', '.join(features)}; set `datasets.{dataset}.columns: {{answers: <column>}}`"
            )
        if len(candidates) > 1:
            raise _several(dataset, "answers", candidates, "answers")
        answers = candidates[0]
    elif kinds[answers] != "answers":
        raise DataError(
            f"datasets.{dataset}.columns.answers: column {answers!r} is {features[answers]}, not a struct of "
            "text (strings) and answer_start (ints)"
        )
    id_column, id_like = _id_column(kinds, overrides, sample)
    prose = [name for name in _unassigned(kinds, overrides, "text") if name not in id_like and name != id_column]
    unsampled = [name for name in prose if name not in sample]
    if unsampled and {"context", "question"} - set(overrides):
        raise DataError(f"{dataset}: no sample of column(s) {unsampled} to tell question from context")
    # longest first: contexts are paragraphs, questions a sentence
    by_length = sorted(prose, key=lambda name: _mean_length(sample.get(name, [])), reverse=True)
    roles = {"id": id_column, "answers": answers}
    for role in ("context", "question"):
        if role in overrides:
            roles[role] = overrides[role]
            if kinds[overrides[role]] != "text":
                raise DataError(
                    f"datasets.{dataset}.columns.{role}: column {overrides[role]!r} is {features[overrides[role]]}, "
                    "not a string column"
                )
        elif by_length:
            roles[role] = by_length.pop(0)
        else:
            raise DataError(
                f"{dataset}: cannot place the {role} column: no string column left among {', '.join(features)} "
                f"(id-like: {id_like or 'none'}); set `datasets.{dataset}.columns: {{{role}: <column>}}`"
            )
    return _plan(EXTRACTIVE_QA, kinds, roles, [roles["question"], roles["context"]], answers)


# role -> (column kind, what the error messages call such a column)
_TOKEN_ROLES = {"tags": ("tags", "tag (sequence of ClassLabel)"), "tokens": ("tokens", "token (sequence of strings)")}


def _token_plan(features, kinds, overrides, dataset) -> ColumnPlan:
    roles: dict[str, Optional[str]] = {}
    for role, (kind, what) in _TOKEN_ROLES.items():
        if role in overrides:
            if kinds[overrides[role]] != kind:
                raise DataError(
                    f"datasets.{dataset}.columns.{role}: column {overrides[role]!r} is "
                    f"{features[overrides[role]]}, not a {what} column"
                )
            roles[role] = overrides[role]
            continue
        candidates = [name for name, k in kinds.items() if k == kind]
        if not candidates:
            raise DataError(f"{dataset}: cannot place the {role} column: no {what} column among {', '.join(features)}")
        if len(candidates) > 1:
            raise _several(dataset, what, candidates, role)
        roles[role] = candidates[0]
    return _plan(TOKEN_CLASSIFICATION, kinds, roles, [roles["tokens"]], roles["tags"])


def _classification_plan(features, kinds, overrides, dataset) -> ColumnPlan:
    """Label and input; an optional ``group`` column (e.g. Omniglot's alphabet, for class splits by group)."""
    group = overrides.get("group")
    if group is None:
        return _label_and_input_plan(features, kinds, overrides, dataset)
    if kinds[group] not in {"label", "numeric"}:
        raise DataError(
            f"datasets.{dataset}.columns.group: column {group!r} is {features[group]}; a group is a ClassLabel "
            "or integer column"
        )
    rest = {name: kind for name, kind in kinds.items() if name != group}
    plan = _label_and_input_plan(features, rest, {r: c for r, c in overrides.items() if r != "group"}, dataset)
    ignored = [name for name in plan.ignored_columns if name != group]
    return ColumnPlan(plan.modality, plan.input_columns, plan.label_column, ignored, plan.task_type,
                      {**plan.roles, "group": group})  # fmt: skip


def _label_and_input_plan(features, kinds, overrides, dataset) -> ColumnPlan:
    label = overrides.get("label")
    if label is not None and kinds[label] != "label":
        raise DataError(f"datasets.{dataset}.columns.label: column {label!r} is {features[label]}, not a ClassLabel")
    labels = [label] if label else [name for name, kind in kinds.items() if kind == "label"]
    if not labels:
        raise DataError(
            f"{dataset}: cannot place the label column: no ClassLabel column among {list(features)}; "
            "classification needs one (extractive QA needs an answers struct, token classification a "
            "sequence of ClassLabel)"
        )
    if len(labels) > 1:
        raise _several(dataset, "ClassLabel", labels, "label")

    if "input" in overrides:
        column = overrides["input"]
        modality = {"image": IMAGE, "text": TEXT, "numeric": TABULAR}.get(kinds[column])
        if modality is None:
            raise DataError(
                f"datasets.{dataset}.columns.input: column {column!r} is {features[column]}: not an Image, "
                "string or numeric column"
            )
        ignored = [name for name in kinds if name not in (column, labels[0])]
        return ColumnPlan(modality, [column], labels[0], ignored, roles={"input": column, "label": labels[0]})

    unplaceable = [name for name, kind in kinds.items() if kind not in {"label", "image", "text", "numeric"}]
    if unplaceable:
        described = "; ".join(f"column {name!r} is {features[name]}" for name in unplaceable)
        raise DataError(
            f"{dataset}: {described}: cannot be placed as input (inputs are one Image column, one string "
            f"column, or numeric scalar columns); set `datasets.{dataset}.columns: {{input: <column>}}` "
            "or pick a dataset without such columns"
        )
    by_kind: dict[str, list[str]] = {}
    for name, kind in kinds.items():
        by_kind.setdefault(kind, []).append(name)
    images, texts, numerics = by_kind.get("image", []), by_kind.get("text", []), by_kind.get("numeric", [])
    if images and texts:
        raise DataError(
            f"{dataset} has image column(s) {images} and text column(s) {texts}; multimodal inputs are "
            f"not supported: set `datasets.{dataset}.columns: {{input: <column>}}` to use one"
        )
    for modality, found in ((IMAGE, images), (TEXT, texts)):
        if len(found) > 1:
            raise _several(dataset, modality, found, "input")
        if found:
            # numeric side columns (ids, indices) beside an image or text carry no input; recorded in info
            return ColumnPlan(modality, found, labels[0], numerics, roles={"input": found[0], "label": labels[0]})
    if not numerics:
        raise DataError(f"{dataset}: cannot place the input column: {labels[0]!r} is the label, no column is left")
    return ColumnPlan(TABULAR, numerics, labels[0], roles={"label": labels[0]})
