"""Structured pruning: remove whole conv filters by their L1 norm (``prune.method: filter_l1``).

The paper prunes single weights; its future work asks how representations change when whole
units go. One step removes ``round(rate * alive filters)`` filters (round half up, as
``prunesim.pruning``), ranked by the L1 norm of the filter's weights:

- ``scope: local`` -- per conv layer, so every layer keeps the same fraction of its filters
  (Li et al. 2017, "Pruning Filters for Efficient ConvNets", rank within a layer).
- ``scope: global`` -- one pool over all conv layers, each filter's L1 norm divided by the
  mean L1 norm of the alive filters of its layer. A conv followed by BatchNorm is scale
  invariant, so raw norms of different layers are not comparable; relative to its layer's
  mean they are. (Our choice; documented in README "Choices".)
- ``scope: mixed`` is not defined for filters and is refused.

Every layer keeps at least one filter (a layer without filters would cut the network).

A removed filter takes with it, through the mask: its conv weights (the row) and bias, its
BN scale and shift (so the channel outputs exactly 0 after BN + ReLU, whatever the running
statistics), and the input columns of the layers that read only this channel
(``FilterUnit.consumers`` of ``prunesim.models``). A consumer that is not prunable (``fc``
unless ``prune_output_layer``) keeps its columns; they multiply zeros. Linear layers are not
structurally pruned. Masks nest, and are re-applied after every optimizer step by training,
so a removed filter stays zero through retraining.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from prunesim.errors import ConfigError, PrunesimError


def alive_filters(weight_mask: torch.Tensor) -> torch.Tensor:
    """Bool per output channel: does any weight of the filter survive?"""
    return weight_mask.reshape(weight_mask.shape[0], -1).any(dim=1)


def _n_to_remove(rate: float, n_alive: int) -> int:
    return int(rate * n_alive + 0.5)  # round half up, as prunesim.pruning


def _filter_scores(model: nn.Module, units, current) -> list[torch.Tensor]:
    params = dict(model.named_parameters())
    scores = []
    for unit in units:
        w = params[unit.weight].detach()
        l1 = (w * current[unit.weight]).abs().reshape(w.shape[0], -1).sum(dim=1).double()
        scores.append(l1)
    return scores


def _choose_dead(scores, alive, rate: float, scope: str) -> list[torch.Tensor]:
    """Per unit, a bool tensor of filters to remove now (never a unit's last alive filter)."""
    if scope == "local":
        dead = []
        for s, a in zip(scores, alive, strict=True):
            n = min(_n_to_remove(rate, int(a.sum())), int(a.sum()) - 1)
            d = torch.zeros_like(a)
            if n > 0:
                order = torch.argsort(torch.where(a, s, torch.inf), stable=True)
                d[order[:n]] = True
            dead.append(d)
        return dead
    normalised = [
        torch.where(a, s / s[a].mean().clamp_min(1e-300), torch.inf)
        for s, a in zip(scores, alive, strict=True)
    ]
    flat = torch.cat(normalised)
    owner = torch.cat([torch.full_like(s, i, dtype=torch.long) for i, s in enumerate(scores)])
    n = _n_to_remove(rate, int(sum(int(a.sum()) for a in alive)))
    left = [int(a.sum()) for a in alive]
    dead = [torch.zeros_like(a) for a in alive]
    offsets = torch.cumsum(torch.tensor([0] + [len(s) for s in scores]), 0)
    for idx in torch.argsort(flat, stable=True).tolist():
        if n == 0 or not torch.isfinite(flat[idx]):
            break
        unit = int(owner[idx])
        if left[unit] > 1:  # keep a unit's last filter
            dead[unit][idx - int(offsets[unit])] = True
            left[unit] -= 1
            n -= 1
    return dead


def filter_prune_step(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None,
    rate: float,
    scope: str,
    prunable: set[str],
) -> dict[str, torch.Tensor]:
    """Remove filters once; return the new masks (weights, BN entries, consumer columns).

    ``masks`` are the previous iteration's (missing entries = all alive); ``prunable`` names
    the weights whose columns may be masked (the density's tensors). The masks are applied
    to the model before returning.
    """
    if scope not in ("local", "global"):
        raise ConfigError(
            f"prune.method filter_l1 takes scope local or global, not {scope!r}; "
            "see src/prunesim/structured.py"
        )
    if not hasattr(model, "filter_units"):
        raise PrunesimError(f"{type(model).__name__} does not declare its filter_units()")
    units = model.filter_units()
    params = dict(model.named_parameters())
    current = {
        name: (masks or {}).get(name, torch.ones_like(p, dtype=torch.bool)).to(p.device).bool()
        for name, p in params.items()
    }
    alive = [alive_filters(current[u.weight]) for u in units]
    dead = _choose_dead(_filter_scores(model, units, current), alive, rate, scope)
    new = {}
    for unit, a, d in zip(units, alive, dead, strict=True):
        gone = ~a | d
        keep_rows = (~gone).reshape(-1, *([1] * (params[unit.weight].ndim - 1)))
        new[unit.weight] = new.get(unit.weight, current[unit.weight]) & keep_rows
        for vector in (*unit.bn, f"{unit.conv}.conv.bias"):
            if vector in params:  # BN scale and shift, and the conv bias where there is one
                new[vector] = current[vector] & ~gone
        for consumer in unit.consumers:
            if consumer not in prunable:
                continue
            m = new.get(consumer, current[consumer])
            cols = (~gone).reshape(1, -1, *([1] * (m.ndim - 2)))
            new[consumer] = m & cols
    for name in prunable:  # prunable weights that are no unit's (e.g. fc): unchanged masks
        new.setdefault(name, current[name])
    with torch.no_grad():
        for name, m in new.items():
            params[name].mul_(m.to(params[name].dtype))
    return new
