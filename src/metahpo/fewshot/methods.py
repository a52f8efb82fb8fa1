"""Few-shot methods, one small interface, the ``METHODS`` registry: adding one touches only this file.

A method says how its initialization is trained (``training``: ``episodic`` = an outer loop over
episodes, ``supervised`` = pretraining on every meta-train class, ``none`` = random init) and how it
adapts to an episode's support set (``adapt``: query predictions after 0..k inner steps). The
episodic methods give the outer loop a meta-gradient (``outer_gradient``): MAML differentiates
through the inner loop (second order), FOMAML drops the second-order terms, ANIL adapts only the
head in the inner loop, Meta-SGD also learns a per-parameter inner learning rate, Reptile's
"gradient" is the difference between the init and its adapted weights, ProtoNet's is the query loss
of nearest-prototype classification. The baselines (Chen et al. 2019): random init with the same
steps, supervised pretraining then fine-tuning everything, the head only (Baseline), or a cosine
head (Baseline++).

The meta-parameters are a flat ``dict[str, Tensor]``: the body's parameters under their names in
``Conv4``, and Meta-SGD's learning rates under ``lr.<name>`` (``lr.head`` for the head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from metahpo.fewshot.backbone import (
    class_means,
    cosine_logits,
    forward,
    linear_logits,
    prototype_logits,
    zero_head,
)
from metahpo.fewshot.episodes import Episode
from metahpo.registry import Registry

State = dict[str, torch.Tensor]
HEAD_LR = "lr.head"


@dataclass(frozen=True)
class Inner:
    """The inner loop's settings: meta-training uses ``train_steps``, adaptation at test ``steps``."""

    lr: float
    train_steps: int
    steps: int
    second_order: bool = True


def sgd_steps(loss_fn: Callable[[State], torch.Tensor], params: State, names: list[str], steps: int,
              lr: Callable[[str], torch.Tensor | float], create_graph: bool, detach: bool = False,
              on_step: Optional[Callable[[int, State], None]] = None) -> State:  # fmt: skip
    """``steps`` plain gradient steps on ``params[names]``. ``create_graph``: keep the graph through the
    gradients (second-order meta-gradients); ``detach``: cut every step from the init (evaluation)."""
    for step in range(1, steps + 1):
        loss = loss_fn(params)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
        params = dict(params)
        for name, grad in zip(names, grads):
            updated = params[name] - lr(name) * grad
            params[name] = updated.detach().requires_grad_() if detach else updated
        if on_step is not None:
            on_step(step, params)
    return params


def body_names(body: nn.Module) -> list[str]:
    return [name for name, _ in body.named_parameters()]


class Method:
    """Subclass, set the class attributes, override what differs, register in ``METHODS``."""

    name: ClassVar[str]
    description: ClassVar[str]
    training: ClassVar[str] = "episodic"  # episodic | supervised | none
    meta_learned: ClassVar[bool] = True  # the report sets meta-learned methods apart from baselines
    init: ClassVar[Optional[str]] = None  # the saved init it adapts, when another method's (else its own name)
    head: ClassVar[str] = "linear"  # linear | cosine | prototype

    @property
    def init_name(self) -> Optional[str]:
        """The file stem of the initialization it adapts; None: a fresh random body per episode."""
        return None if self.training == "none" else (self.init or self.name)

    def init_state(self, body: nn.Module, inner: Inner) -> State:
        return {name: p.detach().clone().requires_grad_() for name, p in body.named_parameters()}

    # --- meta-training -----------------------------------------------------------------------------
    def meta_loss(self, body: nn.Module, state: State, episode: Episode, inner: Inner) -> torch.Tensor:
        raise NotImplementedError

    def outer_gradient(self, body: nn.Module, state: State, episode: Episode, inner: Inner) -> tuple[float, State]:
        """(query loss, d loss / d state) for one episode: what the outer optimizer averages and applies."""
        loss = self.meta_loss(body, state, episode, inner)
        grads = torch.autograd.grad(loss, list(state.values()), allow_unused=True)
        return float(loss.detach()), {n: (g if g is not None else torch.zeros_like(state[n])) for n, g in zip(state, grads)}

    # --- adaptation ----------------------------------------------------------------------------------
    def adapt(self, body: nn.Module, state: State, episode: Episode, inner: Inner,
              on_step: Callable[[int, torch.Tensor], None]) -> None:  # fmt: skip
        """Fine-tune every parameter and a zero head on the support set; ``on_step(step, query logits)``
        for steps 0..inner.steps."""
        self._finetune(body, state, episode, inner, list(state_body(state)), lambda name: inner.lr, on_step)

    def _finetune(self, body, state, episode, inner, names, lr, on_step, head_names=("head.weight", "head.bias")):
        ways = episode.ways
        params = {**{n: v.detach().clone().requires_grad_() for n, v in state_body(state).items()}}
        dim = body.feature_dim(episode.support_x.shape[-1])
        params.update(zero_head(ways, dim, episode.support_x.device))

        def loss_fn(p):
            return F.cross_entropy(linear_logits(forward(body, p, episode.support_x), p), episode.support_y)

        def score(step, p):
            with torch.no_grad():
                on_step(step, linear_logits(forward(body, p, episode.query_x), p))

        score(0, params)
        sgd_steps(loss_fn, params, [*names, *head_names], inner.steps, lr, create_graph=False, detach=True, on_step=score)


