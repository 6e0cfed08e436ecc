"""What a metric module provides to the engine (one module + one registry entry per metric)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Settings every metric understands; the engine consumes them, the metric never sees them.
ENGINE_DEFAULTS = {"reshape": None, "resize": None, "bootstrap": None}


@dataclass(frozen=True)
class Metric:
    """A similarity metric.

    - ``defaults``: the metric's own settings and their defaults (the config block minus the
      engine's ``reshape``/``resize``/``bootstrap``).
    - ``plan(n, p1, p2, settings) -> "moments" | "gram" | "direct"``: the cheapest exact route.
    - ``from_moments(mom, **settings) -> (value, details)`` for the moment route, with
      ``needs_full(settings)`` / ``needs_fourth(settings)`` saying which moments it reads.
      A ``"note"`` in details (None or a string) becomes the report's note: a caveat on a
      value that is defined but uninformative.
    - ``from_gram(kx, ky, bk, **settings)`` for (n, n) Grams of centered data (optional).
    - ``direct(chunks, bk) -> (value, details)`` over (x, y, weights) row chunks (optional);
      a metric with a direct route reads raw rows, so it never reads the shared (centered)
      statistics (``_stats.uses_stats``).
    - ``output_only``: compared on the output layer only (the workflow builds no other pairs
      and no layer-wise figure for it).
    - ``flattens_per_sample``: with ``reshape: null`` any two equal shapes are compared as
      (n, everything else) matrices instead of requiring 2-D input.
    """

    name: str
    reshape: str | None
    defaults: dict
    validate: Callable[[dict], None]
    plan: Callable[..., str]
    from_moments: Callable | None = None
    needs_full: Callable[[dict], bool] = lambda s: True
    needs_fourth: Callable[[dict], bool] = lambda s: False
    from_gram: Callable | None = None
    direct: Callable | None = None
    output_only: bool = False
    flattens_per_sample: bool = False

    @property
    def default_settings(self) -> dict:
        return {**ENGINE_DEFAULTS, "reshape": self.reshape, **self.defaults}
