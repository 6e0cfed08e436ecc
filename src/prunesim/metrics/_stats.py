"""Shared sufficient statistics of layer pairs: computed once, read by every metric (issue #13).

Why: mean CCA, SVCCA, PWCCA and feature-form CKA/NBS are all functions of the centered
moments of [X, Y]; flatten-reshaped CKA/NBS (n < p1 + p2) of the two centered n × n Grams.
Reading the activations once per layer pair and reshape, instead of once per metric, and
the dense network's side once per experiment, instead of once per pruned network, is most
of the similarity stage's arithmetic.

Files (``.npz``, float64, written atomically; one per network and reshape, so that there
are few jobs, while each metric job reads only its pair's arrays):

- the dense network (``dense_stats``), per layer ``<layer>/``: ``mean`` and ``cov``
  (Yc^T Yc, when a same-layer pair takes the moment route: 2p <= n) or ``gram`` (Yc Yc^T);
- a pruned network (``pair_stats``), per pair ``<a>__<b>/``: ``kind``, ``shape`` (n, p1, p2)
  and "moments": ``mean_x``, ``mean_y``, ``cxx``, ``cxy`` (``cyy`` only where the dense file
  lacks it); "gram": ``kx`` (``ky`` only where the dense file lacks it).

The kind is fixed by the shapes alone (Gram when n < p1 + p2, as CKA's ``form: auto``), so
the files depend on the reshape and nothing else: a metric's other settings never change
them. A metric whose route the file cannot serve (debiased CKA, an RBF kernel on the moment
kind, a forced form of the other kind) reads the activations as before
(``similarity_from_stats`` returns None); its value is the same either way.
"""

from __future__ import annotations

import zipfile

import numpy as np

from ..atomic import atomic_path
from ..errors import CorruptFileError, rebuild_hint
from ._backend import NUMPY
from ._moments import Moments, chunk_rows
from ._reshape import as_matrix
from ._sources import centered_gram, dataset, gram_ranges, open_h5

STATS_RESHAPES = ("channels", "flatten")


def uses_stats(base_metric: str, settings: dict) -> bool:
    """Whether a metric's jobs read the shared statistics (static: decided by the config).

    Not for a metric with a direct route (it reads raw rows, never centered statistics), nor
    with ``resize`` (the dense side would depend on the layer it is paired with) nor with
    ``bootstrap`` (resamples need the rows).
    """
    from . import METRICS

    return (
        METRICS[base_metric].direct is None
        and settings.get("reshape") in STATS_RESHAPES
        and settings.get("resize") is None
        and settings.get("bootstrap") is None
    )


def pair_kind(n: int, p1: int, p2: int) -> str:
    """ "gram" when the n × n Grams are smaller than the moment matrix, else "moments"."""
    return "gram" if n < p1 + p2 else "moments"


# --- reading activations ----------------------------------------------------------------------


