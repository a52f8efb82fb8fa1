"""Typed, strict params.yaml: unknown keys and wrong types fail before any work is done.

The YAML is nested by stage (DVC style). ``load_params`` is the only way code reads it, so the
Snakemake rules, the DVC stages and the CLI see the same validated values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from metahpo.errors import MetahpoError, ParamsError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # used in paths: results/<stage>/<name>


def _unique_registered(names: list[str], registry, kind: str) -> list[str]:
    """``names`` all registered in ``registry`` and none twice (a list of methods, selectors, ...)."""
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown {kind}(s) {unknown}; valid names: {', '.join(registry.names())}")
    if len(set(names)) != len(names):
        raise ValueError(f"a {kind} is listed twice")
    return names


def _path_safe(entries: dict) -> dict:
    """Entry names become folder names: they must match NAME_PATTERN."""
    import re

    for name in entries:
        if not re.match(NAME_PATTERN, name):
            raise ValueError(f"name {name!r} must match {NAME_PATTERN} (it becomes a folder name)")
    return entries


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetParams(Strict):
    source: str = Field(description="a registered dataset name (see `metahpo datasets`) or a Hub id org/name")
    config_name: Optional[str] = Field(None, description="Hub dataset configuration, if it has several")
    max_train: Optional[int] = Field(None, gt=0, description="subsample the train split to this many rows")
    max_validation: Optional[int] = Field(None, gt=0)
    max_test: Optional[int] = Field(None, gt=0)
    image_size: Optional[int] = Field(None, gt=0, description="resize every image to SxS at download (mixed-size sources)")
    columns: Optional[dict[str, str]] = Field(
        None,
        description="role -> source column, where the features are ambiguous (e.g. {tags: ner_tags}); roles: "
        "input, label, id, question, context, answers, tokens, tags",
    )


class TaskParams(Strict):
    dataset: str
    family: str


class DownloadParams(Strict):
    mirror: Optional[str] = Field(
        None, description="offline mirror in Hub layout; else $METAHPO_HF_MIRROR; else the Hub"
    )
    validation_fraction: float = Field(0.15, gt=0, lt=0.5, description="carved from train when absent")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="carved from train when absent")


class MetafeatureParams(Strict):
    max_rows: int = Field(2000, gt=10, description="rows of train used for statistics and landmarkers")
    projection_dim: int = Field(32, gt=0, description="width of the fixed random projection")


class SweepParams(Strict):
    grid: bool = True
    random_trials: int = Field(10, ge=0)
    epochs: int = Field(5, gt=0, description="epochs per trial, for families without an epochs hyperparameter")

    @model_validator(mode="after")
    def _some_trial(self) -> "SweepParams":
        if not self.grid and self.random_trials == 0:
            raise ValueError("grid is false and random_trials is 0, so a sweep has no trial: set grid: true or random_trials > 0")
        return self


class HyperparameterSpace(Strict):
    values: list[Union[int, float]] = Field(min_length=1, description="the grid")
    sample: Literal["choice", "uniform", "loguniform"] = Field(
        "choice", description="how random search draws: from the values, or in [min, max]"
    )

    @field_validator("values")
    @classmethod
    def _unique(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError("grid values must be unique")
        return values

    @model_validator(mode="after")
    def _positive_for_log(self) -> "HyperparameterSpace":
        if self.sample == "loguniform" and min(self.values) <= 0:
            raise ValueError("loguniform needs positive values")
        return self


class FamilyParams(Strict):
    family: Optional[str] = Field(
        None, description="the registered model family; default: this entry's key (e.g. two bert checkpoints)"
    )
    space: dict[str, HyperparameterSpace]
    default: dict[str, Union[int, float]] = Field(description="the baseline config; a grid point")
    options: dict[str, Any] = Field(default_factory=dict, description="family-specific, validated by the family")


class MetaParams(Strict):
    surrogate: Literal["random_forest", "gradient_boosting"] = "random_forest"
    n_estimators: int = Field(200, gt=0)
    neighbors: int = Field(3, gt=0, description="nearest tasks whose best configs warm-start")
    portfolio_size: int = Field(5, gt=0)
    top_k: list[int] = Field(default_factory=lambda: [1, 3, 5], min_length=1)
    recommend: Literal["safe", "surrogate", "nearest", "portfolio"] = Field(
        "safe", description="which method's top-1 train_recommended trains; safe: the surrogate's, or the default when unsure"
    )
    min_prior_tasks: int = Field(3, gt=0, description="safe: fewer prior tasks than this -> the family's default first")
    coverage: float = Field(
        0.9, gt=0, lt=1, description="nominal coverage of the predicted score's interval (split-conformal over prior tasks)"
    )


class TrainParams(Strict):
    epochs: int = Field(20, gt=0, description="full budget, for families without an epochs hyperparameter")
    convergence_threshold: float = Field(0.95, gt=0, le=1, description="fraction of the run's best val metric")
    lr_schedule: Literal["constant", "meta"] = Field(
        "constant", description="meta: the learned controller (results/lr_meta/controller) moves the rate from the recommended one"
    )


class BenchmarkParams(Strict):
    strategies: Optional[list[str]] = Field(
        None, min_length=1, description="registered strategy names to replay; null: every registered strategy"
    )
    trials: int = Field(50, gt=0, description="evaluations per run (capped at a task's pool)")
    seeds: int = Field(5, gt=0, description="seeds 0..seeds-1 per strategy and held-out task")

    def strategy_names(self) -> list[str]:
        if self.strategies is not None:
            return list(self.strategies)
        from metahpo.hpo.base import STRATEGIES

        import metahpo.hpo.strategies  # noqa: F401  registers the strategies

        return STRATEGIES.names()


class TuneParams(Strict):
    strategy: str = Field("weighted_portfolio", description="the registered strategy that tunes each task for real")
    baseline: str = Field("random", description="the registered strategy it is compared with, same budget")
    trials: int = Field(5, gt=0, description="real trainings per strategy and task")


class FewShotSplit(Strict):
    by: Literal["class", "group", "dataset"] = Field(
        description="class: label names; group: the dataset's group column (Omniglot alphabets); dataset: domains"
    )
    validation: list[str] = Field(default_factory=list, description="held out for meta-validation (model selection)")
    test: list[str] = Field(min_length=1, description="held out for meta-testing; every other class meta-trains")


class EpisodeSetting(Strict):
    ways: int = Field(gt=1)
    shots: int = Field(gt=0)

    @property
    def name(self) -> str:
        return f"{self.ways}-way {self.shots}-shot"


class MetaTrainParams(Strict):
    ways: int = Field(5, gt=1, description="classes per meta-training episode")
    shots: int = Field(1, gt=0)
    queries: int = Field(5, gt=0, description="query images per class")
    iterations: int = Field(1000, gt=0, description="outer steps (pretraining: batches)")
    meta_batch: int = Field(4, gt=0, description="episodes per outer step")
    meta_lr: float = Field(0.001, gt=0, description="Adam's learning rate in the outer loop (and pretraining)")
    inner_lr: float = Field(0.01, gt=0, description="the task learning rate of the inner loop and of adaptation")
    # at 1 the zero head makes maml == anil and leaves reptile nothing to learn (docs/ARCHITECTURE.md)
    inner_steps: int = Field(5, gt=0, description="inner steps while meta-training")
    second_order: bool = Field(True, description="maml and metasgd differentiate through the inner loop")
    batch_size: int = Field(64, gt=0, description="pretraining batch (the supervised baselines)")
    validate_every: int = Field(100, gt=0, description="outer steps between meta-validation scores")
    validation_episodes: int = Field(50, gt=0)
    checkpoint_every: int = Field(50, gt=0, description="outer steps between resumable checkpoints")


class FewShotEvalParams(Strict):
    settings: list[EpisodeSetting] = Field(min_length=1, description="the N-way K-shot problems of meta-testing")
    queries: int = Field(15, gt=0, description="query images per class")
    episodes: int = Field(600, gt=1, description="meta-test episodes per setting (same episodes for every method)")
    steps: int = Field(10, ge=0, description="adaptation steps; accuracy is recorded after each of 0..steps")
    threshold: float = Field(0.9, gt=0, le=1, description="accuracy whose first step and seconds are reported")


class TransferParams(Strict):
    """Ordinary (non-episodic) training of the conv4 family on the meta-test classes, from each init."""

    inits: list[str] = Field(min_length=1, description="methods whose init starts the training; random_init: none")
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(0.001, gt=0)
    threshold: float = Field(0.8, gt=0, le=1, description="validation accuracy to reach")


class FewShotParams(Strict):
    datasets: list[str] = Field(min_length=1, description="image datasets under `datasets` whose classes are pooled")
    image_size: Optional[int] = Field(None, gt=0, description="resize to SxS (Omniglot: 28); null: as prepared")
    split: FewShotSplit
    rotations: bool = Field(False, description="meta-train classes x4 by 90-degree rotations (the Omniglot convention)")
    filters: int = Field(64, gt=0, description="Conv-4 width")
    methods: list[str] = Field(min_length=1, description="registered few-shot methods (see docs/ARCHITECTURE.md)")
    meta_train: MetaTrainParams = MetaTrainParams()
    evaluate: FewShotEvalParams
    transfer: Optional[TransferParams] = None

    @field_validator("methods")
    @classmethod
    def _registered(cls, methods: list[str]) -> list[str]:
        from metahpo.fewshot.methods import METHODS

        return _unique_registered(methods, METHODS, "method")

    @model_validator(mode="after")
    def _transfer_inits_are_methods(self) -> "FewShotParams":
        if self.transfer is not None:
            unknown = [m for m in self.transfer.inits if m not in self.methods]
            if unknown:
                raise ValueError(f"transfer.inits {unknown} are not in fewshot.methods {self.methods}")
        return self


class PoolMemberParams(Strict):
    family: str = Field(description="a registered classification family (see `metahpo list`)")
    dataset: Optional[str] = Field(None, description="source dataset under `datasets` it is trained on; null: a "
                                   "pretrained checkpoint as it ships (options.checkpoint)")
    classes: Optional[list[str]] = Field(None, min_length=2, description="label names of the source dataset it is "
                                         "trained on; null: all")
    config: dict[str, Any] = Field(default_factory=dict, description="the family's hyperparameters for training "
                                   "(exactly its search-space keys)")
    options: dict[str, Any] = Field(default_factory=dict, description="the family's options")
    epochs: int = Field(5, gt=0, description="training epochs on the source (families without an epochs hyperparameter)")
    finetune: Literal["all", "head"] = Field("all", description="fine-tune every layer, or the new head alone")
    weights_of: Optional[str] = Field(None, description="a variant: another member's weights (e.g. with finetune: head)")


class SelectionTarget(Strict):
    dataset: str = Field(description="a classification dataset under `datasets`")
    classes: Optional[list[str]] = Field(None, min_length=2, description="label names kept (relabelled in this order); null: all")
    max_train: Optional[int] = Field(None, gt=0, description="train rows kept (stratified); the rest are never seen")


class FinetuneParams(Strict):
    """The one fine-tuning recipe of every member: the seed's (lr 1e-5, batch 16, 3 epochs, weight decay 0.01)."""

    lr: dict[str, float] = Field({"default": 1e-5}, description="learning rate per registered family; 'default' for the rest")
    batch_size: int = Field(16, gt=0)
    epochs: int = Field(3, gt=0)
    weight_decay: float = Field(0.01, ge=0)

    @field_validator("lr")
    @classmethod
    def _has_default(cls, lr: dict[str, float]) -> dict[str, float]:
        if "default" not in lr:
            raise ValueError("needs a 'default' entry (the learning rate of every family not named)")
        if any(value <= 0 for value in lr.values()):
            raise ValueError("learning rates must be positive")
        return lr

    def lr_of(self, family: str) -> float:
        return self.lr.get(family, self.lr["default"])


