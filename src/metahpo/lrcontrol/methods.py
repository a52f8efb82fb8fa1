"""Ways to set the learning rate during a run, one ``training.LRPolicy`` each, in the ``METHODS`` registry.

Every method trains the same model with the same batch size and step budget; they differ in the
optimizer and in how its rate moves. ``MethodInputs`` carries what a method may depend on: the
seed's base rate, the oracle rate (the best fixed rate of a grid on the task itself), the
meta-model's recommended rate and the learned controller. Adding a method is one ``register`` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from metahpo.errors import MetahpoError
from metahpo.lrcontrol.controller import ControlledSchedule, LRController
from metahpo.registry import Registry
from metahpo.training import LRPolicy


@dataclass(frozen=True)
class MethodInputs:
    base_lr: float = 1e-3  # the seed's Adam rate
    oracle_lr: Optional[float] = None  # the task's own best fixed rate (a grid over lr_control.oracle_grid)
    recommended_lr: Optional[float] = None  # the meta-model's recommended config's rate
    controller: Optional[LRController] = None
    validate_every: int = 10


@dataclass(frozen=True)
class Method:
    name: str
    description: str  # one line for the report
    make: Callable[[MethodInputs], LRPolicy]
    needs: Optional[str] = None  # "oracle_lr" | "recommended_lr" | "controller"

    def policy(self, inputs: MethodInputs) -> LRPolicy:
        if self.needs is not None and getattr(inputs, self.needs) is None:
            raise MetahpoError(f"learning-rate method {self.name!r} needs {self.needs}, which this run does not have")
        return self.make(inputs)


METHODS: Registry[Method] = Registry("learning-rate method")


def adam(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr)


class Constant(LRPolicy):
    """Adam at a fixed rate."""

    def __init__(self, lr: float, validate_every: int) -> None:
        self.lr, self.validate_every = lr, validate_every

    def optimizer(self, family, model, config):
        return adam(model, self.lr)


class PerStep(Constant):
    """Adam with a torch scheduler stepped after every optimizer step (cosine, one-cycle)."""

    def __init__(self, lr: float, validate_every: int, scheduler: Callable) -> None:
        super().__init__(lr, validate_every)
        self.make_scheduler = scheduler

    def start(self, optimizer, total_steps):
        self.scheduler = self.make_scheduler(optimizer, total_steps)

    def after_step(self, optimizer, step, loss):
        if step < getattr(self.scheduler, "total_steps", math.inf):  # OneCycleLR refuses a step past its end
            self.scheduler.step()


class Plateau(Constant):
    """Adam with ReduceLROnPlateau on the validation loss (torch's defaults: x0.1 after 10 flat checks)."""

    def start(self, optimizer, total_steps):
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)

    def after_validation(self, optimizer, step, val_loss):
        self.scheduler.step(val_loss)


class Optimizer(LRPolicy):
    """A rate-adapting optimizer at its own defaults (Adam-HD, Prodigy)."""

    def __init__(self, make: Callable, validate_every: int) -> None:
        self.make, self.validate_every = make, validate_every

    def optimizer(self, family, model, config):
        return self.make(model.parameters())


class ScheduleFree(Optimizer):
    """Schedule-Free AdamW: train at y, evaluate at the averaged x; BatchNorm statistics refreshed at x."""

    def evaluating(self, optimizer, model, recalibrate):
        optimizer.eval()
        recalibrate()

    def training(self, optimizer):
        optimizer.train()

    def start(self, optimizer, total_steps):
        optimizer.train()


class Controlled(LRPolicy):
    """The learned controller on Adam at the base rate (``optimizer=None``: the family's own optimizer)."""

    def __init__(self, controller: LRController, validate_every: int, lr: Optional[float] = None) -> None:
        self.controller, self.validate_every, self.lr = controller, validate_every, lr

    def optimizer(self, family, model, config):
        return adam(model, self.lr) if self.lr is not None else family.optimizer(model, config)

    def start(self, optimizer, total_steps):
        self.schedule = ControlledSchedule(self.controller, optimizer, total_steps)

    def after_step(self, optimizer, step, loss):
        self.schedule.step(loss)

    def after_validation(self, optimizer, step, val_loss):
        self.schedule.validation(val_loss)


def _cosine(optimizer, total_steps):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)


def _one_cycle(optimizer, total_steps):
    peak = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=total_steps)


def _schedulefree(params):
    import schedulefree

    return schedulefree.AdamWScheduleFree(params)


def _prodigy(params):
    import prodigyopt

    return prodigyopt.Prodigy(params)


def _adam_hd(params):
    from metahpo.lrcontrol.adam_hd import AdamHD

    return AdamHD(params)


for _method in (
    Method("fixed", "Adam at the seed's fixed 1e-3", lambda i: Constant(i.base_lr, i.validate_every)),
    Method("oracle", "Adam at the task's best fixed rate (a whole grid on the task)",
           lambda i: Constant(i.oracle_lr, i.validate_every), "oracle_lr"),
    Method("recommended", "Adam at the meta-model's recommended rate",
           lambda i: Constant(i.recommended_lr, i.validate_every), "recommended_lr"),
    Method("cosine", "cosine decay from the oracle rate to 0",
           lambda i: PerStep(i.oracle_lr, i.validate_every, _cosine), "oracle_lr"),
    Method("one_cycle", "one-cycle with the oracle rate as its peak",
           lambda i: PerStep(i.oracle_lr, i.validate_every, _one_cycle), "oracle_lr"),
    Method("plateau", "ReduceLROnPlateau (x0.1 after 10 flat validations) from the oracle rate",
           lambda i: Plateau(i.oracle_lr, i.validate_every), "oracle_lr"),
    Method("adam_hd", "hypergradient descent on Adam's rate (Baydin et al. 2018), from 1e-3",
           lambda i: Optimizer(_adam_hd, i.validate_every)),
    Method("schedulefree", "Schedule-Free AdamW at its defaults (lr 0.0025)",
           lambda i: ScheduleFree(_schedulefree, i.validate_every)),
    Method("prodigy", "Prodigy at its defaults (lr 1.0)", lambda i: Optimizer(_prodigy, i.validate_every)),
    Method("meta", "the meta-learned controller on Adam from 1e-3",
           lambda i: Controlled(i.controller, i.validate_every, i.base_lr), "controller"),
):  # fmt: skip
    METHODS.register(_method.name, _method)
