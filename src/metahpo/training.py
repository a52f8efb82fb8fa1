"""One training run of one config: device and bf16 handling, per-epoch metrics, failure states.

A run never raises for a bad config: divergence, out-of-memory and other errors become the
``state`` of its ``TrainResult`` so a sweep can go on. ``KeyboardInterrupt`` still stops everything.
"""

from __future__ import annotations

import contextlib
import gc
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from pydantic import BaseModel

from metahpo.errors import MetahpoError
from metahpo.models.base import FAMILIES, Family, PreparedData, PreparedSplit

NAN = float("nan")
MIN_EVAL_BATCH_SIZE = 256

EpochCallback = Callable[[int, dict[str, float]], None]


class LRPolicy:
    """How a run's learning rate moves. This default keeps the family's optimizer and its fixed rate;
    ``metahpo.lrcontrol.methods`` holds the others (schedules, adaptive optimizers, the learned controller).

    With ``validate_every`` set, the run also validates every that many optimizer steps (and before
    the first) and keeps the ``trace`` of (step, lr, losses, metric, seconds) that the hooks and
    steps-to-threshold read.
    """

    validate_every: Optional[int] = None

    def optimizer(self, family: Family, model: torch.nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
        return family.optimizer(model, config)

    def start(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        """Called once before the first step."""

    def after_step(self, optimizer: torch.optim.Optimizer, step: int, loss: float) -> None:
        """Called after each optimizer step (1-based) with the batch's training loss."""

    def after_validation(self, optimizer: torch.optim.Optimizer, step: int, val_loss: float) -> None:
        """Called after each trace validation (``validate_every``)."""

    def evaluating(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module, recalibrate: Callable[[], None]) -> None:
        """Before an evaluation: e.g. swap in the averaged weights (``recalibrate`` refreshes BatchNorm statistics)."""

    def training(self, optimizer: torch.optim.Optimizer) -> None:
        """After an evaluation, before training resumes."""


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The first parameter group's learning rate: what the trace records (Prodigy: its lr x d)."""
    group = optimizer.param_groups[0]
    return float(group["lr"]) * float(group.get("d", 1.0))


@dataclass
class TrainResult:
    """Field names follow the sweep table's columns; metrics are NaN unless ``state == "ok"``."""

    state: str  # ok | diverged | oom | failed
    message: str
    epochs_run: int
    curve_train_loss: list[float] = field(default_factory=list)
    curve_val_loss: list[float] = field(default_factory=list)
    curve_val_metric: list[float] = field(default_factory=list)  # the family's primary metric per epoch
    curve_seconds: list[float] = field(default_factory=list)
    trace: list[dict[str, float]] = field(default_factory=list)  # per validate_every steps (LRPolicy)
    steps_per_epoch: int = 0
    metric: str = ""  # name of the primary metric (accuracy, f1, ...)
    val_metric: float = NAN  # last epoch's validation primary metric
    test_metric: float = NAN  # test primary metric
    test_metrics: dict[str, float] = field(default_factory=dict)  # every test metric of the task type
    test_accuracy: float = NAN  # classification only
    test_macro_f1: float = NAN  # classification only
    seconds: float = NAN
    device: str = ""
    model: Optional[torch.nn.Module] = None  # only with keep_model=True (on the CPU, eval mode)

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def metrics(self) -> dict[str, Any]:
        """One sweep-table row's worth of results: every field but the model and the LRPolicy trace."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__
                if name not in ("model", "trace", "steps_per_epoch")}  # fmt: skip


class Diverged(Exception):
    """The training loss became NaN or infinite."""


def prepare_task(family_name: str, options: dict, task: str, data_dir) -> tuple[Family, BaseModel, PreparedData]:
    """(family, validated options, tensors) of ``task`` from its prepared dataset folder ``data_dir``.

    ``family_name`` is the registered family, ``options`` its ``families.<entry>.options``. Checks that
    the dataset's task type suits the family before the (possibly slow) tokenising.
    """
    from metahpo.data.prepare import load_prepared  # datasets is heavy: only stages that train pay for it

    family = FAMILIES.get(family_name)
    options = family.options(options)
    dataset_dict, info = load_prepared(data_dir)
    family.check_dataset(info, task)
    return family, options, family.prepare(dataset_dict, info, options)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MetahpoError(
            "device: cuda was requested but no CUDA GPU is available to torch "
            f"(torch {torch.__version__}); set device: auto or cpu"
        )
    if device not in ("cpu", "cuda"):
        raise MetahpoError(f"device: {device!r} is not one of auto, cpu, cuda")
    return torch.device(device)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def uses_bf16(device: torch.device, precision: str) -> bool:
    return device.type == "cuda" and precision in ("auto", "bf16")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def warmup_linear_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor: linear rise over ``warmup_steps`` optimizer steps, then linear decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error)
    )


def train_model(
    family: Family | str,
    data: PreparedData,
    config: dict[str, Any],
    *,
    epochs: int,
    seed: int,
    device: torch.device | str = "auto",
    precision: str = "auto",
    options: Optional[BaseModel] = None,
    on_epoch: Optional[EpochCallback] = None,
    keep_model: bool = False,
    policy: Optional[LRPolicy] = None,
    max_steps: Optional[int] = None,
) -> TrainResult:
    """Train a fresh ``family.build(config, data, options)`` model and evaluate it.

    ``config`` holds lr and batch_size, optionally ``epochs`` (overrides the argument) and
    ``warmup_steps`` (linear warmup, then linear decay to 0). ``on_epoch(epoch, record)`` gets
    epoch (1-based), train_loss, val_loss, val_metric and seconds after every epoch. ``policy``
    (default: ``LRPolicy()``) chooses the optimizer and moves its learning rate during the run;
    ``max_steps`` makes the budget that many optimizer steps instead (the last epoch cut short).
    """
    if isinstance(family, str):
        family = FAMILIES.get(family)
    if options is None:
        options = family.options({})
    device = resolve_device(device) if isinstance(device, str) else device
    run = _Run(family, data, config, int(config.get("epochs", epochs)), seed, device, precision, options, on_epoch,
               policy or LRPolicy(), max_steps)
    started = time.perf_counter()
    previous_determinism = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    state, message = "ok", ""
    try:
        run.fit()
    except Diverged as error:
        state, message = "diverged", str(error)
    except Exception as error:  # a bad config must not stop the sweep; KeyboardInterrupt is no Exception
        if is_oom(error):
            state, message = "oom", f"out of memory on {describe_device(device)}: {error}"
        else:
            state, message = "failed", f"{type(error).__name__}: {error}"
    finally:
        torch.use_deterministic_algorithms(previous_determinism[0], warn_only=previous_determinism[1])

    result = TrainResult(
        state=state,
        message=message,
        epochs_run=len(run.curves["train_loss"]),
        curve_train_loss=run.curves["train_loss"],
        curve_val_loss=run.curves["val_loss"],
        curve_val_metric=run.curves["val_metric"],
        curve_seconds=run.curves["seconds"],
        trace=run.trace,
        steps_per_epoch=run.steps_per_epoch,
        device=describe_device(device),
        metric=family.primary_metric,
    )
    if state == "ok":
        result.val_metric = run.curves["val_metric"][-1] if run.curves["val_metric"] else NAN
        result.test_metrics = run.test_scores
        result.test_metric = float(run.test_scores[family.primary_metric])
        result.test_accuracy = float(run.test_scores.get("accuracy", NAN))
        result.test_macro_f1 = float(run.test_scores.get("macro_f1", NAN))
        if keep_model:
            result.model = run.model.cpu().eval()
    run.model = None
    if state == "oom":
        # the failed run's tensors are unreachable only now, outside the except block
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    result.seconds = time.perf_counter() - started
    return result


class _Run:
    """The state of one training run, so a failure part-way keeps the curves of finished epochs."""

    def __init__(self, family, data, config, epochs, seed, device, precision, options, on_epoch, policy,
                 max_steps) -> None:  # fmt: skip
        self.family, self.data, self.config, self.options = family, data, config, options
        self.epochs, self.seed, self.device, self.on_epoch, self.policy = epochs, seed, device, on_epoch, policy
        self.batch_size = int(config["batch_size"])
        self.steps_per_epoch = math.ceil(len(data.train) / self.batch_size)
        self.max_steps = max_steps
        if max_steps is not None:
            self.epochs = math.ceil(max_steps / self.steps_per_epoch)
        self.trace: list[dict[str, float]] = []
        self.eval_batch_size = max(4 * self.batch_size, MIN_EVAL_BATCH_SIZE)
        self.autocast = (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16)
            if uses_bf16(device, precision)
            else contextlib.nullcontext()
        )
        self.curves: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_metric": [], "seconds": []}
        self.model: Optional[torch.nn.Module] = None
        self.test_scores: dict[str, float] = {}

    def fit(self) -> None:
        seed_everything(self.seed)
        self.model = self.family.build(self.config, self.data, self.options).to(self.device)
        optimizer = self.policy.optimizer(self.family, self.model, self.config)
        total_steps = self.max_steps or self.epochs * self.steps_per_epoch
        scheduler = None
        if "warmup_steps" in self.config:
            schedule = warmup_linear_decay(int(self.config["warmup_steps"]), total_steps)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        shuffle = torch.Generator().manual_seed(self.seed)
        self.policy.start(optimizer, total_steps)
        self.started, self.step, self.window = time.perf_counter(), 0, []
        if self.policy.validate_every:
            self._trace_point(optimizer)

        for epoch in range(1, self.epochs + 1):
            started = time.perf_counter()
            train_loss = self._train_epoch(epoch, optimizer, scheduler, shuffle)
            val_loss, val_scores = self._evaluate(self.data.validation, optimizer)
            val_metric = float(val_scores[self.family.primary_metric])
            seconds = time.perf_counter() - started
            record = {"train_loss": train_loss, "val_loss": val_loss, "val_metric": val_metric, "seconds": seconds}
            for name, value in record.items():
                self.curves[name].append(value)
            if self.on_epoch is not None:
                self.on_epoch(epoch, dict(record))

        if self.policy.validate_every and self.trace[-1]["step"] != self.step:
            self._trace_point(optimizer)
        _, self.test_scores = self._evaluate(self.data.test, optimizer)

    def _trace_point(self, optimizer) -> None:
        """Validate now and record a trace point; the policy sees the validation loss."""
        val_loss, val_scores = self._evaluate(self.data.validation, optimizer)
        self.model.train()
        train_loss = sum(self.window) / len(self.window) if self.window else NAN
        self.window = []
        self.trace.append({
            "step": self.step, "epoch": self.step / self.steps_per_epoch, "lr": current_lr(optimizer),
            "train_loss": train_loss, "val_loss": val_loss,
            "val_metric": float(val_scores[self.family.primary_metric]),
            "seconds": time.perf_counter() - self.started,
        })  # fmt: skip
        if not math.isfinite(val_loss):
            raise Diverged(f"validation loss became {val_loss} at step {self.step}")
        self.policy.after_validation(optimizer, self.step, val_loss)

    def _recalibrate(self, batches: int = 5) -> None:
        """Recompute BatchNorm running statistics at the current weights: the exact average over a few
        training batches (momentum None), no update; the momentum is restored after."""
        norms = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        self.model.train()
        order = torch.randperm(len(self.data.train), generator=torch.Generator().manual_seed(self.seed))
        with torch.no_grad():
            for index in order.split(self.batch_size)[:batches]:
                inputs, labels = self._to_device(*self.data.train.batch(index))
                with self.autocast:
                    self.family.step(self.model, inputs, labels)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum

    def _train_epoch(self, epoch, optimizer, scheduler, shuffle: torch.Generator) -> float:
        self.model.train()
        order = torch.randperm(len(self.data.train), generator=shuffle)
        loss_sum, rows = 0.0, 0
        for step, index in enumerate(order.split(self.batch_size), start=1):
            inputs, labels = self._to_device(*self.data.train.batch(index))
            with self.autocast:
                loss, _ = self.family.step(self.model, inputs, labels)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise Diverged(f"training loss became {loss_value} at epoch {epoch}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            self.step += 1
            self.window.append(loss_value)
            self.policy.after_step(optimizer, self.step, loss_value)
            if self.policy.validate_every and self.step % self.policy.validate_every == 0:
                self._trace_point(optimizer)
            loss_sum += loss_value * len(index)
            rows += len(index)
            if self.step == self.max_steps:
                break
        return loss_sum / rows

    def _evaluate(self, split: PreparedSplit, optimizer) -> tuple[float, dict[str, float]]:
        """Mean loss and the family's metrics over a whole split, at the weights the policy evaluates."""
        self.policy.evaluating(optimizer, self.model, self._recalibrate)
        self.model.eval()
        loss_sum, predictions = 0.0, []
        with torch.inference_mode():
            for index in torch.arange(len(split)).split(self.eval_batch_size):
                inputs, labels = self._to_device(*split.batch(index))
                with self.autocast:
                    loss, outputs = self.family.step(self.model, inputs, labels)
                loss_sum += loss.item() * len(index)
                predictions.append(self.family.predictions(outputs))
        self.policy.training(optimizer)
        return loss_sum / max(1, len(split)), self.family.score(split, predictions)

    def _to_device(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor):
        non_blocking = self.device.type == "cuda"
        return (
            {k: v.to(self.device, non_blocking=non_blocking) for k, v in inputs.items()},
            labels.to(self.device, non_blocking=non_blocking),
        )