class SelectionParams(Strict):
    shots: int = Field(32, gt=1, description="K: labelled examples of the target each selector sees")
    redraws: int = Field(10, gt=0, description="draws of the K examples per target (metrics carry intervals over them)")
    selectors: list[str] = Field(min_length=1, description="registered selectors (see docs/ARCHITECTURE.md)")
    pool: dict[str, PoolMemberParams] = Field(min_length=2, description="member name -> how the pool stage gets it")
    targets: dict[str, SelectionTarget] = Field(min_length=2, description="target tasks: ground truth + leave one out")
    finetune: FinetuneParams = FinetuneParams()
    n_estimators: int = Field(200, gt=0, description="trees of the meta-learned selector's forest")
    coverage: float = Field(0.9, gt=0, lt=1, description="nominal coverage of its predicted-metric interval")

    @field_validator("selectors")
    @classmethod
    def _registered(cls, selectors: list[str]) -> list[str]:
        import metahpo.selection  # noqa: F401  registers the selectors
        from metahpo.selection.selectors import SELECTORS

        return _unique_registered(selectors, SELECTORS, "selector")

    @field_validator("pool", "targets")
    @classmethod
    def _path_safe_names(cls, entries: dict) -> dict:
        return _path_safe(entries)


class LRMetaTrainParams(Strict):
    """Evolution strategies on the controller's weights (metahpo.lrcontrol.meta_train)."""

    iterations: int = Field(40, gt=0)
    population: int = Field(8, ge=2, description="inner runs per iteration: antithetic pairs x 2")
    sigma: float = Field(0.1, gt=0, description="perturbation scale in weight space")
    meta_lr: float = Field(0.05, gt=0, description="Adam's rate on the controller's weights")
    validate_every: int = Field(5, gt=0, description="iterations between meta-validations (the best is kept)")
    checkpoint_every: int = Field(5, gt=0)
    hidden: int = Field(8, gt=0, description="LSTM width")
    every: int = Field(10, gt=0, description="optimizer steps between the controller's decisions")
    max_change: float = Field(2.0, gt=1, description="a decision multiplies the rate by at most this (or divides)")
    learn: Literal["all", "readout"] = Field(
        "all", description="weights ES perturbs: all, or the head alone (over the seeded LSTM's state and the features)"
    )

    @field_validator("population")
    @classmethod
    def _even(cls, population: int) -> int:
        if population % 2:
            raise ValueError(f"{population} is odd; antithetic pairs need an even population")
        return population


