"""SVCCA (Raghu et al. 2017): mean CCA after keeping each layer's top principal directions.

Per side, with Xc = U S Vᵀ (column-centered, singular values descending),

    k = #{j : cumsum(s²)ⱼ / Σ s² ≤ keep} + 1         (the paper code's rule, keep = 0.99)
    X' = Xc V_k = U_k S_k                             (n, k)

then SVCCA = mean of the min(k1, k2) canonical correlations of X' and Y'. The SVD comes from
eigh(Xcᵀ Xc) (s² = eigenvalues), so it streams; k is capped at the numerical rank (``rtol``).
The default is the plain mean (the paper's Eq. 3). ``truncate: 0.98`` gives google/svcca's
reported "mean", which the authors' code printed: it equals their notebook's "mean CCA" and is,
in our judgement, what the paper's figures show (README.md). details report k1, k2.
With n − 1 ≤ max(p1, p2) the value is inflated and gets a note (``_cca.few_rows_note``).

Settings: reshape ("channels"), keep (0.99), truncate (null), rtol (1e-6).
"""

from __future__ import annotations

from ._base import Metric
from ._cca import few_rows_note, mean_correlation, moments_plan, validate_cca
from ._checks import check_fraction
from ._linalg import canonical_correlations, require_rank, spectrum

DEFAULTS = {"keep": 0.99, "truncate": None, "rtol": 1e-6}


def kept_dimension(lam, rank: int, keep: float, bk) -> int:
    """k = #{cumsum(λ)/Σλ ≤ keep} + 1 (λ = s², descending), at most the numerical rank."""
    lam = bk.clip(lam, 0.0, None)
    share = bk.to_numpy(lam.cumsum(0) / lam.sum())
    return min(int((share <= keep).sum()) + 1, rank)


def reduced_whitener(mom, side, keep, rtol):
    """W (p, k) with Xc W = U_k (orthonormal), the whitened SVD-reduced data."""
    lam, vec, rank = spectrum(mom, side, rtol)
    require_rank(rank, side)
    k = kept_dimension(lam, rank, keep, mom.bk)
    return vec[:, :k] / mom.bk.lib.sqrt(lam[:k]), k


def from_moments(mom, *, keep=0.99, truncate=None, rtol=1e-6):
    wx, kx = reduced_whitener(mom, "x", keep, rtol)
    wy, ky = reduced_whitener(mom, "y", keep, rtol)
    rho = canonical_correlations(mom, wx, wy)
    details = {"kept": [kx, ky], "note": few_rows_note(mom)}
    return mean_correlation(rho, truncate, mom.bk), details


def validate(settings):
    validate_cca(settings)
    check_fraction(settings["keep"], "keep")


METRIC = Metric(
    name="svcca",
    reshape="channels",
    defaults=DEFAULTS,
    validate=validate,
    plan=moments_plan,
    from_moments=from_moments,
)
