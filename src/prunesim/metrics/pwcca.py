"""PWCCA (Morcos et al. 2018) exactly as google/svcca's ``pwcca.compute_pwcca`` computes it.

Inputs X (n, p1), Y (n, p2). google's algorithm, in our (samples, neurons) layout:

1. Canonical directions from arr = Σxx^{-1/2} Σxy Σyy^{-1/2} (symmetric inverse square roots),
   ``u, ρ, vᵀ = svd(arr)``.
2. Side: X if it has no more (kept) neurons than Y, else Y (google's else-branch indexes the
   wrong layer, PR #9; fixed here). With equal sizes the weights come from X (layer a).
3. "Directions" dirns = coef·(A − μ)ᵀ + μ1ᵀ with coef = uᵀ (or vᵀ), A the side's raw
   activations (n, k) and μ its means: rotated centered neurons with the means added back.
4. P = orthonormal Gram–Schmidt basis of dirnsᵀ (google: QR), weights wᵢ = Σⱼ |⟨Pᵢ, Aⱼ⟩|
   (abs before the sum, raw activations), normalised to Σ w = 1;  PWCCA = Σᵢ wᵢ ρᵢ.

Everything comes from the moment blocks: with G = coef C coefᵀ + n μμᵀ = L Lᵀ (Cholesky) and
H = coef C + n μμᵀ, Pᵀ A = L⁻¹ H. Dead units (variance ≤ rtol² × the largest) are dropped as
google's ``remove_small`` does with a small epsilon; remaining exact linear dependencies are
dropped greedily in neuron order (a neuron is kept if its residual std after regression on the
kept earlier neurons exceeds rtol times its own std) instead of crashing.

The small SVD always runs in numpy on the CPU: singular-vector signs change step 3 (the means
are added back unrotated), and this keeps the value equal to google's numpy result on every
device.

Options: ``weights: morcos`` gives the textbook weights αᵢ = Σⱼ |⟨hᵢ, xⱼ⟩| with hᵢ the unit
canonical variates (= Σⱼ |(C^{1/2} u)ⱼᵢ|); ``keep: 0.99`` applies SVCCA's SVD step first
(google's tutorial "pwcca on svd99").

Settings: reshape ("channels"), weights ("svcca"), keep (null), rtol (1e-6).
"""

from __future__ import annotations

import numpy as np

from ..errors import DegenerateRepresentationError
from ._base import Metric
from ._cca import moments_plan
from ._checks import check_choice, check_fraction
from ._linalg import spectrum
from .svcca import kept_dimension

DEFAULTS = {"weights": "svcca", "keep": None, "rtol": 1e-6}
WEIGHTS = ("svcca", "morcos")


