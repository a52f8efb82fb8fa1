"""Reading the stage outputs the report shows (contracts: docs/ARCHITECTURE.md).

Every reader returns ``(value, note)``: the value, or ``None`` and a one-line "not available" note
that the report prints in place of the missing part, so one absent file never sinks the report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd

from metahpo import pipeline
from metahpo.io import read_json

SWEEP_COLUMNS = (
    "trial_id", "search", "state", "message", "metric", "val_metric", "test_metric", "test_metrics", "seconds",
    "epochs_run", "curve_val_metric", "config",
)  # fmt: skip
LOTO_COLUMNS = (
    "task", "method", "k", "regret", "metric", "val_metric", "test_metric", "runs", "seconds",
    "grid_runs", "grid_seconds", "grid_best_val_metric", "grid_best_test_metric", "configs", "note",
)  # fmt: skip
BENCHMARK_REGRET_COLUMNS = ("family", "strategy", "task", "seed", "trial", "regret", "cost")
TUNE_COLUMNS = (
    "task", "strategy", "trial", "config", "state", "val_metric", "best_val_metric", "test_metric",
    "cumulative_seconds", "note",
)  # fmt: skip
FEWSHOT_CURVE_COLUMNS = (
    "method", "setting", "step", "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "seconds", "episodes",
)  # fmt: skip
INITS_MANIFEST = "inits.json"  # the meta_init stage's manifest in its output folder
INIT_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
POOL_TRUTH_COLUMNS = ("target", "member", "state", "metric", "truth", "seconds")
SELECTION_DRAW_COLUMNS = ("selector", "target", "redraw", "tau", "regret", "hit3", "chosen", "chosen_truth")
SELECTION_SCORE_COLUMNS = ("target", "redraw", "selector", "member", "score")
POOL_MANIFEST = "pool.json"  # the pool stage's manifest: its members in params order
POOL_MEMBER = "member.json"  # a member's descriptor, in its folder under the pool
MEMBER_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # config.NAME_PATTERN: a member name is a folder name
LR_META_MANIFEST = "meta_training.json"  # the lr_meta stage's record beside the controller's weights
LR_RUN_COLUMNS = ("task", "method", "seed", "state", "message", "lr_start", "final_val_metric", "seconds")
LR_TRACE_COLUMNS = ("task", "method", "seed", "step", "lr", "val_metric")

Loaded = tuple[Optional[Any], Optional[str]]


class ResultsTree:
    """The ``results/`` folder of one pipeline run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, Loaded] = {}  # several sections read the same sweep tables

    @staticmethod
    def relative(stage: str, suffix: str, key: Optional[str] = None) -> str:
        """A stage's output path from the stage table, relative to the results folder."""
        path = pipeline.STAGE_BY_NAME[stage].output(suffix, key)
        return str(Path(path).relative_to(pipeline.RESULTS))

    def _output(self, stage: str, suffix: str, reader: Callable[[Path], Any], key: Optional[str] = None) -> Loaded:
        return self._load(self.relative(stage, suffix, key), stage, reader)

    def _load(self, relative: str, stage: str, reader: Callable[[Path], Any]) -> Loaded:
        if relative not in self._cache:
            self._cache[relative] = self._read(relative, stage, reader)
        return self._cache[relative]

    def _read(self, relative: str, stage: str, reader: Callable[[Path], Any]) -> Loaded:
        path = self.root / relative
        shown = f"{self.root.name}/{relative}"
        if not path.exists():
            return None, f"not available: {shown} not found (run the {stage} stage)"
        try:
            return reader(path), None
        except (OSError, ValueError, json.JSONDecodeError) as err:  # pyarrow errors are ValueErrors too
            return None, f"not available: {shown} could not be read ({type(err).__name__}: {err})"

    def missing_stage(self, stage: str) -> Optional[str]:
        """One note for a stage that wrote nothing at all, instead of one per dataset or task."""
        folder = pipeline.STAGE_BY_NAME[stage].folder
        if (self.root / folder).is_dir():
            return None
        return f"not available: {self.root.name}/{folder}/ not found (run the {stage} stage)"

    def dataset_info(self, dataset: str) -> Loaded:
        return self._load(f"{self.relative('download', '', dataset)}/metahpo.json", "download", read_json)

    def metafeatures(self, dataset: str) -> Loaded:
        return self._output("metafeatures", ".json", read_json, dataset)

    def sweep(self, task: str) -> Loaded:
        return self._frame("sweep", ".parquet", SWEEP_COLUMNS, task)

    def loto(self) -> Loaded:
        return self._frame("fit_meta", "loto.parquet", LOTO_COLUMNS)

    def recommendations(self) -> Loaded:
        return self._output("fit_meta", "recommendations.json", read_json)

    def train_metrics(self, task: str) -> Loaded:
        return self._output("train_recommended", "metrics.json", read_json, task)

    def benchmark_regret(self) -> Loaded:
        return self._frame("benchmark", "regret.parquet", BENCHMARK_REGRET_COLUMNS)

    def benchmark_summary(self) -> Loaded:
        return self._output("benchmark", "summary.json", read_json)

    def tuned_tasks(self) -> list[str]:
        """The tasks with a ``tune/<task>.parquet``, by name (the tune stage may cover a subset of tasks)."""
        folder = (self.root / self.relative("tune", ".parquet", "x")).parent
        return sorted(path.stem for path in folder.glob("*.parquet")) if folder.is_dir() else []

    def tune(self, task: str) -> Loaded:
        return self._frame("tune", ".parquet", TUNE_COLUMNS, task)

    def fewshot_summary(self) -> Loaded:
        return self._output("fewshot_eval", "summary.json", read_json)

    def fewshot_curves(self) -> Loaded:
        return self._frame("fewshot_eval", "curves.parquet", FEWSHOT_CURVE_COLUMNS)

    def meta_inits(self) -> Loaded:
        """The meta_init stage's manifest: ``{"enabled", "device", "inits": {init: "<init>.safetensors"}}``."""
        return self._load(f"{self.relative('meta_init', 'inits')}/{INITS_MANIFEST}", "meta_init", read_json)

    def meta_init_config(self, init: str) -> Loaded:
        """``<init>.json`` beside the init's weights: how it was trained, its meta-training curve and cost."""
        if not re.fullmatch(INIT_NAME, init) or f"{init}.json" == INITS_MANIFEST:  # a name, never a path
            return None, f"not available: {init!r} is not an initialization name"
        return self._load(f"{self.relative('meta_init', 'inits')}/{init}.json", "meta_init", read_json)

    def pool_manifest(self) -> Loaded:
        """The pool stage's manifest: ``{"enabled", "device", "members": [name, ...]}``."""
        return self._load(f"{self.relative('pool', 'members')}/{POOL_MANIFEST}", "pool", read_json)

    def pool_member(self, member: str) -> Loaded:
        """``<member>/member.json``: the member's family, kind, fine-tuning, size, source and source training."""
        if not re.fullmatch(MEMBER_NAME, member):  # a name, never a path
            return None, f"not available: {member!r} is not a pool member name"
        return self._load(f"{self.relative('pool', 'members')}/{member}/{POOL_MEMBER}", "pool", read_json)

    def pool_truth(self) -> Loaded:
        return self._frame("pool_finetune", "truth.parquet", POOL_TRUTH_COLUMNS)

    def selection_summary(self) -> Loaded:
        return self._output("selection", "summary.json", read_json)

    def selection_draws(self) -> Loaded:
        return self._frame("selection", "draws.parquet", SELECTION_DRAW_COLUMNS)

    def selection_scores(self) -> Loaded:
        return self._frame("selection", "scores.parquet", SELECTION_SCORE_COLUMNS)

    def lr_meta_training(self) -> Loaded:
        """The lr_meta stage's record: the controller's config, the ES settings, history, best iteration and cost."""
        return self._load(f"{self.relative('lr_meta', 'controller')}/{LR_META_MANIFEST}", "lr_meta", read_json)

    def lr_eval_summary(self) -> Loaded:
        return self._output("lr_eval", "summary.json", read_json)

    def lr_eval_runs(self) -> Loaded:
        return self._frame("lr_eval", "runs.parquet", LR_RUN_COLUMNS)

    def lr_eval_traces(self) -> Loaded:
        return self._frame("lr_eval", "traces.parquet", LR_TRACE_COLUMNS)

    def _frame(self, stage: str, suffix: str, required: tuple[str, ...], key: Optional[str] = None) -> Loaded:
        relative = self.relative(stage, suffix, key)
        frame, note = self._load(relative, stage, pd.read_parquet)
        if frame is None:
            return None, note
        missing = [column for column in required if column not in frame.columns]
        if missing:
            return None, f"not available: {self.root.name}/{relative} lacks columns {', '.join(missing)}"
        return frame, None
