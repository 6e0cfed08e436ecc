"""Magnitude pruning with exact counts: which weights are prunable, which die next, what is left.

A mask is a plain ``{parameter name: bool tensor}`` dict (True = alive), applied with
``param.mul_(mask)``; no ``torch.nn.utils.prune`` reparametrisation, so state-dict keys stay
those of the dense network and checkpoints stay small (``notes/training.md`` §5.5).

What is prunable (§3): the ``weight`` of every ``nn.Conv2d`` and ``nn.Linear``; never biases,
BN affine parameters or BN running statistics. The output layer (``model.output_layer_name``)
is prunable only when ``prune_output_layer`` is true. The density denominator counts exactly
these tensors.

One pruning step removes ``round(rate * n_alive)`` of the weights that are *still alive*
within a pool, ranking ``|w|`` over alive entries only (§4, §5.3), so density after ``k`` steps
is ``(1 - rate) ** k`` up to rounding: at most half a weight per step, under 2.5 weights per
pool in all for rate 0.2. The pools depend on ``scope``:

- ``global`` (default): one pool, all prunable tensors together, so layers end at different
  densities (the ranking decides how much each layer keeps).
- ``local``: one pool per tensor, so every layer keeps the same density.
- ``mixed``: one global pool per layer kind -- ``conv`` (Conv2d weights) and ``linear``
  (Linear weights, the output layer included when it is prunable) -- each removing its own
  rate from ``mixed_rates`` (Frankle & Carbin's conv nets prune the fully connected part at a
  different rate). ``rate`` is not used under this scope; a rate of 0 keeps a pool dense.

Ties at the cut are broken by position, deterministically: earlier tensors (in
``named_modules`` order) before later ones, lower flat index before higher. Selecting the
exact count via ``kthvalue`` + ties-by-position avoids both the over-pruning of
"``|w| <= threshold``" rules and the unspecified tie order of ``topk``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from prunesim.errors import PrunesimError
from prunesim.settings import PruneSettings

LAYER_KINDS = ("conv", "linear")


def _layer_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    return None


def _prunable_modules(
    model: nn.Module, prune_output_layer: bool
) -> dict[str, tuple[str, nn.Module]]:
    """``{parameter name: (kind, module)}`` in ``named_modules`` order."""
    output = getattr(model, "output_layer_name", None)
    if output is None:
        raise PrunesimError(
            f"{type(model).__name__} has no `output_layer_name`; prunesim models name their "
            f"final nn.Linear there so the output layer can be kept or pruned on purpose"
        )
    modules = dict(model.named_modules())
    if not isinstance(modules.get(output), nn.Linear):
        raise PrunesimError(
            f"{type(model).__name__}.output_layer_name is {output!r}, which is not an nn.Linear "
            f"submodule of the model"
        )
    found = {}
    for mod_name, module in modules.items():
        kind = _layer_kind(module)
        if kind is None or module.weight is None:
            continue
        if mod_name == output and not prune_output_layer:
            continue
        found[f"{mod_name}.weight" if mod_name else "weight"] = (kind, module)
    return found


def prunable_parameters(
    model: nn.Module, prune_output_layer: bool = False
) -> dict[str, nn.Parameter]:
    """Return ``{name: weight}`` of the prunable tensors, in ``named_modules`` order.

    Names are those of ``model.named_parameters()`` / ``state_dict()``, so they index masks,
    checkpoints and mask files alike.
    """
    return {
        name: module.weight
        for name, (_, module) in _prunable_modules(model, prune_output_layer).items()
    }


def prunable_kinds(model: nn.Module, prune_output_layer: bool = False) -> dict[str, str]:
    """Return ``{prunable parameter name: "conv" | "linear"}`` (the pools of scope ``mixed``)."""
    return {name: kind for name, (kind, _) in _prunable_modules(model, prune_output_layer).items()}


def _n_to_remove(rate: float, n_alive: int) -> int:
    # round half up (not Python's half-to-even) so the count never depends on parity.
    return min(n_alive, int(rate * n_alive + 0.5))


def _prune_pool(weights: list[torch.Tensor], masks: list[torch.Tensor], rate: float):
    """New masks for one pool: drop the ``round(rate * n_alive)`` smallest alive ``|w|``."""
    alive_scores = [w.detach().abs()[m] for w, m in zip(weights, masks, strict=True)]
    scores = torch.cat([s.flatten().float() for s in alive_scores]) if alive_scores else None
    n_alive = 0 if scores is None else scores.numel()
    n_remove = _n_to_remove(rate, n_alive)
    if n_remove == 0:
        return [m.clone() for m in masks]
    if not torch.isfinite(scores).all():
        raise PrunesimError(
            "non-finite weights among the alive prunable weights: training diverged; lower the "
            "learning rate or enable grad_clip, then rerun this iteration"
        )
    cut = torch.kthvalue(scores, n_remove).values
    remove = scores < cut
    # Ties at the cut: remove just enough of them, the earliest positions first.
    missing = n_remove - int(remove.sum())
    if missing > 0:
        tie_idx = torch.nonzero(scores == cut).flatten()[:missing]
        remove[tie_idx] = True
    new_masks, start = [], 0
    for m, s in zip(masks, alive_scores, strict=True):
        stop = start + s.numel()
        new = m.clone()
        new[m] = ~remove[start:stop]
        new_masks.append(new)
        start = stop
    return new_masks


def full_masks(model: nn.Module, prune_output_layer: bool = False) -> dict[str, torch.Tensor]:
    """All-True masks for the prunable tensors (the dense network's masks)."""
    return {
        name: torch.ones_like(p, dtype=torch.bool)
        for name, p in prunable_parameters(model, prune_output_layer).items()
    }


def prune_step(
    model: nn.Module, masks: Mapping[str, torch.Tensor] | None, settings: PruneSettings
) -> dict[str, torch.Tensor]:
    """Prune ``model`` once in place and return its new masks (nested in ``masks``).

    ``masks`` are the current masks; missing entries (e.g. ``{}`` for the dense network) count
    as all-alive. Ranking uses the weights as they are now, i.e. the end-of-training weights of
    the previous IMP iteration. The new masks are applied to the weights before returning.
    """
    params = prunable_parameters(model, settings.prune_output_layer)
    masks = dict(masks or {})
    stray = sorted(set(masks) - set(params))
    if stray and settings.method == "magnitude":
        raise PrunesimError(
            f"masks for {stray} do not name prunable weights of this model (with "
            f"prune_output_layer={settings.prune_output_layer}); was the previous iteration "
            f"pruned with a different prune_output_layer setting?"
        )
    current = {}
    for name, p in params.items():
        m = masks.get(name)
        if m is None:
            m = torch.ones_like(p, dtype=torch.bool)
        elif m.shape != p.shape:
            raise PrunesimError(f"mask {name} has shape {tuple(m.shape)}, weight {tuple(p.shape)}")
        current[name] = m.to(device=p.device, dtype=torch.bool)

    names = list(params)
    if settings.method == "filter_l1":
        from prunesim.structured import filter_prune_step

        return filter_prune_step(model, masks, settings.rate, settings.scope, set(names))
    if settings.scope == "global":
        pools = [(names, settings.rate)]
    elif settings.scope == "local":
        pools = [([n], settings.rate) for n in names]
    else:
        kinds = prunable_kinds(model, settings.prune_output_layer)
        pools = []
        for kind in LAYER_KINDS:
            members = [n for n in names if kinds[n] == kind]
            if not members:
                continue
            pools.append((members, settings.mixed_rates[kind]))

    new_masks = {}
    for members, rate in pools:
        pruned = _prune_pool([params[n] for n in members], [current[n] for n in members], rate)
        new_masks.update(zip(members, pruned, strict=True))
    new_masks = {n: new_masks[n] for n in names}
    apply_masks(model, new_masks)
    return new_masks


def random_prune_step(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None,
    target: Mapping,
    prune_output_layer: bool,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Prune ``model`` once in place at random, matching ``target``'s count in every tensor.

    The random-pruning control (README "Controls"): tensor by tensor, exactly as many weights
    die as between ``masks`` (the parent's, ``{}`` = all alive) and ``target`` (IMP's next
    mask, bool arrays or tensors), chosen uniformly among the weights alive in ``masks``, so
    the result has IMP's per-layer densities but not its choice of weights. Deterministic
    for a given ``seed`` (a CPU generator: the same masks on every device).
    """
    params = prunable_parameters(model, prune_output_layer)
    if set(target) != set(params):
        raise PrunesimError(
            f"IMP's mask names {sorted(target)}, but the prunable weights are "
            f"{sorted(params)}; was it pruned with another prune_output_layer setting?"
        )
    generator = torch.Generator().manual_seed(int(seed))
    masks = dict(masks or {})
    new_masks = {}
    for name, p in params.items():
        alive = masks.get(name, torch.ones_like(p, dtype=torch.bool)).detach().cpu().reshape(-1)
        goal = torch.as_tensor(target[name]).reshape(-1)
        if goal.numel() != alive.numel():
            raise PrunesimError(f"IMP's mask {name} has {goal.numel()} entries, weight {p.numel()}")
        n_remove = int(alive.sum()) - int(goal.sum())
        if n_remove < 0:
            raise PrunesimError(f"IMP's mask {name} keeps more weights than its parent's mask")
        alive_index = torch.nonzero(alive).reshape(-1)
        chosen = alive_index[torch.randperm(len(alive_index), generator=generator)[:n_remove]]
        new = alive.clone()
        new[chosen] = False
        new_masks[name] = new.reshape(p.shape).to(p.device)
    apply_masks(model, new_masks)
    return new_masks


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the masked-out weights in place (``param.mul_(mask)``)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, m in masks.items():
            if name not in params:
                raise PrunesimError(f"mask {name!r} names no parameter of {type(model).__name__}")
            p = params[name]
            if m.shape != p.shape:
                raise PrunesimError(
                    f"mask {name} has shape {tuple(m.shape)}, weight {tuple(p.shape)}"
                )
            p.mul_(m.to(device=p.device, dtype=p.dtype))


def check_masks_hold(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Raise if any masked-out weight is nonzero: retraining let a pruned weight revive."""
    params = dict(model.named_parameters())
    for name, m in masks.items():
        revived = int((params[name].detach()[~m.to(params[name].device)] != 0).sum())
        if revived:
            raise PrunesimError(
                f"{revived} pruned weights of {name} are nonzero after retraining; the training "
                f"loop must re-apply masks after every optimizer step"
            )


def check_nested(new: Mapping[str, torch.Tensor], old: Mapping[str, torch.Tensor]) -> None:
    """Raise unless every mask in ``new`` is a subset of the same mask in ``old`` (if any)."""
    for name, m in new.items():
        if name in old and bool((m & ~old[name].to(m.device)).any()):
            raise PrunesimError(f"mask {name} revives weights pruned in an earlier iteration")


def _tensors(state, names):
    state = state.state_dict() if isinstance(state, nn.Module) else state
    missing = [n for n in names if n not in state]
    if missing:
        raise PrunesimError(f"state dict lacks prunable tensors {missing}")
    return {n: state[n] for n in names}


def count_weights(state, names) -> tuple[int, int]:
    """``(nonzero, total)`` over the tensors ``names`` of a state dict (or module)."""
    tensors = _tensors(state, names)
    alive = sum(int(torch.count_nonzero(t)) for t in tensors.values())
    return alive, sum(t.numel() for t in tensors.values())


def density(state, names) -> float:
    """Fraction of the weights in ``names`` that are nonzero, counted from the actual values."""
    alive, total = count_weights(state, names)
    return alive / total if total else 1.0


def density_all_params(model, names) -> float:
    """Fraction of *all* learnable parameters that remain: the paper's x-axis.

    Only the prunable weights ``names`` lose entries (counted as zeros); BN scales and shifts,
    biases and unpruned layers all count as remaining. The paper's axis is this proportion of
    all parameters (about 1.5 % after 20 iterations of VGG16_BN), not :func:`density`, which
    counts prunable weights only (0.8 ** 20 = 1.15 %).
    """
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    removed = sum(params[n].numel() - int(torch.count_nonzero(params[n])) for n in names)
    return (total - removed) / total if total else 1.0


def density_per_layer(state, names) -> dict[str, float]:
    """``{name: nonzero fraction}`` for each tensor in ``names``."""
    return {n: int(torch.count_nonzero(t)) / t.numel() for n, t in _tensors(state, names).items()}