def select_neurons(c: np.ndarray, rtol: float, side: str, full_rank=False) -> np.ndarray:
    """Indices of neurons with variance, greedily dropping exact linear dependencies.

    full_rank: the caller knows λ_min(c) > rtol² λ_max(c), which implies every neuron's
    residual variance exceeds rtol² times its own, so the greedy pass would keep all.
    """
    if full_rank:
        return np.arange(c.shape[0])
    var = np.diag(c).copy()
    top = var.max(initial=0.0)
    alive = np.flatnonzero(var > rtol * rtol * top) if top > 0 else np.array([], dtype=int)
    if alive.size == 0:
        layer = "x (layer a)" if side == "x" else "y (layer b)"
        raise DegenerateRepresentationError(
            f"{layer} has no variance (all-zero or constant activations), so PWCCA is undefined"
        )
    scale = 1.0 / np.sqrt(var[alive])
    corr = c[np.ix_(alive, alive)] * scale[:, None] * scale[None, :]
    lam = np.linalg.eigvalsh(corr)
    if lam[0] > rtol * rtol * lam[-1]:
        return alive  # full rank: the usual case, no greedy pass needed
    kept: list[int] = []
    low = np.zeros((0, 0))
    for j in range(alive.size):
        b = corr[kept, j]
        ell = np.linalg.solve(low, b) if kept else b
        resid = corr[j, j] - ell @ ell
        if resid > rtol * rtol:
            m = len(kept)
            grown = np.zeros((m + 1, m + 1))
            grown[:m, :m] = low
            grown[m, :m] = ell
            grown[m, m] = np.sqrt(resid)
            low = grown
            kept.append(j)
    return alive[kept]


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric C^{-1/2} (google: positivedef_matrix_sqrt(pinv(C)))."""
    lam, vec = np.linalg.eigh(c)
    return (vec / np.sqrt(lam)) @ vec.T


def _sqrt(c: np.ndarray) -> np.ndarray:
    lam, vec = np.linalg.eigh(c)
    return (vec * np.sqrt(np.clip(lam, 0.0, None))) @ vec.T


def pwcca_from_blocks(cxx, cyy, cxy, mux, muy, n, weights="svcca", eig=(None, None)):
    """PWCCA from centered sums (full rank, numpy); returns (value, details).

    eig: optional (λ, V) of cxx and cyy (already computed for the CCA family) to reuse.
    """
    sx, sy = (
        _inv_sqrt(c) if e is None else (e[1] / np.sqrt(e[0])) @ e[1].T
        for c, e in zip((cxx, cyy), eig, strict=True)
    )
    arr = sx @ cxy @ sy
    u, rho, vh = np.linalg.svd(arr)
    rho = np.clip(rho, 0.0, 1.0)
    if cxx.shape[0] <= cyy.shape[0]:
        coef, c, mu, side = u.T, cxx, mux, "x"
    else:
        coef, c, mu, side = vh, cyy, muy, "y"
    if weights == "morcos":
        w = np.abs(_sqrt(c) @ coef.T).sum(0)
    else:
        nmu = n * np.outer(mu, mu)
        gram = coef @ c @ coef.T + nmu  # dirns dirnsᵀ
        cross = coef @ c + nmu  # dirns A
        low = np.linalg.cholesky(gram)
        from scipy.linalg import solve_triangular

        w = np.abs(solve_triangular(low, cross, lower=True)).sum(1)
    w = w / w.sum()
    return float(np.clip(w @ rho, 0.0, 1.0)), {"weights_from": side}


def from_moments(mom, *, weights="svcca", keep=None, rtol=1e-6):
    bk = mom.bk
    n = float(mom.n)
    if keep is not None:  # SVD step first: reduced data U_k S_k, zero mean
        blocks = []
        for side in ("x", "y"):
            lam, vec, rank = spectrum(mom, side, rtol)
            if rank == 0:
                select_neurons(np.zeros((1, 1)), rtol, side)  # raises the degenerate error
            k = kept_dimension(lam, rank, keep, bk)
            blocks.append((bk.to_numpy(lam[:k]), bk.to_numpy(vec[:, :k])))
        (lx, vx), (ly, vy) = blocks
        cxy = vx.T @ bk.to_numpy(mom.cxy) @ vy
        value, details = pwcca_from_blocks(
            np.diag(lx), np.diag(ly), cxy, np.zeros(lx.size), np.zeros(ly.size), n, weights
        )
        return value, {**details, "kept": [int(lx.size), int(ly.size)]}
    cxx, cyy, cxy = (bk.to_numpy(a) for a in (mom.cxx, mom.cyy, mom.cxy))
    # the eigendecompositions are usually cached by mean CCA/SVCCA already
    full = [spectrum(mom, side, rtol)[2] == c.shape[0] for side, c in (("x", cxx), ("y", cyy))]
    ix = select_neurons(cxx, rtol, "x", full[0])
    iy = select_neurons(cyy, rtol, "y", full[1])
    eig = tuple(
        tuple(bk.to_numpy(a) for a in spectrum(mom, side, rtol)[:2]) if ok else None
        for side, ok in zip(("x", "y"), full, strict=True)
    )
    value, details = pwcca_from_blocks(
        cxx[np.ix_(ix, ix)],
        cyy[np.ix_(iy, iy)],
        cxy[np.ix_(ix, iy)],
        bk.to_numpy(mom.mean_x)[ix],
        bk.to_numpy(mom.mean_y)[iy],
        n,
        weights,
        eig,
    )
    return value, {**details, "neurons": [int(ix.size), int(iy.size)]}


def validate(settings):
    check_choice(settings["weights"], "weights", WEIGHTS)
    check_fraction(settings["keep"], "keep", allow_none=True)
    rtol = settings["rtol"]
    if not isinstance(rtol, int | float) or not 0 < rtol < 1:
        raise ValueError(f"Expected rtol to be a number in (0, 1), got {rtol!r}")


METRIC = Metric(
    name="pwcca",
    reshape="channels",
    defaults=DEFAULTS,
    validate=validate,
    plan=moments_plan,
    from_moments=from_moments,
)
