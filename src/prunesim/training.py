"""Training and evaluation: one loop for dense training and every IMP retraining variant.

The dataset stays a uint8 tensor on the training device; each batch is gathered, augmented
and normalised as one tensor op (``prunesim.augment``), so there are no DataLoader workers
competing for the cores (training.md, section 8.3).

Contract (docs/architecture.md, "Training"): :func:`train` trains a model in place with a
fresh optimizer and schedule per call, re-applies masks after every optimizer step, writes a
per-epoch resume checkpoint and optional snapshots; :func:`evaluate` gives test accuracy;
:func:`train_dense_network` is the ``train_dense`` rule's one call.

Reproducibility: the data order and the augmentation of epoch ``e`` come from generators
seeded with ``derive_seed(seed, "order"/"augment", e)``, so a resumed run (or a run started
at ``start_epoch``) sees exactly the batches an uninterrupted one would; on CPU a resumed run
ends with bit-identical weights.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from prunesim.atomic import atomic_path, write_json
from prunesim.augment import augment_batch, normalize_augment_settings, to_float
from prunesim.checkpoint import save_checkpoint
from prunesim.errors import ConfigError
from prunesim.lars import LARS
from prunesim.pruning import (
    count_weights,
    density_all_params,
    density_per_layer,
    prunable_parameters,
)
from prunesim.seeds import derive_seed

logger = logging.getLogger(__name__)

# Defaults = the paper's VGG16_BN / CIFAR-10 setup (docs/architecture.md "Training settings").
DEFAULT_TRAIN_SETTINGS: dict[str, Any] = {
    "epochs": 160,  # open_lth cifar_vgg_16 '160ep'; the brief's 160 epochs
    "batch_size": 128,  # open_lth and Renda et al. (vgg/cifar10_main.py)
    "optimizer": "sgd",  # sgd | lars
    "lr": 0.1,  # open_lth / Renda (0.1 x bs/128); ignored by the piecewise_linear schedule
    "momentum": 0.9,  # open_lth / Renda (plain momentum)
    "nesterov": False,  # open_lth / Renda: not Nesterov
    "weight_decay": 5e-4,  # Renda's VGG value (open_lth uses 1e-4); training.md section 1.1
    "schedule": {"kind": "step", "milestones": [80, 120], "gamma": 0.1},  # open_lth 80ep,120ep
    # The paper lists crop, flip, affine and cutout for CIFAR-10 (section 4.1). Crop, flip and
    # affine as the authors' loader (RandomCrop(32, 4), RandomAffine(15, 0.1)); cutout 8 is our
    # choice (cifar10-fast's size). pad_mode/interpolation follow torchvision's defaults.
    "augment": {
        "crop": 4,
        "pad_mode": "zeros",
        "flip": True,
        "affine": {"degrees": 15, "translate": 0.1, "interpolation": "nearest"},
        "cutout": 8,
    },
    "grad_clip": None,  # authors' train.py clips at 1.0; not in the paper (pitfall 7)
    "label_smoothing": 0.0,  # dawn.py uses plain cross-entropy
    "eval_batch_size": 1000,
    "channels_last": True,  # +20-35 % train throughput on this CPU (training.md section 8.1)
    # Added keys:
    # You et al. 2017 (variant you2017) or cifar10-fast's LARS_update (cifar10_fast); lars.py
    "lars": {"eta": 1e-3, "eps": 1e-8, "granularity": "layer", "variant": "you2017"},
    "eval_every": 1,  # evaluate the test set every k epochs (0: only after the last epoch)
    "drop_last": False,  # keep the last partial batch, as torch's DataLoader default
    "amp": True,  # mixed precision, used on CUDA only (bf16 where supported, else fp16)
}

# The paper's three setups with the source of each value (training.md, section 1).
PAPER_TRAIN_SETTINGS: dict[str, dict[str, Any]] = {
    "vgg16_bn": copy.deepcopy(DEFAULT_TRAIN_SETTINGS),
    "vgg_svhn": {
        **copy.deepcopy(DEFAULT_TRAIN_SETTINGS),
        "epochs": 15,  # the brief: 15 epochs
        "batch_size": 50,  # the brief: batch 50
        # The paper (section 4.2): "SGDM with hyperparameters as for VGG16_BN".
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        # "/10 at epochs 7 and 12" (brief), MultiStepLR semantics: epochs >= 7 run at 0.01.
        "schedule": {"kind": "step", "milestones": [7, 12], "gamma": 0.1},
        "augment": False,  # our choice, as the authors' SVHN loader (Normalize only)
    },
    "resnet_fast": {
        **copy.deepcopy(DEFAULT_TRAIN_SETTINGS),
        "epochs": 24,  # dawn.py
        "batch_size": 512,  # dawn.py
        # Our choice: dawn.py's Nesterov SGD. The paper's "SGDM with LARS updates" (lars.py,
        # both variants) trained far worse here (README "ResNet_fast's optimiser, measured").
        "optimizer": "sgd",
        "lr": 0.4,  # dawn.py's peak; the piecewise_linear schedule sets the lr itself
        "nesterov": True,  # dawn.py nesterov_update
        "weight_decay": 5e-4,  # dawn.py 5e-4*bs in summed-loss units = 5e-4 with mean loss
        # dawn.py: PiecewiseLinear([0, 5, 24], [0, 0.4, 0]) per iteration, mean-loss units.
        "schedule": {"kind": "piecewise_linear", "epochs": [0, 5, 24], "values": [0.0, 0.4, 0.0]},
        # Our choice, cifar10-fast's dawn.py: reflect pad 4 + crop, flip, Cutout(8, 8); no affine.
        "augment": {"crop": 4, "pad_mode": "reflect", "flip": True, "affine": False, "cutout": 8},
    },
}

_SCHEDULE_KINDS = ("step", "piecewise_linear", "constant")
_PRECISE = 6  # decimals kept for accuracies/losses in logs and history


# ----------------------------------------------------------------------------- settings


def resolve_settings(settings: dict | None) -> dict:
    """Merge ``settings`` over :data:`DEFAULT_TRAIN_SETTINGS` and validate every key.

    Unknown keys are errors (a misspelt key would silently train with the default).
    """
    if settings and settings.get("_resolved"):
        return settings
    settings = dict(settings or {})
    unknown = set(settings) - set(DEFAULT_TRAIN_SETTINGS)
    if unknown:
        raise ConfigError(
            f"unknown training settings {sorted(unknown)}; allowed: "
            f"{', '.join(sorted(DEFAULT_TRAIN_SETTINGS))}"
        )
    cfg = copy.deepcopy(DEFAULT_TRAIN_SETTINGS)
    cfg.update(copy.deepcopy(settings))
    if "lars" in settings:
        cfg["lars"] = {**DEFAULT_TRAIN_SETTINGS["lars"], **(settings["lars"] or {})}
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigError(f"train.{key} must be a positive integer, got {cfg[key]!r}")
    if cfg["optimizer"] not in ("sgd", "lars"):
        raise ConfigError(f"train.optimizer must be sgd or lars, got {cfg['optimizer']!r}")
    for key in ("lr", "momentum", "weight_decay", "label_smoothing"):
        if not isinstance(cfg[key], int | float) or cfg[key] < 0:
            raise ConfigError(f"train.{key} must be a number >= 0, got {cfg[key]!r}")
    if cfg["grad_clip"] is not None and not cfg["grad_clip"] > 0:
        raise ConfigError(f"train.grad_clip must be > 0 or null, got {cfg['grad_clip']!r}")
    if not isinstance(cfg["eval_every"], int) or cfg["eval_every"] < 0:
        raise ConfigError(f"train.eval_every must be an integer >= 0, got {cfg['eval_every']!r}")
    if set(cfg["lars"]) - set(DEFAULT_TRAIN_SETTINGS["lars"]):
        raise ConfigError(
            f"train.lars takes only {', '.join(DEFAULT_TRAIN_SETTINGS['lars'])}; "
            f"got {sorted(cfg['lars'])}"
        )
    cfg["augment"] = normalize_augment_settings(cfg["augment"])
    cfg["schedule"] = _check_schedule(cfg["schedule"], cfg["epochs"])
    return cfg


def _check_schedule(schedule, epochs) -> dict:
    if not isinstance(schedule, dict) or schedule.get("kind") not in _SCHEDULE_KINDS:
        raise ConfigError(
            f"train.schedule must be a mapping with kind in {_SCHEDULE_KINDS}, got {schedule!r}"
        )
    kind = schedule["kind"]
    if kind == "step":
        ms = list(schedule.get("milestones", []))
        if ms != sorted(ms) or any(not isinstance(m, int) or m < 0 for m in ms):
            raise ConfigError(f"schedule milestones must be ascending epochs >= 0, got {ms}")
        return {"kind": kind, "milestones": ms, "gamma": float(schedule.get("gamma", 0.1))}
    if kind == "piecewise_linear":
        xs, ys = list(schedule.get("epochs", [])), list(schedule.get("values", []))
        if len(xs) < 2 or len(xs) != len(ys) or xs != sorted(xs) or min(ys) < 0:
            raise ConfigError(
                "piecewise_linear schedule needs >= 2 ascending `epochs` and as many `values` "
                f">= 0; got epochs {xs}, values {ys}"
            )
        return {"kind": kind, "epochs": [float(x) for x in xs], "values": [float(y) for y in ys]}
    return {"kind": "constant"}


def learning_rate(settings: dict, epoch: float) -> float:
    """The scheduled lr at (fractional) ``epoch``: ``epoch + i / steps_per_epoch`` at step i.

    ``step``: ``lr * gamma ** #(milestones <= floor(epoch))`` (torch MultiStepLR stepped per
    epoch). ``piecewise_linear``: linear interpolation of ``values`` at ``epochs``, absolute,
    per iteration (cifar10-fast). ``constant``: ``lr``. Accepts raw or resolved settings.
    """
    cfg = resolve_settings(settings)
    sched = cfg["schedule"]
    if sched["kind"] == "step":
        passed = sum(1 for m in sched["milestones"] if m <= math.floor(epoch + 1e-9))
        return cfg["lr"] * sched["gamma"] ** passed
    if sched["kind"] == "piecewise_linear":
        return float(np.interp(epoch, sched["epochs"], sched["values"]))
    return float(cfg["lr"])


def lr_at_epoch(settings: dict, epoch: float) -> float:
    """Alias of :func:`learning_rate` (the name ``prunesim.imp`` uses)."""
    return learning_rate(settings, epoch)


def final_learning_rate(settings: dict, steps_per_epoch: int = 1) -> float:
    """The lr of the last training step (FT's default lr; Renda et al. fine-tune at it)."""
    cfg = resolve_settings(settings)
    return learning_rate(cfg, cfg["epochs"] - 1.0 / steps_per_epoch)


# ----------------------------------------------------------------------------- helpers


def resolve_device(device=None) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def describe_device(device=None) -> str:
    """What a training job runs on, for its log: ``cuda:0 (<GPU name>)`` or ``cpu (N threads)``."""
    device = resolve_device(device)
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"{device.type} ({torch.get_num_threads()} threads)"


def _make_optimizer(model: nn.Module, cfg: dict, lr: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg["optimizer"] == "lars":
        # cifar10-fast's LARS_update sees summed-loss gradients: batch_size times ours (lars.py)
        return LARS(
            params, lr=lr, momentum=cfg["momentum"], nesterov=cfg["nesterov"],
            weight_decay=cfg["weight_decay"], loss_scale=cfg["batch_size"], **cfg["lars"],
        )  # fmt: skip
    return torch.optim.SGD(
        params, lr=lr, momentum=cfg["momentum"], nesterov=cfg["nesterov"],
        weight_decay=cfg["weight_decay"],
    )  # fmt: skip


def _resolve_masks(model: nn.Module, masks: dict | None, device) -> list[tuple[nn.Parameter, Any]]:
    if not masks:
        return []
    params = dict(model.named_parameters())
    out = []
    for name, mask in masks.items():
        if name not in params:
            raise ConfigError(f"mask for {name!r} matches no parameter of the model")
        p = params[name]
        if tuple(mask.shape) != tuple(p.shape):
            raise ConfigError(
                f"mask {name!r} has shape {tuple(mask.shape)}, its weight {tuple(p.shape)}"
            )
        out.append((p, mask.to(device=device, dtype=p.dtype)))
    return out


@torch.no_grad()
def _apply_masks(masked) -> None:
    for p, m in masked:
        p.mul_(m)


def _as_tensor(a, device, dtype=None) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def _is_channels_last(model: nn.Module) -> bool:
    for p in model.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


# ----------------------------------------------------------------------------- evaluate


@torch.no_grad()
def evaluate(
    model, x_uint8, y, mean, std, device=None, batch_size: int = 1000, amp: bool = False
) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` in eval mode on un-augmented data.

    ``x_uint8`` is NHWC uint8 (numpy or tensor), ``y`` int labels, ``mean``/``std`` per-channel
    on the [0, 1] scale. ``amp``: mixed precision on CUDA (the ``train.amp`` setting; off by
    default so an accuracy is full precision unless asked). The model's train/eval mode is
    restored afterwards.
    """
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    x = _as_tensor(x_uint8, device)
    y = _as_tensor(y, device, torch.int64)
    mean_t, std_t = _as_tensor(mean, device, torch.float32), _as_tensor(std, device, torch.float32)
    channels_last = _is_channels_last(model)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    try:
        for i in range(0, len(y), batch_size):
            xb = to_float(x[i : i + batch_size], mean_t, std_t, channels_last)
            with _autocast(device, amp):
                out = model(xb)
            correct += (out.argmax(1) == y[i : i + batch_size]).sum()
    finally:
        model.train(was_training)
    return correct.item() / len(y)


# ----------------------------------------------------------------------------- train


def train(
    model: nn.Module,
    arrays: dict,
    settings: dict,
    *,
    seed: int,
    device=None,
    masks: dict | None = None,
    start_epoch: int = 0,
    end_epoch: int | None = None,
    constant_lr: float | None = None,
    snapshots: dict[int, str | os.PathLike] | None = None,
    resume_path: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
    label: str | None = None,
    progress_seconds: float | None = 60.0,
) -> dict:
    """Train ``model`` in place for epochs ``[start_epoch, end_epoch)``; return a summary.

    - A fresh optimizer (SGD or LARS) each call; the lr follows the schedule from
      ``start_epoch`` (LRR: 0; WR: the rewind epoch), or is ``constant_lr`` throughout (FT).
    - ``masks`` ``{param name: bool tensor}``: applied at the start and re-applied with
      ``p.mul_(m)`` after every optimizer step (momentum and weight decay would otherwise
      revive pruned weights, training.md pitfall 1); gradients of pruned weights are also
      zeroed before the step so LARS trust ratios and grad clipping see only live weights.
    - ``snapshots`` ``{epoch: path}``: a checkpoint (``prunesim.checkpoint`` format, meta =
      ``model.spec`` + epoch + seed) of the state at the *start* of that epoch
      (``end_epoch`` = the final state); the dense run's rewind point for WR.
    - ``resume_path``: after each epoch the full state (model, optimizer, scheduler, RNG,
      epoch, history) is written there atomically; a call that finds it resumes from it (if
      it was written by the same call signature and settings, else it is ignored with a
      warning) and deletes it on success.
    - ``log``: called with one progress line per epoch (also sent to ``logging``); every line
      starts with ``label`` (the network, e.g. ``"vgg16_bn_cifar10 run 3 iter 7"``) if given.
    - Within an epoch: a tqdm bar on stderr when stderr is a terminal, else a ``logging`` line
      (step, images/s, running loss) every ``progress_seconds`` (None: none). Neither touches
      the numerics.

    Returns ``{"test_accuracy", "train_accuracy", "train_loss", "epochs", "seconds",
    "images_per_second", "history": [per-epoch dicts]}``.
    """
    cfg = {**resolve_settings(settings), "_resolved": True}
    device = resolve_device(device)
    end_epoch = cfg["epochs"] if end_epoch is None else int(end_epoch)
    if not 0 <= start_epoch <= end_epoch:
        raise ConfigError(f"need 0 <= start_epoch <= end_epoch, got {start_epoch}, {end_epoch}")
    snapshots = {int(k): Path(v) for k, v in (snapshots or {}).items()}
    bad = [e for e in snapshots if not start_epoch <= e <= end_epoch]
    if bad:
        raise ConfigError(f"snapshot epochs {bad} outside [{start_epoch}, {end_epoch}]")

    channels_last = cfg["channels_last"]
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    x_train = _as_tensor(arrays["x_train"], device)
    y_train = _as_tensor(arrays["y_train"], device, torch.int64)
    x_test = _as_tensor(arrays["x_test"], device)
    y_test = _as_tensor(arrays["y_test"], device, torch.int64)
    mean = _as_tensor(arrays["mean"], device, torch.float32)
    std = _as_tensor(arrays["std"], device, torch.float32)
    n = len(y_train)
    bs = cfg["batch_size"]
    steps = n // bs if cfg["drop_last"] else math.ceil(n / bs)
    if steps == 0:
        raise ConfigError(f"batch_size {bs} > {n} training images with drop_last")

    masked = _resolve_masks(model, masks, device)
    _apply_masks(masked)

    def lr_at(epoch: int, step: int) -> float:
        return constant_lr if constant_lr is not None else learning_rate(cfg, epoch + step / steps)

    optimizer = _make_optimizer(model, cfg, lr_at(start_epoch, 0))
    use_amp = cfg["amp"] and device.type == "cuda"
    fp16 = use_amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])

    fingerprint = json.dumps(
        {
            "settings": {k: v for k, v in cfg.items() if k != "_resolved"},
            "seed": seed, "start": start_epoch, "end": end_epoch, "constant_lr": constant_lr,
            "n_train": n, "n_test": len(y_test), "model": getattr(model, "spec", None),
            "masks": {k: int(v.sum()) for k, v in (masks or {}).items()},
        },
        sort_keys=True,
    )  # fmt: skip
    first_epoch, history, global_step, elapsed = start_epoch, [], 0, 0.0
    prefix = f"{label} " if label else ""
    epoch_images = steps * bs if cfg["drop_last"] else n
    show_bar = sys.stderr.isatty()
    resume_path = Path(resume_path) if resume_path else None
    if resume_path is not None and resume_path.exists():
        state = _load_resume(resume_path, fingerprint)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if state["scaler"]:
                scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"]["torch"])
            if device.type == "cuda" and state["rng"]["cuda"] is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"], device)
            first_epoch, history = state["epoch"], list(state["history"])
            global_step, elapsed = state["scheduler"]["step"], state["elapsed"]
            _emit(log, f"{prefix}resumed from {resume_path} at epoch {first_epoch}")
            missing = [str(p) for e, p in snapshots.items() if e < first_epoch and not p.exists()]
            if missing:
                logger.warning("snapshots %s were lost before resuming; rerun afresh", missing)

    model.train()
    test_acc = None
    for epoch in range(first_epoch, end_epoch):
        if epoch in snapshots:
            _save_snapshot(snapshots[epoch], model, masks, epoch, seed)
        t0 = time.perf_counter()
        order = torch.Generator().manual_seed(derive_seed(seed, "order", epoch))
        perm = torch.randperm(n, generator=order).to(device)
        aug_gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "augment", epoch))
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        where = f"{prefix}epoch {epoch + 1}/{end_epoch}"
        bar = (
            tqdm(total=epoch_images, desc=where, unit="img", leave=False, mininterval=1.0)
            if show_bar
            else None
        )
        last_report = t0
        for step in range(steps):
            idx = perm[step * bs : (step + 1) * bs]
            xb = augment_batch(x_train[idx], mean, std, cfg["augment"], aug_gen, channels_last)
            yb = y_train[idx]
            lr = lr_at(epoch, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with _autocast(device, use_amp):
                out = model(xb)
                loss = criterion(out.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if masked or cfg["grad_clip"]:
                scaler.unscale_(optimizer)
            for p, m in masked:
                if p.grad is not None:
                    p.grad.mul_(m)
            if cfg["grad_clip"]:
                nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
            _apply_masks(masked)
            global_step += 1
            loss_sum += loss.detach().double() * len(yb)
            correct += (out.detach().argmax(1) == yb).sum()
            seen += len(yb)
            if bar is not None:
                bar.update(len(yb))
            elif progress_seconds is not None and step + 1 < steps:
                now = time.perf_counter()
                if now - last_report >= progress_seconds:
                    last_report = now
                    logger.info(
                        "%s step %d/%d: %.0f img/s, loss %.4f",
                        where, step + 1, steps, seen / (now - t0), loss_sum.item() / seen,
                    )  # fmt: skip
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - t0
        last = epoch == end_epoch - 1
        every = cfg["eval_every"]
        evaluated = last or bool(every and (epoch + 1 - start_epoch) % every == 0)
        if evaluated:
            test_acc = evaluate(
                model, x_test, y_test, mean, std, device, cfg["eval_batch_size"], cfg["amp"]
            )
            model.train()
        elapsed += time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "train_loss": round(loss_sum.item() / seen, _PRECISE),
            "train_accuracy": round(correct.item() / seen, _PRECISE),
            "test_accuracy": test_acc if evaluated else None,
            "lr": lr,  # of the epoch's last step
            "images_per_second": round(seen / train_seconds, 1),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        history.append(record)
        if resume_path is not None and not last:
            _save_resume(resume_path, fingerprint, model, optimizer, scaler, device, epoch + 1,
                         history, global_step, elapsed)  # fmt: skip
        _emit(
            log,
            f"{where} loss {record['train_loss']:.4f} "
            f"train_acc {record['train_accuracy']:.4f} test_acc "
            f"{f'{test_acc:.4f}' if evaluated else '-'} lr {lr:.5g} "
            f"img/s {record['images_per_second']:.0f} time {record['seconds']:.1f}s",
        )

    if end_epoch in snapshots:
        _save_snapshot(snapshots[end_epoch], model, masks, end_epoch, seed)
    if not history or history[-1]["epoch"] != end_epoch or history[-1]["test_accuracy"] is None:
        # start_epoch == end_epoch: nothing trained, still report the model's accuracy.
        test_acc = evaluate(
            model, x_test, y_test, mean, std, device, cfg["eval_batch_size"], cfg["amp"]
        )
        model.train()
    if resume_path is not None:
        resume_path.unlink(missing_ok=True)
    images = n * len(history)
    return {
        "test_accuracy": test_acc,
        "train_accuracy": history[-1]["train_accuracy"] if history else None,
        "train_loss": history[-1]["train_loss"] if history else None,
        "epochs": len(history),
        "seconds": round(elapsed, 3),
        "images_per_second": round(images / elapsed, 1) if elapsed else None,
        "history": history,
    }


def _emit(log, message: str) -> None:
    logger.info(message)
    if log is not None:
        log(message)


def _save_snapshot(path: Path, model, masks, epoch: int, seed: int) -> None:
    meta = {**getattr(model, "spec", {}), "epoch": epoch, "seed": seed, "snapshot": True}
    save_checkpoint(path, model, masks, meta)


def _save_resume(
    path, fingerprint, model, optimizer, scaler, device, epoch, history, step, elapsed
):
    payload = {
        "fingerprint": fingerprint,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {"step": step},  # the lr is a pure function of (epoch, step)
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        },
        "history": history,
        "elapsed": elapsed,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_resume(path: Path, fingerprint: str) -> dict | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # atomic writes make this unlikely; never fatal
        logger.warning("ignoring unreadable resume checkpoint %s (%s)", path, exc)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        logger.warning(
            "ignoring resume checkpoint %s: written by a different call or settings", path
        )
        return None
    return state


# ----------------------------------------------------------------------------- dense rule


def train_dense_network(
    arrays_path,
    experiment: str,
    model_name: str,
    width: float,
    train_settings: dict,
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
    """Build, train and save the dense network of one experiment (rule ``train_dense``).

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

    if threads:
        torch.set_num_threads(int(threads))
    cfg = resolve_settings(train_settings)
    rewind_epoch = 0 if rewind_epoch is None else int(rewind_epoch)
    if not 0 <= rewind_epoch <= cfg["epochs"]:
        raise ConfigError(f"rewind_epoch {rewind_epoch} outside [0, {cfg['epochs']}] epochs")
    arrays = load_arrays(arrays_path)
    dataset = dataset or Path(arrays_path).parent.name
    num_classes = len(arrays["classes"])

    network = "dense" if seed_network is None else "seed"
    run = None if seed_network is None else int(seed_network)
    label = f"{experiment} dense" + ("" if run is None else f" seed {run}")
    logger.info("%s: training on %s", label, describe_device(device))
    torch.manual_seed(derive_seed(seed, "init"))  # the dense net's initial weights
    model = build_model(model_name, width=width, num_classes=num_classes)
    # The rewind snapshot goes next to the resume file, not to out_rewind: Snakemake deletes
    # the outputs of a killed job, and a resumed run is past the rewind epoch already.
    side = Path(resume_path) if resume_path else Path(out_rewind)
    rewind_tmp = side.with_name(f"{side.name}.rewind{rewind_epoch}.pt")
    result = train(
        model, arrays, train_settings, seed=seed, device=device,
        snapshots={rewind_epoch: rewind_tmp}, resume_path=resume_path, log=log, label=label,
    )  # fmt: skip

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    names = list(prunable_parameters(model, prune_output_layer))
    alive, total = count_weights(state, names)
    report = {
        "prunable_weights": total,
        "alive_weights": alive,
        "density": alive / total if total else 1.0,
        "density_per_layer": density_per_layer(state, names),
    }
    meta = {
        **model.spec,
        "experiment": experiment,
        "dataset": dataset,
        "network": network,
        "run": run,
        "iteration": 0,
        "test_accuracy": result["test_accuracy"],
        "density": report["density"],
        "prune_output_layer": bool(prune_output_layer),
        "seed": int(seed),
    }
    payload = torch.load(rewind_tmp, map_location="cpu", weights_only=True)
    payload["meta"].update({**meta, "test_accuracy": None, "rewind_epoch": rewind_epoch})
    with atomic_path(out_rewind) as tmp:
        torch.save(payload, tmp)
    rewind_tmp.unlink(missing_ok=True)
    save_checkpoint(out_model, model, {}, meta)
    metrics = {
        "experiment": experiment,
        "model": model_name,
        "dataset": dataset,
        "network": network,
        "run": run,
        "iteration": 0,
        "test_accuracy": result["test_accuracy"],
        "density": report["density"],
        "density_all_params": density_all_params(model, names),
        "prunable_weights": report["prunable_weights"],
        "alive_weights": report["alive_weights"],
        "density_per_layer": report["density_per_layer"],
        "prune_output_layer": bool(prune_output_layer),
        "scope": None,
        "retrain": None,
        "seed": int(seed),
    }
    write_json(out_metrics, metrics)
    _emit(
        log,
        f"{label}: test_accuracy {result['test_accuracy']:.4f} after "
        f"{result['epochs']} epochs in {result['seconds']:.1f}s",
    )
    return metrics
