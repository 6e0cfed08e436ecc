"""Summaries of canonical correlations shared by mean CCA and SVCCA."""

from __future__ import annotations

import logging

from ._checks import check_fraction

_log = logging.getLogger(__name__)
_warned = False  # the few-rows warning is logged once per process (= once per workflow job)


def mean_correlation(rho, truncate, bk) -> float:
    """Mean of the canonical correlations rho (descending), or google/svcca's truncated mean.

    truncate=t reproduces ``get_cca_similarity(...)["mean"]``: the mean of rho[:i] for the
    first i with Σ rho[:i] ≥ t·Σ rho (all of rho if no such i < len(rho)); the authors' code
    printed this with t = 0.98 (after the SVD step: ``svcca`` with ``truncate: 0.98``).
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


def few_rows_note(mom) -> str | None:
    """A note when n − 1 ≤ max(p1, p2): then the CCA-family value carries no information.

    Centered rows span at most n − 1 dimensions; a layer with that many neurons (generically)
    spans all of them, so every direction of the other layer lies in its span and all canonical
    correlations are 1, whatever the layers hold: two independent noise matrices give mean CCA
    = PWCCA = 1.0 and SVCCA 0.85–0.97 (0.3 with ten times more rows). google/svcca and
    anatome refuse such inputs; we keep the value (the table stays complete) and say why it is
    uninformative. Logs a warning the first time in a process (= once per workflow job).
    """
    n, p1, p2 = mom.shape
    if n - 1 > max(p1, p2):
        return None
    layer, p = ("a", p1) if p1 >= p2 else ("b", p2)
    note = (
        f"uninformative: n = {n} rows for p = {p} neurons in layer {layer} (n - 1 <= p): the "
        "layer can span every centered direction, so the canonical correlations are 1 by "
        "construction (SVCCA: pushed towards 1) even for unrelated layers; use more "
        "probe points, the channels reshape, or CKA/NBS"
    )
    global _warned
    if not _warned:
        _warned = True
        _log.warning("%s (CCA-family metrics; logged once per process)", note)
    return note
