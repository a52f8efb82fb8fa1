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
        """Every field but the model: one sweep-table row's worth of results."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "model"}


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
) -> TrainResult:
    """Train a fresh ``family.build(config, data, options)`` model and evaluate it.

    ``config`` holds lr and batch_size, optionally ``epochs`` (overrides the argument) and
    ``warmup_steps`` (linear warmup, then linear decay to 0). ``on_epoch(epoch, record)`` gets
    epoch (1-based), train_loss, val_loss, val_metric and seconds after every epoch.
    """
    if isinstance(family, str):
        family = FAMILIES.get(family)
    if options is None:
        options = family.options({})
    device = resolve_device(device) if isinstance(device, str) else device
    run = _Run(family, data, config, int(config.get("epochs", epochs)), seed, device, precision, options, on_epoch)
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

    def __init__(self, family, data, config, epochs, seed, device, precision, options, on_epoch) -> None:
        self.family, self.data, self.config, self.options = family, data, config, options
        self.epochs, self.seed, self.device, self.on_epoch = epochs, seed, device, on_epoch
        self.batch_size = int(config["batch_size"])
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
        optimizer = self.family.optimizer(self.model, self.config)
        steps_per_epoch = math.ceil(len(self.data.train) / self.batch_size)
        scheduler = None
        if "warmup_steps" in self.config:
            schedule = warmup_linear_decay(int(self.config["warmup_steps"]), self.epochs * steps_per_epoch)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        shuffle = torch.Generator().manual_seed(self.seed)

        for epoch in range(1, self.epochs + 1):
            started = time.perf_counter()
            train_loss = self._train_epoch(epoch, optimizer, scheduler, shuffle)
            val_loss, val_scores = self._evaluate(self.data.validation)
            val_metric = float(val_scores[self.family.primary_metric])
            seconds = time.perf_counter() - started
            record = {"train_loss": train_loss, "val_loss": val_loss, "val_metric": val_metric, "seconds": seconds}
            for name, value in record.items():
                self.curves[name].append(value)
            if self.on_epoch is not None:
                self.on_epoch(epoch, dict(record))

        _, self.test_scores = self._evaluate(self.data.test)

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
            loss_sum += loss_value * len(index)
            rows += len(index)
        return loss_sum / rows

    @torch.inference_mode()
    def _evaluate(self, split: PreparedSplit) -> tuple[float, dict[str, float]]:
        """Mean loss and the family's metrics over a whole split."""
        self.model.eval()
        loss_sum, predictions = 0.0, []
        for index in torch.arange(len(split)).split(self.eval_batch_size):
            inputs, labels = self._to_device(*split.batch(index))
            with self.autocast:
                loss, outputs = self.family.step(self.model, inputs, labels)
            loss_sum += loss.item() * len(index)
            predictions.append(self.family.predictions(outputs))
        return loss_sum / max(1, len(split)), self.family.score(split, predictions)

    def _to_device(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor):
        non_blocking = self.device.type == "cuda"
        return (
            {k: v.to(self.device, non_blocking=non_blocking) for k, v in inputs.items()},
            labels.to(self.device, non_blocking=non_blocking),
        )
