"""The training loop: one loop for dense training and every IMP retraining variant.

The dataset stays a uint8 tensor on the training device; each batch is gathered, augmented
and normalised as one tensor op (``prunesim.augment``), so there are no DataLoader workers
competing for the cores (training.md, section 8.3).

Contract (docs/architecture.md, "Training"): :func:`train` trains a model in place with a
fresh optimizer and schedule per call, re-applies masks after every optimizer step, writes a
per-epoch resume file and optional snapshots (both ``prunesim.checkpoint``). Test accuracy
is ``prunesim.evaluation.evaluate``; the jobs that build, prune, train and save a network
are ``prunesim.imp`` (the dense network is its level 0).

Reproducibility: the data order and the augmentation of epoch ``e`` come from generators
seeded with ``derive_seed(seed, "order"/"augment", e)``, so a resumed run (or a run started
at ``start_epoch``) sees exactly the batches an uninterrupted one would; on CPU a resumed run
ends with bit-identical weights.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from prunesim import evaluation
from prunesim.augment import augment_batch
from prunesim.checkpoint import load_resume, resume_fingerprint, save_resume, save_snapshot
from prunesim.devices import resolve_device
from prunesim.errors import ConfigError
from prunesim.evaluation import as_tensor, evaluate
from prunesim.lars import LARS
from prunesim.seeds import derive_seed
from prunesim.settings import TrainSettings

logger = logging.getLogger(__name__)

# The paper's three setups with the source of each value (training.md, section 1): the record
# of what the paper and its anchors state, tied to config.yaml by tests/test_config.py. Keys
# left out (evaluation batch, memory layout, amp, ...) are engineering choices: the schema's
# defaults, like every other omitted key.
PAPER_TRAIN_SETTINGS: dict[str, dict[str, Any]] = {
    "vgg16_bn": {
        "epochs": 160,  # open_lth cifar_vgg_16 '160ep'; the brief's 160 epochs
        "batch_size": 128,  # open_lth and Renda et al. (vgg/cifar10_main.py)
        "optimizer": "sgd",
        "lr": 0.1,  # open_lth / Renda (0.1 x bs/128)
        "momentum": 0.9,  # open_lth / Renda (plain momentum)
        "nesterov": False,  # open_lth / Renda: not Nesterov
        "weight_decay": 5e-4,  # Renda's VGG value (open_lth uses 1e-4); training.md 1.1
        "schedule": {"kind": "step", "milestones": [80, 120], "gamma": 0.1},  # open_lth
        # The paper lists crop, flip, affine and cutout for CIFAR-10 (section 4.1). Crop, flip
        # and affine as the authors' loader (RandomCrop(32, 4), RandomAffine(15, 0.1)); cutout
        # 8 is our choice (cifar10-fast's size). pad_mode/interpolation: torchvision's.
        "augment": {
            "crop": 4,
            "pad_mode": "zeros",
            "flip": True,
            "affine": {"degrees": 15, "translate": 0.1, "interpolation": "nearest"},
            "cutout": 8,
        },
        "grad_clip": None,  # authors' train.py clips at 1.0; not in the paper (pitfall 7)
        "label_smoothing": 0.0,
    },
    "vgg_svhn": {
        "epochs": 15,  # the brief: 15 epochs
        "batch_size": 50,  # the brief: batch 50
        # The paper (section 4.2): "SGDM with hyperparameters as for VGG16_BN".
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 5e-4,
        # "/10 at epochs 7 and 12" (brief), MultiStepLR semantics: epochs >= 7 run at 0.01.
        "schedule": {"kind": "step", "milestones": [7, 12], "gamma": 0.1},
        "augment": False,  # our choice, as the authors' SVHN loader (Normalize only)
        "grad_clip": None,
        "label_smoothing": 0.0,
    },
    "resnet_fast": {
        "epochs": 24,  # dawn.py
        "batch_size": 512,  # dawn.py
        # Our choice: dawn.py's Nesterov SGD. The paper's "SGDM with LARS updates" (lars.py,
        # both variants) trained far worse here (README "ResNet_fast's optimiser, measured").
        "optimizer": "sgd",
        "lr": 0.4,  # dawn.py's peak; the piecewise_linear schedule sets the lr itself
        "momentum": 0.9,
        "nesterov": True,  # dawn.py nesterov_update
        "weight_decay": 5e-4,  # dawn.py 5e-4*bs in summed-loss units = 5e-4 with mean loss
        # dawn.py: PiecewiseLinear([0, 5, 24], [0, 0.4, 0]) per iteration, mean-loss units.
        "schedule": {"kind": "piecewise_linear", "epochs": [0, 5, 24], "values": [0.0, 0.4, 0.0]},
        # Our choice, cifar10-fast's dawn.py: reflect pad 4 + crop, flip, Cutout(8, 8); no affine.
        "augment": {"crop": 4, "pad_mode": "reflect", "flip": True, "affine": False, "cutout": 8},
        "grad_clip": None,
        "label_smoothing": 0.0,  # dawn.py uses plain cross-entropy
    },
}

_PRECISE = 6  # decimals kept for accuracies/losses in logs and history


@dataclass
class _Progress:
    """Where a training call reports: ``log`` (one line per epoch) and ``logging``.

    Every line starts with ``label`` (the network, e.g. ``"vgg16_bn_cifar10 run 3 iter 7"``).
    Within an epoch: a tqdm bar on stderr when stderr is a terminal, else a ``logging`` line
    (step, images/s, running loss) every ``seconds`` (None: none). Neither touches numerics.
    """

    log: Callable[[str], None] | None
    label: str | None
    seconds: float | None
    show_bar: bool = field(default_factory=lambda: sys.stderr.isatty())

    def emit(self, message: str) -> None:
        logger.info(message)
        if self.log is not None:
            self.log(message)

    def prefix(self) -> str:
        return f"{self.label} " if self.label else ""

    def where(self, epoch: int, end_epoch: int) -> str:
        return f"{self.prefix()}epoch {epoch + 1}/{end_epoch}"


@dataclass
class _Loop:
    """What one call of :func:`train` holds: model, data on the device, optimizer, masks."""

    model: nn.Module
    settings: TrainSettings
    device: torch.device
    data: dict[str, torch.Tensor]
    masked: list[tuple[nn.Parameter, torch.Tensor]]
    steps: int
    constant_lr: float | None
    optimizer: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    criterion: nn.Module | None = None

    def lr_at(self, epoch: int, step: int) -> float:
        if self.constant_lr is not None:
            return self.constant_lr
        return self.settings.learning_rate(epoch + step / self.steps)

    @property
    def n_train(self) -> int:
        return len(self.data["y_train"])


def _make_optimizer(model: nn.Module, s: TrainSettings, lr: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if s.optimizer == "lars":
        # cifar10-fast's LARS_update sees summed-loss gradients: batch_size times ours (lars.py)
        return LARS(
            params, lr=lr, momentum=s.momentum, nesterov=s.nesterov,
            weight_decay=s.weight_decay, loss_scale=s.batch_size, **s.lars,
        )  # fmt: skip
    return torch.optim.SGD(
        params, lr=lr, momentum=s.momentum, nesterov=s.nesterov, weight_decay=s.weight_decay
    )


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


def _build_loop(model, arrays, settings, device, masks, start_epoch, constant_lr) -> _Loop:
    """Move model and data to ``device``, mask the model, make a fresh optimizer and scaler."""
    model.to(device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    data = {k: as_tensor(arrays[k], device) for k in ("x_train", "x_test")}
    data |= {k: as_tensor(arrays[k], device, torch.int64) for k in ("y_train", "y_test")}
    data |= {k: as_tensor(arrays[k], device, torch.float32) for k in ("mean", "std")}
    n = len(data["y_train"])
    steps = settings.steps_per_epoch(n)
    if steps == 0:
        raise ConfigError(f"batch_size {settings.batch_size} > {n} training images with drop_last")
    loop = _Loop(model, settings, device, data, _resolve_masks(model, masks, device), steps,
                 constant_lr)  # fmt: skip
    _apply_masks(loop.masked)
    loop.optimizer = _make_optimizer(model, settings, loop.lr_at(start_epoch, 0))
    fp16 = settings.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    loop.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    loop.criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    return loop


def _step(loop: _Loop, idx, aug_gen, lr: float):
    """One optimizer step on the batch ``idx``; masks re-applied after it. Returns the batch's
    labels, logits and loss."""
    s, d, model = loop.settings, loop.data, loop.model
    optimizer, scaler = loop.optimizer, loop.scaler
    xb = augment_batch(d["x_train"][idx], d["mean"], d["std"], s.augment, aug_gen, s.channels_last)
    yb = d["y_train"][idx]
    for group in optimizer.param_groups:
        group["lr"] = lr
    with evaluation.autocast(loop.device, s.amp and loop.device.type == "cuda"):
        out = model(xb)
        loss = loop.criterion(out.float(), yb)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if loop.masked or s.grad_clip:
        scaler.unscale_(optimizer)
    for p, m in loop.masked:
        if p.grad is not None:
            p.grad.mul_(m)
    if s.grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    _apply_masks(loop.masked)
    return yb, out, loss


def _train_epoch(loop: _Loop, seed: int, epoch: int, where: str, progress: _Progress) -> dict:
    """Train one epoch; return its loss sum, correct count, images seen, last lr, start time."""
    bs, device, t0 = loop.settings.batch_size, loop.device, time.perf_counter()
    n = loop.n_train
    order = torch.Generator().manual_seed(derive_seed(seed, "order", epoch))
    perm = torch.randperm(n, generator=order).to(device)
    aug_gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "augment", epoch))
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, lr, last_report = 0, None, t0
    images = loop.steps * bs if loop.settings.drop_last else n
    bar = None
    if progress.show_bar:
        bar = tqdm(total=images, desc=where, unit="img", leave=False, mininterval=1.0)
    for step in range(loop.steps):
        lr = loop.lr_at(epoch, step)
        yb, out, loss = _step(loop, perm[step * bs : (step + 1) * bs], aug_gen, lr)
        loss_sum += loss.detach().double() * len(yb)
        correct += (out.detach().argmax(1) == yb).sum()
        seen += len(yb)
        if bar is not None:
            bar.update(len(yb))
        elif progress.seconds is not None and step + 1 < loop.steps:
            now = time.perf_counter()
            if now - last_report >= progress.seconds:
                last_report = now
                logger.info(
                    "%s step %d/%d: %.0f img/s, loss %.4f",
                    where, step + 1, loop.steps, seen / (now - t0), loss_sum.item() / seen,
                )  # fmt: skip
    if bar is not None:
        bar.close()
    if device.type == "cuda":  # the epoch's time (images/s) counts finished work, not queued
        torch.cuda.synchronize(device)
    return {"loss_sum": loss_sum, "correct": correct, "seen": seen, "lr": lr, "t0": t0}


def _evaluate(loop: _Loop) -> float:
    """Test accuracy in eval mode; the model goes back to train mode."""
    d, s = loop.data, loop.settings
    acc = evaluate(loop.model, d["x_test"], d["y_test"], d["mean"], d["std"], loop.device,
                   s.eval_batch_size, s.amp)  # fmt: skip
    loop.model.train()
    return acc


def _resume_state(loop: _Loop, epoch: int, history: list, step: int, elapsed: float) -> dict:
    """What a killed call needs to continue bit-identically (``checkpoint.save_resume``)."""
    device = loop.device
    return {
        "epoch": epoch,
        "model": loop.model.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": {"step": step},  # the lr is a pure function of (epoch, step)
        "scaler": loop.scaler.state_dict() if loop.scaler.is_enabled() else {},
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        },
        "history": history,
        "elapsed": elapsed,
    }


def _restore(loop: _Loop, state: dict) -> None:
    """Load a resume state into the loop's model, optimizer, scaler and RNGs."""
    loop.model.load_state_dict(state["model"])
    loop.optimizer.load_state_dict(state["optimizer"])
    if state["scaler"]:
        loop.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    if loop.device.type == "cuda" and state["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], loop.device)


def _check_span(start_epoch: int, end_epoch: int, snapshots: dict) -> None:
    if not 0 <= start_epoch <= end_epoch:
        raise ConfigError(f"need 0 <= start_epoch <= end_epoch, got {start_epoch}, {end_epoch}")
    bad = [e for e in snapshots if not start_epoch <= e <= end_epoch]
    if bad:
        raise ConfigError(f"snapshot epochs {bad} outside [{start_epoch}, {end_epoch}]")


def _epoch_record(epoch: int, stats: dict, test_acc: float | None) -> dict:
    seen, seconds = stats["seen"], time.perf_counter() - stats["t0"]
    return {
        "epoch": epoch + 1,
        "train_loss": round(stats["loss_sum"].item() / seen, _PRECISE),
        "train_accuracy": round(stats["correct"].item() / seen, _PRECISE),
        "test_accuracy": test_acc,
        "lr": stats["lr"],  # of the epoch's last step
        "images_per_second": round(seen / stats["train_seconds"], 1),
        "seconds": round(seconds, 3),
    }


def _epoch_line(where: str, record: dict) -> str:
    acc = record["test_accuracy"]
    return (
        f"{where} loss {record['train_loss']:.4f} "
        f"train_acc {record['train_accuracy']:.4f} test_acc "
        f"{f'{acc:.4f}' if acc is not None else '-'} lr {record['lr']:.5g} "
        f"img/s {record['images_per_second']:.0f} time {record['seconds']:.1f}s"
    )


def _summary(test_acc: float, history: list, n_train: int, elapsed: float) -> dict:
    images = n_train * len(history)
    return {
        "test_accuracy": test_acc,
        "train_accuracy": history[-1]["train_accuracy"] if history else None,
        "train_loss": history[-1]["train_loss"] if history else None,
        "epochs": len(history),
        "seconds": round(elapsed, 3),
        "images_per_second": round(images / elapsed, 1) if elapsed else None,
        "history": history,
    }


def train(
    model: nn.Module,
    arrays: dict,
    settings: TrainSettings,
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
    - ``snapshots`` ``{epoch: path}``: a checkpoint of the state at the *start* of that epoch
      (``end_epoch`` = the final state); the dense run's rewind point for WR.
    - ``resume_path``: after each epoch the full state (model, optimizer, scheduler, RNG,
      epoch, history) is written there atomically; a call that finds it resumes from it (if
      it was written by the same call signature and settings, else it is ignored with a
      warning) and deletes it on success.
    - ``log``, ``label``, ``progress_seconds``: progress reporting (:class:`_Progress`).

    The keyword arguments are the call's plan, written out rather than bundled: the IMP
    retraining variants differ only in them (``prunesim.imp``), and the resume fingerprint
    records them one by one.

    Returns ``{"test_accuracy", "train_accuracy", "train_loss", "epochs", "seconds",
    "images_per_second", "history": [per-epoch dicts]}``.
    """
    if not isinstance(settings, TrainSettings):
        raise TypeError("train() takes TrainSettings; build them with TrainSettings.from_config")
    device = resolve_device(device)
    end_epoch = settings.epochs if end_epoch is None else int(end_epoch)
    snapshots = {int(k): Path(v) for k, v in (snapshots or {}).items()}
    _check_span(start_epoch, end_epoch, snapshots)
    loop = _build_loop(model, arrays, settings, device, masks, start_epoch, constant_lr)
    fingerprint = resume_fingerprint(
        settings.as_dict(), masks, seed=seed, start=start_epoch, end=end_epoch,
        constant_lr=constant_lr, n_train=loop.n_train, n_test=len(loop.data["y_test"]),
        model=getattr(model, "spec", None),
    )  # fmt: skip
    progress = _Progress(log, label, progress_seconds)
    run = {"epoch": start_epoch, "history": [], "step": 0, "elapsed": 0.0}
    resume_path = Path(resume_path) if resume_path else None
    if resume_path is not None and resume_path.exists():
        _resume(loop, run, resume_path, fingerprint, progress, snapshots)

    model.train()
    test_acc = None
    for epoch in range(run["epoch"], end_epoch):
        if epoch in snapshots:
            save_snapshot(snapshots[epoch], model, masks, epoch, seed)
        test_acc = _run_epoch(loop, run, seed, epoch, start_epoch, end_epoch, progress)
        if resume_path is not None and epoch != end_epoch - 1:
            state = _resume_state(loop, epoch + 1, run["history"], run["step"], run["elapsed"])
            save_resume(resume_path, fingerprint, state)
        progress.emit(_epoch_line(progress.where(epoch, end_epoch), run["history"][-1]))

    if end_epoch in snapshots:
        save_snapshot(snapshots[end_epoch], model, masks, end_epoch, seed)
    history = run["history"]
    if not history or history[-1]["epoch"] != end_epoch or history[-1]["test_accuracy"] is None:
        test_acc = _evaluate(loop)  # start_epoch == end_epoch: nothing trained, still report
    if resume_path is not None:
        resume_path.unlink(missing_ok=True)
    return _summary(test_acc, history, loop.n_train, run["elapsed"])


def _run_epoch(loop, run, seed, epoch, start_epoch, end_epoch, progress) -> float | None:
    """Train epoch ``epoch``, evaluate if it is due, append its record to ``run``'s history;
    return the test accuracy if evaluated."""
    stats = _train_epoch(loop, seed, epoch, progress.where(epoch, end_epoch), progress)
    stats["train_seconds"] = time.perf_counter() - stats["t0"]
    run["step"] += loop.steps
    every = loop.settings.eval_every
    due = epoch == end_epoch - 1 or bool(every and (epoch + 1 - start_epoch) % every == 0)
    test_acc = _evaluate(loop) if due else None
    run["elapsed"] += time.perf_counter() - stats["t0"]
    run["history"].append(_epoch_record(epoch, stats, test_acc))
    return test_acc


def _resume(loop, run, path: Path, fingerprint: str, progress, snapshots) -> None:
    """Continue from a resume file written by this same call, if there is one."""
    state = load_resume(path, fingerprint)
    if state is None:
        return
    _restore(loop, state)
    run.update(epoch=state["epoch"], history=list(state["history"]),
               step=state["scheduler"]["step"], elapsed=state["elapsed"])  # fmt: skip
    progress.emit(f"{progress.prefix()}resumed from {path} at epoch {run['epoch']}")
    missing = [str(p) for e, p in snapshots.items() if e < run["epoch"] and not p.exists()]
    if missing:
        logger.warning("snapshots %s were lost before resuming; rerun afresh", missing)
