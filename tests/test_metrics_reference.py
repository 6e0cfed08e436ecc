"""Every metric against an independent float64 reference written here from the definitions.

The references use the data directly (SVDs, n×n Grams, np.cov + pinv, QR), never the moment
route the library takes, so agreement to 1e-8 checks the algebra as well as the code.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from prunesim.metrics import as_matrix, similarity

TOL = 1e-8
RTOL = 1e-6  # the library's default relative singular-value cut-off


# --- references -------------------------------------------------------------------------------


def center(x):
    return x - x.mean(0)


def basis(x):
    """Orthonormal basis of the column space of centered x (relative singular-value cut)."""
    u, s, _ = np.linalg.svd(center(x), full_matrices=False)
    return u[:, s > RTOL * s[0]] if s.size and s[0] > 0 else u[:, :0]


def google_mean(rho, threshold):
    """google/svcca cca_core.sum_threshold + "mean"."""
    for i in range(len(rho)):
        if np.sum(rho[:i]) / np.sum(rho) >= threshold:
            return np.mean(rho[:i])
    return np.mean(rho)


def ref_correlations(x, y):
    return np.linalg.svd(basis(x).T @ basis(y), compute_uv=False)


def ref_mean_cca(x, y, truncate=None):
    rho = ref_correlations(x, y)
    return rho.mean() if truncate is None else google_mean(rho, truncate)


def svd_reduction(x, keep=0.99):
    """The paper code's preprocessing.svd_reduction: centered top-k PCs, k by cumsum(s²)."""
    u, s, _ = np.linalg.svd(center(x), full_matrices=False)
    var = s**2
    k = int(np.sum(np.cumsum(var) / var.sum() <= keep)) + 1
    k = min(k, int(np.sum(s > RTOL * s[0])))
    return u[:, :k] * s[:k]


def ref_svcca(x, y, keep=0.99, truncate=None):
    return ref_mean_cca(svd_reduction(x, keep), svd_reduction(y, keep), truncate)


def independent_neurons(acts):
    """Neuron indices (rows of acts (p, n)) google keeps, plus exact dependencies dropped.

    Dependencies go largest variance first (ties: row order), so the kept set follows the
    neurons, not their order; indices are returned ascending.
    """
    var = acts.var(1)
    alive = np.flatnonzero(var > RTOL**2 * var.max())
    kept = []
    for j in alive[np.argsort(-var[alive], kind="stable")]:
        trial = center(acts[kept + [j]].T)
        if np.linalg.matrix_rank(trial, tol=RTOL * np.linalg.norm(trial[:, -1])) == len(kept) + 1:
            kept.append(j)
    return np.sort(kept)


def positivedef_matrix_sqrt(array):
    w, v = np.linalg.eigh(array)
    return v @ np.diag(np.sqrt(w)) @ v.T


def google_cca(acts1, acts2):
    """cca_core.get_cca_similarity (epsilon = 0) on (neurons, datapoints) arrays."""
    numx = acts1.shape[0]
    covariance = np.cov(acts1, acts2)
    sxx, sxy = covariance[:numx, :numx], covariance[:numx, numx:]
    syy = covariance[numx:, numx:]
    xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    invsqrt_xx = positivedef_matrix_sqrt(np.linalg.pinv(sxx))
    invsqrt_yy = positivedef_matrix_sqrt(np.linalg.pinv(syy))
    u, s, v = np.linalg.svd(invsqrt_xx @ sxy @ invsqrt_yy)
    return u, np.abs(s), v


def google_compute_pwcca(acts1, acts2):
    """pwcca.compute_pwcca(acts1, acts2, epsilon=0) on its working branch (acts1 no larger).

    (neurons, datapoints) arrays. The canonical directions are u of svd(arr) with acts1
    first; direction i gets neuron i's mean back before the QR, so their signs matter.
    """
    assert acts1.shape[0] <= acts2.shape[0], "google's else-branch is broken (PR #9)"
    u, s, _ = google_cca(acts1, acts2)
    means = acts1.mean(1, keepdims=True)
    dirns = u.T @ (acts1 - means) + means
    p, _ = np.linalg.qr(dirns.T)
    w = np.sum(np.abs(p.T @ acts1.T), axis=1)
    return np.sum(w / w.sum() * s)


