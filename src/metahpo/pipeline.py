"""The stage table: the one declaration of the pipeline DAG.

A stage is declared once, by its row here, its module ``metahpo.stages.<name>`` (a ``run(params,
job)`` function) and its params section. Everything else derives from the row: the Snakemake rule
(workflow/rules/<name>.smk calls ``stage_rule``-style helpers in workflow/rules/common.smk),
dvc.yaml (``python -m metahpo.pipeline > dvc.yaml``; a test keeps the committed file in sync), the
entry point scripts/<name>.py, the ``metahpo <name>`` subcommand, and the paths the stage and the
report read and write. The stage's code dependencies are the import closure of its module
(``metahpo.codedeps``), so both tools rerun a stage exactly when code it imports changes.

Path templates use ``{key}`` for the entry a per-entry stage runs for (a dataset or a task name) and
``{dataset}`` / ``{family}`` for the task's dataset and family. ``Each(template, over)`` is "one path
per entry of params[over]": Snakemake expands it to the files, DVC depends on their folder (DVC's
foreach cannot enumerate params inside another stage's deps).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

from metahpo import codedeps

PARAMS_FILE = "params.yaml"
RESULTS = "results"  # every output template starts here
LIB = "src/metahpo"  # the package in a checkout: code deps are its files
RUNNER = "metahpo.stages"  # parses a stage's command line and runs it: in every stage's closure
DVCLIVE_METRICS = ("train_loss", "val_loss", "val_metric", "seconds")  # the per-epoch files dvclive writes


@dataclass(frozen=True)
class Each:
    template: str  # e.g. results/sweep/{key}.parquet
    over: str  # "datasets" | "tasks"

    @property
    def folder(self) -> str:
        """The folder that holds every entry's path: DVC's dependency, and what the stage reads."""
        return self.template.split("{key}")[0].rstrip("/")


Dep = Union[str, Each]


@dataclass(frozen=True)
class Stage:
    name: str
    over: Optional[str]  # None: runs once; "datasets" / "tasks": once per entry of that params dict
    help: str  # one line: the subcommand's help, the script's and the rule's comment
    deps: tuple[Dep, ...]
    params: tuple[str, ...]  # dotted params.yaml keys
    outs: tuple[str, ...]
    plots: tuple[str, ...] = ()  # outputs `dvc plots show` reads (not cached)
    metrics: tuple[str, ...] = ()  # outputs `dvc metrics show` reads (not cached)
    gpu: bool = False  # `resources: gpu=1`: a scheduling token locally, one GPU per job on a GPU cluster
    # a cluster job's limits (`resources: runtime` in minutes, `mem_mb`; sbatch -t, --mem): about twice
    # the peak RSS measured on params/mirror-small.yaml, and over 10x its longest job (docs/PERFORMANCE.md);
    # larger params raise them (benchmarks/throughput.py sizes the training jobs)
    runtime: int = 60
    mem_mb: int = 2000

    def resources(self) -> dict[str, int]:
        """The rule's resources (workflow/rules/common.smk: ``stage_resources``)."""
        return {**({"gpu": 1} if self.gpu else {}), "runtime": self.runtime, "mem_mb": self.mem_mb}

    @property
    def wildcard(self) -> Optional[str]:
        return {"datasets": "dataset", "tasks": "task", None: None}[self.over]

    @property
    def module(self) -> str:
        return f"metahpo.stages.{self.name}"

    @property
    def script(self) -> str:
        return f"scripts/{self.name}.py"

    @property
    def subcommand(self) -> str:
        return self.name.replace("_", "-")

    def command(self, key: str = "{key}", params_file: str = PARAMS_FILE) -> str:
        cmd = f"python {self.script}"
        if self.over:
            cmd += f" {key}"
        if params_file != PARAMS_FILE:
            cmd += f" --params {params_file}"
        return cmd

    def all_outputs(self) -> tuple[str, ...]:
        return self.outs + self.metrics + self.plots

    def code(self, root: str | os.PathLike = ".") -> list[str]:
        """The stage's code deps, relative to ``root``: its script, then its modules' import closure."""
        return [self.script, *_closure_files(self.module, str(Path(root).resolve()))]

    @property
    def folder(self) -> str:
        """The folder under results/ that holds every output of the stage (results/<folder>/...)."""
        return Path(self.outs[0]).relative_to(RESULTS).parts[0]

    def output(self, suffix: str, key: Optional[str] = None) -> str:
        """The output path ending in ``suffix`` (e.g. ``loto.parquet``): readers name a stage's file, never its folder."""
        found = [o for o in self.all_outputs() if o.endswith(suffix)]
        if len(found) != 1:
            raise KeyError(f"stage {self.name} has {len(found)} outputs ending in {suffix!r}: {self.all_outputs()}")
        return found[0].format(key=key) if key is not None else found[0]


