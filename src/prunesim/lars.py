"""LARS: SGD with momentum whose step is rescaled per layer (or per output unit) by a trust ratio.

The paper trains ResNet_fast with "SGDM with LARS". LARS (You, Gitman & Ginsburg 2017,
arXiv:1708.03888) is *layer-wise*: for a weight tensor ``w`` with gradient ``g``

    local_lr = eta * ||w|| / (||g|| + wd * ||w|| + eps)
    v = momentum * v + local_lr * (g + wd * w)
    w = w - lr * (v                          )   plain momentum
    w = w - lr * (local_lr*(g+wd*w) + momentum*v) Nesterov

``granularity="row"`` computes the norms per output unit (each row of ``w.reshape(out, -1)``)
instead, as cifar10-fast's ``LARS_update`` (``torch_backend.py``: ``lr * ||w_i|| / (||g_i||
+ 1e-2)``, Nesterov, no eta and no wd term in the denominator). Default is layer-wise because
that is what "LARS" names and what issue 3 asks for; cifar10-fast's variant stays one flag away.

Only tensors with more than one dimension (conv/linear weights) are rescaled; BN parameters
and biases take plain (Nesterov) SGD steps without weight decay rescaling, as in common LARS
practice (You et al. 2017; LARC in NVIDIA apex), since a trust ratio on a BN scale vector
has no layer to normalise against. ``eta`` defaults to 1e-3 (You et al.); with cifar10-fast's
summed-loss convention at batch 512 the equivalent is 1/512 ~ 2e-3 (training.md pitfall 8).
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class LARS(Optimizer):
    """SGD + momentum (optionally Nesterov) with LARS trust ratios; see the module docstring."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        eta: float = 1e-3,
        eps: float = 1e-8,
        granularity: str = "layer",
    ):
        if lr < 0 or momentum < 0 or weight_decay < 0 or eta <= 0 or eps < 0:
            raise ValueError("LARS: lr, momentum, weight_decay, eps must be >= 0 and eta > 0")
        if granularity not in ("layer", "row"):
            raise ValueError(f"LARS granularity must be 'layer' or 'row', got {granularity!r}")
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum requires momentum > 0")
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
            eta=eta, eps=eps, granularity=granularity,
        )  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if p.ndim > 1:
                    scale = self._trust_ratio(p, g, group)
                    d = (g + wd * p) * scale if wd else g * scale
                else:
                    d = g + wd * p if wd else g.clone()
                if mom:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.clone()
                    else:
                        buf.mul_(mom).add_(d)
                    d = d.add(buf, alpha=mom) if group["nesterov"] else buf
                p.add_(d, alpha=-lr)
        return loss

    @staticmethod
    def _trust_ratio(p, g, group):
        """eta * ||w|| / (||g|| + wd ||w|| + eps); 1 where either norm is zero (fresh/dead)."""
        if group["granularity"] == "row":
            w_norm = p.reshape(p.shape[0], -1).norm(dim=1)
            g_norm = g.reshape(g.shape[0], -1).norm(dim=1)
            shape = (-1,) + (1,) * (p.ndim - 1)
        else:
            w_norm, g_norm, shape = p.norm(), g.norm(), ()
        ratio = group["eta"] * w_norm / (g_norm + group["weight_decay"] * w_norm + group["eps"])
        ratio = torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))
        return ratio.reshape(shape)
