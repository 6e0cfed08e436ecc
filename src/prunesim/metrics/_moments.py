"""Second (and, for debiased CKA, fourth) moments of [X, Y], accumulated in one pass over rows.

Why: every metric here except Gram-form CKA/NBS is a function of the centered cross-product
matrix Zcᵀ Zc of Z = [X, Y] (n, p1 + p2). Accumulating it chunk by chunk gives O((p1 + p2)²)
memory, one pass over n (HDF5 streaming), and lets all metrics share one pass.

Accuracy: rows are shifted by a provisional mean before the products (so the final centering
subtracts a tiny rank-one term instead of cancelling two large ones) and everything is float64.
Integer row weights (bootstrap counts) are exactly equivalent to repeating rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ._backend import NUMPY

_CHUNK_BYTES = 1 << 25  # float64 working block per chunk (32 MiB): big enough for BLAS-3 speed


def chunk_rows(p: int) -> int:
    """Rows per chunk so that a float64 (rows, p) block stays near 32 MiB."""
    return max(16, _CHUNK_BYTES // (8 * max(p, 1)))


@dataclass
class Moments:
    """Centered moments of X (n, p1) and Y (n, p2); sums, not averages.

    cxx = Xcᵀ Xc (p1, p1), cyy = Yc ᵀYc (p2, p2) (None when only cross moments were needed),
    cxy = Xcᵀ Yc (p1, p2), ssx = ‖Xc‖²_F, ssy = ‖Yc‖²_F, mean_x (p1,), mean_y (p2,),
    raw_dot = ⟨vec X, vec Y⟩ (only when p1 == p2), raw_ssx = ‖X‖²_F, raw_ssy = ‖Y‖²_F.
    For debiased CKA: rxy = Σᵢ ‖xcᵢ‖²‖ycᵢ‖², rxx = Σᵢ ‖xcᵢ‖⁴, ryy = Σᵢ ‖ycᵢ‖⁴ (None otherwise).
    """

    bk: object
    n: float
    mean_x: object
    mean_y: object
    cxy: object
    ssx: float
    ssy: float
    raw_ssx: float
    raw_ssy: float
    raw_dot: float | None
    cxx: object = None
    cyy: object = None
    rxy: float | None = None
    rxx: float | None = None
    ryy: float | None = None
    cache: dict = field(default_factory=dict)

    @property
    def shape(self):
        return (int(round(self.n)), self.cxy.shape[0], self.cxy.shape[1])


class MomentAccumulator:
    """Accumulate Moments over row chunks: ``acc.update(x_chunk, y_chunk)``, then ``acc.result()``.

    full=False keeps only the cross block (NBS, cosine: 2·n·p1·p2 flops instead of
    n·(p1 + p2)²); fourth=True adds the row-norm sums debiased CKA needs (needs full=True).
    """

    def __init__(self, p1: int, p2: int, *, full: bool = True, fourth: bool = False, bk=NUMPY):
        if fourth and not full:
            raise ValueError("fourth-order sums need the full moment matrix (full=True)")
        self.p1, self.p2, self.full, self.fourth, self.bk = p1, p2, full, fourth, bk
        self.shift_x = self.shift_y = None
        self.w = 0.0
        self.sx = bk.zeros(p1)
        self.sy = bk.zeros(p2)
        if full:
            self.zz = bk.zeros((p1 + p2, p1 + p2))
        else:
            self.xy = bk.zeros((p1, p2))
            self.sqx = 0.0
            self.sqy = 0.0
        if fourth:
            self.s_ab = self.s_aa = self.s_bb = 0.0
            self.s_ax, self.s_bx = bk.zeros(p1), bk.zeros(p1)
            self.s_ay, self.s_by = bk.zeros(p2), bk.zeros(p2)

    def set_shift(self, shift_x, shift_y) -> None:
        """Provisional means (any values work; close to the true means is most accurate)."""
        self.shift_x = self.bk.asarray(shift_x)
        self.shift_y = self.bk.asarray(shift_y)

    def update(self, x, y, weights=None) -> None:
        """Add rows x (m, p1) and y (m, p2), optionally with per-row weights (m,)."""
        bk = self.bk
        m = x.shape[0]
        if m == 0:
            return
        if self.shift_x is None:
            self.set_shift(bk.asarray(x).mean(0), bk.asarray(y).mean(0))
        p1 = self.p1
        z = bk.empty((m, p1 + self.p2))
        # numpy casts on assignment (no float64 temporary); torch needs device/dtype moves
        z[:, :p1] = x if bk is NUMPY else bk.asarray(x)
        z[:, p1:] = y if bk is NUMPY else bk.asarray(y)
        z[:, :p1] -= self.shift_x
        z[:, p1:] -= self.shift_y
        if weights is not None:
            w = bk.asarray(weights).reshape(-1, 1)
            wsum = float(w.sum())
            colsum = (z * w).sum(0)
        else:
            wsum = float(m)
            colsum = z.sum(0)
        self.w += wsum
        self.sx += colsum[:p1]
        self.sy += colsum[p1:]
        if self.full:
            zw = z if weights is None else z * bk.lib.sqrt(w)
            self.zz += zw.T @ zw  # symmetric rank-k update (numpy dispatches to syrk)
        else:
            xt = z[:, :p1] if weights is None else z[:, :p1] * w
            self.xy += xt.T @ z[:, p1:]
            self.sqx += float((xt * z[:, :p1]).sum())
            yt = z[:, p1:] if weights is None else z[:, p1:] * w
            self.sqy += float((yt * z[:, p1:]).sum())
        if self.fourth:
            xt, yt = z[:, :p1], z[:, p1:]
            a = (xt * xt).sum(1)
            b = (yt * yt).sum(1)
            wv = 1.0 if weights is None else w.reshape(-1)
            wa, wb = a * wv, b * wv
            self.s_ab += float((wa * b).sum())
            self.s_aa += float((wa * a).sum())
            self.s_bb += float((wb * b).sum())
            self.s_ax += wa @ xt
            self.s_bx += wb @ xt
            self.s_ay += wa @ yt
            self.s_by += wb @ yt

    def result(self) -> Moments:
        """Center the accumulated sums (exactly, with the rank-one correction)."""
        bk, p1, n = self.bk, self.p1, self.w
        if n <= 0:
            raise ValueError("No rows were accumulated")
        d, e = self.sx / n, self.sy / n  # mean of the shifted data
        mean_x, mean_y = self.shift_x + d, self.shift_y + e
        outer = bk.lib.outer
        if self.full:
            zz = self.zz
            raw_xx, raw_yy, raw_xy = zz[:p1, :p1], zz[p1:, p1:], zz[:p1, p1:]
            cxx = raw_xx - n * outer(d, d)
            cyy = raw_yy - n * outer(e, e)
            cxy = raw_xy - n * outer(d, e)
            ssx, ssy = float(cxx.trace()), float(cyy.trace())
            sq_shifted_x, sq_shifted_y = float(raw_xx.trace()), float(raw_yy.trace())
        else:
            cxx = cyy = None
            raw_xy = self.xy
            cxy = raw_xy - n * outer(d, e)
            sq_shifted_x, sq_shifted_y = self.sqx, self.sqy
            ssx = sq_shifted_x - n * float(d @ d)
            ssy = sq_shifted_y - n * float(e @ e)
        for total, which in ((ssx, "x (layer a)"), (ssy, "y (layer b)")):
            if not math.isfinite(total):  # NaN/inf would surface later as a LinAlgError
                raise ValueError(f"Expected finite activations, but {which} contains NaN or inf")
        sxs, sys_ = self.shift_x, self.shift_y
        # uncentered quantities, recovered from the shifted sums: Σ(x̃ + s)·(ỹ + t)
        raw_ssx = sq_shifted_x + 2 * float(sxs @ self.sx) + n * float(sxs @ sxs)
        raw_ssy = sq_shifted_y + 2 * float(sys_ @ self.sy) + n * float(sys_ @ sys_)
        raw_dot = None
        if p1 == self.p2:
            raw_dot = (
                float(raw_xy.trace())
                + float(sxs @ self.sy)
                + float(self.sx @ sys_)
                + n * float(sxs @ sys_)
            )
        mom = Moments(
            bk=bk, n=n, mean_x=mean_x, mean_y=mean_y, cxy=cxy, ssx=max(ssx, 0.0),
            ssy=max(ssy, 0.0), raw_ssx=max(raw_ssx, 0.0), raw_ssy=max(raw_ssy, 0.0),
            raw_dot=raw_dot, cxx=cxx, cyy=cyy,
        )  # fmt: skip
        if self.fourth:
            mom.rxy, mom.rxx, mom.ryy = self._fourth(d, e, raw_xx, raw_yy, raw_xy)
        return mom

    def _fourth(self, d, e, raw_xx, raw_yy, raw_xy):
        """Σ w r_x r_y, Σ w r_x², Σ w r_y² with r = ‖row − mean‖², from shifted sums.

        r = a − 2 x̃·d + δ with a = ‖x̃‖², δ = ‖d‖²; expanding the products needs only the
        sums accumulated in update().
        """
        n = self.w
        dd, ee = float(d @ d), float(e @ e)
        sa, sb = float(raw_xx.trace()), float(raw_yy.trace())
        sxd, sye = float(self.sx @ d), float(self.sy @ e)

        def cross(s_ab, s_ay, s_bx, raw, u, v, uu, vv, sa_, sb_, su, sv):
            return (
                s_ab
                - 2 * float(s_ay @ v)
                + vv * sa_
                - 2 * float(s_bx @ u)
                + 4 * float(u @ (raw @ v))
                - 2 * vv * su
                + uu * sb_
                - 2 * uu * sv
                + n * uu * vv
            )

        rxy = cross(self.s_ab, self.s_ay, self.s_bx, raw_xy, d, e, dd, ee, sa, sb, sxd, sye)
        rxx = cross(self.s_aa, self.s_ax, self.s_ax, raw_xx, d, d, dd, dd, sa, sa, sxd, sxd)
        ryy = cross(self.s_bb, self.s_by, self.s_by, raw_yy, e, e, ee, ee, sb, sb, sye, sye)
        return rxy, rxx, ryy


def moments(x, y, *, full=True, fourth=False, weights=None, bk=NUMPY) -> Moments:
    """Moments of in-memory matrices x (n, p1), y (n, p2), in row chunks of ~32 MiB."""
    n, p1, p2 = x.shape[0], x.shape[1], y.shape[1]
    acc = MomentAccumulator(p1, p2, full=full, fourth=fourth, bk=bk)
    # provisional means from evenly spaced rows: representative, and cheap for huge n
    step = max(1, n // 4096)
    acc.set_shift(bk.asarray(x[::step]).mean(0), bk.asarray(y[::step]).mean(0))
    rows = chunk_rows(p1 + p2)
    for i in range(0, n, rows):
        w = None if weights is None else weights[i : i + rows]
        acc.update(x[i : i + rows], y[i : i + rows], w)
    return acc.result()
