"""prunesim.metrics._two_stage: the band reduction keeps the eigenvalues of numpy's eigvalsh."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import eig_banded

from prunesim.metrics import _two_stage


def spd(n: int, rank: int | None = None, seed: int = 0) -> np.ndarray:
    """A symmetric PSD matrix, rank-deficient when ``rank`` < n (as Grams of ReLU layers)."""
    x = np.random.default_rng(seed).standard_normal((n, rank or n + 3))
    return x @ x.T


def relative_error(a: np.ndarray, lam: np.ndarray) -> float:
    exact = np.linalg.eigvalsh(a)
    return float(np.max(np.abs(np.sort(lam) - exact)) / np.max(np.abs(exact)))


@pytest.mark.parametrize("b", [1, 2, 5, 8])
@pytest.mark.parametrize("extra", [1, 2, 3, 7, 17, 40])
def test_band_form_keeps_the_eigenvalues(b, extra):
    """Every tail shape: n just above b + 1, partial last panels, several panels."""
    a = spd(b + extra, seed=b * 100 + extra)
    band = _two_stage.band_form(a, b)
    assert band.shape == (b + 1, a.shape[0])
    assert relative_error(a, eig_banded(band, lower=True, eigvals_only=True)) < 1e-13


def test_band_form_of_a_rank_deficient_and_an_indefinite_matrix():
    low_rank = spd(90, rank=30)
    lam = eig_banded(_two_stage.band_form(low_rank, 8), lower=True, eigvals_only=True)
    assert relative_error(low_rank, lam) < 1e-13
    assert np.sum(np.abs(lam) > 1e-10 * lam.max()) == 30  # the rank survives the reduction
    indefinite = spd(70, seed=3) - 40 * np.eye(70)
    lam = eig_banded(_two_stage.band_form(indefinite, 6), lower=True, eigvals_only=True)
    assert relative_error(indefinite, lam) < 1e-13


def test_only_the_lower_triangle_is_read():
    a = spd(60, seed=5)
    garbage = a + np.triu(np.full_like(a, 1e6), 1)
    lam = eig_banded(_two_stage.band_form(garbage, 7), lower=True, eigvals_only=True)
    assert relative_error(a, lam) < 1e-13


@pytest.mark.parametrize(
    ("env", "single"),
    [
        ({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "8"}, True),
        ({"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "1"}, False),
        ({"OMP_NUM_THREADS": "1"}, True),
        ({"MKL_NUM_THREADS": "2"}, False),
    ],
)
def test_single_threaded_blas_reads_the_first_variable_set(monkeypatch, env, single):
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert _two_stage.single_threaded_blas() is single


def test_threaded_blas_keeps_numpy_eigvalsh(monkeypatch):
    monkeypatch.setattr(_two_stage, "single_threaded_blas", lambda: False)
    monkeypatch.setattr(_two_stage, "band_form", lambda a, b: pytest.fail("two-stage taken"))
    large = spd(_two_stage.TWO_STAGE_MIN + 30, seed=2)
    np.testing.assert_array_equal(_two_stage.eigvalsh(large), np.linalg.eigvalsh(large))


def test_eigvalsh_takes_the_two_stage_path_above_its_threshold(monkeypatch):
    monkeypatch.setattr(_two_stage, "single_threaded_blas", lambda: True)
    calls = []
    band_form = _two_stage.band_form
    monkeypatch.setattr(_two_stage, "band_form", lambda a, b: calls.append(b) or band_form(a, b))
    small = spd(_two_stage.TWO_STAGE_MIN - 1)
    np.testing.assert_array_equal(_two_stage.eigvalsh(small), np.linalg.eigvalsh(small))
    assert calls == []
    large = spd(_two_stage.TWO_STAGE_MIN + 30, seed=1)
    lam = _two_stage.eigvalsh(large)
    assert calls == [_two_stage.BAND]
    assert np.all(np.diff(lam) >= 0)  # ascending, like numpy's
    assert relative_error(large, lam) < 1e-13


def test_without_thread_variables_the_cpu_count_decides(monkeypatch):
    """No variable set: one usable CPU means one BLAS thread (affinity where the OS has it)."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delattr(_two_stage.os, "sched_getaffinity", raising=False)  # as on macOS
    monkeypatch.setattr(_two_stage.os, "cpu_count", lambda: 1)
    assert _two_stage.single_threaded_blas() is True
    monkeypatch.setattr(_two_stage.os, "cpu_count", lambda: 8)
    assert _two_stage.single_threaded_blas() is False
