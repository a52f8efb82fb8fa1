"""Snakemake and DVC run the same DAG; the whole pipeline runs; DVC reruns only what changed."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from metahpo import pipeline
from metahpo.config import load_params
from project_runs import ENV, TINY, dvc_outdated, project_copy, ran, recorded, run



def test_committed_generated_files_match_the_stage_table(repo_root):
    for path, text in pipeline.generated_files(str(repo_root)).items():
        committed = repo_root / path
        assert committed.is_file() and committed.read_text() == text, f"{path} is missing or stale: run `make generated`"
    assert sorted(p.name for p in (repo_root / "scripts").glob("*.py")) == sorted(
        f"{s.name}.py" for s in pipeline.STAGES
    ), "scripts/ holds an entry point of no stage"


def test_every_stage_has_its_module_rule_and_subcommand(repo_root):
    import importlib

    from metahpo.cli import build_parser

    snakefile = (repo_root / "Snakefile").read_text()
    subcommands = build_parser()._subparsers._group_actions[0].choices
    rule_files = sorted(p.stem for p in (repo_root / "workflow" / "rules").glob("*.smk") if p.stem != "common")
    stage_modules = {p.stem for p in (repo_root / "src" / "metahpo" / "stages").glob("*.py")} - {"__init__"}
    helpers = {"shared", "task_data", "fewshot_problem", "lr_problem"}  # what several stages share; every other module is a stage
    assert stage_modules - helpers == {s.name for s in pipeline.STAGES}
    assert rule_files == sorted(s.name for s in pipeline.STAGES), "one workflow/rules/<stage>.smk per stage"
    for stage in pipeline.STAGES:
        assert callable(importlib.import_module(stage.module).run), stage.module
        assert f'include: "workflow/rules/{stage.name}.smk"' in snakefile, stage.name
        rule = (repo_root / "workflow" / "rules" / f"{stage.name}.smk").read_text()
        assert f"rule {stage.name}:" in rule and f'stage_shell("{stage.name}")' in rule, stage.name
        assert f'**stage_resources("{stage.name}")' in rule, f"{stage.name}: its resources come from the table"
        assert stage.subcommand in subcommands, stage.subcommand


def test_snakemake_profiles_map_the_gpu_rules(repo_root):
    """The GPU profile leaves every training rule's gpu=1 (one GPU per job); the CPU one zeroes exactly those."""
    gpu_rules = {s.name for s in pipeline.STAGES if s.gpu}
    assert gpu_rules and gpu_rules != {s.name for s in pipeline.STAGES}
    for name, has_gpus in pipeline.SNAKEMAKE_PROFILES.items():
        profile = yaml.safe_load((repo_root / "profiles" / name / "config.yaml").read_text())
        assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
        zeroed = {entry.split(":")[0] for entry in profile.get("set-resources", []) if entry.endswith(":gpu=0")}
        assert zeroed == (set() if has_gpus else gpu_rules), name


