"""Scoring a method on episodes: query accuracy and macro-F1 after 0..k adaptation steps, with 95% intervals.

Per episode and step it records the accuracy, the macro-F1 and the adaptation seconds so far
(support-set steps only, scoring excluded); ``summarize`` turns those rows into the mean and the
95% interval (1.96 standard errors over episodes) per method, setting and step, and the steps and
seconds to reach a threshold accuracy (the first step whose mean accuracy reaches it).
Macro-F1 is computed here on tensors because it runs once per episode and step (10^5 calls), where
scikit-learn's per-call overhead would dominate; a test checks it against scikit-learn.
"""

from __future__ import annotations

import math
import time
from typing import Iterable, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from metahpo.fewshot.episodes import Episode
from metahpo.fewshot.methods import Inner, Method, State

Z_95 = 1.959963984540054


def macro_f1(predictions: torch.Tensor, labels: torch.Tensor, ways: int) -> float:
    """Unweighted mean over the ``ways`` classes of F1 (a class never predicted nor present scores 0)."""
    confusion = torch.bincount(labels * ways + predictions, minlength=ways * ways).reshape(ways, ways).double()
    tp = confusion.diagonal()
    denominator = confusion.sum(0) + confusion.sum(1)
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))
    return float(f1.mean())


def score_episode(method: Method, body: nn.Module, state: State, episode: Episode, inner: Inner) -> list[dict]:
    """One row per step 0..inner.steps: accuracy, macro_f1, seconds (adaptation time up to that step)."""
    rows: list[dict] = []
    ways = episode.ways
    started = time.perf_counter()
    scoring = 0.0

    def on_step(step: int, logits: torch.Tensor) -> None:
        nonlocal scoring
        began = time.perf_counter()
        predictions = logits.argmax(1)
        rows.append({
            "step": step,
            "accuracy": float((predictions == episode.query_y).float().mean()),
            "macro_f1": macro_f1(predictions, episode.query_y, ways),
            "seconds": began - started - scoring,
        })  # fmt: skip
        scoring += time.perf_counter() - began

    method.adapt(body, state, episode, inner, on_step)
    return rows


def query_accuracy(method: Method, body: nn.Module, state: State, episode: Episode, inner: Inner) -> float:
    return score_episode(method, body, state, episode, inner)[-1]["accuracy"]


def evaluate_method(method: Method, body_for: "callable", state_for: "callable", episodes: Iterable[Episode],
                    inner: Inner, device: torch.device, total: Optional[int] = None, desc: str = "") -> pd.DataFrame:  # fmt: skip
    """Rows (episode, step, accuracy, macro_f1, seconds) of ``method`` over ``episodes``.

    ``body_for(i)`` and ``state_for(i)`` give the body and the initialization for episode ``i``: the
    same saved init for every episode, or a fresh seeded random body per episode for random init."""
    rows = []
    for index, episode in enumerate(tqdm(episodes, total=total, desc=desc or method.name, unit="episode", leave=False)):
        for row in score_episode(method, body_for(index), state_for(index), episode.to(device), inner):
            rows.append({"episode": index, **row})
    return pd.DataFrame(rows, columns=["episode", "step", "accuracy", "macro_f1", "seconds"])


def interval(values: np.ndarray) -> float:
    """Half-width of the 95% normal interval of the mean (0 for a single value)."""
    return float(Z_95 * values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def summarize(episodes: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, table). ``episodes`` has columns method, setting, episode, step, accuracy, macro_f1, seconds.

    curves: one row per method, setting and step with the means and 95% half-widths. table: one row
    per method and setting: accuracy and macro-F1 at the last step with intervals, the best step's
    accuracy, and steps / seconds to reach ``threshold`` mean accuracy (NaN when never reached)."""
    curves = (
        episodes.groupby(["method", "setting", "step"], sort=False)
        .agg(
            accuracy=("accuracy", "mean"),
            accuracy_ci=("accuracy", lambda v: interval(v.to_numpy())),
            macro_f1=("macro_f1", "mean"),
            macro_f1_ci=("macro_f1", lambda v: interval(v.to_numpy())),
            seconds=("seconds", "mean"),
            episodes=("episode", "nunique"),
        )
        .reset_index()
    )
    rows = []
    for (method, setting), curve in curves.groupby(["method", "setting"], sort=False):
        last = curve.iloc[-1]
        reached = curve[curve["accuracy"] >= threshold]
        rows.append({
            "method": method, "setting": setting, "episodes": int(last["episodes"]), "steps": int(last["step"]),
            "accuracy": float(last["accuracy"]), "accuracy_ci": float(last["accuracy_ci"]),
            "macro_f1": float(last["macro_f1"]), "macro_f1_ci": float(last["macro_f1_ci"]),
            "steps_to_threshold": float(reached["step"].iloc[0]) if len(reached) else math.nan,
            "seconds_to_threshold": float(reached["seconds"].iloc[0]) if len(reached) else math.nan,
        })  # fmt: skip
    return curves, pd.DataFrame(rows)
