"""LARS: SGD with momentum whose step is rescaled per layer (or per output unit) by a trust ratio.

The paper trains ResNet_fast with "SGDM with LARS". LARS (You, Gitman & Ginsburg 2017,
arXiv:1708.03888) is *layer-wise*: for a weight tensor ``w`` with gradient ``g``

    local_lr = eta * ||w|| / (||g|| + wd * ||w|| + eps)
    v = momentum * v + local_lr * (g + wd * w)
    w = w - lr * (v                          )   plain momentum
    w = w - lr * (local_lr*(g+wd*w) + momentum*v) Nesterov

``granularity="row"`` computes the same ratio per output unit (each row of
``w.reshape(out, -1)``), still with eta and the wd term.

``variant="cifar10_fast"`` is cifar10-fast's ``LARS_update`` (``torch_backend.py``) exactly:
every tensor -- vectors included, where ``reshape(size(0), -1)`` makes the "rows" single
entries -- takes a Nesterov step (cifar10-fast's ``nesterov_update``, the lr folded into the
momentum buffer) with the lr scaled per row by ``||W_i|| / (||G_i|| + 1e-2)``, the gradient
norm taken *before* weight decay is added, and no eta. cifar10-fast *sums* its loss over the
batch and divides its lr by the batch size (training.md pitfall 8): its gradient is ``G = B g``
for our mean-loss gradient ``g`` and batch size ``B`` (``loss_scale``), its lr ``lr / B``, its
weight decay ``wd B``. In our mean-loss units the step of row ``i`` is therefore

    lr * ||w_i|| * (g_i + wd w_i) / (B ||g_i|| + 1e-2)

i.e. a trust ratio of about ``1 / B`` (2e-3 at B = 512): the same value of lr means the same
update as in cifar10-fast. ``eta``, ``eps`` and ``granularity`` are ignored by this variant.
Measured against You et al.'s form and plain Nesterov SGD in
``benchmarks/validate_training.py`` (README "Choices").

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
        variant: str = "you2017",
        loss_scale: float = 1.0,
    ):
        if lr < 0 or momentum < 0 or weight_decay < 0 or eta <= 0 or eps < 0:
            raise ValueError("LARS: lr, momentum, weight_decay, eps must be >= 0 and eta > 0")
        if granularity not in ("layer", "row"):
            raise ValueError(f"LARS granularity must be 'layer' or 'row', got {granularity!r}")
        if not loss_scale > 0:
            raise ValueError(f"LARS loss_scale must be > 0, got {loss_scale!r}")
        if variant not in ("you2017", "cifar10_fast"):
            raise ValueError(f"LARS variant must be 'you2017' or 'cifar10_fast', got {variant!r}")
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum requires momentum > 0")
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
            eta=eta, eps=eps, granularity=granularity, variant=variant, loss_scale=loss_scale,
        )  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["variant"] == "cifar10_fast":
                    self._cifar10_fast_step(p, group)
                else:
                    self._you2017_step(p, group)
        return loss

    def _you2017_step(self, p, group):
        lr, mom, wd, g = group["lr"], group["momentum"], group["weight_decay"], p.grad
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

    def _cifar10_fast_step(self, p, group):
        """``nesterov_update`` of cifar10-fast: the lr is folded into the momentum buffer."""
        mom, wd, g = group["momentum"], group["weight_decay"], p.grad
        d = (g + wd * p) * (group["lr"] * self._cifar10_fast_ratio(p, g, group["loss_scale"]))
        buf = self.state[p].get("momentum_buffer")
        if buf is None:
            buf = self.state[p]["momentum_buffer"] = torch.zeros_like(p)
        buf.mul_(mom).add_(d)
        p.sub_(d.add_(buf, alpha=mom))

    @staticmethod
    def _cifar10_fast_ratio(p, g, loss_scale):
        """``norm(w) / (norm(dw) + 1e-2)`` per row (per entry for vectors), dw summed-loss."""
        rows = p.shape[0] if p.ndim else 1
        w_norm = p.reshape(rows, -1).norm(dim=1)
        g_norm = g.reshape(rows, -1).norm(dim=1)
        return (w_norm / (loss_scale * g_norm + 1e-2)).reshape(
            p.shape[:1] + (1,) * max(p.ndim - 1, 0)
        )

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