def snakemake_jobs(workdir: Path, snakefile: Path, *extra: str) -> dict[tuple[str, str], dict]:
    """Parse `snakemake -n -p --forceall`: {(rule, first output): {inputs, outputs, cmd}}."""
    proc = subprocess.run(
        ["snakemake", "-n", "-p", "--forceall", "--cores", "1", "--resources", "gpu=1",
         "--snakefile", str(snakefile), "--directory", str(workdir), *extra],
        capture_output=True, text=True, env=ENV,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", proc.stdout):
        head = re.match(r"rule (\w+):", block)
        if not head or head.group(1) == "all":
            continue
        field = lambda name: [p.strip() for p in re.search(rf"^\s+{name}: (.*)$", block, re.M).group(1).split(",")]
        cmd = re.search(r"^Shell command: (.*)$", block, re.M)
        outputs = field("output")
        jobs[(head.group(1), outputs[0])] = {
            "inputs": field("input"), "outputs": outputs, "cmd": cmd.group(1) if cmd else None,
        }
    return jobs


def dvc_stages(repo: Path) -> dict[str, dict]:
    from dvc.repo import Repo

    stages = {}
    with Repo(str(repo)) as dvc_repo:
        for stage in dvc_repo.index.stages:
            deps = [d for d in stage.deps if type(d).__name__ != "ParamsDependency"]
            params = [p for d in stage.deps if type(d).__name__ == "ParamsDependency" for p in d.params]
            stages[stage.addressing] = {
                "cmd": stage.cmd,
                "deps": [d.def_path for d in deps],
                "params": params,
                "outputs": [o.def_path for o in stage.outs],
            }
    return stages


def _covers(dep: str, path: str) -> bool:
    return path == dep or path.startswith(dep.rstrip("/") + "/")


@pytest.mark.slow  # two snakemake dry runs and the DVC index: ~25 s
def test_snakemake_and_dvc_agree_on_every_job(repo_root):
    raw = pipeline.read_raw_params(repo_root / "params.yaml")
    load_params(repo_root / "params.yaml")  # valid
    smk = snakemake_jobs(repo_root, repo_root / "Snakefile")
    dvc = dvc_stages(repo_root)
    table = pipeline.expand_jobs(raw)
    assert len(smk) == len(dvc) == len(table)
    for job in table:
        name = job.address
        s, d = smk[(job.stage, job.outs[0])], dvc[name]
        assert d["cmd"] == job.cmd, name
        # Snakemake runs the same command, then records the job in dvc.lock
        assert s["cmd"] == f"{job.cmd} && python -m metahpo.toolsync record {name} --params params.yaml", name
        assert s["outputs"] == d["outputs"] == job.outs, name
        assert sorted(d["params"]) == sorted(job.params), name
        stage = pipeline.STAGE_BY_NAME[job.stage]
        assert sorted(s["inputs"]) == sorted(pipeline.job_inputs(stage, raw, job.key, str(repo_root))), name
        # DVC depends on folders where Snakemake lists files: each covers the other exactly
        for path in s["inputs"]:
            assert any(_covers(dep, path) for dep in d["deps"]), (name, path)
        for dep in d["deps"]:
            assert any(_covers(dep, path) for path in s["inputs"]), (name, dep)
        # code deps are files for both tools: the stage's import closure, the same list
        code = [dep for dep in d["deps"] if dep.startswith(("src/", "scripts/"))]
        assert code == stage.code(str(repo_root)), name


@pytest.mark.slow  # ~15 s of snakemake planning
def test_snakemake_dry_run_plans_the_whole_default_pipeline(repo_root):
    jobs = snakemake_jobs(repo_root, repo_root / "Snakefile")
    rules = [rule for rule, _ in jobs]
    params = load_params(repo_root / "params.yaml")
    assert rules.count("sweep") == rules.count("train_recommended") == rules.count("tune") == len(params.tasks)
    assert rules.count("download") == rules.count("metafeatures") == len(params.datasets)
    assert rules.count("fit_meta") == rules.count("benchmark") == rules.count("report") == 1
    assert rules.count("meta_init") == rules.count("fewshot_eval") == 1
    assert rules.count("pool") == rules.count("pool_finetune") == rules.count("selection") == 1
    assert rules.count("lr_meta") == rules.count("lr_eval") == 1


@pytest.mark.slow  # the whole pipeline, three times over: minutes
def test_tiny_pipeline_with_dvc_then_snakemake_has_nothing_to_do(repo_root, tmp_path):
    project = project_copy(repo_root, tmp_path / "project", TINY)
    params = yaml.safe_load(TINY.read_text())
    # per dataset: download, metafeatures; per task: sweep, tune, train_recommended; once: fit_meta,
    # benchmark, meta_init, fewshot_eval, pool, pool_finetune, selection, lr_meta, lr_eval, report
    n_jobs = 2 * len(params["datasets"]) + 3 * len(params["tasks"]) + 10

    first = run(["dvc", "repro"], project)
    assert len(ran(first)) == n_jobs
    report = (project / "results/report/index.html").read_text()
    for section in ("tasks", "sweeps", "loto", "convergence", "fewshot", "provenance"):
        assert f'id="{section}"' in report
    assert len(report.encode()) < 1_000_000, "the report stays under 1 MB (palette PNGs, each config once)"
    fewshot = json.loads((project / "results/fewshot/summary.json").read_text())
    assert {row["method"] for row in fewshot["table"]} == set(params["fewshot"]["methods"])
    assert set(fewshot["transfer"]["methods"]) == set(params["fewshot"]["transfer"]["inits"])
    selection = json.loads((project / "results/selection/summary.json").read_text())
    assert [row["selector"] for row in selection["table"]] == params["selection"]["selectors"]
    truth = pd.read_parquet(project / "results/pool_finetune/truth.parquet")
    assert len(truth) == len(params["selection"]["targets"]) * len(params["selection"]["pool"])
    assert 'id="selection"' in report
    control = params["lr_control"]
    lr = json.loads((project / "results/lr_eval/summary.json").read_text())
    assert {(r["task"], r["method"]) for r in lr["table"]} == {(t, m) for t in control["eval_tasks"] for m in control["methods"]}
    traces = pd.read_parquet(project / "results/lr_eval/traces.parquet")
    assert set(traces["step"]) == set(range(0, control["steps"] + 1, control["trace_every"]))
    assert 'id="lr_control"' in report
    for task in params["tasks"]:
        assert (project / f"results/train/{task}/model.safetensors").stat().st_size > 0
        trained = json.loads((project / f"results/train/{task}/metrics.json").read_text())
        assert trained["lr_schedule"] == "meta" and trained["lr_trace"], task  # the controller drove it
        tuned = pd.read_parquet(project / f"results/tune/{task}.parquet")
        assert set(tuned["strategy"]) == {params["tune"]["strategy"], params["tune"]["baseline"]}
    regret = pd.read_parquet(project / "results/benchmark/regret.parquet")
    assert set(regret["strategy"]) == set(params["benchmark"]["strategies"])
    assert set(regret["family"]) == {"mlp"}  # cnn has a single task: skipped, with a note
    assert "note" in json.loads((project / "results/benchmark/summary.json").read_text())["families"]["cnn"]

    assert ran(run(["dvc", "repro"], project)) == set(), "second dvc repro must execute nothing"

    plots = json.loads(subprocess.run(["dvc", "plots", "show", "--json"], cwd=project, capture_output=True,
                                      text=True, env=ENV, check=True).stdout)
    assert "errors" not in plots, plots["errors"]
    for task in params["tasks"]:
        curve = plots["data"][f"results/train/{task}/dvclive/plots/metrics/val_metric.tsv"]
        assert len(curve[0]["content"]["data"]["values"]) == params["train_recommended"]["epochs"]

    params["meta"]["n_estimators"] = 30  # a meta-model param only
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    rerun = ran(run(["dvc", "repro"], project))
    # neither the benchmark nor the real tuning reads meta.*; lr_eval reads the recommendations (its
    # kept log then retrains nothing but the recommended method's runs)
    assert rerun == {"fit_meta", "lr_eval", "report"} | {f"train_recommended@{t}" for t in params["tasks"]}

    dry = run(["snakemake", "-n", "--cores", "1", "--resources", "gpu=1"], project)
    assert "Nothing to be done" in dry, dry[-2000:]


def _snakemake_plan(project: Path) -> dict[str, str]:
    """The jobs a dry run would run, each with its reason (address -> reason)."""
    out = run(["snakemake", "-n", "--cores", "1", "--resources", "gpu=1"], project)
    jobs = {}
    for block in re.split(r"\n(?=(?:localrule|rule) \w+:)", out):
        head = re.match(r"(?:localrule|rule) (\w+):", block)
        reason = re.search(r"^\s+reason: (.*)$", block, re.M)
        if not head or head.group(1) == "all":
            continue
        wildcards = re.search(r"^\s+wildcards: \w+=(\S+)$", block, re.M)
        jobs[f"{head.group(1)}@{wildcards.group(1)}" if wildcards else head.group(1)] = reason.group(1) if reason else ""
    return jobs


@pytest.mark.slow  # the tiny pipeline twice, with dry runs between: minutes
def test_tiny_pipeline_snakemake_then_dvc_share_one_state(repo_root, tmp_path):
    """Snakemake runs, DVC agrees; an edited module outdates the same stages in both; a meta param
    reruns fit_meta onward under either tool, and the other tool then has nothing to do."""
    project = project_copy(repo_root, tmp_path / "project", TINY)
    raw = yaml.safe_load(TINY.read_text())
    jobs = {job.address: job for job in pipeline.expand_jobs(raw)}

    first = run(["snakemake", "--cores", "2", "--resources", "gpu=1"], project, timeout=1500)
    assert recorded(first) == set(jobs), "every Snakemake job records itself in dvc.lock"
    assert dvc_outdated(project) == set()
    assert ran(run(["dvc", "repro"], project)) == set(), "dvc repro after snakemake must execute nothing"

    # an edit deep in a closure outdates exactly the stages that import it, under both tools
    for module in ("src/metahpo/hpo/gp.py", "src/metahpo/metrics/squad.py", "src/metahpo/data/splits.py",
                   "src/metahpo/report/templates/index.html"):  # fmt: skip
        path = project / module
        original, stat = path.read_text(), path.stat()
        path.write_text(original + ("\n<!-- edited -->\n" if module.endswith(".html") else "\n# edited\n"))
        importing = {a for a, j in jobs.items() if module in pipeline.STAGE_BY_NAME[j.stage].code(str(project))}
        assert importing, module
        assert dvc_outdated(project) == importing, module
        # Snakemake plans the importing jobs and what follows them; it names a job's own changed
        # input only where no upstream job reruns too
        plan = _snakemake_plan(project)
        assert importing <= set(plan), (module, sorted(importing - set(plan)))
        for address, reason in plan.items():
            if address in importing:
                assert "Updated input files" in reason or "updated by another job" in reason, (address, reason)
            else:
                assert reason.startswith("Input files updated by another job"), (module, address, reason)
        path.write_text(original)
        # the file as it was, mtime included
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dvc_outdated(project) == set() and _snakemake_plan(project) == {}

    raw["meta"]["n_estimators"] = 30  # a meta-model param only
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    rerun = recorded(run(["snakemake", "--cores", "2", "--resources", "gpu=1"], project, timeout=1500))
    assert "fit_meta" in rerun
    downstream = {"fit_meta", "lr_eval", "report"} | {a for a in jobs if a.startswith("train_recommended@")}
    assert rerun <= downstream, f"only fit_meta and what follows it: {sorted(rerun - downstream)}"
    assert dvc_outdated(project) == set()
    assert ran(run(["dvc", "repro"], project)) == set()
    assert "Nothing to be done" in run(["snakemake", "-n", "--cores", "1", "--resources", "gpu=1"], project)

    # the other way round: DVC runs a params change, and Snakemake, whose records of those jobs it
    # clears, has nothing left to do
    raw["meta"]["n_estimators"] = 40
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    rerun = ran(run(["dvc", "repro"], project))
    assert "fit_meta" in rerun and rerun <= downstream, sorted(rerun)
    assert "Nothing to be done" in run(["snakemake", "-n", "--cores", "1", "--resources", "gpu=1"], project)


@pytest.mark.slow  # every family on real mirror data: ~12 min
def test_mirror_small_profile_runs_end_to_end_with_snakemake(repo_root, mirror, tmp_path, record_property):
    """Real Hub data from the offline mirror, every model family, the whole pipeline."""
    import pandas as pd

    raw = yaml.safe_load((repo_root / "params" / "mirror-small.yaml").read_text())
    raw["download"]["mirror"] = str(mirror)  # the profile's relative path assumes the repo root as cwd
    params_file = tmp_path / "mirror-small.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    project = project_copy(repo_root, tmp_path / "project", params_file)

    # gpu is a scheduling resource: on a CPU machine two training jobs may share the two cores
    run(["snakemake", "--cores", "2", "--resources", "gpu=2"], project, timeout=1800)

    families = {spec["family"] for spec in raw["tasks"].values()}
    assert families >= {"cnn", "resnet18", "vit", "lstm", "gru", "bert", "bidaf", "bert_qa", "bilstm_crf", "bert_ner"}
    for task, spec in raw["tasks"].items():
        table = pd.read_parquet(project / f"results/sweep/{task}.parquet")
        assert (table["state"] == "ok").all(), table[["trial_id", "state", "message"]]
        assert table["test_metric"].between(0, 1).all()
        metrics = json.loads((project / f"results/train/{task}/metrics.json").read_text())
        assert metrics["state"] == "ok" and metrics["family"] == spec["family"]
        tune = pd.read_parquet(project / f"results/tune/{task}.parquet")
        assert set(tune["strategy"]) == {raw["tune"]["strategy"], raw["tune"]["baseline"]}
    loto = pd.read_parquet(project / "results/meta/loto.parquet")
    assert set(loto["task"]) == set(raw["tasks"])
    shared = [f for f in families if sum(s["family"] == f for s in raw["tasks"].values()) >= 2]
    learned = loto[(loto["method"] == "surrogate") & loto["family"].isin(shared)]
    assert len(learned) and learned["regret"].notna().all()
    regret = pd.read_parquet(project / "results/benchmark/regret.parquet")
    assert set(regret["family"]) == set(shared)
    report = (project / "results/report/index.html").read_text()
    record_property("report bytes", len(report.encode()))
    for task in raw["tasks"]:
        assert task in report
    for metric in ("test f1", "test accuracy"):  # QA / NER and classification tasks side by side
        assert metric in report
    # few-shot on Omniglot, whole alphabets held out: every method on every setting's episodes
    fewshot = raw["fewshot"]
    curves = pd.read_parquet(project / "results/fewshot/curves.parquet")
    assert set(curves["method"]) == set(fewshot["methods"])
    assert set(curves["setting"]) == {f"{s['ways']}-way {s['shots']}-shot" for s in fewshot["evaluate"]["settings"]}
    assert (curves["episodes"] == fewshot["evaluate"]["episodes"]).all()
    assert curves["accuracy"].between(0, 1).all() and curves["accuracy_ci"].gt(0).any()
    summary = json.loads((project / "results/fewshot/summary.json").read_text())
    meta_learned = [r for r in summary["table"] if r["meta_learned"] and r["setting"] == "5-way 1-shot"]
    assert max(r["accuracy"] for r in meta_learned) > 0.4, "meta-learned inits beat chance (0.2) on held-out alphabets"
    assert 'id="fewshot"' in report
    # model selection: image members serve the image targets, text members (GRU, MiniLM) the text ones
    truth = pd.read_parquet(project / "results/pool_finetune/truth.parquet")
    assert (truth["state"] == "ok").all(), truth[["target", "member", "state", "message"]]
    served = truth.groupby("target")["member"].apply(set)
    assert served["imdb_160"] == {"gru_imdb", "minilm", "minilm_head"}
    assert served["mnist_5to9"] == {"cnn_mnist04", "cnn_mnist04_head", "cnn_fashion04", "resnet18_fashion"}
    selection = json.loads((project / "results/selection/summary.json").read_text())
    assert [row["selector"] for row in selection["table"]] == raw["selection"]["selectors"]
    assert 'id="selection"' in report
    # the learning-rate controller on real data: every method ran on every held-out task, seed by seed
    control = raw["lr_control"]
    runs = pd.read_parquet(project / "results/lr_eval/runs.parquet")
    compared = runs[runs["method"] != "grid"]
    assert (compared["state"] == "ok").all(), compared[["task", "method", "seed", "state", "message"]]
    assert set(zip(compared["task"], compared["method"])) == {(t, m) for t in control["eval_tasks"] for m in control["methods"]}
    lr_summary = json.loads((project / "results/lr_eval/summary.json").read_text())
    assert {t["task"]: t["unseen_family"] for t in lr_summary["tasks"]} == {"mnist_300-cnn": False, "imdb_240-gru": True}
    assert 'id="lr_control"' in report
