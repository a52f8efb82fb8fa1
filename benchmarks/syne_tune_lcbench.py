"""Syne Tune's transfer-learning and plain searchers replayed on LCBench leave one task out; regret@k as Markdown.

A peer side by side for ``benchmarks/lcbench_replay.py`` (issue 14): the same meta-dataset
(../shared/meta-datasets/lcbench/metadataset.parquet, 34 tasks x the same 2,000 configurations),
the same held-out task, trial count and regret definition (``metahpo.hpo.metadataset.regret``,
normalised on the task's pool), but the configurations are chosen by Syne Tune's own classes:

- ``st_zero_shot``: ``ZeroShotTransfer`` (Wistuba et al. 2015: greedy configurations minimising the
  average rank over the prior tasks), asked through its ``get_config`` (in Syne Tune 0.16 the
  scheduler's ``suggest`` goes to its default random searcher, never to ``get_config``; the script
  checks that and says so).
- ``st_quantile``: ``QuantileBasedSurrogateSearcher`` (Salinas et al. 2020, "CTS": an XGBoost model
  of the prior tasks' Gaussian-copula-normalised objective, Thompson-sampled on 100,000 random candidates).
- ``st_bounding_box``: ``BoundingBox`` (Perrone et al. 2019) around each prior task's best
  configuration, with ``RandomSearch`` inside the box.
- ``st_botorch``: ``BOTorch`` (Syne Tune's GP BO: ``SingleTaskGP`` and log-EI, 3 random initial points).
- ``st_random``: ``RandomSearch``.

Every searcher runs on the real numeric space (the scales the README says the pool was drawn on)
and learns from the 33 other tasks through ``TransferLearningTaskEvaluations``; each suggestion is
snapped to the nearest not-yet-asked row of the held-out task's pool in the project's encoding
(``TaskData.X``, ``metahpo.hpo.base.nearest_row``), and the searcher is told the snapped
configuration and its recorded objective (Syne Tune 0.16 has no restrict-to-candidates option for
these searchers). The objective told is the error 1 - accuracy, minimised (Syne Tune's CTS always
minimises). The regret table has the replay's columns, so ``regret_summary`` summarises it; the
Markdown table is the mean normalised regret at 1/5/10/25/50 trials with a 95% t-interval over tasks.
``--ours DIR/regret.parquet`` (from ``benchmarks/lcbench_replay.py --out DIR``) adds the ratio of
Syne Tune's mean regret to ours at each budget.

Syne Tune is not a dependency of the package; install it in its own virtual environment, which
reuses the system's packages (torch 2.13.0 CPU among them; any other torch spec downloads CUDA):

    python -m venv --system-site-packages /work/venv-synetune
    /work/venv-synetune/bin/pip install --no-deps xgboost
    /work/venv-synetune/bin/pip install 'torch==2.13.0' 'syne-tune==0.16.0' botorch statsmodels
    PYTHONPATH=src OMP_NUM_THREADS=1 /work/venv-synetune/bin/python benchmarks/syne_tune_lcbench.py \\
        [--searchers all --seeds 5 --configs 2000 --tasks N --out DIR --ours DIR/regret.parquet]
    ... --summarise DIR1/regret.parquet,DIR2/regret.parquet --ours DIR/regret.parquet  # merge per-searcher runs

``--tasks N`` holds out a seeded sample of N tasks (for a slow searcher: BOTorch takes about a
minute of CPU per 50-trial run); docs/PERFORMANCE.md ("Syne Tune side by side") has the commands
behind its figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lcbench_replay import LCBENCH, sample_configs  # noqa: E402  (the replay's seeded subsample)

from metahpo.hpo import metadataset  # noqa: E402
from metahpo.hpo.base import nearest_row  # noqa: E402
from metahpo.hpo.regret_summary import CHECKPOINTS, markdown_regret_at, regret_at, replicate_means  # noqa: E402
from metahpo.io import write_parquet  # noqa: E402

METRIC = "error"  # 1 - accuracy: Syne Tune's transfer searchers minimise
# the scales LCBench's README says the 2,000 configurations were drawn on: (kind, log?)
SPACE = {
    "batch_size": ("int", True), "learning_rate": ("float", True), "momentum": ("float", False),
    "weight_decay": ("float", False), "num_layers": ("int", False), "max_units": ("int", True),
    "max_dropout": ("float", False),
}  # fmt: skip
SEARCHERS = ("st_zero_shot", "st_quantile", "st_bounding_box", "st_botorch", "st_random")
# whose regret each searcher is compared with (--ours)
OURS = {
    "st_zero_shot": ("zero_shot", "average_rank", "portfolio", "weighted_portfolio"),
    "st_quantile": ("transfer_bo", "weighted_portfolio"),
    "st_bounding_box": ("random",),
    "st_botorch": ("gp_bo",),
    "st_random": ("random",),
}


def config_space(data: metadataset.MetaDataset) -> dict:
    """Syne Tune's space over the pool's ranges, on the README's scales."""
    from syne_tune.config_space import lograndint, loguniform, randint, uniform

    raw = pd.concat([task.raw for task in data.tasks.values()])
    space = {}
    for name, (kind, log) in SPACE.items():
        low, high = raw[f"hp.{name}"].min(), raw[f"hp.{name}"].max()
        if kind == "int":
            space[name] = (lograndint if log else randint)(int(low), int(high))
        else:
            space[name] = (loguniform if log else uniform)(float(low), float(high))
    if set(f"hp.{name}" for name in SPACE) != set(data.hyperparameters):
        raise SystemExit(f"expected LCBench's hyperparameters {sorted(SPACE)}, found {data.hyperparameters}")
    return space


