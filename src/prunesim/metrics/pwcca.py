"""PWCCA (Morcos et al. 2018) exactly as google/svcca's ``pwcca.compute_pwcca`` computes it.

Inputs X (n, p1), Y (n, p2). google's algorithm, in our (samples, neurons) layout, for the
layer that gives the weights first (A) and the other second (B):

1. Canonical directions from arr = Σaa^{-1/2} Σab Σbb^{-1/2} (symmetric inverse square roots),
   ``u, ρ, vᵀ = svd(arr)``.
2. "Directions" dirns = uᵀ(A − μ)ᵀ + μ1ᵀ with μ the neuron means of A: rotated centered neurons
   with the means added back (direction i gets neuron i's mean).
3. P = orthonormal Gram–Schmidt basis of dirnsᵀ (google: QR), weights wᵢ = Σⱼ |⟨Pᵢ, Aⱼ⟩|
   (abs before the sum, raw activations), normalised to Σ w = 1;  PWCCA = Σᵢ wᵢ ρᵢ.

Which layer is A: the one with fewer (kept) neurons, layer a (X) on ties, and the value is
google's ``compute_pwcca(A, B)``, i.e. always google's x-branch with A as its first argument.
Why: that is the only call of google's code that works when the sizes differ (its else-branch
indexes the wrong layer, PR #9), so "pass the smaller layer first" is how a google user gets a
number; taking the weights from vᵀ of svd(Σxx^{-1/2} Σxy Σyy^{-1/2}) instead gives the same
vectors up to sign, and the sign moves the value (by 1e-4 to 1e-2) once the means are added
back in step 2. A consequence: PWCCA(X, Y) = PWCCA(Y, X) whenever the kept sizes differ.

Everything comes from the moment blocks: with G = uᵀ C u + n μμᵀ = L Lᵀ (Cholesky) and
H = uᵀ C + n μμᵀ, Pᵀ A = L⁻¹ H.

Neurons: dead units (variance ≤ rtol² × the largest) are dropped as google's ``remove_small``
does with a small epsilon. Remaining exact linear dependencies (google: NaN or LinAlgError)
are dropped greedily in order of decreasing variance (ties: column order): a neuron is kept if
its residual std after regression on the neurons kept before it exceeds rtol times its own
std. The kept set therefore does not depend on the order of the columns (except between
neurons of exactly equal variance); column order would make it arbitrary, and the
largest-variance neurons are the ones that contribute most to the weights.

Neuron order: the value with the default weights still depends on the order of A's neurons
when their means are not zero, because step 2 adds neuron i's mean to direction i; this is
google's algorithm, kept for parity (``weights: morcos`` and centered inputs are
order-free).

Few rows: when n − 1 ≤ max(p1, p2) the canonical correlations are 1 by construction and
the value says nothing about the layers (see ``_cca.few_rows_note``); it is kept, with a note.

The small SVD always runs in numpy on the CPU: singular-vector signs change step 2, and this
keeps the value equal to google's numpy result on every device.

Options: ``weights: morcos`` gives the paper's Eq. 4, Morcos et al.'s weights
αᵢ = Σⱼ |⟨hᵢ, aⱼ⟩| with hᵢ the unit canonical variates (= Σⱼ |(C^{1/2} u)ⱼᵢ|);
``keep: 0.99`` applies SVCCA's SVD step first (google's tutorial "pwcca on svd99").

Settings: reshape ("channels"), weights ("svcca"), keep (null), rtol (1e-6).
"""

from __future__ import annotations

import numpy as np

from ..errors import DegenerateRepresentationError
from ._base import Metric
from ._cca import few_rows_note, moments_plan
from ._checks import check_choice, check_fraction
from ._linalg import spectrum
from .svcca import kept_dimension

DEFAULTS = {"weights": "svcca", "keep": None, "rtol": 1e-6}
WEIGHTS = ("svcca", "morcos")


def select_neurons(c: np.ndarray, rtol: float, side: str, full_rank=False) -> np.ndarray:
    """Indices (ascending) of neurons with variance, dropping exact linear dependencies.

    Greedy in order of decreasing variance (stable, so exact ties fall back to column order):
    neuron j is kept if its residual variance after regression on the neurons kept before it
    exceeds rtol² times its own variance. The kept set follows the neurons, not the columns.
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
    from scipy.linalg import solve_triangular

    order = np.argsort(-var[alive], kind="stable")
    kept: list[int] = []
    low = np.zeros((0, 0))  # Cholesky factor of corr[kept, kept]
    for j in order:
        ell = solve_triangular(low, corr[kept, j], lower=True) if kept else np.zeros(0)
        resid = corr[j, j] - ell @ ell
        if resid > rtol * rtol:
            m = len(kept)
            grown = np.zeros((m + 1, m + 1))
            grown[:m, :m] = low
            grown[m, :m] = ell
            grown[m, m] = np.sqrt(resid)
            low = grown
            kept.append(int(j))
    return alive[np.sort(kept)]


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric C^{-1/2} (google: positivedef_matrix_sqrt(pinv(C)))."""
    lam, vec = np.linalg.eigh(c)
    return (vec / np.sqrt(lam)) @ vec.T


def _sqrt(c: np.ndarray) -> np.ndarray:
    lam, vec = np.linalg.eigh(c)
    return (vec * np.sqrt(np.clip(lam, 0.0, None))) @ vec.T


def pwcca_from_blocks(cxx, cyy, cxy, mux, muy, n, weights="svcca", eig=(None, None)):
    """PWCCA from centered sums (full rank, numpy); returns (value, details).

    The side with fewer neurons (x on ties) goes first, as in google's ``compute_pwcca(small,
    large)`` (module docstring). eig: optional (λ, V) of cxx and cyy to reuse.
    """
    if cxx.shape[0] <= cyy.shape[0]:
        return _pwcca_first(cxx, cyy, cxy, mux, n, weights, eig), {"weights_from": "x"}
    value = _pwcca_first(cyy, cxx, cxy.T, muy, n, weights, eig[::-1])
    return value, {"weights_from": "y"}


def _pwcca_first(caa, cbb, cab, mua, n, weights, eig):
    """google's compute_pwcca(A, B) on its working branch: the weights come from A."""
    from scipy.linalg import solve_triangular

    sa, sb = (
        _inv_sqrt(c) if e is None else (e[1] / np.sqrt(e[0])) @ e[1].T
        for c, e in zip((caa, cbb), eig, strict=True)
    )
    u, rho, _ = np.linalg.svd(sa @ cab @ sb)
    rho = np.clip(rho, 0.0, 1.0)
    coef = u.T
    if weights == "morcos":
        w = np.abs(_sqrt(caa) @ coef.T).sum(0)
    else:
        nmu = n * np.outer(mua, mua)
        gram = coef @ caa @ coef.T + nmu  # dirns dirnsᵀ
        cross = coef @ caa + nmu  # dirns A
        low = np.linalg.cholesky(gram)
        w = np.abs(solve_triangular(low, cross, lower=True)).sum(1)
    w = w / w.sum()
    return float(np.clip(w @ rho, 0.0, 1.0))


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
        kept = [int(lx.size), int(ly.size)]
        return value, {**details, "kept": kept, "note": few_rows_note(mom)}
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
    neurons = [int(ix.size), int(iy.size)]
    return value, {**details, "neurons": neurons, "note": few_rows_note(mom)}


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
