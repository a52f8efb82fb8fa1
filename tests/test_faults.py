"""Faults a real run meets: a kill mid-sweep, two runs at once, a truncated input, a full disk, bad
params, hostile text. Each must lose no finished work and corrupt no artifact. (scancel of a SLURM
job: tests/test_slurm.py.)"""

from __future__ import annotations

import copy
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from metahpo import io as mio
from metahpo.artifacts import ArtifactError, check_file
from metahpo.stages import main as stage_main
from project_runs import (ENV, TINY, assert_resumed_without_recomputing, assert_same_as_uninterrupted, fault_params,
                          finished_lines, project_copy, run, start, wait_for_trials)

TASK = "digits_150-cnn"
SWEEP = f"results/sweep/{TASK}.parquet"
LOCAL = ["snakemake", "--cores", "1", "--resources", "gpu=1"]
LOCAL_SWEEP = ["snakemake", SWEEP, *LOCAL[1:]]  # the target first: --resources takes every word after it


@pytest.mark.slow  # a sweep killed and resumed, then the same sweep uninterrupted
def test_sigkill_of_the_workflow_mid_sweep_then_rerun_recomputes_no_finished_trial(repo_root, tmp_path, record_property):
    params_file = fault_params(tmp_path)
    project = project_copy(repo_root, tmp_path / "project", params_file)
    log = project / f"results/sweep/{TASK}.partial.jsonl"
    proc = start(LOCAL_SWEEP, project)
    try:
        wait_for_trials(log, 3, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (project / SWEEP).exists()
    with open(log, "a", encoding="utf-8") as handle:  # a kill inside an append leaves a torn last line
        handle.write('{"task": "digits_150-cnn", "trial_id": "rand')
    logged = finished_lines(log)
    assert 3 <= len(logged) < 10

    # Snakemake's lock outlives a SIGKILL; --unlock is the documented way back (README)
    locked = subprocess.run(LOCAL_SWEEP, cwd=project, env=ENV, capture_output=True, text=True)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    run([*LOCAL, "--unlock"], project)
    rerun = run(LOCAL_SWEEP, project)
    table = assert_resumed_without_recomputing(project, TASK, logged, rerun, record_property)
    record_property("torn last lines dropped", 1)
    assert_same_as_uninterrupted(repo_root, tmp_path, params_file, TASK, table, record_property)
    assert sorted(p.name for p in (project / "results/sweep").iterdir()) == [f"{TASK}.parquet"], "no temporaries left"


@pytest.mark.slow  # a sweep runs while three other runs try to start it
def test_a_second_run_on_the_same_folder_refuses_while_the_first_runs(repo_root, tmp_path, record_property):
    # 42 trials of 100 epochs (over a minute): it outlasts the three attempts, then it is stopped
    project = project_copy(repo_root, tmp_path / "project", fault_params(tmp_path, random_trials=40, epochs=100))
    log = project / f"results/sweep/{TASK}.partial.jsonl"
    first = start(LOCAL_SWEEP, project)
    try:
        wait_for_trials(log, 1, first)
        second = subprocess.run(LOCAL_SWEEP, cwd=project, env=ENV, capture_output=True, text=True)
        assert second.returncode != 0 and "Directory cannot be locked" in second.stdout + second.stderr
        refused = 1
        # DVC and a stage script take the job's own lock, whichever tool runs the first
        for cmd in (["dvc", "repro", "--single-item", f"sweep@{TASK}"], [sys.executable, "scripts/sweep.py", TASK]):
            other = subprocess.run(cmd, cwd=project, env=ENV, capture_output=True, text=True)
            assert other.returncode != 0, (cmd, other.stdout[-2000:])
            assert f"sweep@{TASK} is already running in this folder (pid " in other.stdout + other.stderr, (cmd, other.stderr[-2000:])
            refused += 1
        assert first.poll() is None, "the first run must still be running, or the attempts proved nothing"
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # only the first run wrote the log: whole lines, each trial once, in the sweep's order
    trials = [row["trial_id"] for row in finished_lines(log)]
    assert trials and len(trials) == len(set(trials)) and not (project / SWEEP).exists()
    assert trials == (["grid-0000", "grid-0001"] + [f"random-{i:04d}" for i in range(40)])[: len(trials)]
    record_property("second runs refused (Snakemake, DVC, the stage script)", refused)
    record_property("trials the first run logged, each once", len(trials))


# --- truncated and corrupted inputs: the reading stage fails before any work ----------------------


@pytest.fixture
def tiny_project(tmp_path, monkeypatch) -> Path:
    """A folder with the tiny params and the iris dataset downloaded (bundled: no network)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(TINY.read_text())
    assert stage_main("download", ["iris"]) == 0
    return tmp_path


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_dataset_fails_the_sweep_naming_the_file_and_its_stage(tiny_project, capsys, record_property):
    arrow = next((tiny_project / "results/data/iris/train").glob("*.arrow"))
    _truncate(arrow)
    assert stage_main("sweep", ["iris-mlp"]) == 2
    err = capsys.readouterr().err
    assert f"results/data/iris/train/{arrow.name}: it is truncated or corrupted" in err
    assert "stage download@iris" in err and "delete results/data/iris and rerun it" in err
    assert not (tiny_project / "results/sweep").exists(), "nothing is written from a corrupted input"
    record_property("bad inputs named", 1)


def test_a_corrupted_sweep_table_fails_fit_meta_before_any_work(tiny_project, capsys, record_property):
    sweeps = tiny_project / "results/sweep"
    sweeps.mkdir(parents=True)
    mio.write_parquet(sweeps / "iris-mlp.parquet", pd.DataFrame({"trial_id": ["a", "b"], "val_metric": [0.1, 0.2]}))
    _truncate(sweeps / "iris-mlp.parquet", 0.7)
    (sweeps / "wine-mlp.parquet").write_bytes(b"PAR1 not a table")
    assert stage_main("fit_meta", []) == 2
    err = capsys.readouterr().err
    assert "results/sweep/iris-mlp.parquet: it is truncated or corrupted" in err
    assert "results/sweep/wine-mlp.parquet: it is truncated or corrupted" in err
    assert "results/sweep/digits_150-cnn.parquet: missing; it is written by stage sweep@digits_150-cnn" in err
    assert "dvc repro sweep@iris-mlp" in err
    assert not (tiny_project / "results/meta").exists()
    record_property("bad inputs named", 3)


def test_a_corrupted_meta_model_file_fails_train_recommended(tiny_project, capsys, record_property):
    meta = tiny_project / "results/meta"
    mio.write_json(meta / "recommendations.json", {"iris-mlp": {"lr": 0.01}})
    _truncate(meta / "recommendations.json", 0.6)
    controller = tiny_project / "results/lr_meta/controller"
    controller.mkdir(parents=True)
    (controller / "controller.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    assert stage_main("train_recommended", ["iris-mlp"]) == 2
    err = capsys.readouterr().err
    assert "results/meta/recommendations.json: it is truncated or corrupted (JSONDecodeError" in err
    assert "stage fit_meta" in err
    assert "results/lr_meta/controller/controller.safetensors: it is truncated or corrupted" in err and "stage lr_meta" in err
    assert not (tiny_project / "results/train").exists()
    record_property("bad inputs named", 2)


@pytest.mark.parametrize("suffix", sorted(["parquet", "arrow", "json", "jsonl", "safetensors", "skops"]))
def test_every_checked_type_tells_a_whole_file_from_a_cut_one(tmp_path, suffix):
    import pyarrow as pa
    import skops.io
    import torch
    from safetensors.torch import save_file
    from sklearn.linear_model import LinearRegression

    path = tmp_path / f"a.{suffix}"
    frame = pd.DataFrame({"x": list(range(200)), "y": [str(i) for i in range(200)]})
    if suffix == "parquet":
        frame.to_parquet(path)
    elif suffix == "arrow":
        table = pa.Table.from_pandas(frame)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=50):
                writer.write_batch(batch)
    elif suffix == "json":
        path.write_text(json.dumps({"rows": frame.to_dict("records")}))
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    elif suffix == "safetensors":
        save_file({"w": torch.arange(1000, dtype=torch.float32)}, str(path))
    else:
        skops.io.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), path)
    assert check_file(path) is None
    _truncate(path, 0.6)
    assert "truncated or corrupted" in check_file(path)
    path.write_bytes(b"")
    assert check_file(path) == "it is empty"


# --- a full disk: the previous artifact survives ----------------------------------------------------


def _disk_full_after(nbytes: int):
    """A writer that puts ``nbytes`` into the file, then fails as a full disk does."""

    def write(path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"x" * nbytes)
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def test_a_full_disk_while_writing_keeps_the_previous_artifact(tmp_path, monkeypatch, record_property):
    table = tmp_path / "sweep.parquet"
    old = pd.DataFrame({"trial_id": ["grid-0000"], "val_metric": [0.5]})
    mio.write_parquet(table, old)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda self, path, **kw: _disk_full_after(100)(path))
    with pytest.raises(ArtifactError, match=r"disk full while writing .*sweep\.parquet .*the previous .* is kept unchanged; free space"):
        mio.write_parquet(table, pd.DataFrame({"trial_id": ["other"], "val_metric": [0.9]}))
    pd.testing.assert_frame_equal(pd.read_parquet(table), old)

    summary = tmp_path / "summary.json"
    mio.write_json(summary, {"v": 1})
    monkeypatch.setattr(Path, "write_text", lambda self, text, **kw: _disk_full_after(3)(self))
    with pytest.raises(ArtifactError, match="disk full"):
        mio.write_json(summary, {"v": 2})
    monkeypatch.undo()
    assert json.loads(summary.read_text()) == {"v": 1}

    model = tmp_path / "model"
    with mio.atomic_dir(model) as tmp:
        (tmp / "weights.safetensors").write_bytes(b"old")
    with pytest.raises(ArtifactError, match="disk full while writing .*model"):
        with mio.atomic_dir(model) as tmp:
            _disk_full_after(2)(tmp / "weights.safetensors")
    assert (model / "weights.safetensors").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "summary.json", "sweep.parquet"], "no temporaries"
    record_property("previous artifacts intact (Parquet, JSON, folder)", 3)


# --- bad params: refused before any work, nothing written -------------------------------------------


BAD_PARAMS = {
    "unknown key": (lambda p: p["sweep"].update(epochz=2), "sweep.epochz: unknown key"),
    "wrong type": (lambda p: p["sweep"].update(random_trials="many"), "sweep.random_trials:"),
    "unknown dataset source": (lambda p: p["datasets"]["iris"].update(source="irisz"), "datasets.iris.source"),
    "unknown family": (lambda p: p["families"].update(cnnz=p["families"]["cnn"]), "families.cnnz: unknown model family"),
    "unknown strategy": (lambda p: p["benchmark"].update(strategies=["random", "hyperband9"]), "unknown strategy 'hyperband9'"),
    "empty grid": (lambda p: p["families"]["mlp"]["space"]["lr"].update(values=[]), "families.mlp.space.lr.values"),
    "no trial at all": (lambda p: p["sweep"].update(grid=False, random_trials=0), "so a sweep has no trial"),
    "bad path": (lambda p: (p["datasets"].update(mnist={"source": "mnist"}), p["download"].update(mirror="no/such/mirror")),
                 "download.mirror: 'no/such/mirror' is not a folder"),
    "task naming a missing dataset": (lambda p: p["tasks"].update({"x-mlp": {"dataset": "nope", "family": "mlp"}}),
                                      "tasks.x-mlp.dataset: 'nope' is not under datasets"),
}  # fmt: skip


@pytest.mark.slow  # one Snakemake start per case
@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_bad_params_exit_non_zero_before_any_work_and_write_nothing(repo_root, tmp_path, case, record_property):
    mutate, expected = BAD_PARAMS[case]
    raw = copy.deepcopy(yaml.safe_load(TINY.read_text()))
    mutate(raw)
    project = project_copy(repo_root, tmp_path / "project", TINY)
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    before = sorted(p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts)
    for cmd in (LOCAL, ["dvc", "repro"]):
        proc = subprocess.run(cmd, cwd=project, env=ENV, capture_output=True, text=True)
        assert proc.returncode != 0, (case, cmd)
        assert expected in proc.stdout + proc.stderr, (case, cmd, (proc.stdout + proc.stderr)[-2000:])
        assert "Traceback" not in proc.stderr, (case, cmd)
        record_property(f"{cmd[0]} exit code", proc.returncode)
    assert not (project / "results").exists(), case
    after = sorted(p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts
                   and ".snakemake" not in p.parts and "tmp" not in p.relative_to(project).parts[:2])  # fmt: skip
    assert after == before, f"{case}: wrote {sorted(set(after) - set(before))}"
    record_property("files written", len(set(after) - set(before)))
