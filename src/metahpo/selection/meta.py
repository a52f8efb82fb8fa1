"""The meta-learned selector: predicts each member's fine-tuned metric on a new task, with an interval.

It learns from past (task, member) fine-tuning outcomes. Its inputs per member are what the K
examples, the pool and the past outcomes tell without fine-tuning: the task's size (classes, shots
per class, modality), the member's descriptor (family, parameter count, source classes and rows, how
well it trained, whether it fine-tunes every layer or the head alone), the member's mean outcome on
the prior tasks, and the cheap scores (kNN, linear probe, LogME, LEEP, NCE, H-score), both raw and
standardised within the task (raw LogME is not comparable across
tasks; its rank within the pool is). A random forest maps them to the fine-tuned metric. The interval
is split-conformal over tasks: the quantile of absolute residuals of grouped (by task) cross-validated
predictions on the prior tasks, so it is honest for a task the forest never saw.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from metahpo.conformal import conformal_quantile
from metahpo.errors import MetahpoError
from metahpo.selection.selectors import CHEAP, SELECTORS, Context, Ranking, Selector

MODEL_FILE = "meta_selector.skops"
INDEX_FILE = "meta_selector.json"
FORMAT = 1
MODALITIES = ("image", "text", "tabular")


def task_columns(num_classes: int, shots: int, modality: str) -> dict[str, float]:
    return {"task_classes": float(num_classes), "task_log_shots_per_class": math.log(shots / num_classes),
            **{f"task_{m}": float(modality == m) for m in MODALITIES}}


def member_columns(descriptor: dict[str, Any]) -> dict[str, float]:
    source, training = descriptor["source"], descriptor.get("training") or {}
    return {
        "member_log_parameters": math.log10(max(1, descriptor["parameters"])),
        "member_head_only": float(descriptor["finetune"] == "head"),
        "member_checkpoint": float(descriptor["kind"] == "checkpoint"),
        "member_source_classes": float(source.get("num_classes") or 0),
        "member_log_source_rows": math.log10(1 + (source.get("rows") or 0)),
        "member_source_val_metric": float(training.get("val_metric", np.nan)),
        f"family_{descriptor['family']}": 1.0,
    }


def score_columns(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Raw cheap scores, their within-task z-scores, and a missing flag (LEEP/NCE without a source head)."""
    columns = {}
    for name in CHEAP:
        raw = np.asarray(scores[name], dtype=np.float64)
        missing = ~np.isfinite(raw)
        present = raw[~missing]
        filled = np.where(missing, present.min() if len(present) else 0.0, raw)
        spread = filled.std()
        columns[name] = filled
        columns[f"{name}_z"] = (filled - filled.mean()) / spread if spread > 0 else np.zeros_like(filled)
        columns[f"{name}_missing"] = missing.astype(np.float64)
    return columns


def prior_columns(members: list[str], prior_truth: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each member's mean fine-tuned metric over the prior tasks it served (best_on_average's score),
    raw and within the task; a member no prior task saw gets the pool's mean and a missing flag."""
    means = prior_truth.groupby("member")["truth"].mean().reindex(members).to_numpy(dtype=np.float64)
    missing = ~np.isfinite(means)
    filled = np.where(missing, np.nanmean(means) if (~missing).any() else 0.0, means)
    spread = filled.std()
    return {"prior_mean": filled, "prior_mean_z": (filled - filled.mean()) / spread if spread > 0 else np.zeros_like(filled),
            "prior_missing": missing.astype(np.float64)}  # fmt: skip


