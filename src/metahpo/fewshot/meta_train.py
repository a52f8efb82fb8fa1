"""Training an initialization: the outer loop of an episodic method, or supervised pretraining.

Both are a loop of ``iterations`` steps of Adam on the state, with a checkpoint (safetensors: the
state, the best state so far, Adam's moments; JSON metadata: iteration, history, seconds) written
atomically every ``checkpoint_every`` steps, so a killed run resumes where it stopped and ends with
the same weights as an uninterrupted one (episode ``i`` is drawn from seed ``(seed, i)``, batches
likewise). Every ``validate_every`` steps the current state is scored on meta-validation episodes;
the best one is what the loop returns (early stopping by selection). Progress is a tqdm bar.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from metahpo.fewshot.backbone import Conv4, cosine_logits, forward, linear_logits
from metahpo.fewshot.episodes import ROTATIONS, ClassPool, EpisodeSampler
from metahpo.fewshot.evaluate import query_accuracy
from metahpo.fewshot.methods import Inner, Method, State, state_body
from metahpo.io import atomic_path

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class LoopSettings:
    iterations: int
    meta_batch: int  # episodes per outer step (episodic) ; ignored by pretraining
    meta_lr: float
    validate_every: int
    validation_episodes: int
    checkpoint_every: int
    batch_size: int = 64  # pretraining's batch


@dataclass
class Trained:
    state: State  # the selected (best on meta-validation) state
    history: list[dict]  # per logged step: iteration, loss, seconds, val_accuracy (where validated)
    seconds: float  # training time, summed over resumed runs
    peak_memory_mb: float
    best_iteration: int


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the peak allocated by torch; CPU: the process's peak resident set (ru_maxrss)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def new_body(in_channels: int, filters: int, seed: int, device: torch.device) -> Conv4:
    torch.manual_seed(seed)
    return Conv4(in_channels, filters).to(device)


def train_init(method: Method, pool: ClassPool, train: EpisodeSampler, validation: Optional[EpisodeSampler],
               inner: Inner, loop: LoopSettings, filters: int, seed: int, device: torch.device,
               checkpoint: Path, rotations: bool, desc: str = "") -> Trained:  # fmt: skip
    """Train ``method``'s initialization; resume from ``checkpoint`` when it holds an unfinished run."""
    body = new_body(pool.images.shape[1], filters, seed, device)
    state = {n: v.to(device) for n, v in method.init_state(body, inner).items()}
    step_fn: Callable[[int], float]
    if method.training == "supervised":
        state, step_fn = _supervised(method, body, pool, train, state, loop, seed, device, rotations)
    else:
        step_fn = _episodic(method, body, train, state, inner, loop, device)
    optimizer = torch.optim.Adam(list(state.values()), lr=loop.meta_lr)
    start, history, seconds, best, best_iteration, best_accuracy = 0, [], 0.0, None, 0, -1.0
    resumed = _load_checkpoint(checkpoint, state, optimizer)
    if resumed is not None:
        start, history, seconds, best_iteration, best_accuracy, best = resumed
        print(f"{desc or method.name}: resuming from {checkpoint.name} at step {start} of {loop.iterations}", flush=True)

    bar = tqdm(range(start, loop.iterations), desc=desc or f"meta-train {method.name}", unit="it",
               initial=start, total=loop.iterations, leave=False)  # fmt: skip
    for iteration in bar:
        began = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = step_fn(iteration)
        optimizer.step()
        seconds += time.perf_counter() - began
        record = {"iteration": iteration + 1, "loss": loss, "seconds": seconds}
        done = iteration + 1
        if validation is not None and (done % loop.validate_every == 0 or done == loop.iterations):
            accuracy = validate(method, body, state, validation, inner, loop.validation_episodes, device)
            record["val_accuracy"] = accuracy
            if accuracy > best_accuracy:
                best_accuracy, best_iteration = accuracy, done
                best = {n: v.detach().clone() for n, v in state.items()}
            bar.set_postfix(loss=f"{loss:.3f}", val=f"{accuracy:.3f}")
        history.append(record)
        if done % loop.checkpoint_every == 0 or done == loop.iterations:
            _save_checkpoint(checkpoint, state, optimizer, best, history, seconds, best_iteration, best_accuracy)
    bar.close()
    selected = best if best is not None else {n: v.detach().clone() for n, v in state.items()}
    return Trained(
        {n: v for n, v in selected.items() if not n.startswith("head.")}, history, seconds,
        peak_memory_mb(device), best_iteration or loop.iterations,
    )  # fmt: skip


