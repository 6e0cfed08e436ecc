"""NBS (Tang et al. 2020): normalised Bures similarity of the centered linear Grams.

Inputs X (n, p1), Y (n, p2); K = Xc Xcᵀ, L = Yc Ycᵀ (n, n), Xc, Yc column-centered:

    NBS = tr((K^{1/2} L K^{1/2})^{1/2}) / sqrt(tr K · tr L) = ‖Xcᵀ Yc‖_* / (‖Xc‖_F ‖Yc‖_F)

(‖·‖_* = nuclear norm; with K = Xc Xcᵀ the fidelity equals the nuclear norm of the
cross-product, verified in the tests). The nuclear form is exact to ~1e-15, unlike square roots
of Gram eigenvalues (~1e-7), and needs only the cross moments, so it streams. When n is small
against p1, p2 (flattened early conv layers) the Gram form is cheaper: pivoted Cholesky
K = Gx Gxᵀ, L = Gy Gyᵀ, then NBS = ‖Gxᵀ Gy‖_* / sqrt(tr K tr L). ``form: auto`` picks by flop
count. The paper's code used torch.eig (removed in torch 2) and never summed the terms.

Settings: reshape ("flatten"), form ("auto" | "feature" | "gram"). Values in [0, 1].
"""

from __future__ import annotations

import numpy as np

from ..errors import DegenerateRepresentationError
from ._base import Metric
from ._checks import check_choice
from ._linalg import nuclear_norm

DEFAULTS = {"form": "auto"}


def _value(fid: float, tx: float, ty: float) -> float:
    for t, which in ((tx, "x (layer a)"), (ty, "y (layer b)")):
        if t <= 0:
            raise DegenerateRepresentationError(
                f"{which} has no variance (all-zero or constant activations), so NBS is undefined"
            )
    return float(min(max(fid / np.sqrt(tx * ty), 0.0), 1.0))


def from_moments(mom, *, form="auto"):
    """Nuclear form from the cross block: ‖cxy‖_* / sqrt(‖Xc‖²_F ‖Yc‖²_F)."""
    if mom.ssx <= 0 or mom.ssy <= 0:
        return _value(0.0, mom.ssx, mom.ssy), {}
    return _value(nuclear_norm(mom.cxy, mom.bk), mom.ssx, mom.ssy), {"form": "feature"}


def from_gram(kx, ky, bk, *, form="auto"):
    """Gram form; kx, ky are (n, n) linear Grams of the data (centered here)."""
    from .cka import center_gram

    kc, lc = center_gram(kx, bk), center_gram(ky, bk)
    tx, ty = bk.item(kc.trace()), bk.item(lc.trace())
    if tx <= 0 or ty <= 0:
        return _value(0.0, tx, ty), {}
    # rank cut just above the round-off level of a Gram (eigenvalues ~ n·ε·λ_max)
    gx, gy = bk.psd_factor(kc, 1e-6), bk.psd_factor(lc, 1e-6)
    return _value(nuclear_norm(gx.T @ gy, bk), tx, ty), {"form": "gram"}


def _feature_cost(n, p1, p2):
    return 2.0 * n * p1 * p2 + 10.0 * min(p1, p2) ** 3


def _gram_cost(n, p1, p2):
    r1, r2 = min(n, p1), min(n, p2)
    return n * n * (p1 + p2) + 2.0 * n**3 / 3 + 2.0 * n * r1 * r2 + 10.0 * min(r1, r2) ** 3


def plan(n, p1, p2, settings) -> str:
    if settings["form"] != "auto":
        return "gram" if settings["form"] == "gram" else "moments"
    return "gram" if _gram_cost(n, p1, p2) < _feature_cost(n, p1, p2) else "moments"


def validate(settings):
    check_choice(settings["form"], "form", ("auto", "feature", "gram"))


METRIC = Metric(
    name="nbs",
    reshape="flatten",
    defaults=DEFAULTS,
    validate=validate,
    plan=plan,
    from_moments=from_moments,
    needs_full=lambda s: False,
    from_gram=from_gram,
)