class LRControlParams(Strict):
    meta_train_tasks: list[str] = Field(min_length=1, description="tasks the controller is meta-trained on")
    eval_tasks: list[str] = Field(min_length=1, description="held-out tasks every method is compared on")
    methods: list[str] = Field(min_length=1, description="registered learning-rate methods (metahpo.lrcontrol.methods)")
    steps: int = Field(200, gt=0, description="optimizer steps per run (every method, meta-training too)")
    batch_size: int = Field(32, gt=0)
    base_lr: float = Field(1e-3, gt=0, description="the seed's Adam rate: fixed, adam_hd and meta start here")
    seeds: int = Field(5, gt=0, description="training seeds per method and task")
    trace_every: int = Field(10, gt=0, description="optimizer steps between validations (the curves, steps to threshold)")
    threshold: float = Field(0.97, gt=0, le=1, description="fraction of the oracle's mean final validation metric")
    oracle_grid: list[float] = Field([3e-4, 1e-3, 3e-3, 1e-2], min_length=1, description="fixed rates: the oracle is the best")
    meta_train: LRMetaTrainParams = LRMetaTrainParams()

    @field_validator("methods")
    @classmethod
    def _registered(cls, methods: list[str]) -> list[str]:
        from metahpo.lrcontrol.methods import METHODS

        return _unique_registered(methods, METHODS, "learning-rate method")


