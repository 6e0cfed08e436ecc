"""Conv activations -> matrices, and spatial resizing so layers of different sizes can be compared.

The reshape is the paper's: "channels" treats every spatial position of every image as a
sample of the c channels (the CCA family), "flatten" treats every image as one sample of
c·h·w features (CKA, NBS).
"""

from __future__ import annotations

import numpy as np

from ._backend import is_torch

RESHAPES = ("channels", "flatten", None)
RESIZES = ("adaptive_avg", "interpolate", None)


def as_matrix(acts, mode):
    """(n, c, h, w) activations as a matrix; 2-D input passes through unchanged.

    - ``mode="channels"``: (n·h·w, c), rows ordered like ``acts.permute(0, 2, 3, 1)``.
    - ``mode="flatten"``: (n, c·h·w), rows = images (C order, like ``acts.reshape(n, -1)``).
    - ``mode=None``: only 2-D input is accepted.

    Works on numpy arrays and torch tensors; no copy for flatten when the input is contiguous.
    """
    if mode not in RESHAPES:
        raise ValueError(f"Expected reshape to be one of {list(RESHAPES)}, got {mode!r}")
    ndim = len(acts.shape)
    if ndim == 2:
        return acts
    if ndim != 4:
        raise ValueError(
            f"Expected activations of shape (n, c, h, w) or (n, features), got {tuple(acts.shape)}"
        )
    if mode is None:
        raise ValueError(
            f"Got 4-D activations {tuple(acts.shape)} but reshape is null; "
            "set reshape to 'channels' or 'flatten'"
        )
    n, c = acts.shape[:2]
    if mode == "flatten":
        return acts.reshape(n, -1)
    if is_torch(acts):
        return acts.permute(0, 2, 3, 1).reshape(-1, c)
    return np.ascontiguousarray(acts.transpose(0, 2, 3, 1)).reshape(-1, c)


def _pool_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(out, in) averaging weights of adaptive average pooling (torch's bin edges)."""
    m = np.zeros((size_out, size_in))
    for i in range(size_out):
        lo = (i * size_in) // size_out
        hi = -((-(i + 1) * size_in) // size_out)  # ceil
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _interp_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(out, in) weights of linear interpolation, align_corners=False (torch's bilinear)."""
    m = np.zeros((size_out, size_in))
    scale = size_in / size_out
    for i in range(size_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        lo = min(int(np.floor(src)), size_in - 1)
        hi = min(lo + 1, size_in - 1)
        frac = src - lo
        m[i, lo] += 1.0 - frac
        m[i, hi] += frac
    return m


def resize_matrices(shape_in, shape_out, method):
    """Row/column weight matrices (oh, h), (ow, w) that map one spatial size to another."""
    make = {"adaptive_avg": _pool_matrix, "interpolate": _interp_matrix}[method]
    return make(shape_in[0], shape_out[0]), make(shape_in[1], shape_out[1])


def common_size(shape_a, shape_b, method):
    """Target (h, w) for two 4-D shapes, or None when nothing needs resizing.

    Both are brought to the smaller spatial size (per axis), so pooling never invents detail.
    """
    if len(shape_a) != 4 or len(shape_b) != 4 or tuple(shape_a[2:]) == tuple(shape_b[2:]):
        return None
    if method is None:
        return None
    if method not in RESIZES:
        raise ValueError(f"Expected resize to be one of {list(RESIZES)}, got {method!r}")
    return (min(shape_a[2], shape_b[2]), min(shape_a[3], shape_b[3]))


def resize(acts, size, method):
    """(n, c, h, w) -> (n, c, *size) with a separable linear map (same on numpy and torch)."""
    if size is None or tuple(acts.shape[2:]) == tuple(size):
        return acts
    rows, cols = resize_matrices(tuple(acts.shape[2:]), size, method)
    if is_torch(acts):
        import torch

        rows = torch.as_tensor(rows, dtype=acts.dtype, device=acts.device)
        cols = torch.as_tensor(cols, dtype=acts.dtype, device=acts.device)
        return torch.einsum("oh,nchw,pw->ncop", rows, acts, cols)
    return np.einsum("oh,nchw,pw->ncop", rows, np.asarray(acts, dtype=np.float64), cols)


def prepare_pair(x, y, reshape, resize_method):
    """Resize (if asked and needed) then reshape both inputs; checks that rows line up."""
    size = common_size(tuple(x.shape), tuple(y.shape), resize_method)
    if size is not None:
        x, y = resize(x, size, resize_method), resize(y, size, resize_method)
    elif (
        reshape == "channels"
        and len(x.shape) == 4
        and len(y.shape) == 4
        and tuple(x.shape[2:]) != tuple(y.shape[2:])
    ):
        raise ValueError(
            f"Spatial sizes differ ({tuple(x.shape[2:])} vs {tuple(y.shape[2:])}), so the "
            "channel reshape has different numbers of rows; set resize to 'adaptive_avg' or "
            "'interpolate'"
        )
    return as_matrix(x, reshape), as_matrix(y, reshape)
