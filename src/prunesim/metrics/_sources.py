"""Data sources: where a layer pair's rows come from (in-memory arrays, HDF5, row chunks).

Why one interface: the engine computes every metric from one of three things (moments of
[X, Y], the two centered n×n Grams, or raw row chunks), and each source knows how to produce
them from its storage. So the route logic is written once (``_engine``), whatever the storage.

A source has ``shape`` (n rows, p1, p2; n may be inf for a stream of unknown length),
``n_img`` / ``rows_per_image`` (bootstrap resamples whole images), ``bk`` (the backend), and

- ``moments(full, fourth, weights=None)``: centered moments (``_moments.Moments``);
- ``grams()``: the centered Grams (kx, ky), each (n, n); built once per source;
- ``chunks(weights=None)``: (x, y, weights) row chunks of the reshaped matrices.

The shared statistics (``_stats.StatsSource``) are a fourth source serving stored moments or
Grams only.
"""

from __future__ import annotations

import numpy as np

from ..errors import CorruptFileError, rebuild_hint
from ._backend import NUMPY, backend_for
from ._checks import check_pair
from ._moments import MomentAccumulator, chunk_rows, moments
from ._reshape import as_matrix, common_size, prepare_pair, resize

_GRAM_LIMIT_BYTES = 4 << 30  # one float64 n×n Gram; beyond this a Gram route is refused
_BLOCK_BYTES = 1 << 28  # float64 data block for Gram accumulation (256 MiB)


def check_gram_size(n) -> None:
    if 8 * n * n > _GRAM_LIMIT_BYTES:
        raise ValueError(
            f"This route needs an n×n Gram with n = {n} ({8 * n * n / 2**30:.0f} GiB); use a "
            "linear kernel with form 'feature' / 'auto', the flatten reshape, or fewer samples"
        )