class ReportParams(Strict):
    title: str = "Meta-learned hyperparameter tuning"


class Params(Strict):
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 autocast on CUDA")
    datasets: dict[str, DatasetParams] = Field(min_length=1)
    tasks: dict[str, TaskParams] = Field(min_length=1)
    download: DownloadParams = DownloadParams()
    metafeatures: MetafeatureParams = MetafeatureParams()
    sweep: SweepParams = SweepParams()
    families: dict[str, FamilyParams] = Field(min_length=1)
    meta: MetaParams = MetaParams()
    train_recommended: TrainParams = TrainParams()
    benchmark: BenchmarkParams = BenchmarkParams()
    tune: TuneParams = TuneParams()
    fewshot: Optional[FewShotParams] = Field(None, description="few-shot meta-learning; null: off in this profile")
    selection: Optional[SelectionParams] = Field(None, description="few-shot model selection from a pool; null: off")
    lr_control: Optional[LRControlParams] = Field(None, description="the meta-learned learning-rate controller; null: off")
    report: ReportParams = ReportParams()

    @field_validator("datasets", "tasks")
    @classmethod
    def _path_safe_names(cls, entries: dict) -> dict:
        return _path_safe(entries)

    @model_validator(mode="after")
    def _consistent_with_the_registries(self, info: ValidationInfo) -> "Params":
        # the same checks for Params(...) and load_params: names that must be registered or declared.
        # Only model_validate(raw, context={"registries": False}) skips them: for tests that render
        # synthetic results under made-up dataset and family names.
        if (info.context or {}).get("registries") is False:
            return self
        problems = _check_against_registries(self)
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def task_dataset(self, task: str) -> str:
        return self.tasks[task].dataset

    def registered_family(self, key: str) -> str:
        """The registered model family behind a ``families`` entry (its key unless it names one)."""
        return self.families[key].family or key

    def tasks_of_family(self, family: str) -> list[str]:
        return [t for t, spec in self.tasks.items() if spec.family == family]

    def unseen_in_meta_training(self, task: str, meta_train_tasks: list[str]) -> tuple[bool, bool]:
        """(dataset unseen, family unseen) by the controller's meta-train tasks: a dataset counts as seen
        when one of the same source was (digits_600 is digits), a family by its registered name."""
        source = lambda t: self.datasets[self.task_dataset(t)].source  # noqa: E731
        family = lambda t: self.registered_family(self.tasks[t].family)  # noqa: E731
        seen = [t for t in meta_train_tasks if t in self.tasks]
        return all(source(t) != source(task) for t in seen), all(family(t) != family(task) for t in seen)


