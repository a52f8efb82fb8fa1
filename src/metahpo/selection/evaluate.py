"""Scoring the selectors against the ground truth, leave one task out, over redraws of the K examples.

For each target task and each redraw r of its K labelled examples (seed ``(seed, target, r)``, the
same draw for every selector), every serving member embeds the K examples and every selector ranks
the pool; the meta-learned selector is fitted on the other targets only. Each ranking is compared
with the members' fine-tuned metrics: weighted Kendall tau (``scipy.stats.weightedtau``, hyperbolic
weights on the top ranks), top-1 regret (points of the task's metric) and top-3 hit.
"""

from __future__ import annotations

import time
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from metahpo.errors import DataError
from metahpo.selection.meta import MetaSelector, feature_frame
from metahpo.selection.pool import Member, embed
from metahpo.selection.selectors import CHEAP, SELECTORS, Context

SPLITS = ("train", "validation", "test")


def shot_rows(labels: np.ndarray, shots: int, num_classes: int, seed: int, target: str, redraw: int) -> np.ndarray:
    """Redraw ``redraw`` of ``shots`` labelled train rows (stratified, seeded); a clear error when too few."""
    from metahpo.data.splits import derive_seed, pick

    if len(labels) < shots:
        raise DataError(f"{target}: {len(labels)} labelled train examples, fewer than shots = {shots}; lower "
                        "--shots (selection.shots) or give the task more examples")
    if shots < 2 * num_classes:
        raise DataError(f"{target}: shots = {shots} is fewer than 2 per class ({num_classes} classes); the scores "
                        "need two examples of each class")
    rows, _ = pick(np.arange(len(labels)), labels, shots, derive_seed(seed, f"{target}-shots-{redraw}"))
    return rows


def build_context(target: str, redraw: int, dataset_dict, info: dict, rows: np.ndarray, members: list[Member],
                  models: dict, prior_truth: pd.DataFrame, seed: int) -> tuple[Context, float]:
    """The context of one draw: each member embeds the K examples, preprocessed from those K alone
    (image standardisation, tokenisation); returns it with the seconds the embedding took."""
    import datasets

    few = dataset_dict["train"].select(rows)
    few_dict = datasets.DatasetDict({split: few for split in SPLITS})
    features, probabilities, embedded = {}, {}, {}
    started = time.perf_counter()
    for member in members:
        weights = member.descriptor.get("variant_of", member.name)  # a variant embeds as its base does
        if weights not in embedded:
            data = member.prepare(few_dict, info)
            if weights not in models:
                models[weights] = member.load()
            embedded[weights] = embed(models[weights], data.train)
            labels = data.train.labels.numpy()
        features[member.name], source = embedded[weights]
        probabilities[member.name] = source if member.source_classes else None
    context = Context(
        target=target, redraw=redraw, members=[m.name for m in members], labels=labels, num_classes=int(info["num_classes"]),
        modality=info["modality"], features=features, source_probabilities=probabilities,
        descriptors={m.name: m.descriptor for m in members}, prior_truth=prior_truth, seed=seed,
    )  # fmt: skip
    return context, time.perf_counter() - started


def cheap_rankings(context: Context, selectors: Iterable[str], embed_seconds: float) -> list[dict]:
    """Rows (selector, member, score, seconds) of every selector but the meta-learned one; fills
    ``context.cheap_scores`` with the scores the meta-learned selector reads."""
    rows = []
    context.input_seconds = embed_seconds
    for name in dict.fromkeys([*CHEAP, *selectors]):
        if name == "meta":
            continue
        selector = SELECTORS.get(name)
        started = time.perf_counter()
        ranking = selector.rank(context)
        seconds = time.perf_counter() - started
        if name in CHEAP:
            context.cheap_scores[name] = ranking.score
            context.input_seconds += seconds
        if name in selectors:
            rows.extend(_rows(context, name, ranking, seconds + (embed_seconds if selector.uses_features else 0.0)))
    return rows


def _rows(context: Context, selector: str, ranking, seconds: float) -> list[dict]:
    lower = ranking.lower if ranking.lower is not None else np.full(len(context.members), np.nan)
    upper = ranking.upper if ranking.upper is not None else np.full(len(context.members), np.nan)
    return [{"target": context.target, "redraw": context.redraw, "selector": selector, "member": member, "score": float(score),
             "lower": float(lo), "upper": float(hi), "seconds": seconds}
            for member, score, lo, hi in zip(context.members, ranking.score, lower, upper)]  # fmt: skip


def truth_of(context: Context, truth: pd.DataFrame) -> np.ndarray:
    values = truth[truth["target"] == context.target].set_index("member")["truth"]
    return values.reindex(context.members).to_numpy(dtype=np.float64)


def fit_meta_selector(contexts: list[Context], truth: pd.DataFrame, seed: int, n_estimators: int,
                      coverage: float, held_out: Optional[str] = None) -> MetaSelector:
    """Fit on ``contexts`` (never of ``held_out``); each row's prior outcomes leave out its own target
    and ``held_out``, as a new task's will."""
    frames = [feature_frame(c, truth[~truth["target"].isin({c.target, held_out})]) for c in contexts]
    return MetaSelector.fit(frames, [truth_of(c, truth) for c in contexts], [c.target for c in contexts], seed,
                            n_estimators, coverage)  # fmt: skip