class _Layer:
    """One HDF5 layer, reshaped, read in float64 blocks of whole images (~32 MiB)."""

    def __init__(self, dataset, reshape: str):
        self.ds, self.reshape = dataset, reshape
        first = as_matrix(dataset[0:1], reshape)
        self.n_img, self.rows_per_image, self.p = dataset.shape[0], first.shape[0], first.shape[1]
        self.n = self.n_img * self.rows_per_image

    def image_ranges(self, p_total: int):
        step = max(1, chunk_rows(p_total) // self.rows_per_image)
        return [(i, min(i + step, self.n_img)) for i in range(0, self.n_img, step)]

    def block(self, i0: int, i1: int) -> np.ndarray:
        return np.asarray(as_matrix(self.ds[i0:i1], self.reshape), dtype=np.float64)


def _centered_cov(layer: _Layer):
    """(mean, Xc^T Xc) in one pass, shifted by the first block's mean (as _moments does)."""
    shift, total, xx = None, np.zeros(layer.p), np.zeros((layer.p, layer.p))
    for i0, i1 in layer.image_ranges(layer.p):
        x = layer.block(i0, i1)
        shift = x.mean(0) if shift is None else shift
        x -= shift
        total += x.sum(0)
        xx += x.T @ x
    d = total / layer.n
    return shift + d, xx - layer.n * np.outer(d, d)


def _centered_gram(layer: _Layer) -> np.ndarray:
    """Xc Xc^T (n, n) of one layer, from blocks of whole images (re-read, ~256 MiB each)."""
    r = layer.rows_per_image
    ranges = gram_ranges(layer.n, layer.p, r)
    return centered_gram(lambda r0, r1: layer.block(r0 // r, r1 // r), ranges, layer.n)


def _cross_moments(x: _Layer, y: _Layer, mean_y: np.ndarray):
    """(mean_x, cxx, cxy) in one pass; Y is centered by its exact (dense) mean."""
    shift, sx, sy = None, np.zeros(x.p), np.zeros(y.p)
    xx, xy = np.zeros((x.p, x.p)), np.zeros((x.p, y.p))
    for i0, i1 in x.image_ranges(x.p + y.p):
        xb, yb = x.block(i0, i1), y.block(i0, i1) - mean_y
        shift = xb.mean(0) if shift is None else shift
        xb -= shift
        sx += xb.sum(0)
        sy += yb.sum(0)
        xx += xb.T @ xb
        xy += xb.T @ yb
    d, e = sx / x.n, sy / x.n  # e is round-off: Y was centered by its mean
    return shift + d, xx - x.n * np.outer(d, d), xy - x.n * np.outer(d, e)


# --- files ------------------------------------------------------------------------------------


def _save(path, arrays: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_npz(path, prefix: str = "") -> dict:
    """The arrays under ``prefix`` (the prefix stripped), read alone: a network's file holds
    every pair, a metric job reads one. A truncated or foreign file is a CorruptFileError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise CorruptFileError(
            f"similarity statistics file {path} cannot be read ({exc}). {rebuild_hint(path)}"
        ) from exc


def dense_stats(h5_path, layers: list[str], reshape: str, out) -> dict[str, str]:
    """Write the dense side of every layer (keys ``<layer>/...``); returns {layer: kind}."""
    arrays, kinds = {}, {}
    with open_h5(h5_path) as f:
        for layer in layers:
            y = _Layer(dataset(f, layer, h5_path), reshape)
            kinds[layer] = pair_kind(y.n, y.p, y.p)
            if kinds[layer] == "moments":
                mean, cov = _centered_cov(y)
                arrays |= {f"{layer}/mean": mean, f"{layer}/cov": cov}
            else:
                arrays[f"{layer}/gram"] = _centered_gram(y)
    _save(out, arrays)
    return kinds


def _pair_arrays(x: _Layer, y: _Layer, dense: dict) -> dict:
    """One pair's statistics, the dense side taken from ``dense`` where it holds it."""
    if x.n != y.n:
        raise ValueError(f"Expected both layers to have the same rows, got {x.n} and {y.n}")
    kind = pair_kind(x.n, x.p, y.p)
    out = {"kind": np.array(kind), "shape": np.array([x.n, x.p, y.p], dtype=np.int64)}
    if kind == "gram":
        out["kx"] = _centered_gram(x)
        if "gram" not in dense:  # a cross-layer pair whose dense layer is moment-sized
            out["ky"] = _centered_gram(y)
        return out
    if "cov" in dense:
        mean_y = dense["mean"]
    else:  # a cross-layer pair whose dense layer is Gram-sized
        mean_y, out["cyy"] = _centered_cov(y)
    out["mean_x"], out["cxx"], out["cxy"] = _cross_moments(x, y, mean_y)
    out["mean_y"] = mean_y
    return out


def pair_stats(pruned_path, dense_path, pairs, reshape: str, dense_file, out) -> None:
    """Write the statistics of every [pruned layer, dense layer] pair (keys ``<a>__<b>/...``).

    ``dense_file``: the dense network's ``dense_stats`` file for this reshape.
    """
    arrays = {}
    with open_h5(pruned_path) as fa, open_h5(dense_path) as fb:
        for layer_a, layer_b in pairs:
            x = _Layer(dataset(fa, layer_a, pruned_path), reshape)
            y = _Layer(dataset(fb, layer_b, dense_path), reshape)
            dense = load_npz(dense_file, f"{layer_b}/")
            for key, value in _pair_arrays(x, y, dense).items():
                arrays[f"{layer_a}__{layer_b}/{key}"] = value
    _save(out, arrays)


# --- metrics from the files -------------------------------------------------------------------


def read_pair(pair_file, dense_file, layer_a: str, layer_b: str) -> dict:
    """One pair's statistics with its dense side filled in, from the two files."""
    view = load_npz(pair_file, f"{layer_a}__{layer_b}/")
    if not view:
        raise CorruptFileError(
            f"similarity statistics file {pair_file} has no pair {layer_a}, {layer_b}; it was "
            f"written for other layers. {rebuild_hint(pair_file)}"
        )
    if "cyy" not in view and "ky" not in view:
        dense = load_npz(dense_file, f"{layer_b}/")
        view["cyy"], view["ky"] = dense.get("cov"), dense.get("gram")
    return view


def _moments(view: dict) -> Moments:
    """Moments with the traces and uncentered sums the metrics read, from the stored blocks."""
    n, mx, my = float(view["shape"][0]), view["mean_x"], view["mean_y"]
    cxx, cyy, cxy = view["cxx"], view["cyy"], view["cxy"]
    ssx, ssy = max(float(cxx.trace()), 0.0), max(float(cyy.trace()), 0.0)
    raw_dot = float(cxy.trace()) + n * float(mx @ my) if cxy.shape[0] == cxy.shape[1] else None
    return Moments(bk=NUMPY, n=n, mean_x=mx, mean_y=my, cxy=cxy, ssx=ssx, ssy=ssy,
                   raw_ssx=ssx + n * float(mx @ mx), raw_ssy=ssy + n * float(my @ my),
                   raw_dot=raw_dot, cxx=cxx, cyy=cyy)  # fmt: skip


class _Unserved(Exception):
    """The statistics do not hold what the metric's route reads."""


class StatsSource:
    """A data source (``_sources``) over one pair's stored statistics: it serves the stored
    kind (moments without fourth-order sums, or Grams) and nothing else."""

    bk = NUMPY

    def __init__(self, view: dict):
        self.view, self.kind = view, str(view["kind"])
        self.shape = tuple(int(v) for v in view["shape"])

    def moments(self, full, fourth, weights=None):
        if self.kind != "moments" or fourth or weights is not None:
            raise _Unserved
        return _moments(self.view)

    def grams(self):
        if self.kind != "gram":
            raise _Unserved
        return self.view["kx"], self.view["ky"]

    def chunks(self, weights=None):
        raise _Unserved


def similarity_from_stats(name, view: dict, settings: dict):
    """Like similarity_from_hdf5, from one pair's statistics (``read_pair``); None where they
    cannot serve the metric's route (it then reads the activations)."""
    from ._engine import metric_kwargs, report, resolve

    metric, s = resolve(name, settings)
    if not uses_stats(name, s):
        return None
    source = StatsSource(view)
    # only the metric's own route for these shapes: the same value, read from the shared pass
    if metric.plan(*source.shape, metric_kwargs(metric, s)) != source.kind:
        return None
    try:
        return report(metric, metric_kwargs(metric, s), source, None)
    except _Unserved:
        return None
