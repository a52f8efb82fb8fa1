"""``metahpo`` command line: one subcommand per pipeline stage, plus helpers.

scripts/<stage>.py call ``main`` with their stage name, so Snakemake, DVC and a user at the shell run
the same code. A user-fixable problem (``MetahpoError``) prints one message and exits with 2 before
any output is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from metahpo.errors import MetahpoError

RESULTS = Path("results")


def _params(args):
    from metahpo.config import load_params

    return load_params(args.params)


def _require(name: str, names, kind: str) -> None:
    if name not in names:
        raise MetahpoError(f"unknown {kind} {name!r}; valid names in params: {', '.join(sorted(names)) or '(none)'}")


def cmd_download(args) -> None:
    params = _params(args)
    from metahpo.data import download_dataset
    _require(args.dataset, params.datasets, "dataset")
    download_dataset(args.dataset, params, RESULTS / "data" / args.dataset)


def cmd_metafeatures(args) -> None:
    params = _params(args)
    from metahpo.metafeatures import write_metafeatures
    _require(args.dataset, params.datasets, "dataset")
    write_metafeatures(RESULTS / "data" / args.dataset, RESULTS / "metafeatures" / f"{args.dataset}.json", params)


def cmd_sweep(args) -> None:
    params = _params(args)
    from metahpo.sweep import run_sweep
    _require(args.task, params.tasks, "task")
    dataset = params.tasks[args.task].dataset
    run_sweep(args.task, params, RESULTS / "data" / dataset, RESULTS / "sweep" / f"{args.task}.parquet")


def cmd_fit_meta(args) -> None:
    params = _params(args)
    from metahpo.meta import fit_meta
    fit_meta(params, RESULTS / "sweep", RESULTS / "metafeatures", RESULTS / "meta")


def cmd_train_recommended(args) -> None:
    params = _params(args)
    from metahpo.train_recommended import train_recommended
    _require(args.task, params.tasks, "task")
    dataset = params.tasks[args.task].dataset
    train_recommended(
        args.task,
        params,
        RESULTS / "data" / dataset,
        RESULTS / "meta" / "recommendations.json",
        RESULTS / "train" / args.task,
    )


def cmd_report(args) -> None:
    params = _params(args)
    from metahpo.report import build_report
    build_report(params, args.params, RESULTS, RESULTS / "report" / "index.html")


def cmd_check(args) -> None:
    params = _params(args)
    print(f"{args.params}: ok ({len(params.datasets)} datasets, {len(params.tasks)} tasks)")


def cmd_list(args) -> None:
    from metahpo.data import DATASETS
    from metahpo.models import FAMILIES

    registry = {"datasets": DATASETS, "families": FAMILIES}[args.what]
    for name in registry.names():
        print(name)


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

    add("download", cmd_download, "download and split one dataset", "dataset")
    add("metafeatures", cmd_metafeatures, "meta-features of one dataset", "dataset")
    add("sweep", cmd_sweep, "grid + random search of one task", "task")
    add("fit-meta", cmd_fit_meta, "fit meta-models, leave-one-task-out evaluation")
    add("train-recommended", cmd_train_recommended, "train one task's recommended config", "task")
    add("report", cmd_report, "write results/report/index.html")
    add("check", cmd_check, "validate a params file")
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
