"""Per-trial overhead (process start, data load) against training time, from a finished run.

Run the pipeline first (`make run`), then: `python benchmarks/trial_overhead.py [--params params.yaml]`.
It measures, per task:
  - process start: a fresh interpreter importing the training stack (what every stage job pays once);
  - data load: reading results/data/<dataset> and turning it into tensors (family.prepare), once per sweep;
and reads the measured training seconds of every trial from results/sweep/<task>.parquet. Trials run
in-process, so a sweep pays start + load once; the last column shows what a process per trial would
cost instead. Prints a Markdown table for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from metahpo.data.prepare import load_prepared  # noqa: F401  imports datasets now: load times exclude the import
from metahpo.config import load_params
from metahpo.stages.task_data import task_data


def process_start_seconds(repeats: int = 3) -> float:
    code = "import metahpo.stages.sweep, metahpo.training, metahpo.models, metahpo.data"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def data_load_seconds(params, task: str, results: Path) -> float:
    start = time.perf_counter()
    task_data(params, task, results / "data" / params.tasks[task].dataset)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    params = load_params(args.params)
    results = Path(args.results)

    start = process_start_seconds()
    rows = []
    for task in params.tasks:
        table = pd.read_parquet(results / "sweep" / f"{task}.parquet")
        load = data_load_seconds(params, task, results)
        trial = table["seconds"].median()
        total = table["seconds"].sum()
        rows.append(
            {
                "task": task,
                "trials": len(table),
                "median trial s": round(trial, 3),
                "sweep training s": round(total, 1),
                "data load s": round(load, 3),
                "overhead / sweep": f"{(start + load) / (start + load + total):.1%}",
                "overhead / trial if 1 process per trial": f"{(start + load) / trial:.1f}x",
            }
        )
    print(f"process start (import the training stack, median of 3): {start:.2f} s\n")
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in header) + " |")


if __name__ == "__main__":
    main()
