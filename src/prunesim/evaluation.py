"""Test accuracy of a model on un-augmented data, and the tensor helpers training shares.

Separate from the training loop so that measuring a network (after training, or of a saved
checkpoint) never touches an optimizer; :func:`autocast` is the one switch for mixed
precision, read by the loop and by :func:`evaluate` alike.
"""

from __future__ import annotations

import numpy as np
import torch

from prunesim.augment import to_float
from prunesim.devices import resolve_device


def as_tensor(a, device, dtype=None) -> torch.Tensor:
    """``a`` (numpy array or tensor) on ``device``, cast to ``dtype`` if given."""
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on CUDA when ``enabled`` (bf16 where supported, else fp16), else off."""
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def is_channels_last(model: torch.nn.Module) -> bool:
    """Whether the model's conv weights are stored channels-last (inputs should match)."""
    for p in model.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


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
    x = as_tensor(x_uint8, device)
    y = as_tensor(y, device, torch.int64)
    mean_t, std_t = as_tensor(mean, device, torch.float32), as_tensor(std, device, torch.float32)
    channels_last = is_channels_last(model)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    try:
        for i in range(0, len(y), batch_size):
            xb = to_float(x[i : i + batch_size], mean_t, std_t, channels_last)
            with autocast(device, amp):
                out = model(xb)
            correct += (out.argmax(1) == y[i : i + batch_size]).sum()
    finally:
        model.train(was_training)
    return correct.item() / len(y)