def ref_pwcca(x, y, weights="svcca"):
    """google's PWCCA with the smaller layer (after dropping neurons) first; (n, p) inputs."""
    acts1, acts2 = x.T, y.T
    ix, iy = independent_neurons(acts1), independent_neurons(acts2)
    a1, a2 = acts1[ix], acts2[iy]
    if len(ix) > len(iy):
        a1, a2 = a2, a1
    if weights != "morcos":
        return google_compute_pwcca(a1, a2)
    u, s, _ = google_cca(a1, a2)
    means = a1.mean(1, keepdims=True)
    h = (u.T @ positivedef_matrix_sqrt(np.linalg.pinv(np.cov(a1))) @ (a1 - means)).T
    h /= np.linalg.norm(h, axis=0)
    w = np.abs(h.T @ a1.T).sum(1)
    return np.sum(w / w.sum() * s)


def kornblith_center(gram, unbiased=False):
    gram = gram.copy()
    n = gram.shape[0]
    if unbiased:
        np.fill_diagonal(gram, 0)
        means = np.sum(gram, 0) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0)
        return gram
    h = np.eye(n) - np.ones((n, n)) / n
    return h @ gram @ h


def kornblith_rbf(x, threshold=1.0):
    dots = x @ x.T
    sq = np.diag(dots)
    d2 = -2 * dots + sq[:, None] + sq[None, :]
    return np.exp(-d2 / (2 * threshold**2 * np.median(d2)))


def ref_cka(x, y, debiased=False, kernel="linear"):
    if kernel == "rbf":
        k, l_ = kornblith_rbf(x), kornblith_rbf(y)
    else:
        k, l_ = x @ x.T, y @ y.T  # uncentered Grams: the centering is the reference's job
    kc, lc = kornblith_center(k, debiased), kornblith_center(l_, debiased)
    return np.sum(kc * lc) / (np.linalg.norm(kc) * np.linalg.norm(lc))


def psd_sqrt(k):
    w, v = np.linalg.eigh(k)
    w = np.where(w > k.shape[0] * 1e-15 * w.max(), w, 0.0)
    return (v * np.sqrt(w)) @ v.T


def ref_nbs(x, y):
    """Tang et al.: tr((Kc^½ Lc Kc^½)^½) / sqrt(tr Kc tr Lc), eigenvalues at round-off -> 0."""
    h = np.eye(x.shape[0]) - 1.0 / x.shape[0]
    kc, lc = h @ x @ x.T @ h, h @ y @ y.T @ h
    r = psd_sqrt(kc)
    lam = np.linalg.eigvalsh(r @ lc @ r)
    lam = np.where(lam > x.shape[0] * 1e-15 * lam.max(), lam, 0.0)
    return np.sqrt(lam).sum() / np.sqrt(np.trace(kc) * np.trace(lc))


def ref_cosine(x, y):
    return abs(np.sum(x * y)) / (np.linalg.norm(x) * np.linalg.norm(y))


REFERENCES = {
    "mean_cca": ref_mean_cca,
    "svcca": ref_svcca,
    "pwcca": ref_pwcca,
    "cka": ref_cka,
    "nbs": ref_nbs,
    "cosine": ref_cosine,
}


# --- cases ------------------------------------------------------------------------------------


def _relu_pair(rng, n, p1, p2):
    x = np.maximum(rng.standard_normal((n, p1)) @ rng.standard_normal((p1, p1)) + 0.3, 0)
    y = np.maximum(x @ rng.standard_normal((p1, p2)) * 0.5 + rng.standard_normal((n, p2)), 0)
    return x, y


def make_case(name, seed=0):
    rng = np.random.default_rng(seed)
    if name == "random":
        return _relu_pair(rng, 200, 10, 14)
    if name == "orthogonal":
        x = rng.standard_normal((150, 9)) + 1.0
        return x, x @ ortho_group.rvs(9, random_state=seed)
    if name == "scaled_shifted":
        x, _ = _relu_pair(rng, 150, 9, 9)
        return x, 3.7 * x + rng.uniform(-5, 5, 9)
    if name == "rank_deficient":
        x, y = _relu_pair(rng, 160, 10, 12)
        x[:, 7] = x[:, 0] - 2.0 * x[:, 3]
        x[:, 9] = x[:, 2]
        return x, y
    if name == "dead_unit":
        x, y = _relu_pair(rng, 160, 10, 12)
        x[:, [1, 6]] = 0.0
        y[:, 4] = 0.0
        return x, y
    if name == "n_le_p":
        return _relu_pair(rng, 30, 45, 40)
    raise KeyError(name)


