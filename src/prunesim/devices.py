"""Where a job computes: the one place that picks the device and sets torch's CPU threads."""

from __future__ import annotations

import torch


def resolve_device(device=None) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else CPU; anything else as torch reads it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def job_device(device=None, threads: int | None = None) -> torch.device:
    """A training job's device, after setting torch's CPU threads to the job's ``threads``.

    ``threads`` is Snakemake's ``threads:`` for the rule; None or 0 leaves torch's default
    (a library caller that set its own count keeps it).
    """
    if threads:
        torch.set_num_threads(int(threads))
    return resolve_device(device)


def describe_device(device=None) -> str:
    """What a training job runs on, for its log: ``cuda:0 (<GPU name>)`` or ``cpu (N threads)``."""
    device = resolve_device(device)
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"{device.type} ({torch.get_num_threads()} threads)"