def evaluations(space: dict, prior: list[metadataset.TaskData]) -> dict:
    """The prior tasks as Syne Tune's ``TransferLearningTaskEvaluations`` (one seed, one fidelity: the final error)."""
    from syne_tune.optimizer.schedulers.transfer_learning.transfer_learning_task_evaluation import (
        TransferLearningTaskEvaluations,
    )

    result = {}
    for task in prior:
        hyperparameters = task.raw.rename(columns=lambda column: column.removeprefix("hp.")).reset_index(drop=True)
        error = 1.0 - np.nan_to_num(task.y, nan=0.0)  # a failed row counts as the worst (as in our regret)
        shaped = error.reshape(-1, 1, 1, 1)  # (configurations, seeds, fidelities, objectives)
        result[task.name] = TransferLearningTaskEvaluations(space, hyperparameters, [METRIC], shaped)
    return result


def make_scheduler(name: str, space: dict, prior: dict, seed: int):
    """A fresh Syne Tune scheduler for one run (every one minimises ``METRIC``)."""
    from syne_tune.optimizer.baselines import BOTorch, RandomSearch
    from syne_tune.optimizer.schedulers.single_objective_scheduler import SingleObjectiveScheduler
    from syne_tune.optimizer.schedulers.transfer_learning.bounding_box import BoundingBox
    from syne_tune.optimizer.schedulers.transfer_learning.zero_shot import ZeroShotTransfer
    from syne_tune.optimizer.schedulers.transfer_learning.quantile_based.quantile_based_searcher import (
        QuantileBasedSurrogateSearcher,
    )

    if name == "st_zero_shot":
        return ZeroShotTransfer(space, METRIC, prior, do_minimize=True, sort_transfer_learning_evaluations=False,
                                random_seed=seed)  # fmt: skip
    if name == "st_quantile":
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its fit and predict times
            searcher = QuantileBasedSurrogateSearcher(space, prior, random_seed=seed)
        return SingleObjectiveScheduler(space, METRIC, do_minimize=True, searcher=searcher, random_seed=seed)
    if name == "st_bounding_box":
        def inner(box: dict, metric: str, do_minimize: bool, random_seed: int):
            return RandomSearch(box, [metric], do_minimize=do_minimize, random_seed=random_seed)

        with contextlib.redirect_stdout(io.StringIO()):  # it prints the box
            return BoundingBox(inner, space, METRIC, prior, do_minimize=True, random_seed=seed)
    if name == "st_botorch":
        return BOTorch(space, METRIC, do_minimize=True, random_seed=seed)
    if name == "st_random":
        return RandomSearch(space, [METRIC], do_minimize=True, random_seed=seed)
    raise SystemExit(f"unknown searcher {name!r}: choose from {', '.join(SEARCHERS)}")


