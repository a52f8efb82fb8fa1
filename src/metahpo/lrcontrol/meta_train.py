"""Meta-training the controller with antithetic evolution strategies (Salimans et al. 2017).

Why ES: the meta-objective (the area under the validation-loss curve of a whole run, normalised by
the run's initial validation loss) is a black box of hundreds of optimizer steps through Adam, the
model and the data order; unrolled hypergradients through that horizon are memory-bound and
truncated ones are biased toward short-horizon (too small) rates (Wu et al. 2018). ES needs only
forward training runs, so it meta-trains through any family's ordinary ``training.train_model``,
and a diverged run is just a bad score. The controller is small (hundreds of weights), where ES
with antithetic pairs on common random numbers (the same task, seed and data order for +eps and
-eps) and centred-rank fitness is known to work.

Each iteration draws ``population / 2`` pairs, each on a task and a training seed drawn from
``(seed, iteration)``; Adam steps the mean. Every ``validate_every`` iterations the mean controller
runs on every meta-train task with fixed held-back seeds, and the best one so far is kept (the
controller that is saved). A checkpoint (safetensors) is written atomically every
``checkpoint_every`` iterations, so a killed run resumes where it stopped and ends identically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from metahpo.io import atomic_path
from metahpo.lrcontrol.controller import ControllerConfig, LRController
from metahpo.lrcontrol.methods import Controlled
from metahpo.training import train_model

DIVERGED_SCORE = 2.0  # a diverged run scores as twice its initial validation loss throughout
VALIDATION_SEED = 10_000  # training seeds of the meta-validation runs: never drawn for an ES pair


@dataclass(frozen=True)
class LRTask:
    """A (dataset, family) task as every run trains it: tensors, family, options and config."""

    name: str
    family: Any
    options: Any
    data: Any
    config: dict[str, Any]  # the family's default config, batch size set; lr is the method's


@dataclass(frozen=True)
class ESSettings:
    iterations: int
    population: int  # runs per iteration (pairs x 2)
    sigma: float  # perturbation scale in weight space
    meta_lr: float  # Adam on the mean
    steps: int  # optimizer steps per inner run
    base_lr: float
    validate_every: int  # iterations between meta-validations
    checkpoint_every: int
    trace_every: int  # optimizer steps between the inner runs' validations
    learn: str = "all"  # "all": every weight; "readout": the head only (the LSTM stays at its seeded init)


@dataclass
class MetaTrained:
    controller: LRController
    history: list[dict[str, Any]]  # per iteration: mean population score, meta-validation score when run
    best_iteration: int
    best_score: float
    seconds: float
    runs: int  # inner training runs


def run_score(controller: LRController, task: LRTask, settings: ESSettings, seed: int, device) -> float:
    """The meta-objective of one inner run: mean validation loss over the trace / the initial one."""
    policy = Controlled(controller, settings.trace_every, settings.base_lr)
    result = train_model(task.family, task.data, task.config, epochs=1, seed=seed, device=device, precision="fp32",
                         options=task.options, policy=policy, max_steps=settings.steps)  # fmt: skip
    losses = [p["val_loss"] for p in result.trace]
    if result.state != "ok" or not losses or not all(math.isfinite(v) for v in losses) or losses[0] <= 0:
        return DIVERGED_SCORE
    return float(min(DIVERGED_SCORE, np.mean(losses) / losses[0]))  # a blow-up short of NaN is as bad as one


def centred_ranks(values: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks / max(1, len(values) - 1) - 0.5


def meta_train(tasks: list[LRTask], config: ControllerConfig, settings: ESSettings, seed: int, device,
               checkpoint: Path, progress=None) -> MetaTrained:  # fmt: skip
    """ES on the controller's weights over ``tasks``; resumes from ``checkpoint`` when it holds a run."""
    torch.manual_seed(seed)
    controller = LRController(config)
    theta = controller.vector().double()
    moments = [torch.zeros_like(theta), torch.zeros_like(theta)]
    best, best_score, best_iteration = theta.clone(), math.inf, 0
    history: list[dict[str, Any]] = []
    start, seconds, runs = 0, 0.0, 0
    saved = _load(checkpoint, theta.numel())
    if saved is not None:
        theta, moments, best, state = saved
        start, history, seconds, runs = state["iteration"], state["history"], state["seconds"], state["runs"]
        best_score, best_iteration = state["best_score"], state["best_iteration"]
        print(f"lr_meta: resuming from {checkpoint.name} at iteration {start} of {settings.iterations}", flush=True)
    probe = LRController(config)
    mask = probe.readout() if settings.learn == "readout" else torch.ones(theta.numel(), dtype=torch.bool)
    pairs = max(1, settings.population // 2)
    for iteration in range(start, settings.iterations):
        started = time.perf_counter()
        rng = np.random.default_rng([seed, iteration])
        noise = torch.zeros(pairs, theta.numel(), dtype=torch.float64)
        noise[:, mask] = torch.from_numpy(rng.standard_normal((pairs, int(mask.sum()))))
        draws = [(int(rng.integers(len(tasks))), int(rng.integers(VALIDATION_SEED))) for _ in range(pairs)]
        scores = np.empty(2 * pairs)
        for k, (task_index, run_seed) in enumerate(draws):
            for sign, slot in ((1.0, 2 * k), (-1.0, 2 * k + 1)):
                probe.set_vector(theta + sign * settings.sigma * noise[k])
                scores[slot] = run_score(probe, tasks[task_index], settings, run_seed, device)
        runs += 2 * pairs
        ranks = centred_ranks(scores)
        gradient = ((ranks[0::2] - ranks[1::2])[:, None] * noise.numpy()).sum(0) / (2 * pairs * settings.sigma)
        theta = _adam_step(theta, torch.from_numpy(gradient), moments, iteration + 1, settings.meta_lr)
        record: dict[str, Any] = {"iteration": iteration + 1, "population_score": float(scores.mean())}
        done = iteration + 1
        if done % settings.validate_every == 0 or done == settings.iterations:
            probe.set_vector(theta)
            validation = [run_score(probe, task, settings, VALIDATION_SEED + i, device)
                          for task in tasks for i in range(2)]  # fmt: skip
            runs += len(validation)
            record["validation_score"] = float(np.mean(validation))
            if record["validation_score"] < best_score:
                best, best_score, best_iteration = theta.clone(), record["validation_score"], done
        seconds += time.perf_counter() - started
        record["seconds"] = seconds
        history.append(record)
        if progress is not None:
            progress(record)
        if done % settings.checkpoint_every == 0 or done == settings.iterations:
            _save(checkpoint, theta, moments, best, {
                "iteration": done, "history": history, "seconds": seconds, "runs": runs,
                "best_score": best_score, "best_iteration": best_iteration, "settings": asdict(settings),
            })  # fmt: skip
    return MetaTrained(LRController(config).set_vector(best).eval(), history, best_iteration, best_score, seconds, runs)


def _adam_step(theta, gradient, moments, t: int, lr: float, betas=(0.9, 0.999), eps=1e-8):
    """Gradient descent on the score (lower is better) with Adam's moments."""
    m, v = moments
    m.mul_(betas[0]).add_(gradient, alpha=1 - betas[0])
    v.mul_(betas[1]).addcmul_(gradient, gradient, value=1 - betas[1])
    step = (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps)
    return theta - lr * step


def _save(path: Path, theta, moments, best, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"theta": theta, "m": moments[0], "v": moments[1], "best": best}
    with atomic_path(path) as tmp:
        save_file({k: t.contiguous() for k, t in tensors.items()}, str(tmp), metadata={"state": json.dumps(state)})


def _load(path: Path, size: int) -> Optional[tuple]:
    """A checkpoint of the same run shape, else None (the caller names checkpoints by their settings)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        state = json.loads(handle.metadata()["state"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    if tensors["theta"].numel() != size:
        return None
    return tensors["theta"], [tensors["m"], tensors["v"]], tensors["best"], state
