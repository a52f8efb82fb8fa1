"""The learned learning-rate controller: a small LSTM that, every N optimizer steps, reads scale-free
features of the training so far and multiplies the learning rate of every parameter group by a
bounded factor.

Usable outside the pipeline, like a torch scheduler::

    controller = LRController.load("results/lr_meta/controller")
    schedule = controller.schedule(optimizer, total_steps=3000)
    for batch in batches:
        loss = ...; loss.backward(); optimizer.step(); optimizer.zero_grad()
        schedule.step(loss.item())             # acts every ``controller.config.every`` calls
        if validating_now:
            schedule.validation(val_loss)      # optional: the validation features
    torch.save(schedule.state_dict(), ...)     # resumable with the training checkpoint

Saved as ``controller.safetensors`` with its config in the file's metadata (``save`` / ``load``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from metahpo.errors import MetahpoError

FEATURES = (
    "log_lr",  # (log10 lr + 3) / 2: 0 at 1e-3
    "loss_level",  # log(window-mean train loss / first window's)
    "loss_change",  # 10 log(window mean / previous window mean)
    "grad_norm",  # log10(gradient norm / the first decision's)
    "update_ratio",  # (log10(|w - w at the last decision| / |w|) + 3) / 2
    "progress",  # step / total steps
    "val_level",  # log(last validation loss / first), 0 before any
    "val_change",  # 10 log(last validation loss / the one before), 0 without two
    "gap",  # log(validation loss / train loss), 0 before any validation
)
FEATURE_CLIP = 5.0
WEIGHTS_FILE = "controller.safetensors"


@dataclass(frozen=True)
class ControllerConfig:
    features: tuple[str, ...] = FEATURES
    hidden: int = 8  # LSTM width
    every: int = 10  # optimizer steps between decisions
    max_change: float = 2.0  # a decision multiplies the rate by a factor in [1/max_change, max_change]
    skip: bool = True  # the head reads the features beside the LSTM state (a linear policy is one step away)
    lr_min: float = 1e-6
    lr_max: float = 1.0
    optimizers: tuple[str, ...] = ("Adam", "AdamW")  # optimizer classes it was meta-trained on

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "ControllerConfig":
        raw = json.loads(text)
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise MetahpoError(f"{where}: the controller config has unknown fields {sorted(unknown)}; it was saved "
                               "by another version of metahpo: meta-train it again (the lr_meta stage)")  # fmt: skip
        raw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        config = cls(**raw)
        missing = [f for f in config.features if f not in FEATURES]
        if missing:
            raise MetahpoError(
                f"{where}: the controller reads features {missing} that this version does not compute "
                f"(it computes {list(FEATURES)}); meta-train it again (the lr_meta stage)"
            )
        return config


class LRController(nn.Module):
    """features -> LSTM cell -> log factor = log(max_change) * tanh(linear([h, features])); the head
    starts at zero, so an untrained controller keeps the rate constant."""

    def __init__(self, config: ControllerConfig = ControllerConfig()) -> None:
        super().__init__()
        self.config = config
        self.cell = nn.LSTMCell(len(config.features), config.hidden)
        self.head = nn.Linear(config.hidden + (len(config.features) if config.skip else 0), 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor, state: Optional[tuple[torch.Tensor, torch.Tensor]]):
        x = features.view(1, -1)
        h, c = self.cell(x, state)
        inputs = torch.cat([h, x], dim=1) if self.config.skip else h
        return math.log(self.config.max_change) * torch.tanh(self.head(inputs)).view(()), (h, c)

    def readout(self) -> torch.Tensor:
        """A mask over ``vector()``: True for the head's weights (the last parameters)."""
        mask = torch.zeros(sum(p.numel() for p in self.parameters()), dtype=torch.bool)
        mask[-(self.head.weight.numel() + self.head.bias.numel()):] = True
        return mask

    # --- parameters as one vector (evolution strategies) ----------------------------------------

    def vector(self) -> torch.Tensor:
        return nn.utils.parameters_to_vector(self.parameters()).detach().clone()

    def set_vector(self, vector: torch.Tensor) -> "LRController":
        nn.utils.vector_to_parameters(vector.to(torch.float32), self.parameters())
        return self

    # --- persistence ------------------------------------------------------------------------------

    def save(self, directory: str | Path, extra: Optional[dict[str, Any]] = None) -> Path:
        """``directory/controller.safetensors``: the weights, the config and ``extra`` (provenance) as metadata."""
        from safetensors.torch import save_file

        from metahpo.io import atomic_path

        path = Path(directory) / WEIGHTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"config": self.config.to_json(), "extra": json.dumps(extra or {}, sort_keys=True)}
        with atomic_path(path) as tmp:
            save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(tmp), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LRController":
        """A saved controller (its folder or its .safetensors file); errors name what does not match."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if path.is_dir():
            path = path / WEIGHTS_FILE
        if not path.is_file():
            raise MetahpoError(f"{path}: no learning-rate controller here; run the lr_meta stage first")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        except (SafetensorError, OSError) as error:
            raise MetahpoError(f"{path}: not a readable safetensors file ({error}); run the lr_meta stage again") from None
        if "config" not in metadata:
            raise MetahpoError(f"{path}: safetensors file without a controller config; it is not an LR controller")
        controller = cls(ControllerConfig.from_json(metadata["config"], str(path)))
        expected = {k: tuple(v.shape) for k, v in controller.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in tensors.items()}
        if expected != found:
            raise MetahpoError(f"{path}: tensors {found} do not match its config's controller {expected}; the file "
                               "is damaged or from another version: run the lr_meta stage again")  # fmt: skip
        controller.load_state_dict(tensors)
        controller.provenance = json.loads(metadata.get("extra", "{}"))
        return controller.eval()

    def schedule(self, optimizer: torch.optim.Optimizer, total_steps: int) -> "ControlledSchedule":
        return ControlledSchedule(self, optimizer, total_steps)


def check_optimizer(config: ControllerConfig, optimizer: torch.optim.Optimizer) -> None:
    name = type(optimizer).__name__
    if name not in config.optimizers:
        raise MetahpoError(
            f"this learning-rate controller was meta-trained with {'/'.join(config.optimizers)}, not {name}: "
            f"its decisions assume that optimizer's step size; use one of {list(config.optimizers)}, or "
            "meta-train a controller for it"
        )
    if any("lr" not in group for group in optimizer.param_groups):
        raise MetahpoError(f"{name} has a parameter group without 'lr': the controller has no rate to set")


@dataclass
class _Tracker:
    """The raw statistics the features are computed from, between decisions."""

    window: list[float] = field(default_factory=list)
    first_loss: Optional[float] = None
    previous_loss: Optional[float] = None
    first_grad: Optional[float] = None
    val: list[float] = field(default_factory=list)


class ControlledSchedule:
    """One training run driven by a controller: call ``step(loss)`` after every optimizer step."""

    def __init__(self, controller: LRController, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        check_optimizer(controller.config, optimizer)
        self.controller, self.optimizer = controller, optimizer
        self.config = controller.config
        self.total_steps = max(1, int(total_steps))
        self.steps = 0
        self.state: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self.tracker = _Tracker()
        self._snapshot = self._weights()
        self.history: list[tuple[int, float]] = [(0, self.lr)]

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _weights(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([p.detach().reshape(-1).float() for p in self._params()]).cpu()

    def validation(self, val_loss: float) -> None:
        self.tracker.val.append(float(val_loss))

    def step(self, loss: float) -> None:
        self.steps += 1
        self.tracker.window.append(float(loss))
        if self.steps % self.config.every == 0:
            self._decide()

    def features(self) -> dict[str, float]:
        t = self.tracker
        mean = sum(t.window) / len(t.window)
        if t.first_loss is None:
            t.first_loss = max(mean, 1e-12)
        grads = [p.grad.detach().float().norm() for p in self._params() if p.grad is not None]
        grad = float(torch.stack(grads).norm()) if grads else 0.0
        if t.first_grad is None:
            t.first_grad = max(grad, 1e-12)
        weights = self._weights()
        update = float((weights - self._snapshot).norm()) / max(float(weights.norm()), 1e-12)
        self._snapshot = weights
        values = {
            "log_lr": (math.log10(max(self.lr, 1e-12)) + 3) / 2,
            "loss_level": math.log(max(mean, 1e-12) / t.first_loss),
            "loss_change": 10 * math.log(max(mean, 1e-12) / max(t.previous_loss or mean, 1e-12)),
            "grad_norm": math.log10(max(grad, 1e-12) / t.first_grad),
            "update_ratio": (math.log10(max(update, 1e-12)) + 3) / 2,
            "progress": self.steps / self.total_steps,
            "val_level": math.log(t.val[-1] / t.val[0]) if len(t.val) >= 1 and t.val[0] > 0 else 0.0,
            "val_change": 10 * math.log(t.val[-1] / t.val[-2]) if len(t.val) >= 2 and t.val[-2] > 0 else 0.0,
            "gap": math.log(max(t.val[-1], 1e-12) / max(mean, 1e-12)) if t.val else 0.0,
        }
        t.previous_loss, t.window = mean, []
        return {k: (max(-FEATURE_CLIP, min(FEATURE_CLIP, v)) if math.isfinite(v) else FEATURE_CLIP)
                for k, v in values.items()}  # fmt: skip

    def _decide(self) -> None:
        values = self.features()
        x = torch.tensor([values[name] for name in self.config.features], dtype=torch.float32)
        with torch.no_grad():
            log_factor, self.state = self.controller(x, self.state)
        factor = math.exp(float(log_factor))
        for group in self.optimizer.param_groups:
            group["lr"] = min(self.config.lr_max, max(self.config.lr_min, float(group["lr"]) * factor))
        self.history.append((self.steps, self.lr))

    # --- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weight snapshot (a resumed run takes a fresh one: one shorter update window)."""
        return {
            "steps": self.steps, "total_steps": self.total_steps, "tracker": asdict(self.tracker),
            "state": None if self.state is None else [s.clone() for s in self.state], "history": list(self.history),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.total_steps = int(state["steps"]), int(state["total_steps"])
        self.tracker = _Tracker(**state["tracker"])
        self.state = None if state["state"] is None else tuple(s.clone() for s in state["state"])
        self.history = [tuple(h) for h in state["history"]]
        self._snapshot = self._weights()