def state_body(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The body's parameters of a state (without Meta-SGD's learning rates)."""
    return {n: v for n, v in state.items() if not n.startswith("lr.")}


METHODS: Registry[Method] = Registry("few-shot method")


def _inner_adapted(body: nn.Module, state: State, episode: Episode, inner: Inner, lr, create_graph: bool) -> State:
    """MAML-family inner loop from the init: train_steps steps on the support set, body and zero head."""
    params = dict(state_body(state))
    dim = body.feature_dim(episode.support_x.shape[-1])
    params.update(zero_head(episode.ways, dim, episode.support_x.device))

    def loss_fn(p):
        return F.cross_entropy(linear_logits(forward(body, p, episode.support_x), p), episode.support_y)

    return sgd_steps(loss_fn, params, list(params), inner.train_steps, lr, create_graph=create_graph)


class MAML(Method):
    name = "maml"
    description = "MAML (Finn et al. 2017): second-order meta-gradient through the inner loop"
    second_order: ClassVar[bool] = True

    def meta_loss(self, body, state, episode, inner):
        adapted = _inner_adapted(body, state, episode, inner, lambda n: inner.lr, self.second_order and inner.second_order)
        return F.cross_entropy(linear_logits(forward(body, adapted, episode.query_x), adapted), episode.query_y)


class FOMAML(MAML):
    name = "fomaml"
    description = "first-order MAML: the query gradient at the adapted weights, applied to the init"
    second_order = False


class MetaSGD(Method):
    name = "metasgd"
    description = "Meta-SGD (Li et al. 2017): MAML with a learned per-parameter inner learning rate"

    def init_state(self, body, inner):
        state = super().init_state(body, inner)
        for name, p in list(state.items()):
            state[f"lr.{name}"] = torch.full_like(p, inner.lr).requires_grad_()
        state[HEAD_LR] = torch.tensor(inner.lr).requires_grad_()
        return state

    @staticmethod
    def _lr(state):
        return lambda name: state[f"lr.{name}"] if f"lr.{name}" in state else state[HEAD_LR]

    def meta_loss(self, body, state, episode, inner):
        adapted = _inner_adapted(body, state, episode, inner, self._lr(state), inner.second_order)
        return F.cross_entropy(linear_logits(forward(body, adapted, episode.query_x), adapted), episode.query_y)

    def adapt(self, body, state, episode, inner, on_step):
        lrs = {n: v.detach() for n, v in state.items() if n.startswith("lr.")}
        self._finetune(body, state, episode, inner, list(state_body(state)), self._lr(lrs), on_step)


class ANIL(Method):
    name = "anil"
    description = "ANIL (Raghu et al. 2020): the inner loop adapts the head only, on fixed features"

    def meta_loss(self, body, state, episode, inner):
        support, query = forward(body, state, episode.support_x), forward(body, state, episode.query_x)
        head = zero_head(episode.ways, support.shape[1], support.device)

        def loss_fn(p):
            return F.cross_entropy(linear_logits(support, p), episode.support_y)

        # the head's inner loop is cheap: always second order
        head = sgd_steps(loss_fn, head, list(head), inner.train_steps, lambda n: inner.lr, create_graph=True)
        return F.cross_entropy(linear_logits(query, head), episode.query_y)

    def adapt(self, body, state, episode, inner, on_step):
        self._finetune(body, state, episode, inner, [], lambda name: inner.lr, on_step)


class Reptile(Method):
    name = "reptile"
    description = "Reptile (Nichol et al. 2018): move the init towards the weights adapted on each episode"

    def outer_gradient(self, body, state, episode, inner):
        params = {n: v.detach().clone().requires_grad_() for n, v in state.items()}
        dim = body.feature_dim(episode.support_x.shape[-1])
        params.update(zero_head(episode.ways, dim, episode.support_x.device))
        x = torch.cat([episode.support_x, episode.query_x])
        y = torch.cat([episode.support_y, episode.query_y])

        def loss_fn(p):
            return F.cross_entropy(linear_logits(forward(body, p, x), p), y)

        adapted = sgd_steps(loss_fn, params, list(params), inner.train_steps, lambda n: inner.lr, False, detach=True)
        with torch.no_grad():  # the loss after adaptation: at the init the zero head always gives log(ways)
            loss = float(loss_fn(adapted))
        return loss, {n: (state[n] - adapted[n]).detach() for n in state}


class ProtoNet(Method):
    name = "protonet"
    description = "Prototypical networks (Snell et al. 2017): nearest class mean in feature space (metric reference)"
    head = "prototype"

    def meta_loss(self, body, state, episode, inner):
        prototypes = class_means(forward(body, state, episode.support_x), episode.support_y, episode.ways)
        return F.cross_entropy(prototype_logits(forward(body, state, episode.query_x), prototypes), episode.query_y)

    def adapt(self, body, state, episode, inner, on_step):
        with torch.no_grad():  # no steps: the same prediction at every step count
            logits = prototype_logits(
                forward(body, state, episode.query_x),
                class_means(forward(body, state, episode.support_x), episode.support_y, episode.ways),
            )
        for step in range(inner.steps + 1):
            on_step(step, logits)


class RandomInit(Method):
    name = "random_init"
    description = "baseline: a random initialization, fine-tuned with the same steps and learning rate"
    training = "none"
    meta_learned = False


class PretrainFinetune(Method):
    name = "pretrain_finetune"
    description = "baseline: supervised pretraining on all meta-train classes, then fine-tuning every layer"
    training = "supervised"
    meta_learned = False
    init = "pretrain"


class PretrainHead(Method):
    name = "pretrain_head"
    description = "Baseline (Chen et al. 2019): supervised pretraining, then fine-tuning a new linear head only"
    training = "supervised"
    meta_learned = False
    init = "pretrain"

    def adapt(self, body, state, episode, inner, on_step):
        self._finetune(body, state, episode, inner, [], lambda name: inner.lr, on_step)


class PretrainCosineHead(Method):
    name = "pretrain_cosine_head"
    description = "Baseline++ (Chen et al. 2019): pretraining with a cosine classifier, then a new cosine head only"
    training = "supervised"
    meta_learned = False
    init = "pretrain_cosine"
    head = "cosine"

    def adapt(self, body, state, episode, inner, on_step):
        params = {n: v.detach() for n, v in state_body(state).items()}
        with torch.no_grad():
            support, query = forward(body, params, episode.support_x), forward(body, params, episode.query_x)
        # imprinted: the head starts at the class means of the support features, then trains
        head = {"head.weight": class_means(support, episode.support_y, episode.ways).requires_grad_()}

        def loss_fn(p):
            return F.cross_entropy(cosine_logits(support, p), episode.support_y)

        def score(step, p):
            with torch.no_grad():
                on_step(step, cosine_logits(query, p))

        score(0, head)
        sgd_steps(loss_fn, head, ["head.weight"], inner.steps, lambda n: inner.lr, False, detach=True, on_step=score)


for _method in (MAML, FOMAML, Reptile, ANIL, MetaSGD, ProtoNet, RandomInit, PretrainFinetune, PretrainHead,
                PretrainCosineHead):  # fmt: skip
    METHODS.register(_method.name, _method())
