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

Devices. Every random number comes from the ``generator`` passed in, which lives on the batch's
device, so each device is reproducible on its own (same seed, same batches). The same seed does
*not* give the same batches on CPU and CUDA: torch's CPU generator (Mersenne Twister) and its
CUDA generator (Philox) are different streams, so the crop offsets, flip decisions, affine
angles and shifts and cutout positions all differ. :func:`augment_batch` is therefore split
into :func:`draw_augment_params` (all draws, in a fixed order) and :func:`apply_augment_params`
(deterministic tensor ops). Given the same draws, crop, flip and cutout move and zero the same
pixels on any device, and the values agree to float32 rounding: CUDA computes ``x / 255`` as
``x * (1 / 255)``, which can differ from the CPU's division in the last bit. The affine grid is
float32 arithmetic (cos/sin, ``affine_grid``) that may also round differently, so bilinear
sampling differs at float32 rounding and nearest sampling can pick the neighbouring pixel where
a sample point falls on a half-pixel tie. ``benchmarks/gpu_check.py`` measures all of this on
CUDA; two runs on the same device are bit-identical.
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
    Equal to :func:`apply_augment_params` of :func:`draw_augment_params`.
    """
    n, h, w = x_uint8.shape[:3]
    params = draw_augment_params(n, h, w, settings, generator, x_uint8.device)
    return apply_augment_params(x_uint8, mean, std, settings, params, channels_last)


def draw_augment_params(
    n: int, height: int, width: int, settings: dict, generator: torch.Generator, device=None
) -> dict[str, torch.Tensor]:
    """Every random number one batch of ``n`` images needs, drawn from ``generator``.

    Keys (only for the switched-on transforms): ``crop_dy``, ``crop_dx`` (int64, in [0, 2 *
    crop]), ``flip`` (bool, p = 0.5), ``angle`` (radians, U(-degrees, degrees)), ``shift``
    (n x 2, U(-translate, translate) x size in ``affine_grid`` units: the distribution of
    torchvision's ``RandomAffine(degrees, translate=(t, t))``, whose shifts are whole pixels;
    ours are continuous), ``cutout_y0``, ``cutout_x0`` (int64, the square fully inside the
    image). The order of the draws is fixed; ``device`` defaults to the generator's.
    """
    dev = generator.device if device is None else device
    out = {}
    if settings["crop"]:
        span = 2 * settings["crop"] + 1
        out["crop_dy"] = torch.randint(0, span, (n,), device=dev, generator=generator)
        out["crop_dx"] = torch.randint(0, span, (n,), device=dev, generator=generator)
    if settings["flip"]:
        out["flip"] = torch.rand(n, device=dev, generator=generator) < 0.5
    if settings["affine"]:
        degrees, translate = settings["affine"]["degrees"], settings["affine"]["translate"]
        uniform = torch.rand(n, device=dev, generator=generator)
        out["angle"] = (uniform * 2 - 1) * math.radians(degrees)
        # affine_grid works in [-1, 1] coordinates: a shift of t * size pixels is 2 * t there.
        uniform = torch.rand(n, 2, device=dev, generator=generator)
        out["shift"] = (uniform * 2 - 1) * (2 * translate)
    if settings["cutout"]:
        size = min(settings["cutout"], height, width)
        y0 = torch.randint(0, height - size + 1, (n,), device=dev, generator=generator)
        out["cutout_y0"] = y0
        out["cutout_x0"] = torch.randint(0, width - size + 1, (n,), device=dev, generator=generator)
    return out


def apply_augment_params(
    x_uint8: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    settings: dict,
    params: dict[str, torch.Tensor],
    channels_last: bool = False,
) -> torch.Tensor:
    """The deterministic part of :func:`augment_batch`: apply drawn ``params`` to a batch.

    ``params`` (from :func:`draw_augment_params`) are moved to the batch's device if they
    live elsewhere (a no-op on the training path, where both are on the training device).
    """
    p = {k: v.to(x_uint8.device) for k, v in params.items()}
    x = x_uint8.permute(0, 3, 1, 2).float().div_(255.0)
    if settings["crop"]:
        x = crop(x, settings["crop"], settings["pad_mode"], p["crop_dy"], p["crop_dx"])
    if settings["flip"]:
        x = torch.where(p["flip"][:, None, None, None], x.flip(3), x)
    if settings["affine"]:
        x = affine(x, p["angle"], p["shift"], settings["affine"]["interpolation"])
    x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    if settings["cutout"]:
        x = cut_square(x, settings["cutout"], p["cutout_y0"], p["cutout_x0"])
    return _layout(x, channels_last)


def crop(
    x: torch.Tensor, padding: int, pad_mode: str, dy: torch.Tensor, dx: torch.Tensor
) -> torch.Tensor:
    """Pad every side by ``padding`` and crop back to the input size at offsets ``dy``, ``dx``."""
    n, _, h, w = x.shape
    mode = "constant" if pad_mode == "zeros" else "reflect"
    padded = F.pad(x, (padding,) * 4, mode=mode)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def affine(
    x: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor, interpolation: str
) -> torch.Tensor:
    """Rotate by ``angle`` (radians) and shift by ``shift`` (``affine_grid`` units), zero fill."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    # out = R in + s; the grid maps output to input coordinates: in = R^T out - R^T s.
    tx = -(cos * shift[:, 0] + sin * shift[:, 1])
    ty = -(-sin * shift[:, 0] + cos * shift[:, 1])
    theta = torch.stack([torch.stack([cos, sin, tx], 1), torch.stack([-sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=interpolation, padding_mode="zeros", align_corners=False)


def cut_square(x: torch.Tensor, size: int, y0: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Zero the ``size`` x ``size`` square at (``y0``, ``x0``) of each image."""
    _, _, h, w = x.shape
    size = min(size, h, w)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < y0[:, None] + size)
    in_x = (xs >= x0[:, None]) & (xs < x0[:, None] + size)
    hole = in_y[:, None, :, None] & in_x[:, None, None, :]
    return x.masked_fill(hole, 0.0)


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)