@lru_cache(maxsize=None)
def _closure_files(module: str, root: str) -> tuple[str, ...]:
    """The import closure of the runner and ``module`` as files under ``root`` (its src/metahpo, else the installed package)."""
    package = Path(root, LIB)
    files = codedeps.code_files([RUNNER, module], package if package.is_dir() else None)
    base = (package if package.is_dir() else codedeps.package_root()).resolve().parent.parent
    return tuple(str(f.relative_to(base)) for f in files)


def is_dir(template: str) -> bool:
    """Convention: an output template without a file extension is a folder."""
    return "." not in os.path.basename(template.replace("{key}", "x"))

STAGES: tuple[Stage, ...] = (
    Stage(
        name="download",
        over="datasets",
        help="download and split one dataset -> results/data/DATASET/",
        deps=(),
        params=("seed", "datasets.{key}", "download"),
        outs=("results/data/{key}",),
        mem_mb=3000,
    ),
    Stage(
        name="metafeatures",
        over="datasets",
        help="meta-features of one dataset -> results/metafeatures/DATASET.json",
        deps=("results/data/{key}",),
        params=("seed", "metafeatures"),
        outs=("results/metafeatures/{key}.json",),
    ),
    Stage(
        name="sweep",
        over="tasks",
        help="grid + random search of one task -> results/sweep/TASK.parquet (resumable)",
        deps=("results/data/{dataset}",),
        params=("seed", "device", "precision", "tasks.{key}", "sweep", "families.{family}"),
        outs=("results/sweep/{key}.parquet",),
        gpu=True,
        mem_mb=4000,
    ),
    Stage(
        name="fit_meta",
        over=None,
        help="meta-models and their leave-one-task-out evaluation -> results/meta/",
        deps=(Each("results/sweep/{key}.parquet", "tasks"), Each("results/metafeatures/{key}.json", "datasets")),
        params=("seed", "tasks", "families", "meta"),
        outs=("results/meta/model", "results/meta/loto.parquet", "results/meta/recommendations.json"),
    ),
    Stage(
        name="train_recommended",
        over="tasks",
        help="full-budget training of one task's recommended config -> results/train/TASK/",
        # the controller: lr_schedule: meta trains with it (a static dep: DVC's deps cannot depend on a value)
        deps=("results/data/{dataset}", "results/meta/recommendations.json", "results/lr_meta/controller"),
        params=("seed", "device", "precision", "tasks.{key}", "families.{family}", "train_recommended"),
        outs=("results/train/{key}/model.safetensors",),
        metrics=("results/train/{key}/metrics.json",),
        # files, not their folder: Snakemake marks folder outputs with a timestamp file DVC cannot plot
        plots=tuple(f"results/train/{{key}}/dvclive/plots/metrics/{m}.tsv" for m in DVCLIVE_METRICS),
        gpu=True,
        mem_mb=4000,
    ),
    Stage(
        name="benchmark",
        over=None,
        help="replay every HPO strategy leave-one-task-out on the sweeps -> results/benchmark/",
        deps=(Each("results/sweep/{key}.parquet", "tasks"), Each("results/metafeatures/{key}.json", "datasets")),
        # tasks: which sweeps form a family's meta-dataset; families: the declared log flags of its encoding
        params=("tasks", "families", "benchmark"),
        # the exports sit in a folder of their own: their names depend on params.families
        outs=("results/benchmark/regret.parquet", "results/benchmark/summary.json", "results/benchmark/export"),
    ),
    Stage(
        name="tune",
        over="tasks",
        help="real HPO of one task, tune.strategy next to tune.baseline -> results/tune/TASK.parquet",
        # the prior is the family's other sweeps; the target's meta-features are its dataset's
        deps=(
            "results/data/{dataset}",
            Each("results/sweep/{key}.parquet", "tasks"),
            Each("results/metafeatures/{key}.json", "datasets"),
        ),
        params=("seed", "device", "precision", "tasks", "families.{family}", "sweep.epochs", "tune"),
        outs=("results/tune/{key}.parquet",),
        gpu=True,
        mem_mb=4000,
    ),
    Stage(
        name="meta_init",
        over=None,
        help="meta-train each few-shot method's initialization -> results/meta_init/inits/ (resumable)",
        # every dataset, not only fewshot.datasets: DVC depends on the folder, and Snakemake must rerun alike
        deps=(Each("results/data/{key}", "datasets"),),
        params=("seed", "device", "fewshot"),
        outs=("results/meta_init/inits",),
        gpu=True,
    ),
    Stage(
        name="fewshot_eval",
        over=None,
        help="every few-shot method on the same meta-test episodes, step by step -> results/fewshot/",
        deps=(Each("results/data/{key}", "datasets"), "results/meta_init/inits"),
        params=("seed", "device", "precision", "fewshot"),
        outs=("results/fewshot/episodes.parquet", "results/fewshot/curves.parquet"),
        metrics=("results/fewshot/summary.json",),
        gpu=True,
    ),
    Stage(
        name="pool",
        over=None,
        help="train the model pool's members on their source datasets (checkpoints as shipped) -> results/pool/members/",
        deps=(Each("results/data/{key}", "datasets"), Each("results/metafeatures/{key}.json", "datasets")),
        params=("seed", "device", "precision", "selection"),
        outs=("results/pool/members",),
        gpu=True,
    ),
    Stage(
        name="pool_finetune",
        over=None,
        help="ground truth: every pool member fine-tuned on every target -> results/pool_finetune/ (resumable)",
        deps=(Each("results/data/{key}", "datasets"), "results/pool/members"),
        params=("seed", "device", "precision", "selection"),
        outs=("results/pool_finetune/truth.parquet",),
        gpu=True,
        mem_mb=3000,
    ),
    Stage(
        name="selection",
        over=None,
        help="every selector on K examples of each target against the ground truth -> results/selection/",
        deps=(Each("results/data/{key}", "datasets"), "results/pool/members", "results/pool_finetune/truth.parquet"),
        params=("seed", "selection"),
        outs=("results/selection/scores.parquet", "results/selection/draws.parquet", "results/selection/meta_selector"),
        metrics=("results/selection/summary.json",),
    ),
    Stage(
        name="lr_meta",
        over=None,
        help="meta-train the learning-rate controller on lr_control.meta_train_tasks -> results/lr_meta/controller/ (resumable)",
        deps=(Each("results/data/{key}", "datasets"),),
        params=("seed", "device", "tasks", "families", "lr_control"),
        outs=("results/lr_meta/controller",),
        gpu=True,
    ),
    Stage(
        name="lr_eval",
        over=None,
        help="every learning-rate method on the held-out tasks, seed by seed -> results/lr_eval/ (resumable)",
        deps=(Each("results/data/{key}", "datasets"), "results/lr_meta/controller", "results/meta/recommendations.json"),
        params=("seed", "device", "tasks", "families", "lr_control"),
        outs=("results/lr_eval/runs.parquet", "results/lr_eval/traces.parquet"),
        metrics=("results/lr_eval/summary.json",),
        gpu=True,
    ),
    Stage(
        name="report",
        over=None,
        help="the self-contained HTML report -> results/report/index.html",
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
            "results/fewshot/curves.parquet",
            "results/fewshot/summary.json",
            "results/meta_init/inits",
            "results/pool/members",
            "results/pool_finetune/truth.parquet",
            "results/selection/scores.parquet",
            "results/selection/draws.parquet",
            "results/selection/summary.json",
            "results/lr_meta/controller",
            "results/lr_eval/runs.parquet",
            "results/lr_eval/traces.parquet",
            "results/lr_eval/summary.json",
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


@dataclass
class Job:
    """One concrete job: its paths in the order of the stage's row (an ``Each`` dep is its folder)."""

    stage: str
    key: Optional[str]
    deps: list[str]
    outs: list[str]  # outs, then metrics, then plots
    params: dict[str, Any] = field(default_factory=dict)
    params_file: str = PARAMS_FILE

    @property
    def address(self) -> str:
        """The DVC stage name: ``sweep@digits-cnn`` for a per-entry stage."""
        return f"{self.stage}@{self.key}" if self.key is not None else self.stage

    @property
    def cmd(self) -> str:
        stage = STAGE_BY_NAME[self.stage]
        return stage.command(self.key) if self.key is not None else stage.command()


def job(stage: Stage, params: Mapping[str, Any], key: Optional[str] = None, params_file: str = PARAMS_FILE) -> Job:
    """The job of ``stage`` for entry ``key`` under these raw params (a params.yaml mapping)."""
    fields = _fields(params, stage, key)
    return Job(
        stage=stage.name,
        key=key,
        deps=[dep.folder if isinstance(dep, Each) else dep.format(**fields) for dep in stage.deps],
        outs=[o.format(key=key) if key is not None else o for o in stage.all_outputs()],
        params=job_params(stage, params, key),
        params_file=str(params_file),
    )


def job_inputs(stage: Stage, params: Mapping[str, Any], key: Optional[str] = None, root: str = ".") -> list[str]:
    """Snakemake's inputs: the code deps, then the data deps."""
    return stage.code(root) + data_inputs(stage, params, key)


def data_inputs(stage: Stage, params: Mapping[str, Any], key: Optional[str] = None) -> list[str]:
    """The job's data deps, an ``Each`` as its files (Snakemake compares files; the stage checks each)."""
    fields = _fields(params, stage, key)
    paths: list[str] = []
    for dep in stage.deps:
        if isinstance(dep, Each):
            paths.extend(dep.template.format(key=k) for k in params[dep.over])
        else:
            paths.append(dep.format(**fields))
    return paths


def job_params(stage: Stage, params: Mapping[str, Any], key: Optional[str] = None) -> dict[str, Any]:
    """The raw values of the stage's params keys, as DVC hashes them: Snakemake reruns a job when they change."""
    fields = _fields(params, stage, key)
    values = {}
    for dotted in stage.params:
        dotted = dotted.format(**fields)
        node: Any = params
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        values[dotted] = _canonical(node)
    return values


def _canonical(node: Any) -> Any:
    """Mappings with sorted keys: reordering params.yaml changes no value (DVC agrees), so Snakemake,
    which compares params in order, must not see it either."""
    if isinstance(node, Mapping):
        return {k: _canonical(node[k]) for k in sorted(node)}
    if isinstance(node, list):
        return [_canonical(v) for v in node]
    return node


def expand_jobs(params: Mapping[str, Any]) -> list[Job]:
    """Every concrete job of the pipeline for these (raw, validated) params."""
    return [job(stage, params, key) for stage in STAGES for key in (list(params[stage.over]) if stage.over else [None])]


def read_raw_params(path: str | os.PathLike = PARAMS_FILE) -> dict[str, Any]:
    """The params file as written, which is what DVC hashes (``load_params`` validates it first)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


# --- dvc.yaml ------------------------------------------------------------------------------------


def _dvc_template(template: str) -> str:
    return template.replace("{key}", "${key}").replace("{dataset}", "${item.dataset}").replace(
        "{family}", "${item.family}"
    )


def dvc_stage(stage: Stage, root: str = ".") -> dict[str, Any]:
    deps: list[str] = stage.code(root)
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


def render_dvc_yaml(root: str = ".") -> str:
    header = (
        "# GENERATED by `make generated` (python -m metahpo.pipeline --write) from src/metahpo/pipeline.py.\n"
        "# Do not edit: change the stage table; tests/test_pipeline.py keeps this file in sync.\n"
    )
    stages = {s.name: dvc_stage(s, root) for s in STAGES}
    return header + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)


def render_script(stage: Stage) -> str:
    """scripts/<stage>.py: a few lines that run the stage (a test keeps the committed ones in sync)."""
    usage = f"python {stage.script}" + (f" {stage.wildcard.upper()}" if stage.over else "") + " [--params PARAMS]"
    return (
        f'"""Stage {stage.name}: {stage.help}.\n\nUsage: {usage}\n"""\n'
        "import sys\n\n"
        "from metahpo.stages import main\n\n"
        f"sys.exit(main({stage.name!r}, sys.argv[1:]))\n"
    )


# Snakemake profiles (`snakemake --profile profiles/<name>`): name -> whether the cluster has GPUs
SNAKEMAKE_PROFILES = {"slurm": True, "slurm-cpu": False}


def render_snakemake_profile(name: str) -> str:
    """profiles/<name>/config.yaml: Snakemake's SLURM executor as the SLURM test runs it (tests/test_slurm.py)."""
    gpus = SNAKEMAKE_PROFILES[name]
    gpu_rules = [s.name for s in STAGES if s.gpu]
    header = (
        "# GENERATED by `make generated` (python -m metahpo.pipeline --write) from src/metahpo/pipeline.py.\n"
        "# Do not edit: change the stage table; tests/test_pipeline.py keeps this file in sync.\n"
        f"# Run the pipeline on a SLURM cluster {'with' if gpus else 'without'} GPUs:\n"
        f"#   snakemake --profile profiles/{name} [--config params=params/<file>.yaml]"
        " [--default-resources slurm_partition=<name>]\n"
        "# Each job's runtime (minutes) and mem_mb come from the stage table (measured figures in\n"
        "# docs/PERFORMANCE.md); raise them for larger params with --set-resources <rule>:runtime=<minutes>.\n"
        "# Job states come from squeue: it needs no accounting database, where sacct fails and the executor\n"
        "# stops tracking the jobs. squeue keeps a finished job for the cluster's MinJobAge (default 300 s).\n"
    )
    if gpus:
        header += "# The rules that train (gpu=1) get one GPU each (sbatch --gpus=1); the rest none.\n"
    else:
        header += "# The training rules' gpu=1 is set to 0: no sbatch --gpus on a cluster that has none.\n"
    body: dict[str, Any] = {
        "executor": "slurm",
        "jobs": 20,
        "latency-wait": 60,  # a shared file system may show a job's outputs late
        "slurm-status-command": "squeue",
        "slurm-init-seconds-before-status-checks": 10,
    }
    if not gpus:
        body["set-resources"] = [f"{rule}:gpu=0" for rule in gpu_rules]
    return header + yaml.safe_dump(body, sort_keys=False, width=120)


def generated_files(root: str | os.PathLike = ".") -> dict[str, str]:
    """Every generated file: path (relative to the root) -> its text."""
    return {
        "dvc.yaml": render_dvc_yaml(str(root)),
        **{s.script: render_script(s) for s in STAGES},
        **{f"profiles/{name}/config.yaml": render_snakemake_profile(name) for name in SNAKEMAKE_PROFILES},
    }


def write_generated(root: str | os.PathLike = ".") -> list[str]:
    """Write dvc.yaml, scripts/<stage>.py and the Snakemake profiles from the table; return the paths written."""
    from metahpo.io import write_text

    files = generated_files(root)
    for path, text in files.items():
        write_text(Path(root, path), text)
    return list(files)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        print("wrote " + ", ".join(write_generated()))
    else:
        sys.stdout.write(render_dvc_yaml())