def gram_ranges(n_rows: int, p: int, rows_per_block_unit: int = 1):
    """Row ranges whose float64 (rows, p) block is ≤ 256 MiB, in whole units (images)."""
    step = max(1, _BLOCK_BYTES // (8 * p * rows_per_block_unit)) * rows_per_block_unit
    return [(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def centered_gram(load, ranges, n: int, bk=NUMPY):
    """Xc Xcᵀ (n, n) in float64 from row blocks ``load(r0, r1)``: a mean pass, then block pairs.

    Memory: the Gram plus two blocks; blocks are re-read (≈ blocks/2 passes) rather than held,
    so no layer is ever loaded whole. Centering before the products keeps them well scaled.
    """
    check_gram_size(n)
    mean = sum(load(r0, r1).sum(0) for r0, r1 in ranges) / n
    k = bk.empty((n, n))
    for bi, (i0, i1) in enumerate(ranges):
        xi = load(i0, i1) - mean
        k[i0:i1, i0:i1] = xi @ xi.T
        for j0, j1 in ranges[:bi]:
            block = xi @ (load(j0, j1) - mean).T
            k[i0:i1, j0:j1] = block
            k[j0:j1, i0:i1] = block.T
    return k


def pair_matrices(metric, x, y, reshape, resize_method):
    """Resize/reshape a pair; with reshape null a ``flattens_per_sample`` metric vectorises any
    equal shapes per sample (cosine on logits or on whole conv maps)."""
    if metric.flattens_per_sample and reshape is None:
        if tuple(x.shape) != tuple(y.shape):
            raise ValueError(
                f"{metric.name} needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if len(x.shape) < 1:
            raise ValueError("Expected arrays with a sample axis, got 0-d input")
        return x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    return prepare_pair(x, y, reshape, resize_method)


class ArrayPair:
    """Two in-memory arrays (numpy or torch, any device), reshaped once."""

    def __init__(self, metric, x, y, reshape, resize_method):
        self.bk = backend_for(x, y)
        self.x, self.y = pair_matrices(metric, x, y, reshape, resize_method)
        check_pair(self.x, self.y)
        self.n_img = x.shape[0]
        self.rows_per_image = self.x.shape[0] // self.n_img
        self.shape = (self.x.shape[0], self.x.shape[1], self.y.shape[1])
        self._grams = None

    def moments(self, full, fourth, weights=None):
        w = None if weights is None else self.bk.from_numpy(weights)
        return moments(self.x, self.y, full=full, fourth=fourth, weights=w, bk=self.bk)

    def grams(self):
        if self._grams is None:
            self._grams = tuple(self._gram(m) for m in (self.x, self.y))
        return self._grams

    def _gram(self, m):
        n, p = m.shape
        return centered_gram(
            lambda r0, r1: self.bk.asarray(m[r0:r1]), gram_ranges(n, p), n, self.bk
        )

    def chunks(self, weights=None):
        rows = chunk_rows(self.shape[1] + self.shape[2])
        w = None if weights is None else self.bk.from_numpy(weights)
        for i in range(0, self.shape[0], rows):
            yield self.x[i : i + rows], self.y[i : i + rows], None if w is None else w[i : i + rows]


class ChunkPair:
    """An iterable of (x_chunk, y_chunk) row chunks (already reshaped): one pass, no Grams."""

    def __init__(self, chunks):
        self._it = iter(chunks)
        self._first = next(self._it, None)
        if self._first is None:
            raise ValueError("Expected at least one chunk, got an empty iterable")
        self.bk = backend_for(*self._first)
        x, y = self._first
        self.shape = (float("inf"), x.shape[1], y.shape[1])
        self.n_img = self.rows_per_image = None

    def _rows(self):
        if self._it is None:
            raise ValueError("A chunk iterable can be read once; pass the metrics together")
        it, first = self._it, self._first
        self._it = None
        yield first
        yield from it

    def moments(self, full, fourth, weights=None):
        acc = MomentAccumulator(self.shape[1], self.shape[2], full=full, fourth=fourth, bk=self.bk)
        for x, y in self._rows():
            if x.shape[0] > 1:  # a one-row tail chunk is fine; check_pair wants ≥ 2 rows
                check_pair(x, y)
            acc.update(x, y)
        return acc.result()

    def grams(self):
        raise ValueError("this metric needs an n×n Gram; it cannot be streamed")

    def chunks(self, weights=None):
        return ((x, y, None) for x, y in self._rows())


class HDF5Pair:
    """Two HDF5 datasets of the same probe images, read image block by image block (~32 MiB),
    resized and reshaped; memory O((p1 + p2)²) on the moment route, O(n²) on the Gram route."""

    bk = NUMPY

    def __init__(self, metric, da, db, reshape, resize_method):
        if da.shape[0] != db.shape[0]:
            raise ValueError(
                f"Expected both layers to hold the same probe images, got {da.shape[0]} and "
                f"{db.shape[0]} samples"
            )
        if metric.flattens_per_sample and reshape is None and da.shape != db.shape:
            raise ValueError(
                f"{metric.name} needs equal shapes, got {tuple(da.shape)} and {tuple(db.shape)}"
            )
        self.da, self.db, self.metric = da, db, metric
        self.reshape, self.resize = reshape, resize_method
        self.size = common_size(tuple(da.shape), tuple(db.shape), resize_method)
        x, y = self.read(0, 1)
        self.n_img, self.rows_per_image = da.shape[0], x.shape[0]
        self.shape = (self.n_img * self.rows_per_image, x.shape[1], y.shape[1])
        self._grams = None

    def _matrix(self, a):
        if self.size is not None:
            a = resize(a, self.size, self.resize)
        if self.metric.flattens_per_sample and self.reshape is None:
            return a.reshape(a.shape[0], -1)
        return as_matrix(a, self.reshape)

    def read(self, i0, i1):
        """Images i0:i1 of both layers as matrices."""
        a, b = self.da[i0:i1], self.db[i0:i1]
        if self.size is None and not (self.metric.flattens_per_sample and self.reshape is None):
            return prepare_pair(a, b, self.reshape, None)  # checks that the rows line up
        return self._matrix(a), self._matrix(b)

    def chunks(self, weights=None):
        r = self.rows_per_image
        step = max(1, chunk_rows(self.shape[1] + self.shape[2]) // r)
        for i0 in range(0, self.n_img, step):
            i1 = min(i0 + step, self.n_img)
            x, y = self.read(i0, i1)
            yield x, y, None if weights is None else weights[i0 * r : i1 * r]

    def moments(self, full, fourth, weights=None):
        acc = MomentAccumulator(self.shape[1], self.shape[2], full=full, fourth=fourth)
        for x, y, w in self.chunks(weights):
            acc.update(x, y, w)
        return acc.result()

    def grams(self):
        if self._grams is None:
            self._grams = (self._gram(self.da, self.shape[1]), self._gram(self.db, self.shape[2]))
        return self._grams

    def _gram(self, ds, p):
        r = self.rows_per_image

        def load(r0, r1):
            return np.asarray(self._matrix(ds[r0 // r : r1 // r]), dtype=np.float64)

        return centered_gram(load, gram_ranges(self.shape[0], p, r), self.shape[0])


def open_h5(path):
    """Open an activation file; a truncated or foreign file is a CorruptFileError, not OSError."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise CorruptFileError(
            f"activation file {path} cannot be read ({exc}); it is truncated or not an HDF5 "
            f"file (rule extract_acts writes it). {rebuild_hint(path)}"
        ) from exc


def dataset(h5, key, path):
    """Dataset ``key`` of an open activation file, or a CorruptFileError naming what it holds."""
    if key not in h5:
        raise CorruptFileError(
            f"activation file {path} has no dataset {key!r} (it holds {sorted(h5.keys())}); "
            f"it was written for other layers or is incomplete. {rebuild_hint(path)}"
        )
    return h5[key]
