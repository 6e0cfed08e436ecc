"""Similarity of layer representations: mean CCA, SVCCA, PWCCA, CKA, NBS and |cosine|.

Public API (torch is never imported here; tensors are accepted and computed on their device):

- ``similarity(name, x, y, **settings) -> float`` for x, y (n_samples, n_features) or
  (n, c, h, w) with a ``reshape``;
- ``similarities(x, y, {name: settings}) -> {name: float}``: several metrics, one data pass;
- ``similarity_report(name, x, y, settings) -> dict``: value/note (+ bootstrap CI);
- ``similarity_from_hdf5(name, path_a, key_a, path_b, key_b, settings) -> dict``: streamed;
- ``similarity_stream(name, chunks, **settings) -> float``: any (x_chunk, y_chunk) iterable;
- ``uses_stats(base_metric, settings)``: whether a metric reads the shared pair statistics
  (``_stats``: one pass per layer pair and reshape, the dense side once);
- ``as_matrix(acts, mode)``: (n, c, h, w) -> (n·h·w, c) ("channels") or (n, c·h·w) ("flatten");
- ``METRICS``: name -> Metric (a new metric = one module + one entry below);
- ``DEFAULT_SETTINGS``: name -> default config block (reshape/resize/bootstrap + its own keys).

Every metric accumulates in float64, returns values in [0, 1] (round-off clipped; debiased CKA
in [-1, 1]) and raises ``DegenerateRepresentationError`` (the report/HDF5 functions give
``value: None`` with a note instead) when a layer carries no variance. See README.md.
"""

from __future__ import annotations

from . import cka, cosine, mean_cca, nbs, pwcca, svcca
from ._engine import (
    similarities,
    similarity,
    similarity_from_hdf5,
    similarity_report,
    similarity_stream,
)
from ._reshape import as_matrix
from ._stats import uses_stats

METRICS = {
    m.name: m
    for m in (
        mean_cca.METRIC,
        svcca.METRIC,
        pwcca.METRIC,
        cka.METRIC,
        nbs.METRIC,
        cosine.METRIC,
    )
}

DEFAULT_SETTINGS: dict[str, dict] = {name: m.default_settings for name, m in METRICS.items()}

__all__ = [
    "DEFAULT_SETTINGS",
    "METRICS",
    "as_matrix",
    "similarities",
    "similarity",
    "similarity_from_hdf5",
    "similarity_report",
    "similarity_stream",
    "uses_stats",
]
