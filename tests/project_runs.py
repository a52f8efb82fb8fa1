"""Whole-pipeline runs in a throwaway project: a copy of this repository's pipeline with given params."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import yaml

TINY = Path(__file__).parent / "data" / "params_tiny.yaml"
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}
TIMING_COLUMNS = ["seconds", "curve_seconds"]  # a sweep table's only columns that differ between runs


def project_copy(repo_root: Path, dest: Path, params_file: Path) -> Path:
    """A fresh git + DVC project with this repo's pipeline files and the given params."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "dvc.yaml", "workflow", "profiles", "scripts", "src", ".dvc", ".dvcignore", ".gitignore"):
        src = repo_root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    shutil.copy2(params_file, dest / "params.yaml")
    # a clone always has a commit; dvclive reads the git revision and fails on an empty repository
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "pipeline"], cwd=dest, check=True)
    return dest


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def recorded(output: str) -> set[str]:
    """The jobs a Snakemake run recorded in dvc.lock (metahpo.toolsync prints one line each)."""
    return set(re.findall(r"^(\S+): recorded in dvc\.lock$", output, re.M))


def dvc_outdated(project: Path) -> set[str]:
    proc = subprocess.run(["dvc", "status", "--json"], cwd=project, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout or "{}"))


def fault_params(tmp_path: Path, random_trials: int = 8, epochs: int = 20) -> Path:
    """The tiny params with a sweep to stop part-way: 2 grid + ``random_trials`` trials of digits_150-cnn,
    about 0.02 s per epoch on 2 cores, so a trial outlasts the 0.5 s a test polls at."""
    raw = yaml.safe_load(TINY.read_text())
    raw["sweep"].update(random_trials=random_trials, epochs=epochs)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def finished_lines(log: Path) -> list[dict]:
    lines = log.read_text().split("\n") if log.exists() else []
    return [json.loads(line) for line in lines[:-1] if line]  # the text after the last newline may be torn


def start(cmd: list[str], project: Path) -> subprocess.Popen:
    """Start ``cmd`` in the background in its own session (a kill of its group takes its children too);
    its output goes to a file (``proc.output``), so a full pipe never blocks it."""
    output = project.parent / f"{project.name}-{time.monotonic_ns()}.log"
    with open(output, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(cmd, cwd=project, env=ENV, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    proc.output = output
    return proc


def output_of(proc: subprocess.Popen, timeout: float = 900) -> str:
    proc.wait(timeout=timeout)
    return proc.output.read_text(encoding="utf-8")


def wait_for_trials(log: Path, count: int, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while len(finished_lines(log)) < count:
        assert proc.poll() is None, f"the run ended before {count} trials: {proc.output.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"fewer than {count} trials in {log} after {timeout} s"
        time.sleep(0.5)


def assert_resumed_without_recomputing(project: Path, task: str, logged: list[dict], rerun_output: str,
                                       record) -> pd.DataFrame:
    """The rerun read every trial the stopped run had finished and trained only the others; ``record``
    (pytest's record_property) keeps the counts for benchmarks/fault_figures.py."""
    table = pd.read_parquet(project / f"results/sweep/{task}.parquet")
    assert f"{task}: resumed {len(logged)} finished trials" in rerun_output, rerun_output[-3000:]
    kept = table.set_index("trial_id").loc[[row["trial_id"] for row in logged]]
    # their seconds are the stopped run's, to the last digit: read back, not trained again
    recomputed = sum(kept_s != row["seconds"] for kept_s, row in zip(kept["seconds"], logged))
    record("trials", len(table))
    record("finished before the stop", len(logged))
    record("finished trials recomputed", recomputed)
    assert recomputed == 0
    assert not (project / f"results/sweep/{task}.partial.jsonl").exists()
    return table


def assert_same_as_uninterrupted(repo_root: Path, tmp_path: Path, params_file: Path, task: str, table: pd.DataFrame,
                                 record) -> None:
    """The resumed sweep's table equals an uninterrupted run's, all but the timing columns."""
    project = project_copy(repo_root, tmp_path / "uninterrupted", params_file)
    run(["snakemake", f"results/sweep/{task}.parquet", "--cores", "1", "--resources", "gpu=1"], project)
    whole = pd.read_parquet(project / f"results/sweep/{task}.parquet")
    pd.testing.assert_frame_equal(table.drop(columns=TIMING_COLUMNS), whole.drop(columns=TIMING_COLUMNS))
    record("table identical to an uninterrupted run's", "yes")
