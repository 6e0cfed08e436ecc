"""Summaries of canonical correlations shared by mean CCA and SVCCA."""

from __future__ import annotations

from ._checks import check_fraction


def mean_correlation(rho, truncate, bk) -> float:
    """Mean of the canonical correlations rho (descending), or google/svcca's truncated mean.

    truncate=t reproduces ``get_cca_similarity(...)["mean"]``: the mean of rho[:i] for the
    first i with Σ rho[:i] ≥ t·Σ rho (all of rho if no such i < len(rho)); the paper's code
    printed this with t = 0.98.
    """
    k = rho.shape[0]
    if truncate is None:
        return bk.item(rho.mean())
    total = bk.item(rho.sum())
    if total <= 0:
        return 0.0
    csum = bk.to_numpy(rho.cumsum(0))
    for i in range(1, k):  # i = 0 only qualifies for t = 0, which is not allowed
        if csum[i - 1] / total >= truncate:
            return bk.item(rho[:i].mean())
    return bk.item(rho.mean())


def validate_cca(settings: dict) -> None:
    check_fraction(settings["truncate"], "truncate", allow_none=True)
    rtol = settings["rtol"]
    if not isinstance(rtol, int | float) or not 0 < rtol < 1:
        raise ValueError(f"Expected rtol to be a number in (0, 1), got {rtol!r}")


def moments_plan(n, p1, p2, settings) -> str:
    return "moments"
