"""IMP levels: the dense network is level 0, every pruning iteration k a level after it.

As open_lth does, the dense network and the pruned ones go through one path: a level gets a
model and its masks (level 0: a freshly initialised model with all-ones masks; level k:
iteration k-1 pruned once), trains it with ``prunesim.training.train`` (masks re-applied
after every step; at level 0 that changes nothing), checks the masks held, and writes its
files through :func:`network_record`, the one place that says what a network's
``metrics.json`` and checkpoint meta hold. The ``train_dense``/``train_seed`` rules call
:func:`train_dense_network` (level 0), ``imp_iter``/``random_prune`` call
:func:`run_imp_iteration` (level k); the settings arrive built once by the job's script
(``prunesim.settings``).

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
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from prunesim import training
from prunesim.atomic import atomic_path, write_json
from prunesim.checkpoint import load_checkpoint, load_network, load_state, save_checkpoint
from prunesim.devices import describe_device, job_device
from prunesim.errors import ConfigError, PrunesimError
from prunesim.masks import load_mask_npz, save_mask_npz
from prunesim.pruning import (
    apply_masks,
    check_masks_hold,
    check_nested,
    count_weights,
    density_all_params,
    density_per_layer,
    full_masks,
    prunable_parameters,
    prune_step,
    random_prune_step,
)
from prunesim.seeds import derive_seed
from prunesim.settings import PruneSettings, TrainSettings

_log = logging.getLogger(__name__)

#: Keys of the previous checkpoint's meta that describe the network itself and carry over.
_CARRIED_META = ("model", "width", "num_classes", "dataset")


@dataclass(frozen=True)
class NetworkId:
    """Which network a job makes: the identity fields of its ``metrics.json`` and meta.

    ``network`` is ``dense`` or ``seed`` at level 0 (``run`` None for the dense network, k
    for seed network k), ``imp`` or ``random`` after it. ``seed`` is the job's seed.
    """

    experiment: str
    network: str
    run: int | None
    iteration: int
    seed: int

    @property
    def label(self) -> str:
        """How the job's log lines name the network."""
        if self.iteration == 0:
            return f"{self.experiment} dense" + ("" if self.run is None else f" seed {self.run}")
        tail = "" if self.network == "imp" else f" {self.network}"
        return f"{self.experiment} run {self.run} iter {self.iteration}{tail}"


def network_record(
    net: NetworkId,
    model,
    accuracy: float,
    prune_output_layer: bool,
    prune: PruneSettings | None,
    identity: Mapping,
    dataset: str | None,
) -> tuple[dict, dict]:
    """``(metrics.json, checkpoint meta)`` of a trained network: the one place both are built.

    ``identity`` is what describes the model itself (its ``spec`` at level 0, the parent's
    carried meta after it). ``prune`` is None at level 0: the dense network's metrics say
    ``scope``/``retrain`` null and its meta carries no pruning settings. The density is
    counted from the state's actual zeros over the prunable weights, never from masks.
    """
    names = list(prunable_parameters(model, prune_output_layer))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    alive, total = count_weights(state, names)
    density = alive / total if total else 1.0
    run = None if net.run is None else int(net.run)
    if prune is None:
        listed, settings = {"scope": None, "retrain": None}, {}
    else:
        listed = {"method": prune.method, "scope": prune.scope, "retrain": prune.retrain}
        settings = {**listed, **prune.scope_rates()}
    common = {"network": net.network, "run": run, "iteration": int(net.iteration),
              "test_accuracy": accuracy, "density": density}  # fmt: skip
    metrics = {
        "experiment": net.experiment, "model": identity.get("model"), "dataset": dataset,
        **common, "density_all_params": density_all_params(model, names),
        "prunable_weights": total, "alive_weights": alive,
        "density_per_layer": density_per_layer(state, names),
        "prune_output_layer": bool(prune_output_layer), **listed, "seed": int(net.seed),
    }  # fmt: skip
    meta = {
        **identity, "experiment": net.experiment, "dataset": dataset, **common,
        "prune_output_layer": bool(prune_output_layer), **settings, "seed": int(net.seed),
    }  # fmt: skip
    return metrics, meta


def _train_level(net: NetworkId, model, masks, arrays, settings, device, **plan) -> float:
    """Train a level's network under its masks, check they held; return its test accuracy."""
    _log.info("%s: training on %s", net.label, describe_device(device))
    result = training.train(
        model, arrays, settings, seed=net.seed, device=device, masks=masks, label=net.label,
        **plan,
    )  # fmt: skip
    check_masks_hold(model, masks)
    return float(result["test_accuracy"])


