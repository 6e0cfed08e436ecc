"""TwoNN intrinsic dimension: known IDs of synthetic data, and an independent reference fit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from prunesim.errors import DegenerateRepresentationError
from prunesim.intrinsic_dimension import (
    intrinsic_dimension,
    two_nearest_distances,
    twonn_from_distances,
)

AMBIENT = 50


def rotation(rng, dim: int = AMBIENT) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q


def sphere(n: int, d: int, rng) -> np.ndarray:
    """Uniform points on the d-sphere S^d in R^(d+1), rotated into R^50 (no boundary)."""
    g = rng.standard_normal((n, d + 1))
    return (g / np.linalg.norm(g, axis=1, keepdims=True)) @ rotation(rng)[: d + 1]


def gaussian_subspace(n: int, d: int, rng) -> np.ndarray:
    """Gaussian points on a random d-dimensional linear subspace of R^50."""
    return rng.standard_normal((n, d)) @ rotation(rng)[:d]


@pytest.mark.parametrize("d", [2, 5, 10])
@pytest.mark.parametrize("manifold", [sphere, gaussian_subspace])
def test_recovers_known_dimension_within_10_percent(manifold, d):
    points = manifold(2000, d, np.random.default_rng(d))
    estimate = intrinsic_dimension(points)["id"]
    assert estimate == pytest.approx(d, rel=0.10)


def test_matches_an_independent_reference_fit():
    """cdist + sort for the neighbours; lstsq through the origin on the authors' points."""
    rng = np.random.default_rng(3)
    points = sphere(700, 4, rng)
    dist = cdist(points, points)
    np.fill_diagonal(dist, np.inf)
    nearest = np.sort(dist, axis=1)[:, :2]
    r1, r2 = two_nearest_distances(points)
    np.testing.assert_allclose(r1, nearest[:, 0], rtol=1e-9)
    np.testing.assert_allclose(r2, nearest[:, 1], rtol=1e-9)
    mu = np.sort(nearest[:, 1] / nearest[:, 0])
    n = len(mu)
    x = np.log(mu[:-2])[: int(np.floor(0.9 * n))]
    y = -np.log(1 - np.arange(1, n + 1)[:-2] / n)[: len(x)]
    slope = np.linalg.lstsq(x[:, None], y, rcond=None)[0][0]
    result = intrinsic_dimension(points)
    assert result["id"] == pytest.approx(slope, rel=1e-10)
    assert result["n_used"] == len(x)
    assert result["r"] > 0.9


def test_duplicates_and_ties_are_dropped_and_shape_is_flattened():
    rng = np.random.default_rng(0)
    points = gaussian_subspace(300, 3, rng)
    with_duplicates = np.concatenate([points, points[:10]])
    result = intrinsic_dimension(with_duplicates.reshape(310, 5, 10))  # (n, c, h*w)-like
    # Both copies of each duplicated point have r1 = 0 (exactly, whatever the BLAS kernel), and
    # a point whose nearest neighbour is duplicated sees r1 == r2: a tie. Counted independently:
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    ties = int(np.sum(np.argmin(d[10:], axis=1) < 10))
    assert result["n_dropped"] == 20 + ties
    r1_all, _ = two_nearest_distances(with_duplicates)
    assert np.count_nonzero(r1_all == 0.0) == 20
    r1 = np.array([1.0, 1.0, 2.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    r2 = np.array([2.0, 1.0, 3.0, 1.0, 1.5, 1.2, 1.7, 1.1, 1.3])
    assert twonn_from_distances(r1, r2, fraction=1.0)["n_dropped"] == 2  # a tie, a zero
    assert intrinsic_dimension(points, resamples=3)["id_std"] >= 0


def test_degenerate_inputs_raise_a_clear_error():
    with pytest.raises(DegenerateRepresentationError, match="at least 3 points"):
        intrinsic_dimension(np.zeros((2, 4)))
    with pytest.raises(DegenerateRepresentationError, match="usable points"):
        intrinsic_dimension(np.zeros((50, 4)))  # a dead layer: every distance is 0
    with pytest.raises(DegenerateRepresentationError, match="NaN"):
        intrinsic_dimension(np.full((10, 4), np.nan))


def test_layer_dimensions_from_an_activation_file(tmp_path):
    import h5py

    from prunesim.errors import CorruptFileError
    from prunesim.intrinsic_dimension import layer_dimensions

    rng = np.random.default_rng(1)
    path = tmp_path / "acts.h5"
    with h5py.File(path, "w") as h5:
        h5["conv1"] = sphere(1500, 3, rng).reshape(1500, 2, 5, 5).astype(np.float32)
        h5["dead"] = np.zeros((1500, 4), np.float32)
    records = layer_dimensions(path, ["conv1", "dead"])
    assert records[0]["id"] == pytest.approx(3, rel=0.1)
    assert records[0]["note"] is None
    assert records[1]["id"] is None
    assert "usable points" in records[1]["note"]
    with pytest.raises(CorruptFileError, match="no layer 'pool9'"):
        layer_dimensions(path, ["pool9"])
    path.write_bytes(b"not hdf5")
    with pytest.raises(CorruptFileError, match="cannot be read"):
        layer_dimensions(path, ["conv1"])