def searcher_of(scheduler):
    """The searcher object that keeps the suggested configurations (BoTorch's ``trial_configs``), if any."""
    while hasattr(scheduler, "scheduler"):  # BoundingBox wraps a scheduler
        scheduler = scheduler.scheduler
    return getattr(scheduler, "searcher", None)


def suggest(name: str, scheduler) -> dict | None:
    if name == "st_zero_shot":
        return scheduler.get_config()  # its scheduler's suggest() would ask the default random searcher
    suggestion = scheduler.suggest()
    return None if suggestion is None else suggestion.config


def run(name: str, data: metadataset.MetaDataset, space: dict, task: str, seed: int, trials: int) -> pd.DataFrame:
    """One searcher on one held-out task: one row per trial, the replay's columns."""
    import torch
    from syne_tune.backend.trial_status import Trial

    target = data.tasks[task]
    hidden, prior = data.fold(task)
    np.random.seed(seed)  # Syne Tune's Domain.sample and BoTorch's random start draw from the global generators
    torch.manual_seed(seed)
    scheduler = make_scheduler(name, space, evaluations(space, prior), seed)
    searcher = searcher_of(scheduler)
    asked = np.zeros(len(hidden), dtype=bool)
    found, cost, rows = -np.inf, 0.0, []
    for trial in range(1, min(trials, len(hidden)) + 1):
        config = suggest(name, scheduler)
        if config is None:
            break
        point = data.encoding.encode(pd.DataFrame([{f"hp.{k}": float(config[k]) for k in SPACE}]))[0]
        index = nearest_row(hidden.X, np.flatnonzero(~asked), point)
        asked[index] = True
        snapped = {k: hidden.raw[f"hp.{k}"].iloc[index].item() for k in SPACE}
        if searcher is not None and hasattr(searcher, "trial_configs"):
            searcher.trial_configs[trial - 1] = snapped  # BoTorch fits its GP on what it was told was evaluated
        value = float(target.y[index])
        error = 1.0 - value if np.isfinite(value) else 1.0
        record = Trial(trial_id=trial - 1, config=snapped, creation_time=datetime.datetime.now())
        scheduler.on_trial_complete(record, {METRIC: error})
        if np.isfinite(value):
            found = max(found, value)
        cost += float(target.cost[index]) if target.cost is not None else 1.0
        rows.append((name, task, seed, trial, metadataset.regret(target, found), cost, int(index), target.n_epochs))
    return pd.DataFrame(rows, columns=["strategy", "task", "seed", "trial", "regret", "cost", "index", "epochs"])


def zero_shot_suggest_is_random(space: dict, prior: dict) -> bool:
    """Whether ``ZeroShotTransfer.suggest()`` ignores the zero-shot ranking (Syne Tune 0.16 does)."""
    scheduler = make_scheduler("st_zero_shot", space, prior, 0)
    ranked = scheduler.get_config()
    fresh = make_scheduler("st_zero_shot", space, prior, 0)
    suggested = fresh.suggest().config
    return any(not np.isclose(float(suggested[k]), float(ranked[k])) for k in SPACE)