def meta_rankings(contexts: dict[str, list[Context]], truth: pd.DataFrame, seed: int, n_estimators: int,
                  coverage: float) -> list[dict]:
    """The meta-learned selector on each target, fitted on every other target's draws and outcomes."""
    rows = []
    for target, own in contexts.items():
        prior = [c for other, cs in contexts.items() if other != target for c in cs]
        if not prior:
            continue
        started = time.perf_counter()
        model = fit_meta_selector(prior, truth, seed, n_estimators, coverage, held_out=target)
        fit_seconds = time.perf_counter() - started  # paid once, before any new task: not selection time
        for context in own:
            context.meta_selector = model
            started = time.perf_counter()
            ranking = SELECTORS.get("meta").rank(context)
            seconds = time.perf_counter() - started + context.input_seconds
            rows.extend({**row, "fit_seconds": fit_seconds} for row in _rows(context, "meta", ranking, seconds))
    return rows


def ranking_metrics(score: np.ndarray, truth: np.ndarray, top: int = 3) -> dict[str, float]:
    """Weighted Kendall tau, top-1 regret and top-``top`` hit of one ranking (NaN scores rank last)."""
    from scipy.stats import weightedtau

    finite = np.isfinite(score)
    score = np.where(finite, score, score[finite].min() - 1 if finite.any() else 0.0)
    order = np.argsort(-score, kind="stable")  # ties: pool order
    best = truth.max()
    tau = weightedtau(score, truth).statistic if len(truth) > 1 else np.nan
    return {"tau": float(tau), "regret": float(best - truth[order[0]]),
            "hit3": float(np.isclose(truth[order[:top]], best).any()), "chosen": int(order[0])}


def draw_metrics(scores: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """One row per (selector, target, redraw): tau, regret, hit3, the chosen member, its metric, seconds."""
    merged = scores.merge(truth[["target", "member", "truth"]], on=["target", "member"], how="left")
    rows = []
    for (selector, target, redraw), group in merged.groupby(["selector", "target", "redraw"], sort=False):
        metrics = ranking_metrics(group["score"].to_numpy(), group["truth"].to_numpy())
        chosen = group.iloc[metrics.pop("chosen")]
        inside = (group["truth"] >= group["lower"]) & (group["truth"] <= group["upper"])
        rows.append({"selector": selector, "target": target, "redraw": redraw, **metrics,
                     "chosen": chosen["member"], "chosen_truth": float(chosen["truth"]),
                     "predicted": float(chosen["score"]), "seconds": float(group["seconds"].iloc[0]),
                     "coverage": float(inside.mean()) if group["lower"].notna().any() else np.nan,
                     "abs_error": float((group["score"] - group["truth"]).abs().mean())
                     if SELECTORS.get(selector).predicts_metric else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def summarize(draws: pd.DataFrame, truth: pd.DataFrame, selectors: list[str], reference: Optional[str] = "meta") -> dict:
    """Per selector: means over targets (each the mean of its redraws) with 95% t-intervals over
    targets, median regret, the paired Wilcoxon test of ``reference``'s per-target regret against each
    other selector's, and the compute of selection + one fine-tuning against the whole pool."""
    from scipy.stats import wilcoxon

    from metahpo.hpo.regret_summary import t_half_width

    per_target = draws.groupby(["selector", "target"], sort=False)[
        ["tau", "regret", "hit3", "seconds", "coverage", "abs_error", "chosen_truth"]].mean()
    table = []
    for selector in selectors:
        if selector not in per_target.index.get_level_values(0):
            continue
        own = per_target.loc[selector]
        row = {"selector": selector, "targets": int(len(own))}
        for column in ("tau", "regret", "hit3", "seconds"):
            row[column] = float(own[column].mean())
            row[f"{column}_ci"] = t_half_width(own[column].dropna())
        row["median_regret"] = float(own["regret"].median())
        row["coverage"] = float(own["coverage"].mean()) if own["coverage"].notna().any() else None
        row["abs_error"] = float(own["abs_error"].mean()) if own["abs_error"].notna().any() else None
        if reference in per_target.index.get_level_values(0) and selector != reference:
            ours, theirs = per_target.loc[reference]["regret"], own["regret"].reindex(per_target.loc[reference].index)
            differences = (ours - theirs).dropna()
            row["p_reference_lower_regret"] = (
                float(wilcoxon(differences, alternative="less", zero_method="zsplit").pvalue)
                if len(differences) >= 2 and (differences != 0).any() else None
            )
        table.append(row)
    return {"table": table, "compute": compute_saved(draws, truth, reference)}


def compute_saved(draws: pd.DataFrame, truth: pd.DataFrame, selector: Optional[str]) -> list[dict]:
    """Per target: fine-tuning every member vs ``selector``'s selection plus fine-tuning its choice."""
    rows = []
    if selector is None or selector not in set(draws["selector"]):
        return rows
    ok = truth.dropna(subset=["truth"])
    for target, group in draws[draws["selector"] == selector].groupby("target", sort=False):
        finetunes = ok[ok["target"] == target].set_index("member")
        chosen_seconds = group["chosen"].map(finetunes["seconds"])
        selection = group["seconds"] + chosen_seconds
        rows.append({
            "target": target, "members": int(len(finetunes)), "pool_seconds": float(finetunes["seconds"].sum()),
            "selection_seconds": float(group["seconds"].mean()), "selected_seconds": float(selection.mean()),
            "speedup": float(finetunes["seconds"].sum() / selection.mean()),
            "best_truth": float(finetunes["truth"].max()), "chosen_truth": float(group["chosen_truth"].mean()),
        })  # fmt: skip
    return rows