def feature_frame(context: Context, prior_truth: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per member of the context: task, member, prior-outcome and score columns (unordered;
    see ``MetaSelector``). ``prior_truth`` defaults to the context's; fitting passes one without the
    fold's held-out target too, so no training row's features hold the held-out truth."""
    shots = len(context.labels)
    rows = [{**task_columns(context.num_classes, shots, context.modality), **member_columns(context.descriptors[m])}
            for m in context.members]
    frame = pd.DataFrame(rows)
    prior = context.prior_truth if prior_truth is None else prior_truth
    for name, values in {**prior_columns(context.members, prior), **score_columns(context.cheap_scores)}.items():
        frame[name] = values
    return frame


class MetaSelector:
    """A fitted forest over ``feature_frame`` columns plus its conformal interval half-width."""

    def __init__(self, forest, columns: list[str], half_width: float, coverage: float, tasks: list[str]) -> None:
        self.forest, self.columns, self.half_width, self.coverage, self.tasks = forest, columns, half_width, coverage, tasks

    @classmethod
    def fit(cls, frames: list[pd.DataFrame], truths: list[np.ndarray], groups: list[str], seed: int,
            n_estimators: int = 200, coverage: float = 0.9) -> "MetaSelector":
        """``frames[i]`` (one context) with ``truths[i]`` (the members' fine-tuned metrics) of task ``groups[i]``."""
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.model_selection import GroupKFold, cross_val_predict

        x = pd.concat(frames, ignore_index=True).fillna(0.0)
        columns = sorted(x.columns)
        x = x[columns].to_numpy()
        y = np.concatenate(truths)
        group_of_row = np.concatenate([[g] * len(f) for g, f in zip(groups, frames)])
        tasks = sorted(set(groups))

        def forest():
            return RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=3, max_features=0.5,
                                         random_state=seed, n_jobs=1)  # fmt: skip

        if len(tasks) >= 2:
            folds = GroupKFold(n_splits=min(5, len(tasks)))
            held_out = cross_val_predict(forest(), x, y, groups=group_of_row, cv=folds)
            half_width = conformal_quantile(np.abs(held_out - y), coverage)
        else:
            half_width = float("nan")  # one prior task: no held-out residual to size an interval with
        return cls(forest().fit(x, y), columns, half_width, coverage, tasks)

    def predict(self, context: Context) -> Ranking:
        x = feature_frame(context).reindex(columns=self.columns, fill_value=0.0).fillna(0.0).to_numpy()
        predicted = self.forest.predict(x)
        # classification metrics lie in [0, 1]: so does the interval
        return Ranking(predicted, np.clip(predicted - self.half_width, 0, 1), np.clip(predicted + self.half_width, 0, 1))

    def save(self, folder: str | Path) -> None:
        import skops.io

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        skops.io.dump(self.forest, folder / MODEL_FILE)
        index = {"format": FORMAT, "columns": self.columns, "half_width": self.half_width,
                 "coverage": self.coverage, "tasks": self.tasks}
        (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> "MetaSelector":
        from metahpo.meta.persist import load_surrogate

        folder = Path(folder)
        index_path = folder / INDEX_FILE
        if not index_path.is_file() or not (folder / MODEL_FILE).is_file():
            raise MetahpoError(f"{folder} holds no meta-learned selector ({INDEX_FILE} + {MODEL_FILE}); the selection "
                               "stage writes one under results/selection/meta_selector")
        index = json.loads(index_path.read_text(encoding="utf-8"))
        if index.get("format") != FORMAT:
            raise MetahpoError(f"{index_path}: format {index.get('format')}, this metahpo reads {FORMAT}; rerun the selection stage")
        return cls(load_surrogate(folder / MODEL_FILE), index["columns"], index["half_width"], index["coverage"],
                   index["tasks"])


class MetaLearned(Selector):
    """The meta-learned selector: ``Context.meta_selector`` fitted on the prior tasks' outcomes."""

    name = "meta"
    predicts_metric = True

    def rank(self, context: Context) -> Ranking:
        if context.meta_selector is None:
            raise MetahpoError("the meta selector needs prior tasks' fine-tuning outcomes; none were given")
        return context.meta_selector.predict(context)


SELECTORS.register(MetaLearned.name, MetaLearned())
