"""Typed, frozen training and pruning settings, built once at a job's entry point.

The config schema (``workflow/schemas/config.schema.yaml``) is the one owner of every key,
type and default: :meth:`TrainSettings.from_config` and :meth:`PruneSettings.from_config`
validate a block against its ``$defs`` entry and fill the omitted keys from there, so a key a
config leaves out means the same in the workflow and in a direct library call. The classes
own only what a schema cannot say (ascending milestones, a schedule's matching lengths, which
pruning method takes which scope) and the few derived quantities every caller needs (the
learning rate at a step, steps per epoch). They are frozen: nested blocks are read-only
mappings and tuples, so no code downstream can change a setting after the job built it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from prunesim.errors import ConfigError

_SCHEDULE_KINDS = ("step", "piecewise_linear", "constant")


def _freeze(value):
    """Read-only copy of a nested block: dicts become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    """Plain-YAML copy of a frozen value (dicts and lists), e.g. for JSON."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _build(cls, block, definition: str, where: str):
    from prunesim.config import validate_block

    filled = validate_block(block, definition, where)
    names = {f.name for f in fields(cls)}
    if set(filled) != names:  # the schema and the class name different keys: a code bug
        raise ConfigError(
            f"{cls.__name__} has fields {sorted(names)}, the schema's {definition} block "
            f"{sorted(filled)}; keep workflow/schemas/config.schema.yaml and "
            f"prunesim.settings in step"
        )
    return cls(**{k: _freeze(v) for k, v in filled.items()})


class _Settings:
    def as_dict(self) -> dict[str, Any]:
        """The settings as plain YAML types (the resume fingerprint, logs)."""
        return {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class TrainSettings(_Settings):
    """One (re)training's settings: the config's ``experiments/<name>/train`` block.

    ``augment`` is the full dict of ``prunesim.augment.normalize_augment_settings`` (every
    transform present, off as 0/False/None); ``schedule`` holds only its kind's keys.
    """

    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: Mapping
    augment: Mapping
    grad_clip: float | None
    label_smoothing: float
    eval_batch_size: int
    eval_every: int
    drop_last: bool
    channels_last: bool
    amp: bool
    lars: Mapping

    @classmethod
    def from_config(cls, block: Mapping | None = None) -> TrainSettings:
        """Validate a ``train`` block (omitted keys: the schema's defaults) into settings."""
        return _build(cls, block, "train", "train")

    def __post_init__(self) -> None:
        from prunesim.augment import normalize_augment_settings

        object.__setattr__(self, "schedule", _freeze(_check_schedule(_thaw(self.schedule))))
        augment = normalize_augment_settings(_thaw(self.augment))
        object.__setattr__(self, "augment", _freeze(augment))

    def steps_per_epoch(self, n_train: int) -> int:
        """Optimizer steps in one epoch over ``n_train`` images (``drop_last`` honoured)."""
        bs = self.batch_size
        return n_train // bs if self.drop_last else math.ceil(n_train / bs)

    def learning_rate(self, epoch: float) -> float:
        """The scheduled lr at (fractional) ``epoch``: ``epoch + i / steps_per_epoch`` at step i.

        ``step``: ``lr * gamma ** #(milestones <= floor(epoch))`` (torch MultiStepLR stepped
        per epoch). ``piecewise_linear``: linear interpolation of ``values`` at ``epochs``,
        absolute, per iteration (cifar10-fast). ``constant``: ``lr``.
        """
        sched = self.schedule
        if sched["kind"] == "step":
            passed = sum(1 for m in sched["milestones"] if m <= math.floor(epoch + 1e-9))
            return self.lr * sched["gamma"] ** passed
        if sched["kind"] == "piecewise_linear":
            return float(np.interp(epoch, sched["epochs"], sched["values"]))
        return float(self.lr)

    def final_learning_rate(self, steps_per_epoch: int = 1) -> float:
        """The lr of the last training step: the rate fine-tuning (FT) holds constant.

        Taken at the last *step*, not at the last epoch's start, so a schedule that decays to
        0 at its end (cifar10-fast's piecewise linear one) still gives a small positive rate.
        """
        return self.learning_rate(self.epochs - 1.0 / max(1, steps_per_epoch))


def _check_schedule(schedule: dict) -> dict:
    """What the schema cannot check: ascending milestones and knots, as many values as knots."""
    kind = schedule.get("kind")
    if kind not in _SCHEDULE_KINDS:
        raise ConfigError(f"train.schedule kind must be one of {_SCHEDULE_KINDS}, got {kind!r}")
    if kind == "step":
        ms = list(schedule.get("milestones", []))
        if ms != sorted(ms):
            raise ConfigError(f"schedule milestones must be ascending epochs >= 0, got {ms}")
        return {"kind": kind, "milestones": ms, "gamma": float(schedule.get("gamma", 0.1))}
    if kind == "piecewise_linear":
        xs, ys = list(schedule.get("epochs", [])), list(schedule.get("values", []))
        if len(xs) < 2 or len(xs) != len(ys) or xs != sorted(xs):
            raise ConfigError(
                "piecewise_linear schedule needs >= 2 ascending `epochs` and as many `values` "
                f">= 0; got epochs {xs}, values {ys}"
            )
        return {"kind": kind, "epochs": [float(x) for x in xs], "values": [float(y) for y in ys]}
    return {"kind": "constant"}


@dataclass(frozen=True)
class PruneSettings(_Settings):
    """One IMP run's pruning settings: the config's ``experiments/<name>/prune`` block."""

    iterations: int
    method: str
    rate: float
    scope: str
    mixed_rates: Mapping
    prune_output_layer: bool
    retrain: str
    rewind_epoch: int
    finetune_epochs: int | None

    @classmethod
    def from_config(cls, block: Mapping | None = None) -> PruneSettings:
        """Validate a ``prune`` block (omitted keys: the schema's defaults) into settings."""
        return _build(cls, block, "prune", "prune")

    def __post_init__(self) -> None:
        if self.method == "filter_l1" and self.scope == "mixed":
            raise ConfigError("prune.method filter_l1 takes scope local or global, not mixed")

    def scope_rates(self) -> dict[str, Any]:
        """The rate(s) this scope uses: ``{"mixed_rates": {...}}`` or ``{"rate": r}``."""
        if self.scope == "mixed":
            return {"mixed_rates": dict(self.mixed_rates)}
        return {"rate": self.rate}