def validate(method: Method, body: nn.Module, state: State, sampler: EpisodeSampler, inner: Inner,
             episodes: int, device: torch.device) -> float:  # fmt: skip
    """Mean query accuracy after ``inner.steps`` adaptation steps over the first ``episodes`` episodes."""
    frozen = {n: v.detach() for n, v in state.items() if not n.startswith("head.")}
    scores = [query_accuracy(method, body, frozen, e.to(device), inner) for e in sampler.episodes(episodes)]
    return float(np.mean(scores))


def _episodic(method: Method, body: nn.Module, sampler: EpisodeSampler, state: State, inner: Inner,
              loop: LoopSettings, device: torch.device) -> Callable[[int], float]:  # fmt: skip
    def step(iteration: int) -> float:
        losses = []
        for j in range(loop.meta_batch):
            episode = sampler.episode(iteration * loop.meta_batch + j).to(device)
            loss, grads = method.outer_gradient(body, state, episode, inner)
            losses.append(loss)
            for name, grad in grads.items():
                tensor = state[name]
                tensor.grad = grad / loop.meta_batch if tensor.grad is None else tensor.grad + grad / loop.meta_batch
        return float(np.mean(losses))

    return step


def _supervised(method: Method, body: nn.Module, pool: ClassPool, sampler: EpisodeSampler, state: State,
                loop: LoopSettings, seed: int, device: torch.device, rotations: bool):  # fmt: skip
    """Pretraining on every meta-train class (each rotation a class when rotations are on), one head."""
    classes = np.array(sorted(sampler.members))
    rows = np.concatenate([sampler.members[c] for c in classes])
    label_of = {int(c): i for i, c in enumerate(classes)}
    labels = np.array([label_of[int(c)] for c in pool.classes[rows]])
    turns = ROTATIONS if rotations else 1
    count = len(classes) * turns
    dim = body.feature_dim(pool.images.shape[-1])
    generator = torch.Generator().manual_seed(seed)
    state["head.weight"] = (torch.randn(count, dim, generator=generator) * dim**-0.5).to(device).requires_grad_()
    if method.head != "cosine":
        state["head.bias"] = torch.zeros(count, device=device, requires_grad=True)
    logits_fn = cosine_logits if method.head == "cosine" else linear_logits

    def step(iteration: int) -> float:
        rng = np.random.default_rng([seed, iteration])
        picked = rng.choice(len(rows), size=min(loop.batch_size, len(rows)), replace=False)
        turn = rng.integers(turns, size=len(picked))
        x = pool.images[torch.from_numpy(rows[picked])]
        x = torch.stack([torch.rot90(image, int(k), dims=(1, 2)) for image, k in zip(x, turn)]) if turns > 1 else x
        y = torch.from_numpy(labels[picked] * turns + turn)
        loss = F.cross_entropy(logits_fn(forward(body, state_body(state), x.to(device)), state), y.to(device))
        loss.backward()
        return float(loss.detach())

    return state, step


# --- checkpoints ---------------------------------------------------------------------------------


def _save_checkpoint(path: Path, state, optimizer, best, history, seconds, best_iteration, best_accuracy) -> None:
    tensors = {f"state/{n}": v.detach().cpu().contiguous() for n, v in state.items()}
    if best is not None:
        tensors.update({f"best/{n}": v.cpu().contiguous() for n, v in best.items()})
    optim = optimizer.state_dict()
    for index, moments in optim["state"].items():
        for key, value in moments.items():
            tensors[f"adam/{index}/{key}"] = torch.as_tensor(value).cpu().contiguous()
    metadata = {
        "format": str(CHECKPOINT_FORMAT),
        "iteration": str(history[-1]["iteration"]),
        "history": json.dumps(history),
        "seconds": repr(seconds),
        "best_iteration": str(best_iteration),
        "best_accuracy": repr(best_accuracy),
        "param_groups": json.dumps(optim["param_groups"]),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _load_checkpoint(path: Path, state, optimizer):
    """Restore state and Adam in place; return (start, history, seconds, best_iteration, best_accuracy, best)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    if metadata.get("format") != str(CHECKPOINT_FORMAT) or set(state) != {k[6:] for k in tensors if k.startswith("state/")}:
        return None  # another method's or an older layout: start over
    with torch.no_grad():
        for name, tensor in state.items():
            tensor.copy_(tensors[f"state/{name}"])
    moments: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("adam/"):
            _, index, name = key.split("/")
            moments.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": moments, "param_groups": json.loads(metadata["param_groups"])})
    device = next(iter(state.values())).device
    best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best/")} or None
    return (
        int(metadata["iteration"]), json.loads(metadata["history"]), float(metadata["seconds"]),
        int(metadata["best_iteration"]), float(metadata["best_accuracy"]), best,
    )  # fmt: skip
