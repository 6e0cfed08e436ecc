"""Mean CCA: the mean of all canonical correlations between two layers.

Inputs X (n, p1), Y (n, p2), rows = samples. With Xc, Yc the column-centered matrices and
Qx, Qy orthonormal bases of their column spaces (directions whose singular value exceeds
``rtol`` times the largest),

    mean_cca = mean(σ(Qxᵀ Qy)),   min(rank X, rank Y) correlations ρᵢ ∈ [0, 1].

Computed from the moment blocks: Qx = Xc Vx Λx^{-1/2} (eigh of Xcᵀ Xc), so no pseudo-inverse
of a singular covariance is ever taken. Deviation from google/svcca: dead units and exact
linear dependencies are dropped instead of producing NaN/LinAlgError; ``truncate: 0.98``
gives google's reported "mean" (see ``_cca.mean_correlation``). The authors' notebook's "mean
CCA" is not this metric but ``svcca`` with ``truncate: 0.98`` (SVD step first; README.md).
With n − 1 ≤ max(p1, p2) the value is 1 by construction and gets a note
(``_cca.few_rows_note``).

Settings: reshape (default "channels"), rtol (1e-6), truncate (null).
"""

from __future__ import annotations

from ._base import Metric
from ._cca import few_rows_note, mean_correlation, moments_plan, validate_cca
from ._linalg import canonical_correlations, spectrum, whitener

DEFAULTS = {"rtol": 1e-6, "truncate": None}


def from_moments(mom, *, rtol=1e-6, truncate=None):
    """(value, details) from centered moments; details hold the ranks used."""
    rho = canonical_correlations(mom, whitener(mom, "x", rtol), whitener(mom, "y", rtol))
    ranks = [spectrum(mom, side, rtol)[2] for side in ("x", "y")]
    details = {"ranks": ranks, "note": few_rows_note(mom)}
    return mean_correlation(rho, truncate, mom.bk), details


METRIC = Metric(
    name="mean_cca",
    reshape="channels",
    defaults=DEFAULTS,
    validate=validate_cca,
    plan=moments_plan,
    from_moments=from_moments,
)
