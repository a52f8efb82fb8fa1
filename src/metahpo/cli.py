"""``metahpo`` command line: one subcommand per pipeline stage, plus helpers.

The stage subcommands come from the stage table (``metahpo.pipeline``) and run what scripts/<stage>.py
runs (``metahpo.stages.main``), so Snakemake, DVC and a user at the shell run the same code. A user-fixable problem (``MetahpoError``) prints one message and exits with 2 before
any output is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from metahpo import pipeline
from metahpo.errors import MetahpoError
from metahpo.stages import add_arguments as add_stage_arguments
from metahpo.stages import run_stage


def _params(args):
    from metahpo.config import load_params

    return load_params(args.params)


def cmd_check(args) -> None:
    params = _params(args)
    from metahpo.stages.sweep import sweep_trials

    # the sweep's size before running it: trials and training epochs (an epochs hyperparameter wins)
    trials = [t for task in params.tasks for t in sweep_trials(task, params)]
    epochs = sum(int(t["config"].get("epochs", params.sweep.epochs)) for t in trials)
    print(
        f"{args.params}: ok ({len(params.datasets)} datasets, {len(params.tasks)} tasks, "
        f"{len(trials)} sweep trials, {epochs} training epochs)"
    )


def cmd_list(args) -> None:
    from metahpo.data import DATASETS
    from metahpo.models import FAMILIES

    registry = {"datasets": DATASETS, "families": FAMILIES}[args.what]
    for name in registry.names():
        print(name)


def cmd_replay(args) -> None:
    from metahpo.hpo import metadataset
    from metahpo.hpo.base import STRATEGIES
    from metahpo.hpo.regret_summary import format_summary, summarize
    from metahpo.hpo.replay import replay_strategies
    from metahpo.io import write_parquet

    import metahpo.hpo.strategies  # noqa: F401  registers the strategies

    if args.trials < 1 or args.seeds < 1:
        raise MetahpoError(f"--trials and --seeds must be at least 1, got {args.trials} and {args.seeds}")
    names = STRATEGIES.names() if args.strategies == "all" else [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not names:
        raise MetahpoError(f"--strategies names no strategy; valid names: {', '.join(STRATEGIES.names())}")
    classes = [STRATEGIES.get(name) for name in names]  # an unknown name fails before any replay
    data = metadataset.read(args.meta_dataset, args.direction, args.meta_features)
    capped = _capped_runs(data, classes, args.trials)
    if capped:
        print(f"note: --trials {args.trials} is more than some pools hold; capped: {'; '.join(capped)}")
    regret = replay_strategies(data, names, args.trials, range(args.seeds), progress=sys.stderr.isatty())
    write_parquet(Path(args.out) / "regret.parquet", regret)
    print(format_summary(summarize(regret)))
    print(f"wrote {Path(args.out) / 'regret.parquet'} ({len(regret)} rows)")


def _capped_runs(data, classes, trials: int) -> list[str]:
    """'N for tasks ... (strategies)' where replay stops runs early: the pool (x epochs if multi-fidelity)."""
    tasks_by_cap: dict[tuple[int, tuple[str, ...]], list[str]] = {}
    for task in data.tasks.values():
        caps: dict[int, list[str]] = {}
        for cls in classes:
            cap = len(task) * (task.n_epochs if cls.multi_fidelity else 1)
            if cap < trials:
                caps.setdefault(cap, []).append(cls.name)
        for cap, names in caps.items():
            tasks_by_cap.setdefault((cap, tuple(names)), []).append(task.name)
    return [
        f"{cap} for {', '.join(tasks)} ({', '.join(names)})" for (cap, names), tasks in sorted(tasks_by_cap.items())
    ]


def cmd_recommend(args) -> None:
    import tempfile

    from metahpo.config import DatasetParams
    from metahpo.meta import METHODS, load_meta_model, recommendation

    if args.method not in METHODS:
        raise MetahpoError(f"unknown --method {args.method!r}; valid names: {', '.join(METHODS)}")
    if args.top_k < 1 or (args.max_train is not None and args.max_train < 1):
        raise MetahpoError(f"--top-k and --max-train must be at least 1, got {args.top_k} and {args.max_train}")
    params = _params(args)
    meta_model = load_meta_model(args.meta_model, args.model)  # fails before the slow imports and the download
    from metahpo.stages.download import download_dataset
    from metahpo.metafeatures import compute_metafeatures

    source, mirror = _recommend_source(args.dataset)
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in source)
    params = params.model_copy(
        update={
            "datasets": {name: DatasetParams(source=source, max_train=args.max_train)},
            "download": params.download.model_copy(update={"mirror": mirror or params.download.mirror}),
        }
    )
    with tempfile.TemporaryDirectory(prefix="metahpo-recommend-") as tmp:
        download_dataset(name, params, Path(tmp) / name)
        metafeatures = compute_metafeatures(Path(tmp) / name, params.metafeatures, params.seed)
    result = recommendation(meta_model, metafeatures, args.top_k, args.method)
    top = result["configs"]
    coverage = f"{meta_model.calibration.coverage:.0%}"
    print(f"top {len(top)} {args.model} configurations for {args.dataset} by {args.method} "
          f"(predicted normalised score, 1 = the task's best grid config; [{coverage} interval]):")  # fmt: skip
    if result["fallback"]:
        print(f"fallback: {result['fallback']} config first ({result['reason']})")
    for rank, entry in enumerate(top, start=1):
        config, score = entry["config"], entry["predicted"]
        shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items())
        interval = "" if entry["lower"] is None else f" [{entry['lower']:.3f}, {entry['upper']:.3f}]"
        print(f"{rank:>3}. {shown}  score={'n/a' if score is None else f'{score:.3f}'}{interval}")


def cmd_fewshot_evaluate(args) -> None:
    """Score a saved initialization on a fixed episode table (docs/ARCHITECTURE.md, "Episode tables")."""
    from metahpo.fewshot.episodes import read_episode_table
    from metahpo.fewshot.evaluate import evaluate_method, summarize
    from metahpo.fewshot.inits import load_init
    from metahpo.fewshot.meta_train import new_body
    from metahpo.fewshot.methods import METHODS, Inner
    from metahpo.io import write_json
    from metahpo.training import resolve_device

    if args.steps is not None and args.steps < 0:
        raise MetahpoError(f"--steps must be 0 or more, got {args.steps}")
    if args.lr is not None and not args.lr > 0:
        raise MetahpoError(f"--lr must be above 0, got {args.lr}")
    if not 0 < args.threshold <= 1:
        raise MetahpoError(f"--threshold is an accuracy in (0, 1], got {args.threshold}")
    device = resolve_device(args.device)
    state, config = load_init(args.init, device)
    method = METHODS.get(args.method or config["method"])
    episodes = read_episode_table(args.episodes, config["image_size"], config["in_channels"])
    inner = Inner(lr=config["inner_lr"] if args.lr is None else args.lr, train_steps=config["inner_steps"],
                  steps=config.get("steps", 10) if args.steps is None else args.steps)  # fmt: skip
    body = new_body(config["in_channels"], config["filters"], 0, device)
    frame = evaluate_method(method, lambda i: body, lambda i: state, episodes, inner, device, total=len(episodes))
    frame.insert(0, "setting", Path(args.episodes).name)
    frame.insert(0, "method", method.name)
    curves, table = summarize(frame, args.threshold)
    for row in table.to_dict("records"):
        print(f"{row['method']} on {len(episodes)} episodes of {row['setting']}: accuracy {row['accuracy']:.4f} "
              f"+- {row['accuracy_ci']:.4f}, macro-F1 {row['macro_f1']:.4f} +- {row['macro_f1_ci']:.4f} "
              f"after {row['steps']} steps")  # fmt: skip
    if args.out:
        write_json(args.out, {"init": str(args.init), "episodes": str(args.episodes), "table": table.to_dict("records"),
                              "curve": curves.to_dict("records")})  # fmt: skip


def cmd_select(args) -> None:
    """Rank a model pool for a new dataset from K of its labelled examples; writes nothing."""
    import tempfile

    import numpy as np
    import pandas as pd

    import metahpo.selection  # noqa: F401  registers the selectors
    from metahpo.config import DatasetParams
    from metahpo.data.prepare import label_array
    from metahpo.selection.evaluate import build_context, cheap_rankings, shot_rows
    from metahpo.selection.meta import MetaSelector
    from metahpo.selection.pool import class_subset, read_pool, serving
    from metahpo.selection.selectors import SELECTORS

    if args.shots < 2:
        raise MetahpoError(f"--shots must be at least 2, got {args.shots}")
    selector = SELECTORS.get(args.selector)
    members = read_pool(args.pool)  # every check that needs no data comes before the download
    meta_selector = MetaSelector.load(args.meta_selector) if args.selector == "meta" else None
    truth = pd.DataFrame(columns=["target", "member", "truth"])
    if args.selector in ("best_on_average", "meta"):  # both read the members' past outcomes
        if not Path(args.truth).is_file():
            raise MetahpoError(f"{args.truth} not found: {args.selector} needs the pool_finetune stage's ground truth")
        truth = pd.read_parquet(args.truth)
        truth = truth[truth["state"] == "ok"]
    params = _params(args)
    source, mirror = _recommend_source(args.dataset)
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in source)
    params = params.model_copy(update={
        "datasets": {name: DatasetParams(source=source)},
        "download": params.download.model_copy(update={"mirror": mirror or params.download.mirror}),
    })  # fmt: skip
    from metahpo.data.prepare import load_prepared
    from metahpo.stages.download import download_dataset

    with tempfile.TemporaryDirectory(prefix="metahpo-select-") as tmp:
        download_dataset(name, params, Path(tmp) / name)
        dataset_dict, info = load_prepared(Path(tmp) / name)
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        dataset_dict, info = class_subset(dataset_dict, info, classes, None, params.seed, args.dataset)
        served = serving(members, info, args.dataset)
        labels = label_array(dataset_dict["train"])
        rows = shot_rows(labels, args.shots, int(info["num_classes"]), params.seed, args.dataset, 0)
        context, embed_seconds = build_context(args.dataset, 0, dataset_dict, info, rows, served, {}, truth, params.seed)
        scored = {row["member"]: row for row in cheap_rankings(context, [args.selector], embed_seconds)}
        if meta_selector is not None:
            context.meta_selector = meta_selector
            ranking = selector.rank(context)
            scored = {m: {"score": s, "lower": lo, "upper": hi} for m, s, lo, hi
                      in zip(context.members, ranking.score, ranking.lower, ranking.upper)}  # fmt: skip
    order = sorted(context.members, key=lambda m: -np.nan_to_num(scored[m]["score"], nan=-np.inf))
    what = "predicted fine-tuned metric [interval]" if selector.predicts_metric else f"{args.selector} score"
    print(f"{len(order)} of {len(members)} pool members serve {args.dataset} ({info['num_classes']} classes, "
          f"{args.shots} labelled examples); ranked by {what}:")
    for rank, member in enumerate(order, start=1):
        row, descriptor = scored[member], context.descriptors[member]
        interval = f" [{row['lower']:.3f}, {row['upper']:.3f}]" if np.isfinite(row.get("lower", np.nan)) else ""
        print(f"{rank:>3}. {member:<24} {descriptor['family']:<10} fine-tunes {descriptor['finetune']:<4} "
              f"{row['score']:.3f}{interval}")


def _recommend_source(dataset: str) -> tuple[str, Optional[str]]:
    """(source, mirror): a mirror path <mirror>/<org>/<name> becomes Hub id org/name read from <mirror>."""
    path = Path(dataset).expanduser()
    if path.is_dir():
        path = path.resolve()
        return f"{path.parent.name}/{path.name}", str(path.parent.parent)
    return dataset, None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metahpo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable, help: str, positional: Optional[str] = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        if positional:
            p.add_argument(positional)
        p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        p.set_defaults(func=func)
        return p

    for stage in pipeline.STAGES:  # one subcommand per stage, from the stage table
        p = sub.add_parser(stage.subcommand, help=stage.help)
        add_stage_arguments(p, stage)
        p.set_defaults(func=lambda args, stage=stage: run_stage(
            stage.name, args.params, getattr(args, stage.wildcard) if stage.over else None))
    add("check", cmd_check, "validate a params file")
    bench = sub.add_parser("replay", help="replay HPO strategies on any meta-dataset, write regret.parquet")
    bench.add_argument("--meta-dataset", required=True, help="Parquet meta-dataset (docs/META_DATASET.md)")
    bench.add_argument("--meta-features", help="Parquet table: task + mf.<name> columns")
    bench.add_argument("--direction", choices=["max", "min"], default="max", help="of the objective (default: max)")
    bench.add_argument("--strategies", required=True, help="comma-separated strategy names, or all")
    bench.add_argument("--trials", type=int, required=True, help="evaluations per run (capped at a task's pool)")
    bench.add_argument("--seeds", type=int, default=5, help="seeds 0..S-1 per strategy and task (default: 5)")
    bench.add_argument("--out", required=True, help="folder for regret.parquet")
    bench.set_defaults(func=cmd_replay)
    rec = add("recommend", cmd_recommend, "top configurations for a new dataset from the fitted meta-model")
    rec.add_argument("--dataset", required=True, help="Hub id org/name, mirror path <mirror>/<org>/<name>, or bundled name")
    rec.add_argument("--model", required=True, help="model family (its meta-model must be fitted)")
    rec.add_argument("--top-k", type=int, default=5, help="how many configurations (default: 5)")
    rec.add_argument("--meta-model", default=pipeline.STAGE_BY_NAME["fit_meta"].output("model"), help="fit_meta's model folder")
    rec.add_argument("--max-train", type=int, help="subsample train like the meta-model's tasks did (default: all)")
    rec.add_argument("--method", default="safe", help="safe (default: the surrogate's ranking, or the family's default "
                     "config first when the prior tasks do not back it), surrogate (no fallback), nearest, portfolio")
    sel = add("select", cmd_select, "rank a model pool for a new dataset from K labelled examples (writes nothing)")
    sel.add_argument("--dataset", required=True, help="Hub id org/name, mirror path <mirror>/<org>/<name>, or bundled name")
    sel.add_argument("--pool", default=pipeline.STAGE_BY_NAME["pool"].outs[0], help="the pool stage's folder")
    sel.add_argument("--shots", type=int, default=32, help="K labelled examples drawn from train (default: 32)")
    sel.add_argument("--classes", help="comma-separated label names to keep (default: all)")
    sel.add_argument("--selector", default="meta", help="a registered selector (default: meta, the meta-learned one)")
    sel.add_argument("--meta-selector", default=pipeline.STAGE_BY_NAME["selection"].output("meta_selector"),
                     help="the selection stage's fitted meta-learned selector")
    sel.add_argument("--truth", default=pipeline.STAGE_BY_NAME["pool_finetune"].output("truth.parquet"),
                     help="the ground truth: the past outcomes best_on_average and meta read")
    fewshot = sub.add_parser("fewshot", help="few-shot helpers").add_subparsers(dest="fewshot_command", required=True)
    fse = fewshot.add_parser("evaluate", help="score a saved initialization on a fixed episode table (Parquet)")
    fse.add_argument("--init", required=True, help="an initialization written by meta_init (.safetensors)")
    fse.add_argument("--episodes", required=True, help="Parquet table: episode, role (support|query), image, label")
    fse.add_argument("--method", help="the few-shot method that adapts it (default: the one that trained it)")
    fse.add_argument("--steps", type=int, help="adaptation steps (default: the init's evaluation steps)")
    fse.add_argument("--lr", type=float, help="adaptation learning rate (default: the init's inner_lr)")
    fse.add_argument("--threshold", type=float, default=0.9, help="accuracy for steps-to-threshold (default: 0.9)")
    fse.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    fse.add_argument("--out", help="write the table and the accuracy-vs-steps curve as JSON here")
    fse.set_defaults(func=cmd_fewshot_evaluate)
    lister = sub.add_parser("list", help="registered datasets or model families")
    lister.add_argument("what", choices=["datasets", "families"])
    lister.set_defaults(func=cmd_list)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except MetahpoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
