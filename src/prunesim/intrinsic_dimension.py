"""Intrinsic dimension of a layer's representation: the TwoNN estimator (Facco et al. 2017).

The paper's first author measured how the intrinsic dimension (ID) of representations
changes along the layers of trained CNNs (Ansuini et al. 2019, "Intrinsic dimension of data
representations in deep neural networks"). The paper under study names it as a direction
for future work; here it is one number per layer and network, computed on the probe set.

TwoNN: for every point, ``mu = r2 / r1``, the ratio of the distances to its second and first
nearest neighbours. If the density is locally constant, ``mu`` is Pareto distributed with
exponent ``d`` (the ID), so ``-log(1 - F(mu)) = d log(mu)``: ``d`` is the slope of a line
through the origin fitted to the empirical CDF.

Conventions checked against the authors' published code (``estimate`` in
``ansuini/IntrinsicDimDeep``, read via the project's search tool; written anew here):

- points with ``r1 == 0`` (duplicates) and with ``r1 == r2`` (degenerate ties) are dropped;
- ``mu`` is sorted, the empirical CDF is ``F_i = i / N`` (i = 1..N), and the two largest
  ``mu`` are left out (``1 - F`` is 0 at the last one);
- the fit uses the smallest ``fraction`` (0.9) of the ``mu``: the largest 10 % are discarded,
  since they come from the sparsest neighbourhoods, where the constant-density assumption
  fails first;
- least squares through the origin (sklearn's ``LinearRegression(fit_intercept=False)``
  there; the closed form ``sum(xy) / sum(x^2)`` here).

The authors also average over random 90 % subsamples (``computeID``, 20 resamples) to give an
error bar; ``resamples`` does the same (default 0: one fit on all points).
"""

from __future__ import annotations

import numpy as np

from prunesim.errors import DegenerateRepresentationError

FRACTION = 0.9  # the authors' default: fit on the smallest 90 % of mu
_BLOCK = 1024  # rows of the distance matrix computed at a time (memory: _BLOCK x n floats)


def two_nearest_distances(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(r1, r2)``: each point's Euclidean distance to its first and second nearest neighbour.

    The neighbours are found with ``|x|^2 + |y|^2 - 2 x.y`` in float64, a block of rows at a
    time, so a 5000 x 16384 layer never needs the n x n matrix at once; their distances are then
    recomputed from the differences, so duplicates give exactly 0 and ties are exact.
    """
    x = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    n = len(x)
    if n < 3:
        raise DegenerateRepresentationError(f"TwoNN needs at least 3 points, got {n}")
    sq = np.einsum("ij,ij->i", x, x)
    r1, r2 = np.empty(n), np.empty(n)
    for start in range(0, n, _BLOCK):
        rows = slice(start, min(start + _BLOCK, n))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * (x[rows] @ x.T)
        d2[np.arange(d2.shape[0]), np.arange(rows.start, rows.stop)] = np.inf  # not itself
        nearest = np.argpartition(d2, 1, axis=1)[:, :2]
        # The expansion only finds the two neighbours: its round-off depends on the BLAS kernel,
        # so a duplicate would not be exactly 0, nor two copies exactly as far. Direct
        # differences make both exact on every CPU.
        first = np.linalg.norm(x[rows] - x[nearest[:, 0]], axis=1)
        second = np.linalg.norm(x[rows] - x[nearest[:, 1]], axis=1)
        r1[rows], r2[rows] = np.minimum(first, second), np.maximum(first, second)
    return r1, r2


def twonn_from_distances(r1: np.ndarray, r2: np.ndarray, fraction: float = FRACTION) -> dict:
    """The TwoNN fit from nearest-neighbour distances: ``{"id", "r", "n_used", "n_dropped"}``.

    ``r`` is the Pearson correlation of the fitted points (close to 1 when the Pareto law
    holds); ``n_dropped`` counts duplicates and ties removed before the fit.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    good = (r1 > 0) & (r1 != r2)
    mu = np.sort(r2[good] / r1[good])
    n = len(mu)
    n_fit = int(np.floor(n * fraction))
    if n_fit < 3 or n < 5:
        raise DegenerateRepresentationError(
            f"TwoNN has {n} usable points ({int((~good).sum())} duplicates or ties dropped); "
            "need at least 5"
        )
    x = np.log(mu[:-2])[:n_fit]
    y = -np.log(1.0 - np.arange(1, n + 1, dtype=np.float64)[:-2] / n)[:n_fit]
    if not np.any(x > 0):
        raise DegenerateRepresentationError("TwoNN: every ratio r2/r1 is 1; the ID is undefined")
    slope = float(np.dot(x, y) / np.dot(x, x))
    r = float(np.corrcoef(x, y)[0, 1]) if np.std(x) > 0 else float("nan")
    return {"id": slope, "r": r, "n_used": int(len(x)), "n_dropped": int((~good).sum())}


def intrinsic_dimension(
    points: np.ndarray, fraction: float = FRACTION, resamples: int = 0, seed: int = 0
) -> dict:
    """TwoNN intrinsic dimension of ``points`` (n_samples, ...), flattened per sample.

    Returns :func:`twonn_from_distances`'s dict; with ``resamples > 0`` also ``id_mean`` and
    ``id_std`` over that many random 90 % subsamples of the points (the authors' error bar).
    """
    x = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if not np.all(np.isfinite(x)):
        raise DegenerateRepresentationError("activations contain NaN or infinite values")
    result = twonn_from_distances(*two_nearest_distances(x), fraction=fraction)
    if resamples:
        rng = np.random.default_rng(seed)
        keep = int(round(0.9 * len(x)))
        ids = [
            twonn_from_distances(
                *two_nearest_distances(x[rng.permutation(len(x))[:keep]]), fraction=fraction
            )["id"]
            for _ in range(resamples)
        ]
        result.update(id_mean=float(np.mean(ids)), id_std=float(np.std(ids)))
    return result


def layer_dimensions(
    h5_path, layers, fraction: float = FRACTION, resamples: int = 0, seed: int = 0
) -> list[dict]:
    """TwoNN ID of every ``layers`` dataset of one network's activation file (workflow job).

    One record per layer: ``{"layer", "id", "r", "n_used", "n_dropped", "note"}`` (+ ``id_mean``,
    ``id_std`` with ``resamples``). A layer whose ID is undefined (e.g. a layer that pruning
    left entirely zero: every point is a duplicate) gets ``id: None`` and a ``note`` saying why,
    as the similarity tables do. A layer is read whole, as float64 (5000 probe points of a
    16,384-feature layer take 0.66 GB).
    """
    import h5py

    from prunesim.errors import CorruptFileError, rebuild_hint

    records = []
    try:
        h5 = h5py.File(h5_path, "r")
    except OSError as exc:
        raise CorruptFileError(
            f"activation file {h5_path} cannot be read ({exc}). {rebuild_hint(h5_path)}"
        ) from None
    with h5:
        for layer in layers:
            if layer not in h5:
                raise CorruptFileError(
                    f"activation file {h5_path} has no layer {layer!r} (it has "
                    f"{', '.join(h5)}). {rebuild_hint(h5_path)}"
                )
            record = {"layer": layer, "id": None, "r": None, "n_used": 0, "n_dropped": 0}
            try:
                record.update(intrinsic_dimension(h5[layer][()], fraction, resamples, seed))
                record["note"] = None
            except DegenerateRepresentationError as exc:
                record["note"] = str(exc)
            records.append(record)
    return records