def _source_or_none(source: str):
    from metahpo.data.sources import resolve_source

    try:
        return resolve_source(source)
    except MetahpoError:
        return None  # reported by check_source


def _check_against_registries(params: Params) -> list[str]:
    """Cross-field checks that need the dataset and family registries; returns 'path: problem' lines."""
    from metahpo.data import check_source
    from metahpo.data.sources import COLUMN_ROLES, HubSource
    from metahpo.models import FAMILIES

    problems: list[str] = []
    mirror = params.download.mirror
    if mirror is not None and not Path(mirror).is_dir():
        hub = sorted(name for name, ds in params.datasets.items() if isinstance(_source_or_none(ds.source), HubSource))
        if hub:
            problems.append(
                f"download.mirror: {mirror!r} is not a folder (relative paths start where the pipeline runs); "
                f"{', '.join(hub)} load from it: point it at a folder in the Hub's layout, or set it to null to use the Hub"
            )
    for name, ds in params.datasets.items():
        try:
            check_source(ds.source)
        except MetahpoError as err:
            problems.append(f"datasets.{name}.source: {err}")
        for role in ds.columns or {}:
            if role not in COLUMN_ROLES:
                problems.append(f"datasets.{name}.columns.{role}: unknown role; valid roles: {', '.join(COLUMN_ROLES)}")
    for name, fam in params.families.items():
        registered = params.registered_family(name)
        if registered not in FAMILIES:
            where = f"families.{name}.family" if fam.family else f"families.{name}"
            problems.append(f"{where}: unknown model family; valid names: {', '.join(FAMILIES.names())}")
            continue
        family = FAMILIES.get(registered)
        expected = set(family.hyperparameters)
        if set(fam.space) != expected:
            problems.append(
                f"families.{name}.space: has {sorted(fam.space)}, the {name} family needs exactly {sorted(expected)}"
            )
        if set(fam.default) != set(fam.space):
            problems.append(f"families.{name}.default: must set exactly {sorted(fam.space)}")
        for hp, value in fam.default.items():
            if hp in fam.space and value not in fam.space[hp].values:
                problems.append(
                    f"families.{name}.default.{hp}: {value} is not a grid value {fam.space[hp].values}"
                )
        try:
            family.Options(**fam.options)
        except ValidationError as err:
            problems.extend(_format(err, prefix=f"families.{name}.options"))
    for name, task in params.tasks.items():
        if task.dataset not in params.datasets:
            problems.append(
                f"tasks.{name}.dataset: {task.dataset!r} is not under datasets; valid names: "
                + ", ".join(sorted(params.datasets))
            )
        if task.family not in params.families:
            problems.append(
                f"tasks.{name}.family: {task.family!r} is not under families; valid names: "
                + ", ".join(sorted(params.families))
            )
        elif task.dataset in params.datasets and params.registered_family(task.family) in FAMILIES:
            family = FAMILIES.get(params.registered_family(task.family))
            problems.extend(_task_type_mismatch(name, params.datasets[task.dataset].source, task, family))
    problems.extend(_unknown_strategies(params))
    if params.fewshot is not None:
        problems.extend(
            f"fewshot.datasets: {name!r} is not under datasets; valid names: {', '.join(sorted(params.datasets))}"
            for name in params.fewshot.datasets
            if name not in params.datasets
        )
    if params.selection is not None:
        problems.extend(_selection_problems(params))
    if params.lr_control is not None:
        problems.extend(_lr_control_problems(params))
    elif params.train_recommended.lr_schedule == "meta":
        problems.append("train_recommended.lr_schedule: meta needs an lr_control section (it meta-trains the controller)")
    return problems


