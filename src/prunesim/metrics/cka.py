"""CKA (Kornblith et al. 2019): centered kernel alignment, linear by default.

Inputs X (n, p1), Y (n, p2). With Xc, Yc column-centered, K = Xc Xcᵀ, L = Yc Ycᵀ (n, n):

    CKA = ⟨K, L⟩_F / (‖K‖_F ‖L‖_F) = ‖Ycᵀ Xc‖²_F / (‖Xcᵀ Xc‖_F ‖Ycᵀ Yc‖_F)

The feature form (right) costs n·(p1 + p2)² and streams; the Gram form n²·(p1 + p2). ``form:
auto`` picks the cheaper (Gram when n < p1 + p2, e.g. flattened early conv layers); both give
the same value to round-off (tested). The paper's code has a centering bug on master
(K − K.mean(0) − K.mean(1) + K.mean() without keepdims); this is the correct double centering.

Options:
- ``debiased: true``: the unbiased HSIC estimator (Song et al. 2012) as in Kornblith's
  ``feature_space_linear_cka(debiased=True)`` / ``cka(..., debiased=True)``; it can be slightly
  negative for unrelated layers (clipped to [-1, 1], not [0, 1]); needs n ≥ 4.
- ``kernel: rbf``: K_ij = exp(−‖xᵢ − xⱼ‖² / (2 σ²)), σ² = rbf_threshold² · median ‖xᵢ − xⱼ‖²
  (Kornblith's ``gram_rbf``, median over all n² pairs); always Gram form.

Settings: reshape ("flatten"), kernel ("linear"), debiased (false), rbf_threshold (1.0),
form ("auto" | "feature" | "gram"). Values in [0, 1] (round-off clipped).
"""

from __future__ import annotations

from ..errors import DegenerateRepresentationError
from ._base import Metric
from ._checks import check_choice

DEFAULTS = {"kernel": "linear", "debiased": False, "rbf_threshold": 1.0, "form": "auto"}


def _undefined(which: str):
    return DegenerateRepresentationError(
        f"{which} has no variance (all-zero or constant activations), so CKA is undefined"
    )


def _ratio(num, den_x, den_y, debiased) -> float:
    if den_x <= 0:
        raise _undefined("x (layer a)")
    if den_y <= 0:
        raise _undefined("y (layer b)")
    value = num / (den_x * den_y) ** 0.5
    return min(max(value, -1.0 if debiased else 0.0), 1.0)


def _debias(xty, rxy, ssx, ssy, n):
    """Kornblith's _debiased_dot_product_similarity_helper (unbiased HSIC, up to a factor)."""
    return xty - n / (n - 2.0) * rxy + ssx * ssy / ((n - 1) * (n - 2))


def from_moments(mom, *, kernel="linear", debiased=False, rbf_threshold=1.0, form="auto"):
    """Feature form: ‖cxy‖²_F / (‖cxx‖_F ‖cyy‖_F) from the moment blocks."""
    bk = mom.bk
    num = bk.item((mom.cxy * mom.cxy).sum())
    dx = bk.item((mom.cxx * mom.cxx).sum())
    dy = bk.item((mom.cyy * mom.cyy).sum())
    if debiased:
        n = mom.n
        num = _debias(num, mom.rxy, mom.ssx, mom.ssy, n)
        dx = _debias(dx, mom.rxx, mom.ssx, mom.ssx, n)
        dy = _debias(dy, mom.ryy, mom.ssy, mom.ssy, n)
    if mom.ssx <= 0:
        raise _undefined("x (layer a)")
    if mom.ssy <= 0:
        raise _undefined("y (layer b)")
    return _ratio(num, dx, dy, debiased), {"form": "feature"}


def center_gram(k, bk, unbiased=False):
    """Double centering H K H in O(n²), or Kornblith's U-centering when unbiased."""
    n = k.shape[0]
    if not unbiased:
        rows, cols = k.mean(0), k.mean(1)
        kc = k - rows[None, :]  # one n×n temporary; the rest in place
        kc -= cols[:, None]
        kc += rows.mean()
        return kc
    k = bk.zero_diagonal_(k.clone() if bk.name == "torch" else k.copy())
    means = k.sum(0) / (n - 2)
    means = means - means.sum() / (2 * (n - 1))
    k = k - means[:, None] - means[None, :]
    return bk.zero_diagonal_(k)


def rbf_gram(k, bk, threshold):
    """RBF Gram from a linear Gram of the same data (distances do not depend on centering)."""
    sq = bk.lib.diagonal(k) if bk.name == "torch" else k.diagonal()
    dist = bk.clip(sq[:, None] + sq[None, :] - 2.0 * k, 0.0, None)
    med = bk.item(bk.median(dist))
    if med <= 0:
        return None
    return bk.lib.exp(-dist / (2.0 * threshold**2 * med))


def from_gram(kx, ky, bk, *, kernel="linear", debiased=False, rbf_threshold=1.0, form="auto"):
    """Gram form from linear Grams of the (centered) data, kx, ky (n, n)."""
    if kernel == "rbf":
        kx, ky = rbf_gram(kx, bk, rbf_threshold), rbf_gram(ky, bk, rbf_threshold)
        if kx is None:
            raise _undefined("x (layer a)")
        if ky is None:
            raise _undefined("y (layer b)")
    if debiased and kx.shape[0] < 4:
        raise ValueError(f"Debiased CKA needs at least 4 samples, got {kx.shape[0]}")
    kc, lc = center_gram(kx, bk, debiased), center_gram(ky, bk, debiased)
    num, dx, dy = bk.inner(kc, lc), bk.inner(kc, kc), bk.inner(lc, lc)
    # Σ kc² = 0 exactly when kc is all zero; no n × n |kc| temporary (0.26 s at n = 5000)
    if dx == 0:
        raise _undefined("x (layer a)")
    if dy == 0:
        raise _undefined("y (layer b)")
    return _ratio(num, dx, dy, debiased), {"form": "gram"}


def plan(n, p1, p2, settings) -> str:
    if settings["kernel"] == "rbf" or settings["form"] == "gram":
        return "gram"
    if settings["form"] == "feature":
        return "moments"
    return "gram" if n < p1 + p2 else "moments"


def validate(settings):
    check_choice(settings["kernel"], "kernel", ("linear", "rbf"))
    check_choice(settings["form"], "form", ("auto", "feature", "gram"))
    check_choice(settings["debiased"], "debiased", (False, True))
    t = settings["rbf_threshold"]
    if not isinstance(t, int | float) or not t > 0:
        raise ValueError(f"Expected rbf_threshold to be a positive number, got {t!r}")
    if settings["kernel"] == "rbf" and settings["form"] == "feature":
        raise ValueError("kernel 'rbf' has no feature form; use form 'auto' or 'gram'")


METRIC = Metric(
    name="cka",
    reshape="flatten",
    defaults=DEFAULTS,
    validate=validate,
    plan=plan,
    from_moments=from_moments,
    needs_full=lambda s: True,
    needs_fourth=lambda s: bool(s.get("debiased")),
    from_gram=from_gram,
)
