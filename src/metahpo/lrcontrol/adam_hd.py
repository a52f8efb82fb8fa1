"""Adam-HD (Baydin et al. 2018, "Online learning rate adaptation with hypergradient descent").

Written here because no maintained package ships it (the paper's code is a script to copy). One rate
per parameter group, as in the paper: before each Adam step the rate moves along the hypergradient
``h_t = g_t . u_{t-1}`` (the gradient against the previous bias-corrected Adam direction),
``lr += hypergrad_lr * h_t`` (the update is ``p -= lr u``, so d loss / d lr = -g . u). ``hypergrad_lr`` defaults to the paper's 1e-7 for Adam-HD.
"""

from __future__ import annotations

import torch


class AdamHD(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, hypergrad_lr: float = 1e-7):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, hypergrad_lr=hypergrad_lr))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            # the hypergradient over the whole group, from the directions of the previous step
            hypergradient = 0.0
            for p in params:
                state = self.state[p]
                if state.get("step", 0) > 0:
                    t = state["step"]
                    direction = (state["exp_avg"] / (1 - beta1**t)) / (
                        (state["exp_avg_sq"] / (1 - beta2**t)).sqrt() + group["eps"]
                    )
                    hypergradient += float(torch.sum(p.grad * direction))
            group["lr"] = max(0.0, group["lr"] + group["hypergrad_lr"] * hypergradient)
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt().add_(group["eps"])
                p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1 - beta1**t))
        return loss