def _lr_control_problems(params: Params) -> list[str]:
    """Its tasks exist, are classification tasks, and no held-out task is meta-trained on."""
    from metahpo.models import FAMILIES

    control, problems = params.lr_control, []
    for where in ("meta_train_tasks", "eval_tasks"):
        for task in getattr(control, where):
            if task not in params.tasks:
                problems.append(f"lr_control.{where}: {task!r} is not under tasks; valid names: {', '.join(sorted(params.tasks))}")
                continue
            family = params.registered_family(params.tasks[task].family)
            if family in FAMILIES and FAMILIES.get(family).task_type != "classification":
                problems.append(f"lr_control.{where}: {task!r} is {FAMILIES.get(family).task_type}; the controller "
                                "is compared on classification tasks (accuracy, precision, recall, F1)")  # fmt: skip
    both = sorted(set(control.meta_train_tasks) & set(control.eval_tasks))
    if both:
        problems.append(f"lr_control.eval_tasks: {both} are meta-train tasks too; a held-out task must not be")
    return problems


def _selection_problems(params: Params) -> list[str]:
    """Pool members and targets name datasets and families that exist and fit each other."""
    from metahpo.data import source_task_type
    from metahpo.models import FAMILIES

    problems = []
    selection = params.selection

    def dataset_problem(where: str, dataset: str) -> Optional[str]:
        if dataset not in params.datasets:
            return f"{where}: {dataset!r} is not under datasets; valid names: {', '.join(sorted(params.datasets))}"
        try:
            declared = source_task_type(params.datasets[dataset].source)
        except MetahpoError:
            return None  # already reported under datasets.<name>.source
        if declared not in (None, "classification"):
            return f"{where}: {dataset!r} is {declared}; model selection needs a classification dataset"
        return None

    for name, member in selection.pool.items():
        where = f"selection.pool.{name}"
        if member.family not in FAMILIES:
            problems.append(f"{where}.family: unknown model family {member.family!r}; valid names: {', '.join(FAMILIES.names())}")
            continue
        family = FAMILIES.get(member.family)
        if family.task_type != "classification":
            problems.append(f"{where}.family: {member.family} does {family.task_type}; pool members are classifiers")
        if member.weights_of is not None:
            base = selection.pool.get(member.weights_of)
            if base is None or base.weights_of is not None or list(selection.pool).index(member.weights_of) > list(selection.pool).index(name):
                problems.append(f"{where}.weights_of: {member.weights_of!r} must be an earlier member with weights of its own")
            elif base.family != member.family:
                problems.append(f"{where}.family: must be {base.family} like the member whose weights it uses")
            continue
        if member.dataset is None:
            if not family.pretrained:
                problems.append(f"{where}.dataset: {member.family} is not pretrained; name the source dataset to train it on")
        else:
            problem = dataset_problem(f"{where}.dataset", member.dataset)
            if problem:
                problems.append(problem)
            if set(member.config) != set(family.hyperparameters):
                problems.append(f"{where}.config: has {sorted(member.config)}, the {member.family} family needs exactly "
                                f"{sorted(family.hyperparameters)}")
        try:
            family.Options(**member.options)
        except ValidationError as err:
            problems.extend(_format(err, prefix=f"{where}.options"))
    for name, target in selection.targets.items():
        problem = dataset_problem(f"selection.targets.{name}.dataset", target.dataset)
        if problem:
            problems.append(problem)
    return problems