CASES = ["random", "orthogonal", "scaled_shifted", "rank_deficient", "dead_unit", "n_le_p"]
METRIC_NAMES = ["mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", METRIC_NAMES)
def test_matches_reference(name, case):
    x, y = make_case(case)
    if name == "cosine":
        y = y[:, : x.shape[1]] if y.shape[1] >= x.shape[1] else y
        x = x[:, : y.shape[1]]
    expected = REFERENCES[name](x, y)
    assert similarity(name, x, y) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("reshape", ["channels", "flatten"])
@pytest.mark.parametrize("name", ["mean_cca", "svcca", "pwcca", "cka", "nbs"])
def test_conv_matches_reference(name, reshape):
    rng = np.random.default_rng(3)
    a = np.maximum(rng.standard_normal((14, 6, 5, 5)) + 0.2, 0)
    b = np.maximum(np.einsum("nchw,cd->ndhw", a, rng.standard_normal((6, 8))), 0)
    b += 0.3 * rng.standard_normal(b.shape)
    # the paper's reshape, written out with the transposition it names
    ref_x = a.transpose(0, 2, 3, 1).reshape(-1, 6) if reshape == "channels" else a.reshape(14, -1)
    ref_y = b.transpose(0, 2, 3, 1).reshape(-1, 8) if reshape == "channels" else b.reshape(14, -1)
    np.testing.assert_array_equal(as_matrix(a, reshape), ref_x)
    expected = REFERENCES[name](ref_x, ref_y)
    assert similarity(name, a, b, reshape=reshape) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("case", ["random", "dead_unit", "rank_deficient"])
def test_pwcca_morcos_weights(case):
    x, y = make_case(case)
    got = similarity("pwcca", x, y, weights="morcos")
    assert got == pytest.approx(ref_pwcca(x, y, "morcos"), abs=TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pwcca_larger_layer_first_is_googles_smaller_first(seed):
    """p1 > p2: the value is google's compute_pwcca(smaller, larger), whose canonical
    directions (u of the smaller-first SVD) can differ in sign from v of ours, which would
    move the value once the means are added back."""
    small, big = make_case("random", seed)  # 10 and 14 neurons
    expected = google_compute_pwcca(small.T, big.T)
    assert similarity("pwcca", big, small) == pytest.approx(expected, abs=TOL)
    assert similarity("pwcca", small, big) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("case", ["random", "scaled_shifted"])
def test_truncated_mean_is_googles_mean(case):
    x, y = make_case(case)
    _, s, _ = google_cca(x.T, y.T)
    assert similarity("mean_cca", x, y, truncate=0.98) == pytest.approx(
        google_mean(s, 0.98), abs=TOL
    )
    assert similarity("svcca", x, y, truncate=0.98) == pytest.approx(
        ref_svcca(x, y, truncate=0.98), abs=TOL
    )


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_svcca_keep(keep):
    x, y = make_case("random", seed=4)
    assert similarity("svcca", x, y, keep=keep) == pytest.approx(ref_svcca(x, y, keep), abs=TOL)


@pytest.mark.parametrize("form", ["feature", "gram"])
@pytest.mark.parametrize("case", ["random", "dead_unit", "n_le_p"])
def test_debiased_cka(case, form):
    x, y = make_case(case)
    got = similarity("cka", x, y, debiased=True, form=form)
    assert got == pytest.approx(ref_cka(x, y, debiased=True), abs=TOL)


@pytest.mark.parametrize("case", ["random", "n_le_p"])
def test_rbf_cka(case):
    x, y = make_case(case)
    got = similarity("cka", x, y, kernel="rbf")
    assert got == pytest.approx(ref_cka(x, y, kernel="rbf"), abs=TOL)


def test_pwcca_with_svd_step():
    """google tutorial's "pwcca on svd99": PWCCA of the SVD-reduced (zero-mean) data."""
    x, y = make_case("random", seed=5)
    expected = ref_pwcca(svd_reduction(x), svd_reduction(y))
    assert similarity("pwcca", x, y, keep=0.99) == pytest.approx(expected, abs=TOL)
