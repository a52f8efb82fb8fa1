"""The stage table: the one declaration of the pipeline DAG.

Snakemake's rules (workflow/rules/*.smk) take their inputs, outputs, params and shell commands from
here, and dvc.yaml is rendered from here (``python -m metahpo.pipeline > dvc.yaml``; a test keeps the
committed file in sync). Both tools therefore run the same commands on the same paths.

Path templates use ``{key}`` for the entry a per-entry stage runs for (a dataset or a task name) and
``{dataset}`` / ``{family}`` for the task's dataset and family. ``Each(template, over)`` is "one path
per entry of params[over]": Snakemake expands it to the files, DVC depends on their folder (DVC's
foreach cannot enumerate params inside another stage's deps).
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import yaml

from metahpo.train_recommended import DVCLIVE_METRICS  # the per-epoch files dvclive writes

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class Each:
    template: str  # e.g. results/sweep/{key}.parquet
    over: str  # "datasets" | "tasks"

    @property
    def folder(self) -> str:
        """The folder that holds every entry's path: DVC's dependency."""
        return self.template.split("{key}")[0].rstrip("/")


Dep = Union[str, Each]


@dataclass(frozen=True)
class Stage:
    name: str
    over: Optional[str]  # None: runs once; "datasets" / "tasks": once per entry of that params dict
    script: str
    code: tuple[str, ...]  # library files/folders whose change must rerun the stage
    deps: tuple[Dep, ...]
    params: tuple[str, ...]  # dotted params.yaml keys
    outs: tuple[str, ...]
    plots: tuple[str, ...] = ()  # outputs `dvc plots show` reads (not cached)
    metrics: tuple[str, ...] = ()  # outputs `dvc metrics show` reads (not cached)
    gpu: bool = False  # Snakemake `resources: gpu=1`

    @property
    def wildcard(self) -> Optional[str]:
        return {"datasets": "dataset", "tasks": "task", None: None}[self.over]

    def command(self, key: str = "{key}", params_file: str = PARAMS_FILE) -> str:
        cmd = f"python {self.script}"
        if self.over:
            cmd += f" {key}"
        if params_file != PARAMS_FILE:
            cmd += f" --params {params_file}"
        return cmd

    def all_outputs(self) -> tuple[str, ...]:
        return self.outs + self.metrics + self.plots


def is_dir(template: str) -> bool:
    """Convention: an output template without a file extension is a folder."""
    return "." not in os.path.basename(template.replace("{key}", "x"))


LIB = "src/metahpo"
TRAINING_CODE = (f"{LIB}/training.py", f"{LIB}/models")

STAGES: tuple[Stage, ...] = (
    Stage(
        name="download",
        over="datasets",
        script="scripts/download.py",
        code=(f"{LIB}/data",),
        deps=(),
        params=("seed", "datasets.{key}", "download"),
        outs=("results/data/{key}",),
    ),
    Stage(
        name="metafeatures",
        over="datasets",
        script="scripts/metafeatures.py",
        code=(f"{LIB}/metafeatures.py",),
        deps=("results/data/{key}",),
        params=("seed", "metafeatures"),
        outs=("results/metafeatures/{key}.json",),
    ),
    Stage(
        name="sweep",
        over="tasks",
        script="scripts/sweep.py",
        code=(f"{LIB}/sweep.py", f"{LIB}/hpo/space.py") + TRAINING_CODE,  # space.py: the grid enumeration
        deps=("results/data/{dataset}",),
        params=("seed", "device", "precision", "tasks.{key}", "sweep", "families.{family}"),
        outs=("results/sweep/{key}.parquet",),
        gpu=True,
    ),
    Stage(
        name="fit_meta",
        over=None,
        script="scripts/fit_meta.py",
        code=(f"{LIB}/meta", f"{LIB}/hpo"),  # hpo: the meta-dataset, encoding, scaler, surrogate, regret
        deps=(Each("results/sweep/{key}.parquet", "tasks"), Each("results/metafeatures/{key}.json", "datasets")),
        params=("seed", "tasks", "families", "meta"),
        outs=("results/meta/model", "results/meta/loto.parquet", "results/meta/recommendations.json"),
    ),
    Stage(
        name="train_recommended",
        over="tasks",
        script="scripts/train_recommended.py",
        code=(f"{LIB}/train_recommended.py",) + TRAINING_CODE,
        deps=("results/data/{dataset}", "results/meta/recommendations.json"),
        params=("seed", "device", "precision", "tasks.{key}", "families.{family}", "train_recommended"),
        outs=("results/train/{key}/model.safetensors",),
        metrics=("results/train/{key}/metrics.json",),
        # files, not their folder: Snakemake marks folder outputs with a timestamp file DVC cannot plot
        plots=tuple(f"results/train/{{key}}/dvclive/plots/metrics/{m}.tsv" for m in DVCLIVE_METRICS),
        gpu=True,
    ),
    Stage(
        name="benchmark",
        over=None,
        script="scripts/benchmark.py",
        code=(f"{LIB}/benchmark.py", f"{LIB}/hpo"),
        deps=(Each("results/sweep/{key}.parquet", "tasks"), Each("results/metafeatures/{key}.json", "datasets")),
        # tasks: which sweeps form a family's meta-dataset; families: the declared log flags of its encoding
        params=("tasks", "families", "benchmark"),
        # the exports sit in a folder of their own: their names depend on params.families
        outs=("results/benchmark/regret.parquet", "results/benchmark/summary.json", "results/benchmark/export"),
    ),
    Stage(
        name="tune",
        over="tasks",
        script="scripts/tune.py",
        code=(f"{LIB}/tune.py", f"{LIB}/sweep.py", f"{LIB}/hpo") + TRAINING_CODE,
        # the prior is the family's other sweeps; the target's meta-features are its dataset's
        deps=(
            "results/data/{dataset}",
            Each("results/sweep/{key}.parquet", "tasks"),
            Each("results/metafeatures/{key}.json", "datasets"),
        ),
        params=("seed", "device", "precision", "tasks", "families.{family}", "sweep.epochs", "tune"),
        outs=("results/tune/{key}.parquet",),
        gpu=True,
    ),
    Stage(
        name="report",
        over=None,
        script="scripts/report.py",
        code=(f"{LIB}/report",),
        deps=(
            Each("results/data/{key}", "datasets"),
            Each("results/metafeatures/{key}.json", "datasets"),
            Each("results/sweep/{key}.parquet", "tasks"),
            "results/meta/loto.parquet",
            "results/meta/recommendations.json",
            Each("results/train/{key}/metrics.json", "tasks"),
            "results/benchmark/regret.parquet",
            "results/benchmark/summary.json",
            Each("results/tune/{key}.parquet", "tasks"),
        ),
        params=("report",),
        outs=("results/report/index.html",),
    ),
)

STAGE_BY_NAME = {s.name: s for s in STAGES}


# --- expansion for one concrete job -------------------------------------------------------------


def _fields(params: Mapping[str, Any], stage: Stage, key: Optional[str]) -> dict[str, str]:
    if stage.over == "tasks":
        task = params["tasks"][key]
        return {"key": key, "dataset": task["dataset"], "family": task["family"]}
    if stage.over == "datasets":
        return {"key": key, "dataset": key}
    return {}


def _code_files(paths: tuple[str, ...], root: str = ".") -> list[str]:
    """Folders expand to their source files (.py, and package data such as the report's template):
    Snakemake compares file mtimes, not folder contents, and DVC hashes the whole folder."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(os.path.join(root, path)):
            found = glob.glob("**/*", root_dir=os.path.join(root, path), recursive=True)
            files.extend(
                f"{path}/{f}" for f in sorted(found)
                if os.path.isfile(os.path.join(root, path, f)) and "__pycache__" not in f and not f.endswith(".pyc")
            )  # fmt: skip
        else:
            files.append(path)
    return files


def job_inputs(stage: Stage, params: Mapping[str, Any], key: Optional[str] = None, root: str = ".") -> list[str]:
    fields = _fields(params, stage, key)
    paths = [stage.script] + _code_files(stage.code, root)
    for dep in stage.deps:
        if isinstance(dep, Each):
            paths.extend(dep.template.format(key=k) for k in params[dep.over])
        else:
            paths.append(dep.format(**fields))
    return paths


def job_outputs(stage: Stage, key: Optional[str] = None) -> list[str]:
    return [o.format(key=key) if key is not None else o for o in stage.all_outputs()]


def job_params(stage: Stage, params: Mapping[str, Any], key: Optional[str] = None) -> dict[str, Any]:
    """The values of the stage's params keys: Snakemake reruns a job when they change."""
    fields = _fields(params, stage, key)
    values = {}
    for dotted in stage.params:
        dotted = dotted.format(**fields)
        node: Any = params
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        values[dotted] = node
    return values


@dataclass
class Job:
    stage: str
    key: Optional[str]
    cmd: str
    inputs: list[str]
    outputs: list[str]
    params: dict[str, Any] = field(default_factory=dict)


def expand_jobs(params: Mapping[str, Any], root: str = ".") -> list[Job]:
    """Every concrete job of the pipeline for these (raw, validated) params."""
    jobs = []
    for stage in STAGES:
        keys = list(params[stage.over]) if stage.over else [None]
        for key in keys:
            jobs.append(
                Job(
                    stage=stage.name,
                    key=key,
                    cmd=stage.command(key) if key else stage.command(),
                    inputs=job_inputs(stage, params, key, root),
                    outputs=job_outputs(stage, key),
                    params=job_params(stage, params, key),
                )
            )
    return jobs


# --- dvc.yaml ------------------------------------------------------------------------------------


def _dvc_template(template: str) -> str:
    return template.replace("{key}", "${key}").replace("{dataset}", "${item.dataset}").replace(
        "{family}", "${item.family}"
    )


def dvc_stage(stage: Stage) -> dict[str, Any]:
    deps: list[str] = [stage.script, *stage.code]
    for dep in stage.deps:
        deps.append(dep.folder if isinstance(dep, Each) else _dvc_template(dep))
    body: dict[str, Any] = {
        "cmd": stage.command("${key}") if stage.over else stage.command(),
        "deps": list(dict.fromkeys(deps)),
        "params": [_dvc_template(p) for p in stage.params],
        "outs": [_dvc_template(o) for o in stage.outs],
    }
    if stage.metrics:
        body["metrics"] = [{_dvc_template(m): {"cache": False}} for m in stage.metrics]
    if stage.plots:
        body["plots"] = [{_dvc_template(p): {"cache": False}} for p in stage.plots]
    if stage.over:
        return {"foreach": "${%s}" % stage.over, "do": body}
    return body


def render_dvc_yaml() -> str:
    header = (
        "# GENERATED by `python -m metahpo.pipeline > dvc.yaml` from src/metahpo/pipeline.py.\n"
        "# Do not edit: change the stage table; tests/test_pipeline.py keeps this file in sync.\n"
    )
    stages = {s.name: dvc_stage(s) for s in STAGES}
    return header + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render_dvc_yaml())
