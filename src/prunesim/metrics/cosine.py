"""|cosine| between two equally shaped representations (the paper's output-layer metric).

    cosine = |⟨vec X, vec Y⟩| / (‖X‖_F ‖Y‖_F)        on raw (uncentered) activations

Unlike every other metric it is not invariant to offsets or rotations, and it needs identical
shapes (it is defined on (n, classes) logits). No reshape by default: any equal shapes work.

Settings: reshape (null). Values in [0, 1].
"""

from __future__ import annotations

from ..errors import DegenerateRepresentationError
from ._base import Metric

DEFAULTS: dict = {}


def _value(dot, sx, sy) -> float:
    for s, which in ((sx, "x (layer a)"), (sy, "y (layer b)")):
        if s <= 0:
            raise DegenerateRepresentationError(
                f"{which} is all zero, so the cosine similarity is undefined"
            )
    return min(abs(dot) / (sx * sy) ** 0.5, 1.0)


def from_moments(mom):
    """From moments gathered for other metrics (shares their pass)."""
    if mom.raw_dot is None:
        raise ValueError("cosine needs equal shapes, got different numbers of features")
    return _value(mom.raw_dot, mom.raw_ssx, mom.raw_ssy), {}


def direct(chunks, bk):
    """One float64 pass over (x, y, weights) row chunks: Σ x·y, Σ x², Σ y²."""
    dot = sx = sy = 0.0
    for x, y, w in chunks:
        x, y = bk.asarray(x), bk.asarray(y)
        if x.shape != y.shape:
            raise ValueError(
                f"cosine needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if w is not None:
            w = bk.asarray(w).reshape(-1, 1)
        xw = x if w is None else x * w
        yw = y if w is None else y * w
        dot += bk.item((xw * y).sum())
        sx += bk.item((xw * x).sum())
        sy += bk.item((yw * y).sum())
    return _value(dot, sx, sy), {}


METRIC = Metric(
    name="cosine",
    reshape=None,
    defaults=DEFAULTS,
    validate=lambda s: None,
    plan=lambda n, p1, p2, s: "direct",
    from_moments=from_moments,
    needs_full=lambda s: False,
    direct=direct,
    output_only=True,
    flattens_per_sample=True,
)