def _save_level(net, model, masks, metrics, meta, out_model, out_metrics, out_mask=None):
    """Write a level's files; the checkpoint last, as its presence means the job is complete.

    The dense network's files hold no masks (every weight is alive), as they always have.
    """
    if out_mask is not None:  # the prunable weights' masks (filter_l1's also hold BN entries)
        names = list(prunable_parameters(model, metrics["prune_output_layer"]))
        save_mask_npz(out_mask, {n: masks[n].detach().cpu().numpy().astype(bool) for n in names})
    write_json(out_metrics, metrics)
    save_checkpoint(out_model, model, masks if net.iteration else {}, meta)
    _log.info("%s: density %.4f, test accuracy %.4f", net.label, metrics["density"],
              metrics["test_accuracy"])  # fmt: skip


# ----------------------------------------------------------------------------- level 0


def train_dense_network(
    arrays_path,
    experiment: str,
    model_name: str,
    width: float,
    train_settings: TrainSettings,
    out_model,
    out_metrics,
    rewind_epoch: int | None,
    out_rewind,
    seed: int,
    threads: int | None,
    resume_path=None,
    device=None,
    *,
    dataset: str | None = None,
    prune_output_layer: bool = False,
    log: Callable[[str], None] | None = None,
    seed_network: int | None = None,
) -> dict:
    """IMP level 0: build, train and save the dense network of one experiment (``train_dense``).

    Writes ``out_model`` (checkpoint, meta per docs/architecture.md), ``out_rewind`` (the state
    at the start of epoch ``rewind_epoch``, default 0, for Weight Rewinding) and
    ``out_metrics`` (metrics.json). ``dataset`` defaults to the directory name of
    ``arrays_path`` (``results/data/{dataset}/arrays.npz``). Returns the metrics dict.

    ``seed_network`` = k makes this the seed-baseline control's network k (rule
    ``train_seed``): the same call with another ``seed`` (hence other initial weights and
    data order), recorded as ``network: seed``, ``run: k`` instead of the dense network.
    """
    from prunesim.data import load_arrays
    from prunesim.models import build_model

    rewind_epoch = 0 if rewind_epoch is None else int(rewind_epoch)
    if not 0 <= rewind_epoch <= train_settings.epochs:
        raise ConfigError(
            f"rewind_epoch {rewind_epoch} outside [0, {train_settings.epochs}] epochs"
        )
    device = job_device(device, threads)
    arrays = load_arrays(arrays_path)
    run = None if seed_network is None else int(seed_network)
    net = NetworkId(experiment, "dense" if run is None else "seed", run, 0, int(seed))
    torch.manual_seed(derive_seed(seed, "init"))  # the dense net's initial weights
    model = build_model(model_name, width=width, num_classes=len(arrays["classes"]))
    masks = full_masks(model, prune_output_layer)  # level 0: every prunable weight alive
    # The rewind snapshot goes next to the resume file, not to out_rewind: Snakemake deletes
    # the outputs of a killed job, and a resumed run is past the rewind epoch already.
    side = Path(resume_path) if resume_path else Path(out_rewind)
    rewind_tmp = side.with_name(f"{side.name}.rewind{rewind_epoch}.pt")
    accuracy = _train_level(
        net, model, masks, arrays, train_settings, device, log=log,
        snapshots={rewind_epoch: rewind_tmp}, resume_path=resume_path,
    )  # fmt: skip
    dataset = dataset or Path(arrays_path).parent.name
    metrics, meta = network_record(
        net, model, accuracy, prune_output_layer, None, model.spec, dataset
    )
    _save_rewind(rewind_tmp, out_rewind, meta, rewind_epoch)
    _save_level(net, model, masks, metrics, meta, out_model, out_metrics)
    return metrics


def _save_rewind(snapshot: Path, out_rewind, meta: dict, rewind_epoch: int) -> None:
    """The rewind snapshot as ``rewind.pt``: the dense network's meta, no accuracy, no masks."""
    payload = torch.load(snapshot, map_location="cpu", weights_only=True)
    payload["masks"] = {}  # as the dense checkpoint: every weight alive
    payload["meta"].update({**meta, "test_accuracy": None, "rewind_epoch": rewind_epoch})
    with atomic_path(out_rewind) as tmp:
        torch.save(payload, tmp)
    snapshot.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- level k