def _unknown_strategies(params: Params) -> list[str]:
    from metahpo.hpo.base import STRATEGIES

    import metahpo.hpo.strategies  # noqa: F401  registers the strategies

    named = [(f"benchmark.strategies.{i}", name) for i, name in enumerate(params.benchmark.strategies or [])]
    named += [("tune.strategy", params.tune.strategy), ("tune.baseline", params.tune.baseline)]
    return [
        f"{where}: unknown strategy {name!r}; valid names: {', '.join(STRATEGIES.names())}"
        for where, name in named
        if name not in STRATEGIES
    ]


def _task_type_mismatch(name: str, source: str, task: TaskParams, family) -> list[str]:
    """A QA or NER dataset with a classification family (or the reverse), named before any work.

    Known for registered sources from the registry; for another Hub id only after download (the
    sweep checks it again against the downloaded dataset's task type)."""
    from metahpo.data import source_task_type

    try:
        declared = source_task_type(source)
    except MetahpoError:
        return []  # already reported under datasets.<name>.source
    needed = family.task_type
    if declared is None or declared == needed:
        return []
    return [
        f"tasks.{name}: dataset {task.dataset!r} ({source}) is {declared} but family {task.family!r} "
        f"is {needed}; pair it with a {declared} family"
    ]


def _format(err: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        if e["type"] == "value_error" and not e["loc"] and not prefix:  # the registry checks: lines of their own
            lines.extend(str(e["ctx"]["error"]).split("\n  "))
            continue
        path = ".".join(str(p) for p in e["loc"])
        path = f"{prefix}.{path}" if prefix and path else (prefix or path or "<top level>")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (remove it or check its spelling)"
        lines.append(f"{path}: {msg}")
    return lines


def _empty(field) -> str:
    return "null" if field.default is None else "{}"


def validate_params(raw: Any, source: str = "params") -> Params:
    """Validate a parsed params mapping; raise ParamsError listing every problem by key path."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    # DVC tracks params by key and fails on an absent one, so a params file states every section
    # (inside a section, defaults apply: DVC tracks the section as a whole).
    missing = [f"{key}: missing (DVC tracks it; write e.g. `{key}: {_empty(field)}` for the defaults)"
               for key, field in Params.model_fields.items() if key not in raw]
    try:
        params = Params(**raw)
    except ValidationError as err:
        missing += [line for line in _format(err) if line.split(":")[0] not in Params.model_fields or "Field required" not in line]
        raise ParamsError(f"{source} is invalid:\n  " + "\n  ".join(missing)) from None
    if missing:
        raise ParamsError(f"{source} is invalid:\n  " + "\n  ".join(missing))
    return params


def load_params(path: str | os.PathLike = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} not found; pass --params PATH or run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    return validate_params(raw, source=str(path))
