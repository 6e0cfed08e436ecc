"""Whole-batch augmentation on tensors, on the batch's device.

Per-image PIL transforms cost about half the throughput of a width-1/8 net on 2 cores, and
DataLoader workers would fight the trainer for those cores (training.md, section 8.1); one
vectorised op per batch is ~50k images/s on one core and free on a GPU.

Order follows the authors' torchvision pipeline (``layer_sim/datasets.py``): RandomCrop(32,
padding 4) -> horizontal flip -> RandomAffine, on [0, 1] pixels, then normalisation, then
cutout (zeros after normalisation = the mean colour, as cifar10-fast's Cutout and
torchvision's RandomErasing after Normalize). The test set only gets :func:`to_float`.

``augment`` settings (``train.augment`` in the config), each switched off by ``false``/``0``::

    crop: 4            # zero padding, then a random 32x32 crop (torchvision RandomCrop(32, 4))
    pad_mode: zeros    # zeros (torchvision, the authors) | reflect (cifar10-fast)
    flip: true         # horizontal, p = 0.5
    affine: {degrees: 15, translate: 0.1, interpolation: nearest}   # torchvision RandomAffine
    cutout: 8          # square side in pixels, fully inside the image (cifar10-fast Cutout)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from prunesim.errors import ConfigError

AUGMENT_KEYS = {"crop", "pad_mode", "flip", "affine", "cutout"}
AFFINE_KEYS = {"degrees", "translate", "interpolation"}


def normalize_augment_settings(aug) -> dict:
    """Validate ``train.augment`` (``false``/``None`` = no augmentation) into a full dict."""
    if aug in (None, False):
        aug = {}
    if not isinstance(aug, dict):
        raise ConfigError(f"train.augment must be a mapping or false, got {aug!r}")
    unknown = set(aug) - AUGMENT_KEYS
    if unknown:
        raise ConfigError(
            f"train.augment has unknown keys {sorted(unknown)}; allowed {sorted(AUGMENT_KEYS)}"
        )
    out = {
        "crop": int(aug.get("crop") or 0),
        "pad_mode": aug.get("pad_mode", "zeros"),
        "flip": bool(aug.get("flip", False)),
        "affine": None,
        "cutout": int(aug.get("cutout") or 0),
    }
    if out["pad_mode"] not in ("zeros", "reflect"):
        raise ConfigError(
            f"train.augment.pad_mode must be zeros or reflect, got {out['pad_mode']!r}"
        )
    if out["crop"] < 0 or out["cutout"] < 0:
        raise ConfigError("train.augment.crop and cutout must be >= 0")
    affine = aug.get("affine")
    if affine:
        if not isinstance(affine, dict) or set(affine) - AFFINE_KEYS:
            raise ConfigError(f"train.augment.affine must be a mapping with keys {AFFINE_KEYS}")
        out["affine"] = {
            "degrees": float(affine.get("degrees", 0.0)),
            "translate": float(affine.get("translate", 0.0)),
            "interpolation": affine.get("interpolation", "nearest"),
        }
        if out["affine"]["interpolation"] not in ("nearest", "bilinear"):
            raise ConfigError("train.augment.affine.interpolation must be nearest or bilinear")
    return out


def to_float(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool):
    """NHWC uint8 -> normalised NCHW float32 (the only transform the test set gets)."""
    x = x_uint8.permute(0, 3, 1, 2).float().div_(255.0)
    x = x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return _layout(x, channels_last)


def augment_batch(
    x_uint8: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    settings: dict,
    generator: torch.Generator,
    channels_last: bool = False,
) -> torch.Tensor:
    """Augment a NHWC uint8 batch into a normalised NCHW float batch.

    ``settings`` is the output of :func:`normalize_augment_settings`; ``generator`` lives on
    the batch's device and is the only source of randomness, so a seeded run is reproducible.
    """
    x = x_uint8.permute(0, 3, 1, 2).float().div_(255.0)
    if settings["crop"]:
        x = random_crop(x, settings["crop"], settings["pad_mode"], generator)
    if settings["flip"]:
        x = random_flip(x, generator)
    if settings["affine"]:
        x = random_affine(x, generator=generator, **settings["affine"])
    x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    if settings["cutout"]:
        x = cutout(x, settings["cutout"], generator)
    return _layout(x, channels_last)


def random_crop(x: torch.Tensor, padding: int, pad_mode: str, generator) -> torch.Tensor:
    """Pad every side by ``padding`` and crop back to the input size at a random offset."""
    n, _, h, w = x.shape
    mode = "constant" if pad_mode == "zeros" else "reflect"
    padded = F.pad(x, (padding,) * 4, mode=mode)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, generator) -> torch.Tensor:
    """Mirror each image left-right with probability 0.5."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_affine(
    x: torch.Tensor, degrees: float, translate: float, interpolation: str, generator
) -> torch.Tensor:
    """Rotate by U(-degrees, degrees) and shift by U(-translate, translate) x size, zero fill.

    Same distribution as torchvision's ``RandomAffine(degrees, translate=(t, t))``, whose
    shifts are whole pixels; ours are continuous (one ``affine_grid`` + ``grid_sample``).
    """
    n = x.shape[0]
    dev = x.device
    angle = (torch.rand(n, device=dev, generator=generator) * 2 - 1) * math.radians(degrees)
    # affine_grid works in [-1, 1] coordinates: a shift of t * size pixels is 2 * t there.
    shift = (torch.rand(n, 2, device=dev, generator=generator) * 2 - 1) * (2 * translate)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # out = R in + s; the grid maps output to input coordinates: in = R^T out - R^T s.
    tx = -(cos * shift[:, 0] + sin * shift[:, 1])
    ty = -(-sin * shift[:, 0] + cos * shift[:, 1])
    theta = torch.stack([torch.stack([cos, sin, tx], 1), torch.stack([-sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=interpolation, padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, size: int, generator) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image, placed fully inside it."""
    n, _, h, w = x.shape
    size = min(size, h, w)
    y0 = torch.randint(0, h - size + 1, (n,), device=x.device, generator=generator)
    x0 = torch.randint(0, w - size + 1, (n,), device=x.device, generator=generator)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < y0[:, None] + size)
    in_x = (xs >= x0[:, None]) & (xs < x0[:, None] + size)
    hole = in_y[:, None, :, None] & in_x[:, None, None, :]
    return x.masked_fill(hole, 0.0)


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)