def _check_previous(meta: Mapping, run: int, iteration: int, prune: PruneSettings, path) -> None:
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
        if meta.get("prune_output_layer", prune.prune_output_layer) != prune.prune_output_layer:
            raise ConfigError(
                f"{path} was pruned with prune_output_layer={meta['prune_output_layer']}, "
                f"but the config now says {prune.prune_output_layer}; rerun the whole run "
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


def _prune(model, prev_masks, prune: PruneSettings, random_target, random_seed: int) -> dict:
    """Level k's masks: one magnitude step, or the random control's step to IMP's counts."""
    if random_target is None:
        masks = prune_step(model, prev_masks, prune)
    else:
        target = load_mask_npz(random_target)
        masks = random_prune_step(model, prev_masks, target, prune.prune_output_layer, random_seed)
    check_nested(masks, prev_masks)
    return masks


def _retraining_plan(model, masks, prune: PruneSettings, train: TrainSettings, rewind_path,
                     n_train: int) -> dict:  # fmt: skip
    """``train``'s epoch span and lr for the retraining variant (module docstring)."""
    if prune.retrain == "lrr":
        return {"start_epoch": 0}
    if prune.retrain == "wr":
        _rewind(model, rewind_path, prune.rewind_epoch)
        apply_masks(model, masks)
        return {"start_epoch": prune.rewind_epoch}
    final_lr = train.final_learning_rate(train.steps_per_epoch(n_train))  # ft
    return {"start_epoch": 0, "end_epoch": prune.finetune_epochs or train.epochs,
            "constant_lr": final_lr}  # fmt: skip


def run_imp_iteration(
    prev_model_path: str | os.PathLike,
    rewind_path: str | os.PathLike | None,
    arrays_path: str | os.PathLike,
    experiment: str,
    run: int,
    iteration: int,
    train_settings: TrainSettings,
    prune_settings: PruneSettings,
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
    """IMP level k >= 1: prune iteration k-1 at ``prev_model_path`` once, retrain, save.

    ``seed`` is this job's seed, already derived from the base seed with (experiment, run,
    iteration) by the caller, so runs differ and reruns repeat. ``dataset`` names the
    dataset in ``metrics.json``; by default it is taken from the previous checkpoint's meta.
    ``resume_path`` is handed to training for per-epoch resumption after a kill.
    ``random_target`` (IMP's ``mask.npz`` at this iteration) prunes at random to its per-layer
    counts instead (seeded by ``random_seed``); the network is then ``random`` in its files.
    """
    from prunesim.data import load_arrays

    if iteration < 1:
        raise ConfigError(f"IMP iterations count from 1, got {iteration}")
    prune = prune_settings
    device = job_device(device, threads)
    network = "imp" if random_target is None else "random"
    net = NetworkId(experiment, network, int(run), int(iteration), int(seed))
    model, prev_masks, prev_meta = load_network(prev_model_path, device)
    _check_previous(prev_meta, run, iteration, prune, prev_model_path)
    # A checkpoint's masks are authoritative: zero anything a careless writer left alive.
    apply_masks(model, prev_masks)
    masks = _prune(model, prev_masks, prune, random_target, random_seed)
    names = list(prunable_parameters(model, prune.prune_output_layer))
    _log.info(
        "%s: pruned (%s, %s, %s) to %d of %d prunable weights; retrain %s",
        net.label, network, prune.scope, prune.scope_rates(),
        sum(int(m.sum()) for m in masks.values()), count_weights(model, names)[1], prune.retrain,
    )  # fmt: skip
    arrays = load_arrays(arrays_path)
    plan = _retraining_plan(model, masks, prune, train_settings, rewind_path,
                            len(arrays["y_train"]))  # fmt: skip
    accuracy = _train_level(
        net, model, masks, arrays, train_settings, device, resume_path=resume_path, **plan
    )
    carried = {k: prev_meta[k] for k in _CARRIED_META if k in prev_meta}
    if dataset is not None:
        carried["dataset"] = dataset
    dataset = carried.get("dataset")
    metrics, meta = network_record(
        net, model, accuracy, prune.prune_output_layer, prune, carried, dataset
    )
    _save_level(net, model, masks, metrics, meta, out_model, out_metrics, out_mask)
    return metrics
