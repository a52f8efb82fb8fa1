"""Peak memory and wall time of every pipeline job: the figures behind the cluster profiles' limits.

In a project folder (this repository, or a copy of it), with a params file:

    python benchmarks/job_memory.py --params params/mirror-small.yaml [--cores 2]

runs `snakemake --cores N --resources gpu=N --config params=FILE` and samples, every 0.2 s, the
resident memory of each job's process tree (the `python scripts/<stage>.py` process and its children:
data loaders, tokenizers). Memory is Linux's RSS: what `sbatch --mem` limits through cgroups. It prints
per stage the jobs, the peak RSS of its largest job, its longest job, and the stage table's `mem_mb`
and `runtime` (src/metahpo/pipeline.py) with the headroom they leave, for docs/PERFORMANCE.md.
A job shorter than the sampling interval may be missed; its stage then shows fewer jobs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import psutil

from metahpo import pipeline

SCRIPTS = {stage.script: stage.name for stage in pipeline.STAGES}


def job_of(proc: psutil.Process) -> str | None:
    """'sweep@digits-cnn' for a `python scripts/sweep.py digits-cnn ...` process, else None."""
    try:
        cmd = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    for i, word in enumerate(cmd):
        stage = SCRIPTS.get(word)
        if stage:
            key = cmd[i + 1] if i + 1 < len(cmd) and not cmd[i + 1].startswith("-") else None
            return f"{stage}@{key}" if key else stage
    return None


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return total


def sample(root: psutil.Process, peaks: dict, seen: dict) -> None:
    now = time.monotonic()
    try:
        procs = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        job = job_of(proc)
        if job is None or (proc.parent() is not None and job_of(proc.parent()) == job):
            continue  # the job's own process only, not its children by the same command line
        try:
            peaks[job] = max(peaks.get(job, 0), tree_rss(proc))
        except psutil.NoSuchProcess:
            continue
        first, _ = seen.get(job, (now, now))
        seen[job] = (first, now)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=pipeline.PARAMS_FILE, help="params file (default: params.yaml)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    args = parser.parse_args(argv)
    if not Path("Snakefile").exists():
        raise SystemExit("run this in a project folder (one with a Snakefile): it runs the pipeline there")

    cmd = ["snakemake", "--cores", str(args.cores), "--config", f"params={args.params}", "--resources", f"gpu={args.cores}"]
    print(" ".join(cmd), file=sys.stderr)
    start = time.monotonic()
    snakemake = subprocess.Popen(cmd)
    root = psutil.Process(snakemake.pid)
    peaks: dict[str, int] = {}
    seen: dict[str, tuple[float, float]] = {}
    while snakemake.poll() is None:
        sample(root, peaks, seen)
        time.sleep(args.interval)
    if snakemake.returncode != 0:
        raise SystemExit(f"snakemake failed (exit {snakemake.returncode}); figures of a failed run are not reported")
    wall = time.monotonic() - start

    by_stage = defaultdict(list)
    for job, peak in peaks.items():
        first, last = seen[job]
        by_stage[job.split("@")[0]].append((peak, last - first, job))
    print(f"{len(peaks)} jobs sampled, {wall / 60:.1f} min wall, `{' '.join(cmd)}`\n")
    print("| stage | jobs | peak RSS (MB), largest job | longest job (s) | mem_mb | mem_mb / peak | runtime (min) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for stage in pipeline.STAGES:
        jobs = by_stage.get(stage.name)
        if not jobs:
            continue
        peak, _, biggest = max(jobs)
        longest = max(seconds for _, seconds, _ in jobs)
        mb = peak / 2**20
        print(f"| {stage.name} | {len(jobs)} | {mb:,.0f} ({biggest}) | {longest:,.0f} | {stage.mem_mb:,} | "
              f"{stage.mem_mb / mb:.1f}x | {stage.runtime} |")


if __name__ == "__main__":
    main()
