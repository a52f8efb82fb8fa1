"""Training throughput (samples per second) of each task's model family, fp32 and bf16 autocast.

One real training per task and precision: the family's default configuration from params, two
epochs, on the task's prepared data (run the download stage first). The figure is the second
epoch's rows (train + validation pass) per second, so model build, data transfer to the device and
first-call warm-up are left out. bf16 is measured only where training uses it (CUDA): on a CPU the
column says n/a. Prints a Markdown table for docs/PERFORMANCE.md, then each measured task's
training jobs sized from it (epochs x rows / samples per second at the precision training uses):
the hours of its sweep, tune and train_recommended jobs and the `--set-resources` runtimes (x1.5)
for a cluster profile (profiles/slurm). Not a test; run it by hand:

    python benchmarks/throughput.py --params params/mirror-small.yaml [--results results] [--tasks a,b]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from metahpo.config import load_params
from metahpo.stages.task_data import task_data
from metahpo.training import describe_device, resolve_device, train_model, uses_bf16


def samples_per_second(params, task: str, prepared, family, options, device: torch.device, precision: str) -> float:
    config = {**params.families[params.tasks[task].family].default, "epochs": 2}
    result = train_model(family, prepared, config, epochs=2, seed=params.seed, device=device,
                         precision=precision, options=options)  # fmt: skip
    if not result.ok:
        raise RuntimeError(f"{task} ({precision}): {result.state}: {result.message}")
    return (len(prepared.train) + len(prepared.validation)) / result.curve_seconds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--results", default="results")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: one task per family)")
    args = parser.parse_args()
    params = load_params(args.params)
    device = resolve_device(params.device)
    if args.tasks:
        tasks = args.tasks.split(",")
    else:  # the first task of each families entry
        first: dict[str, str] = {}
        for task, spec in params.tasks.items():
            first.setdefault(spec.family, task)
        tasks = list(first.values())
    print(f"device: {describe_device(device)}; torch threads: {torch.get_num_threads()}\n")
    rates: dict[str, tuple[float, int]] = {}  # task -> (samples/s as training runs, rows per epoch)
    print("| task | family | fp32 samples/s | bf16 samples/s | bf16 speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for task in tasks:
        family, options, prepared = task_data(params, task, Path(args.results) / "data" / params.tasks[task].dataset)
        fp32 = samples_per_second(params, task, prepared, family, options, device, "fp32")
        bf16 = None
        if uses_bf16(device, "bf16"):
            bf16 = samples_per_second(params, task, prepared, family, options, device, "bf16")
            cells = f"{bf16:,.0f} | {bf16 / fp32:.2f}x"
        else:
            cells = "n/a | n/a"
        print(f"| {task} | {params.tasks[task].family} | {fp32:,.0f} | {cells} |", flush=True)
        rates[task] = (bf16 if uses_bf16(device, params.precision) else fp32, len(prepared.train) + len(prepared.validation))
    print_job_sizes(params, rates)


def job_epochs(params, task: str) -> dict[str, float]:
    """The training epochs of each training job of ``task``: its sweep, its real tuning, its full-budget run."""
    from metahpo.stages.sweep import sweep_trials

    trials = sweep_trials(task, params)
    epochs = [int(t["config"].get("epochs", params.sweep.epochs)) for t in trials]
    mean = sum(epochs) / len(epochs)
    default = params.families[params.tasks[task].family].default
    return {
        "sweep": float(sum(epochs)),
        "tune": 2 * params.tune.trials * mean,  # the strategy and its baseline, trials each
        "train_recommended": float(default.get("epochs", params.train_recommended.epochs)),
    }


def print_job_sizes(params, rates: dict[str, tuple[float, int]]) -> None:
    print("\n| task | job | epochs | hours | runtime (min, x1.5) |")
    print("| --- | --- | --- | --- | --- |")
    longest: dict[str, float] = {}
    total = 0.0
    for task, (rate, rows) in rates.items():
        for job, epochs in job_epochs(params, task).items():
            hours = epochs * rows / rate / 3600
            total += hours
            longest[job] = max(longest.get(job, 0.0), hours)
            print(f"| {task} | {job} | {epochs:,.0f} | {hours:.2f} | {max(10, round(hours * 90))} |")
    print(f"\ntraining hours of the measured tasks' jobs: {total:.1f}")
    print("for the cluster profile: --set-resources " + " ".join(
        f"{job}:runtime={max(10, round(hours * 90))}" for job, hours in longest.items()))


if __name__ == "__main__":
    main()
