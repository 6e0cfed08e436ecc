"""Pruning masks as torch-free files, and how much two runs' masks agree.

The aggregate job reads masks of every run and iteration; it must not import torch
(``docs/architecture.md``), so masks travel as ``mask.npz`` files next to each ``model.pt``,
written by ``prunesim.imp`` from the checkpoint's bool tensors.

File format (``np.load(allow_pickle=False)`` safe): ``names`` (unicode array of parameter
names, in model order) and, for layer ``i``, ``bits_i`` (``np.packbits`` of the flattened
mask, C order) and ``shape_i`` (int64). Packing makes a mask 1 bit per weight, 8x smaller
than bool, before zip compression.

Mask overlap follows Paganini & Forde (2020): the Jaccard index (intersection over union)
of the alive sets of two runs' masks at the same IMP iteration, per layer and over all
prunable weights (layer ``all``). Two independent random masks of densities ``a`` and ``b``
have expected Jaccard ``ab / (a + b - ab)`` (:func:`random_jaccard`), the chance baseline
the measured overlap should be read against.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from prunesim.atomic import atomic_path
from prunesim.errors import CorruptFileError, rebuild_hint

#: Columns of the tidy table written to ``tables/masks.csv``.
#: ``parameter`` is the mask's parameter name (``conv1.conv.weight``); ``prunesim.tables``
#: adds the compared layer's name and the model and dataset.
MASK_TABLE_COLUMNS = [
    "experiment", "iteration", "density", "parameter", "run_a", "run_b", "jaccard",
]  # fmt: skip

#: Name (parameter and layer) of the row that pools every prunable weight of the network.
ALL_LAYERS = "all"


def save_mask_npz(path: str | os.PathLike, masks: Mapping[str, np.ndarray]) -> None:
    """Write ``{name: bool array}`` to ``path`` compactly and atomically."""
    arrays = {"names": np.array(list(masks), dtype=np.str_)}
    for i, m in enumerate(masks.values()):
        m = np.asarray(m)
        if m.dtype != np.bool_:
            raise TypeError(f"mask {i} has dtype {m.dtype}; convert it to bool first")
        arrays[f"bits_{i}"] = np.packbits(m.reshape(-1))
        arrays[f"shape_{i}"] = np.array(m.shape, dtype=np.int64)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_mask_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save_mask_npz` into ``{name: bool array}``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["names"]]
            masks = {}
            for i, name in enumerate(names):
                shape = tuple(int(s) for s in data[f"shape_{i}"])
                n = int(np.prod(shape, dtype=np.int64))
                bits = np.unpackbits(data[f"bits_{i}"], count=n)
                masks[name] = bits.astype(bool).reshape(shape)
    except (OSError, KeyError, ValueError) as exc:
        raise CorruptFileError(
            f"mask file {path} cannot be read ({type(exc).__name__}: {exc}; rule imp_iter "
            f"writes it). {rebuild_hint(path)}"
        ) from exc
    return masks


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index |a ∧ b| / |a ∨ b| of two bool masks of equal shape (1.0 if both empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = int(np.count_nonzero(a | b))
    # Two masks that keep nothing agree perfectly; 0/0 would otherwise be NaN.
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def random_jaccard(density_a: float, density_b: float) -> float:
    """Expected Jaccard of two independent uniformly random masks with these densities."""
    both = density_a * density_b
    either = density_a + density_b - both
    return 1.0 if either == 0 else both / either


def _flat(masks: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(m, dtype=bool).reshape(-1) for m in masks.values()])


def mask_overlap_table(masks, experiment: str):
    """Tidy Jaccard table of every pair of runs at the same iteration.

    ``masks`` maps ``(run, iteration)`` to either a ``{layer: bool array}`` dict or a path to a
    ``mask.npz``. Returns a ``pandas.DataFrame`` with :data:`MASK_TABLE_COLUMNS`, one row per
    (iteration, unordered run pair ``run_a < run_b``, parameter), the pooled row ``"all"``
    last for each pair. ``density`` is the alive fraction of that layer (of all prunable
    weights for ``all``) averaged over the two runs; under global pruning the two runs' overall
    densities are equal, per-layer densities need not be.
    """
    import pandas as pd  # lazily: the module stays importable for the mask I/O alone

    loaded = {
        key: load_mask_npz(m) if isinstance(m, str | os.PathLike) else m for key, m in masks.items()
    }
    by_iter: dict[int, dict[int, Mapping[str, np.ndarray]]] = {}
    for (run, iteration), m in loaded.items():
        by_iter.setdefault(int(iteration), {})[int(run)] = m
    rows = []
    for iteration in sorted(by_iter):
        runs = by_iter[iteration]
        for run_a, run_b in itertools.combinations(sorted(runs), 2):
            ma, mb = runs[run_a], runs[run_b]
            if list(ma) != list(mb):
                raise ValueError(
                    f"iteration {iteration}: runs {run_a} and {run_b} mask different layers "
                    f"({list(ma)} vs {list(mb)}); were they pruned with different settings?"
                )
            pairs = [(name, ma[name], mb[name]) for name in ma]
            pairs.append((ALL_LAYERS, _flat(ma), _flat(mb)))
            for name, a, b in pairs:
                dens = (np.mean(a) + np.mean(b)) / 2 if np.size(a) else 1.0
                rows.append((experiment, iteration, float(dens), name, run_a, run_b, jaccard(a, b)))
    return pd.DataFrame(rows, columns=MASK_TABLE_COLUMNS)
