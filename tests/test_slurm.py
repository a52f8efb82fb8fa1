"""The pipeline on a real SLURM cluster through the Snakemake profile, as the README says to run it.

CI starts a one-node cluster first (`.ci/slurm-cluster install && .ci/slurm-cluster start`, as
root); elsewhere these tests skip with the reason unless a cluster answers, and never skip in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from metahpo import pipeline
from project_runs import (TINY, assert_resumed_without_recomputing, assert_same_as_uninterrupted, dvc_outdated,
                          fault_params, finished_lines, output_of, project_copy, ran, run, start, wait_for_trials)

PROFILE = "profiles/slurm-cpu"  # CI's cluster has no GPU: the training rules' gpu=1 is zeroed


def _cluster_problem() -> str | None:
    if not (shutil.which("sbatch") and shutil.which("squeue") and shutil.which("sinfo")):
        return "SLURM is not installed (as root: .ci/slurm-cluster install && .ci/slurm-cluster start)"
    proc = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=30)
    states = set(proc.stdout.split())
    if proc.returncode != 0 or not states & {"idle", "mixed", "allocated"}:
        return f"no SLURM node is up (sinfo: {proc.stdout.strip() or proc.stderr.strip()}); start one: .ci/slurm-cluster start"
    return None


@pytest.fixture
def slurm_cluster():
    problem = _cluster_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the SLURM tests for real: {problem}")
        pytest.skip(problem)


def submitted_jobs(output: str) -> dict[str, str]:
    """Snakemake's job number -> SLURM job id, from the executor's log lines."""
    return dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output))


def with_job_logs(output: str) -> str:
    """The workflow's output followed by each SLURM job's log (a job's own output goes there)."""
    logs = re.findall(r"has been submitted with SLURM jobid \d+ \(log: (.+?)\)\.?$", output, re.M)
    return "\n".join([output, *(Path(log).read_text(encoding="utf-8") for log in logs)])


def slurm_states(job_ids) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (state, comment) as squeue reports it (finished jobs stay for MinJobAge)."""
    proc = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%T|%k", "--jobs", ",".join(job_ids)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return {line.split("|")[0]: tuple(line.split("|")[1:3]) for line in proc.stdout.splitlines() if line}


@pytest.mark.slow  # the tiny pipeline, every job a SLURM job: minutes
def test_tiny_pipeline_runs_on_slurm_through_the_profile(repo_root, slurm_cluster, tmp_path, record_property):
    project = project_copy(repo_root, tmp_path / "project", TINY)
    raw = yaml.safe_load(TINY.read_text())
    jobs = {job.address for job in pipeline.expand_jobs(raw)}

    out = run(["snakemake", "--profile", PROFILE], project, timeout=1500)  # the README's CPU-cluster line
    slurm_ids = submitted_jobs(out)
    assert len(slurm_ids) == len(jobs), f"{len(slurm_ids)} SLURM jobs for {len(jobs)} pipeline jobs"
    states = slurm_states(slurm_ids.values())
    assert {state for state, _ in states.values()} == {"COMPLETED"}, states
    # the executor names each SLURM job after its rule: every stage ran on the cluster
    assert {comment.split("_wildcards_")[0].removeprefix("rule_") for _, comment in states.values()} == {
        s.name for s in pipeline.STAGES
    }
    # each SLURM job recorded itself in dvc.lock (its output is in the job's SLURM log, not ours)
    assert set(yaml.safe_load((project / "dvc.lock").read_text())["stages"]) == jobs
    assert (project / "results/report/index.html").stat().st_size > 0
    assert dvc_outdated(project) == set()
    rerun = ran(run(["dvc", "repro"], project))
    assert rerun == set(), "dvc repro after the SLURM run must execute nothing"
    record_property("pipeline jobs", len(jobs))
    record_property("SLURM jobs COMPLETED", len(states))
    record_property("stages run by dvc repro afterwards", len(rerun))


@pytest.mark.slow  # a sweep stopped by scancel and resumed, then the same sweep uninterrupted
def test_scancel_of_a_sweep_job_then_rerun_recomputes_no_finished_trial(repo_root, slurm_cluster, tmp_path, record_property):
    params_file = fault_params(tmp_path)
    project = project_copy(repo_root, tmp_path / "project", params_file)
    task = "digits_150-cnn"
    target = f"results/sweep/{task}.parquet"
    log = project / f"results/sweep/{task}.partial.jsonl"

    proc = start(["snakemake", "--profile", PROFILE, target], project)
    try:
        wait_for_trials(log, 3, proc)
        # this project's jobs only (by working directory): another test may share the cluster
        queued = subprocess.run(["squeue", "--noheader", "--format=%i|%k|%Z"], capture_output=True, text=True, check=True)
        sweep_jobs = [job for job, comment, workdir in (line.split("|") for line in queued.stdout.splitlines())
                      if comment == f"rule_sweep_wildcards_{task}" and Path(workdir).resolve() == project.resolve()]
        assert len(sweep_jobs) == 1, queued.stdout
        subprocess.run(["scancel", sweep_jobs[0]], check=True)
        output_of(proc, timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, "the workflow must report the cancelled job"
    assert not (project / target).exists(), "a cancelled sweep leaves no table"
    logged = finished_lines(log)
    assert 3 <= len(logged) < 10

    # the job prints "resumed ..." into its SLURM log, which the plugin deletes on success unless kept
    rerun = with_job_logs(run(["snakemake", "--profile", PROFILE, "--slurm-keep-successful-logs", target], project, timeout=900))
    table = assert_resumed_without_recomputing(project, task, logged, rerun, record_property)
    assert_same_as_uninterrupted(repo_root, tmp_path, params_file, task, table, record_property)