def ratios(theirs: pd.DataFrame, ours: pd.DataFrame) -> str:
    """Markdown: Syne Tune's mean regret / ours at each checkpoint, on the tasks the Syne Tune searcher ran."""

    def means(table: pd.DataFrame) -> pd.Series:  # mean over seeds per task, then over tasks
        return replicate_means(table, over="task").groupby("trial")["regret"].mean()

    budgets = [k for k in CHECKPOINTS if k <= min(theirs["trial"].max(), ours["trial"].max())]
    lines = ["| Syne Tune / ours | " + " | ".join(f"@{k}" for k in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for name, peers in OURS.items():
        mine = theirs[theirs["strategy"] == name]
        for peer in peers:
            other = ours[(ours["strategy"] == peer) & ours["task"].isin(set(mine["task"]))]
            if len(mine) and len(other):
                a, b = means(mine), means(other)
                cells = [f"{a[k] / b[k]:.2f}" if b[k] > 0 else "inf" for k in budgets]
                lines.append(f"| {name} / {peer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-dataset", default=str(LCBENCH))
    parser.add_argument("--searchers", default="all", help=f"comma-separated, or all: {','.join(SEARCHERS)}")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--configs", type=int, default=2000, help="configurations per task (a seeded sample)")
    parser.add_argument("--tasks", type=int, help="hold out only a seeded sample of N tasks (for a slow searcher)")
    parser.add_argument("--out", help="a folder to write regret.parquet to")
    parser.add_argument("--ours", help="our replay's regret.parquet (benchmarks/lcbench_replay.py --out): print ratios")
    parser.add_argument("--summarise", help="comma-separated regret.parquet files of earlier runs: tables only")
    args = parser.parse_args()

    if args.summarise:  # tables only, from earlier runs' regret.parquet files (e.g. per searcher)
        regret = pd.concat([pd.read_parquet(path) for path in args.summarise.split(",")], ignore_index=True)
        summarise(regret, [name for name in SEARCHERS if name in set(regret["strategy"])], args.ours)
        return

    import syne_tune

    logging.getLogger("syne_tune").setLevel(logging.ERROR)  # it logs every model fit
    warnings.filterwarnings("ignore")  # BoTorch's input-scaling and fitting warnings, once per trial
    start = time.perf_counter()
    data = metadataset.from_frame(sample_configs(pd.read_parquet(args.meta_dataset), args.configs))
    space = config_space(data)
    pool = len(next(iter(data.tasks.values())))
    print(f"Syne Tune {syne_tune.__version__}; meta-dataset: {len(data.names)} tasks x {pool} configs, "
          f"read in {time.perf_counter() - start:.1f} s")  # fmt: skip
    if zero_shot_suggest_is_random(space, evaluations(space, data.fold(data.names[0])[1])):
        print("note: ZeroShotTransfer.suggest() ignores its ranking (random searcher); asked via get_config()")

    held_out = data.names
    if args.tasks and args.tasks < len(held_out):
        held_out = [str(name) for name in sorted(np.random.default_rng(0).choice(held_out, args.tasks, replace=False))]
        print(f"held-out tasks (a seeded sample of {args.tasks}): {', '.join(held_out)}")
    names = list(SEARCHERS) if args.searchers == "all" else args.searchers.split(",")
    frames, seconds = [], {}
    for name in names:
        begin = time.perf_counter()
        for task in held_out:
            for seed in range(args.seeds):
                frames.append(run(name, data, space, task, seed, args.trials))
                if args.out:  # after every run: a run stopped early still leaves its finished runs
                    write_parquet(Path(args.out) / "regret.parquet", pd.concat(frames, ignore_index=True))
        seconds[name] = time.perf_counter() - begin
        runs = len(held_out) * args.seeds
        print(f"{name:>16}: {seconds[name]:7.1f} s wall ({seconds[name] / runs:.2f} s per run)", flush=True)
    summarise(pd.concat(frames, ignore_index=True), names, args.ours)
    print(f"\ntotal wall time: {sum(seconds.values()):.1f} s for {len(names)} searchers")


def summarise(regret: pd.DataFrame, names: list[str], ours: str | None) -> None:
    """The Markdown regret@k table (interval over tasks), how many tasks and seeds each row has, and the ratios."""
    runs = regret.groupby("strategy").agg(tasks=("task", "nunique"), seeds=("seed", "nunique"))
    print("\nmean normalised regret, ± 95% t-interval over the held-out tasks (each task's mean over its seeds):\n")
    print(markdown_regret_at(regret_at(regret, over="task"), order=names))
    counts = [f"{name}: {runs.loc[name, 'tasks']} tasks x {runs.loc[name, 'seeds']} seeds" for name in names]
    print("\n" + ", ".join(counts))
    if ours:
        print("\nratio of mean normalised regret, Syne Tune / ours (same tasks; < 1: Syne Tune better):\n")
        print(ratios(regret, pd.read_parquet(ours)))

if __name__ == "__main__":
    main()
