"""Stage selection: every selector on every target's redraws of K examples, scored against the ground
truth leave one task out; the meta-learned selector fitted on every target for new tasks ->
results/selection/ (scores, per-draw metrics, summary, meta_selector/)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from metahpo.data.prepare import label_array
from metahpo.io import atomic_dir, write_json, write_parquet
from metahpo.selection.evaluate import (
    build_context, cheap_rankings, draw_metrics, fit_meta_selector, meta_rankings, shot_rows, summarize,
)  # fmt: skip
from metahpo.selection.pool import read_pool, serving, target_data


def run(params, job) -> None:
    (data_root, pool_dir, truth_path) = job.deps
    scores_path, draws_path, selector_dir, summary_path = job.outs
    selection = params.selection
    if selection is None:
        write_parquet(scores_path, pd.DataFrame(columns=["target", "redraw", "selector", "member", "score"]))
        write_parquet(draws_path, pd.DataFrame(columns=["selector", "target", "redraw", "tau", "regret", "hit3"]))
        with atomic_dir(selector_dir):
            pass
        write_json(summary_path, {"enabled": False})
        print("selection: null in the params: no selection to evaluate")
        return
    members = read_pool(pool_dir)
    truth = pd.read_parquet(truth_path)
    ok = truth[truth["state"] == "ok"][["target", "member", "truth", "seconds", "metric"]]
    contexts, rows, models = {}, [], {}
    bar = tqdm(total=len(selection.targets) * selection.redraws, desc="selection", unit="draw")
    for target, spec in selection.targets.items():
        dataset_dict, info = target_data(target, spec.dataset, spec.classes, spec.max_train, data_root, params.seed)
        fine_tuned = set(ok.loc[ok["target"] == target, "member"])
        served = [m for m in serving(members, info, target) if m.name in fine_tuned]
        prior = ok[ok["target"] != target]
        labels = label_array(dataset_dict["train"])
        contexts[target] = []
        for redraw in range(selection.redraws):
            shots = shot_rows(labels, selection.shots, int(info["num_classes"]), params.seed, target, redraw)
            context, embed_seconds = build_context(target, redraw, dataset_dict, info, shots, served, models, prior,
                                                   params.seed)  # fmt: skip
            rows.extend(cheap_rankings(context, selection.selectors, embed_seconds))
            contexts[target].append(context)
            bar.update()
    bar.close()
    if "meta" in selection.selectors:
        started = time.perf_counter()
        rows.extend(meta_rankings(contexts, ok, params.seed, selection.n_estimators, selection.coverage))
        print(f"selection: meta-learned selector fitted leave one task out on {len(contexts)} targets "
              f"in {time.perf_counter() - started:.0f} s")
    scores = pd.DataFrame(rows)
    draws = draw_metrics(scores, ok)
    summary = summarize(draws, ok, selection.selectors, "meta" if "meta" in selection.selectors else None)
    with atomic_dir(selector_dir) as tmp:
        fit_meta_selector([c for cs in contexts.values() for c in cs], ok, params.seed, selection.n_estimators,
                          selection.coverage).save(tmp)  # fmt: skip
    write_parquet(scores_path, scores)
    write_parquet(draws_path, draws)
    write_json(summary_path, {
        "enabled": True, "shots": selection.shots, "redraws": selection.redraws, "selectors": selection.selectors,
        "targets": list(selection.targets), "members": [m.name for m in members], **summary,
    })  # fmt: skip
    for row in summary["table"]:
        print(f"selection {row['selector']:>15}: tau {row['tau']:+.3f}, median regret {row['median_regret']:.3f}, "
              f"top-3 hit {row['hit3']:.2f}, {row['seconds']:.2f} s")
