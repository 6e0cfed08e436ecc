"""One Iterative Magnitude Pruning iteration: prune iteration k-1, retrain, save.

The ``imp_iter`` rule calls :func:`run_imp_iteration` once per (run, iteration k). Its input
is iteration k-1 of the same run (the dense network for k = 1), so the DAG is static and a
killed job reruns only itself. Every iteration builds a fresh optimizer and scheduler inside
``prunesim.training.train``: no momentum buffer crosses an iteration boundary
(``notes/training.md`` §5.2), and masks are re-applied after every optimizer step, so pruned
weights stay exactly zero under momentum and weight decay (§5.1); we verify that before saving.

Data flow per retraining variant (``prune.retrain``), with θ_{k-1} the end-of-training state
of iteration k-1, m_k the new mask (ranked on θ_{k-1}, nested in m_{k-1}), T = ``train.epochs``:

- ``lrr`` (learning-rate rewinding, Renda et al.; default): start from θ_{k-1} ⊙ m_k, all
  other parameters and BN buffers as in θ_{k-1}; train epochs 0..T with the full original
  schedule, so the learning rate is back at its initial value.
- ``wr`` (weight rewinding with late resetting, Frankle et al. 2019): start from the dense
  run's early state θ_t (``rewind.pt``, saved at the start of epoch t = ``prune.rewind_epoch``)
  -- every parameter and BN buffer, not only the surviving weights -- then apply m_k; train
  epochs t..T with the schedule as it stands at epoch t. Only the mask comes from θ_{k-1}.
- ``ft`` (fine-tuning): start from θ_{k-1} ⊙ m_k; train ``prune.finetune_epochs`` epochs
  (default T) at the schedule's final learning rate, held constant.

Then the network is evaluated in eval mode (BN running statistics, §5.4) and three files are
written atomically: ``model.pt`` (weights + masks + meta), ``mask.npz`` (the masks, torch-free,
for the mask-overlap table) and ``metrics.json``, whose density is counted from the saved
state's actual zeros, never from the masks.

P runs start from the same dense network and differ only by their seeds: the caller passes
the job seed ``prunesim.seeds.derive_seed(base seed, experiment, run, iteration)``, which
drives data order and augmentation (pruning itself is deterministic).

The random-pruning control (``random_target``; rule ``random_prune``) is the same call with
one change: instead of the magnitude step, each prunable tensor of the parent loses as many
weights as IMP's own mask at iteration k removed from it (``random_target``, IMP's
``mask.npz``), chosen uniformly among its alive weights
(``prunesim.pruning.random_prune_step``). The parent, the retraining (mode, epochs,
schedule) and the job seed (data order) are those of IMP iteration k of the run it follows,
so the two networks differ only in *which* weights went in that step.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping

import torch

from prunesim.atomic import write_json
from prunesim.checkpoint import load_checkpoint, load_network, load_state, save_checkpoint
from prunesim.errors import ConfigError, PrunesimError
from prunesim.masks import load_mask_npz, save_mask_npz
from prunesim.pruning import (
    apply_masks,
    check_masks_hold,
    check_nested,
    count_weights,
    density_all_params,
    density_per_layer,
    prunable_parameters,
    prune_step,
    random_prune_step,
    resolve_prune_settings,
)

_log = logging.getLogger(__name__)

#: Keys of the previous checkpoint's meta that describe the network itself and carry over.
_CARRIED_META = ("model", "width", "num_classes", "dataset")


def finetune_lr(train_settings: Mapping, n_train: int) -> float:
    """The lr of the original schedule's last step: the rate fine-tuning (FT) holds constant.

    Taken at the last *step*, not at the last epoch's start, so a schedule that decays to 0 at
    its end (cifar10-fast's piecewise linear one) still gives a small positive rate.
    """
    from prunesim import training

    cfg = training.resolve_settings(dict(train_settings))
    bs = cfg["batch_size"]
    steps = n_train // bs if cfg["drop_last"] else math.ceil(n_train / bs)
    return float(training.final_learning_rate(dict(train_settings), max(1, steps)))


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_previous(meta: Mapping, run: int, iteration: int, settings: Mapping, path) -> None:
    """Refuse a previous network that is not iteration k-1 of this run (wrong wiring)."""
    prev_iter = meta.get("iteration")
    if prev_iter is not None and int(prev_iter) != iteration - 1:
        raise PrunesimError(
            f"{path} is iteration {prev_iter}, but iteration {iteration} must start from "
            f"iteration {iteration - 1}; check the imp_iter rule's input"
        )
    if iteration > 1:
        if meta.get("run") is not None and int(meta["run"]) != run:
            raise PrunesimError(f"{path} belongs to run {meta['run']}, not run {run}")
        if (
            meta.get("prune_output_layer", settings["prune_output_layer"])
            != (settings["prune_output_layer"])
        ):
            raise ConfigError(
                f"{path} was pruned with prune_output_layer={meta['prune_output_layer']}, "
                f"but the config now says {settings['prune_output_layer']}; rerun the whole run "
                f"(delete its iterations) so every iteration uses one setting"
            )


def _rewind(model, rewind_path, rewind_epoch: int) -> None:
    """Load every parameter and buffer of the dense run's rewind checkpoint into ``model``."""
    if rewind_path is None:
        raise ConfigError("prune.retrain is 'wr' but no rewind checkpoint was given")
    payload = load_checkpoint(rewind_path)
    saved_epoch = payload["meta"].get("epoch")
    if saved_epoch is not None and int(saved_epoch) != rewind_epoch:
        raise ConfigError(
            f"{rewind_path} holds the dense state at epoch {saved_epoch}, but "
            f"prune.rewind_epoch is {rewind_epoch}; rerun train_dense so it saves that epoch"
        )
    load_state(model, payload, rewind_path)


def run_imp_iteration(
    prev_model_path: str | os.PathLike,
    rewind_path: str | os.PathLike | None,
    arrays_path: str | os.PathLike,
    experiment: str,
    run: int,
    iteration: int,
    train_settings: Mapping,
    prune_settings: Mapping | None,
    out_model: str | os.PathLike,
    out_metrics: str | os.PathLike,
    out_mask: str | os.PathLike,
    seed: int,
    threads: int = 1,
    resume_path: str | os.PathLike | None = None,
    device: str | None = None,
    *,
    dataset: str | None = None,
    random_target: str | os.PathLike | None = None,
    random_seed: int = 0,
) -> dict:
    """Prune the network at ``prev_model_path`` once, retrain it, save it; return metrics.

    ``seed`` is this job's seed, already derived from the base seed with (experiment, run,
    iteration) by the caller, so runs differ and reruns repeat. ``dataset`` names the
    dataset in ``metrics.json``; by default it is taken from the previous checkpoint's meta.
    ``resume_path`` is handed to training for per-epoch resumption after a kill.
    ``random_target`` (IMP's ``mask.npz`` at this iteration) prunes at random to its per-layer
    counts instead (seeded by ``random_seed``); the network is then ``random`` in its files.
    """
    from prunesim import training
    from prunesim.data import load_arrays

    if iteration < 1:
        raise ConfigError(f"IMP iterations count from 1, got {iteration}")
    settings = resolve_prune_settings(prune_settings)
    device = device or _default_device()
    torch.set_num_threads(max(1, int(threads)))
    job_seed = int(seed)
    network = "imp" if random_target is None else "random"
    label = f"{experiment} run {run} iter {iteration}" + ("" if network == "imp" else " random")
    _log.info("%s: training on %s", label, training.describe_device(device))

    model, prev_masks, prev_meta = load_network(prev_model_path, device)
    _check_previous(prev_meta, run, iteration, settings, prev_model_path)
    # A checkpoint's masks are authoritative: zero anything a careless writer left alive.
    apply_masks(model, prev_masks)
    if random_target is None:
        masks = prune_step(model, prev_masks, settings)
    else:
        target = load_mask_npz(random_target)
        masks = random_prune_step(
            model, prev_masks, target, settings["prune_output_layer"], random_seed
        )
    check_nested(masks, prev_masks)
    # The density's tensors: prunable weights only (filter_l1's masks also hold BN entries).
    names = list(prunable_parameters(model, settings["prune_output_layer"]))
    n_total = count_weights(model, names)[1]
    scope_rates = (
        {"mixed_rates": dict(settings["mixed_rates"])}
        if settings["scope"] == "mixed"
        else {"rate": settings["rate"]}
    )
    _log.info(
        "%s: pruned (%s, %s, %s) to %d of %d prunable weights; retrain %s",
        label, network, settings["scope"], scope_rates,
        sum(int(m.sum()) for m in masks.values()), n_total, settings["retrain"],
    )  # fmt: skip

    arrays = load_arrays(arrays_path)
    common = {
        "seed": job_seed, "device": device, "masks": masks, "resume_path": resume_path,
        "label": label,
    }  # fmt: skip
    if settings["retrain"] == "lrr":
        training.train(model, arrays, train_settings, start_epoch=0, **common)
    elif settings["retrain"] == "wr":
        _rewind(model, rewind_path, settings["rewind_epoch"])
        apply_masks(model, masks)
        training.train(
            model, arrays, train_settings, start_epoch=settings["rewind_epoch"], **common
        )
    else:  # ft
        epochs = settings["finetune_epochs"] or int(train_settings["epochs"])
        training.train(
            model, arrays, train_settings, start_epoch=0, end_epoch=epochs,
            constant_lr=finetune_lr(train_settings, len(arrays["y_train"])), **common,
        )  # fmt: skip

    check_masks_hold(model, masks)
    model.eval()
    eval_settings = training.resolve_settings(dict(train_settings))
    accuracy = float(
        training.evaluate(
            model, arrays["x_test"], arrays["y_test"], arrays["mean"], arrays["std"], device,
            eval_settings["eval_batch_size"], eval_settings["amp"],
        )
    )  # fmt: skip

    state = model.state_dict()
    alive, total = count_weights(state, names)
    carried = {k: prev_meta[k] for k in _CARRIED_META if k in prev_meta}
    if dataset is not None:
        carried["dataset"] = dataset
    meta = {
        **carried,
        "experiment": experiment,
        "network": network,
        "run": int(run),
        "iteration": int(iteration),
        "test_accuracy": accuracy,
        "density": alive / total,
        "prune_output_layer": settings["prune_output_layer"],
        "method": settings["method"],
        "scope": settings["scope"],
        "retrain": settings["retrain"],
        **scope_rates,
        "seed": job_seed,
    }
    metrics = {
        "experiment": experiment,
        "model": meta.get("model"),
        "dataset": carried.get("dataset"),
        "network": network,
        "run": int(run),
        "iteration": int(iteration),
        "test_accuracy": accuracy,
        "density": alive / total,
        "density_all_params": density_all_params(model, names),
        "prunable_weights": total,
        "alive_weights": alive,
        "density_per_layer": density_per_layer(state, names),
        "prune_output_layer": settings["prune_output_layer"],
        "method": settings["method"],
        "scope": settings["scope"],
        "retrain": settings["retrain"],
        "seed": job_seed,
    }
    save_mask_npz(out_mask, {n: masks[n].detach().cpu().numpy().astype(bool) for n in names})
    write_json(out_metrics, metrics)
    # The checkpoint last: its presence means the iteration is complete.
    save_checkpoint(out_model, model, masks, meta)
    _log.info("%s: density %.4f, test accuracy %.4f", label, alive / total, accuracy)
    return metrics
