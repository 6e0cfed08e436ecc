"""Entry points: settings -> data source -> one compute route -> metric values.

Why one route: every metric is exact on each route it offers (moments / Gram / direct), so the
engine picks the cheapest for the shapes (a moment pass for tall matrices, n×n Grams when
features outnumber samples) and shares one moment pass and one pair of Grams between the
metrics it computes together. Every entry point builds a data source (``_sources``: arrays,
HDF5, row chunks; ``_stats``: shared statistics) and calls ``compute``.
"""

from __future__ import annotations

import numpy as np

from ..errors import DegenerateRepresentationError
from ._checks import check_choice, check_settings
from ._reshape import RESHAPES, RESIZES
from ._sources import ArrayPair, ChunkPair, HDF5Pair, dataset, open_h5

# --- settings ---------------------------------------------------------------------------------


def _registry():
    from . import METRICS

    return METRICS


def resolve(name: str, settings: dict | None):
    """(metric, full settings) with defaults filled in and every value checked."""
    metrics = _registry()
    if name not in metrics:
        raise ValueError(f"Unknown metric {name!r}; expected one of {sorted(metrics)}")
    metric = metrics[name]
    s = check_settings(name, dict(settings or {}), metric.default_settings)
    check_choice(s["reshape"], "reshape", RESHAPES)
    check_choice(s["resize"], "resize", RESIZES)
    s["bootstrap"] = _check_bootstrap(s["bootstrap"])
    metric.validate(s)
    return metric, s


def _check_bootstrap(b):
    """None, or {samples: int ≥ 2, seed: int (0), level: (0, 1) (0.95)}."""
    if b is None:
        return None
    if not isinstance(b, dict):
        raise ValueError(f"Expected bootstrap to be null or a mapping, got {b!r}")
    full = check_settings("bootstrap", b, {"samples": None, "seed": 0, "level": 0.95})
    if not isinstance(full["samples"], int) or full["samples"] < 2:
        raise ValueError(
            f"Expected bootstrap.samples to be an integer >= 2, got {full['samples']!r}"
        )
    if not isinstance(full["seed"], int):
        raise ValueError(f"Expected bootstrap.seed to be an integer, got {full['seed']!r}")
    if not 0 < full["level"] < 1:
        raise ValueError(f"Expected bootstrap.level in (0, 1), got {full['level']!r}")
    return full


def metric_kwargs(metric, s) -> dict:
    """The metric's own settings (the block minus reshape/resize/bootstrap)."""
    return {k: s[k] for k in metric.defaults}


# --- the compute route ------------------------------------------------------------------------


def compute(jobs: dict, source, *, weights=None, rows=None) -> dict:
    """{name: (metric, kwargs)} -> {name: (value, details)} on one source.

    One moment pass serves every metric on the moment route (and any other that can read
    moments, below); one pair of Grams every metric on the Gram route. weights: per-row weights
    (bootstrap counts) for the moment and direct routes; rows: a row resample of the Grams.
    Raises DegenerateRepresentationError for an undefined value.
    """
    n, p1, p2 = source.shape
    routes = {name: m.plan(n, p1, p2, kw) for name, (m, kw) in jobs.items()}
    on_moments = [jobs[name] for name, route in routes.items() if route == "moments"]
    mom = None
    if on_moments:
        mom = source.moments(
            full=any(m.needs_full(kw) for m, kw in on_moments),
            fourth=any(m.needs_fourth(kw) for m, kw in on_moments),
            weights=weights,
        )
    out = {}
    for name, (metric, kw) in jobs.items():
        route = routes[name]
        if route != "moments" and mom is not None and _reads_moments(mom, metric, kw, route):
            route = "moments"
        out[name] = _run(metric, kw, route, source, mom, weights, rows)
    return out


def _run(metric, kw, route, source, mom, weights, rows):
    if route == "moments":
        value, details = metric.from_moments(mom, **kw)
    elif route == "direct":
        value, details = metric.direct(source.chunks(weights), source.bk)
    else:
        kx, ky = source.grams()
        if rows is not None:
            kx, ky = kx[rows][:, rows], ky[rows][:, rows]
        value, details = metric.from_gram(kx, ky, source.bk, **kw)
    return value, {"route": route, **details}


def _reads_moments(mom, metric, kw, route) -> bool:
    """Whether a metric planned for another route can read moments computed for others.

    direct (cosine): from the uncentered sums; Gram: only where "gram" was a cost choice
    (form auto, linear kernel) and the moments hold what the feature form needs.
    """
    if route == "direct":
        return metric.from_moments is not None and mom.raw_dot is not None
    return (
        kw.get("form") == "auto"
        and kw.get("kernel", "linear") == "linear"
        and (mom.cxx is not None or not metric.needs_full(kw))
        and (mom.rxx is not None or not metric.needs_fourth(kw))
    )


# --- reports (value or note, bootstrap) -------------------------------------------------------


def report(metric, kw, source, boot) -> dict:
    """{"value", "note", "details"[, "ci_low", "ci_high", "bootstrap_samples"]} of one metric.

    Degenerate inputs give value None and a note instead of an exception; a note next to a
    value says why that value is uninformative (CCA family with n - 1 <= p).
    """
    jobs = {metric.name: (metric, kw)}
    try:
        value, details = compute(jobs, source)[metric.name]
    except DegenerateRepresentationError as err:
        return {"value": None, "note": str(err)}
    note = details.pop("note", None)
    out = {"value": float(value), "note": note, "details": details}
    if boot is not None:
        out.update(_bootstrap(boot, jobs, source, details["route"] == "gram"))
    return out


def _bootstrap(boot, jobs, source, on_grams) -> dict:
    """Percentile interval over resampled probe images (all rows of an image move together).

    Moment and direct routes weight the rows by the resample counts (one pass per resample);
    the Gram route resamples its Grams.
    """
    n_img, r = source.n_img, source.rows_per_image
    rng = np.random.default_rng(boot["seed"])
    values = []
    for _ in range(boot["samples"]):
        counts = np.bincount(rng.integers(0, n_img, n_img), minlength=n_img)
        if on_grams:
            img = np.repeat(np.arange(n_img), counts)
            resample = {"rows": (img[:, None] * r + np.arange(r)).ravel()}
        else:
            resample = {"weights": np.repeat(counts.astype(np.float64), r)}
        try:
            values.extend(v for v, _ in compute(jobs, source, **resample).values())
        except DegenerateRepresentationError:
            continue  # a resample can hit only dead images; it has no value, not a NaN
    alpha = (1 - boot["level"]) / 2
    if len(values) < 2:
        return {"ci_low": None, "ci_high": None, "bootstrap_samples": len(values)}
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return {"ci_low": float(low), "ci_high": float(high), "bootstrap_samples": len(values)}


# --- public entry points ----------------------------------------------------------------------


def similarity(name: str, x, y, **settings) -> float:
    """Similarity of x and y under metric ``name``; a float in [0, 1].

    x, y: (n_samples, n_features) numpy arrays or torch tensors (any device; computed there
    in float64), or (n, c, h, w) activations with ``reshape`` = "channels" | "flatten" (default:
    the metric's paper choice). ``settings`` are the metric's config block (see
    ``DEFAULT_SETTINGS``). Raises DegenerateRepresentationError when the value is undefined
    (e.g. a constant layer), ValueError for bad shapes or settings.
    """
    if settings.get("bootstrap") is not None:
        raise ValueError(
            "bootstrap gives an interval: use similarity_report or similarity_from_hdf5"
        )
    return similarities(x, y, {name: settings})[name]


def similarities(x, y, settings: dict) -> dict:
    """Several metrics on one pair sharing one moment pass (and one pair of Grams).

    settings: {metric name: settings block}. Returns {name: float}; raises like similarity.
    """
    groups: dict = {}
    for name, block in settings.items():
        metric, s = resolve(name, block)
        # metrics with the same reshaped matrices share a source (2-D input: all of them)
        per_sample = metric.flattens_per_sample and s["reshape"] is None
        key = (s["reshape"], s["resize"], per_sample) if len(x.shape) != 2 else None
        groups.setdefault(key, {})[name] = (metric, metric_kwargs(metric, s), s)
    out = {}
    for jobs in groups.values():
        metric, _, s = next(iter(jobs.values()))
        source = ArrayPair(metric, x, y, s["reshape"], s["resize"])
        values = compute({name: job[:2] for name, job in jobs.items()}, source)
        out |= {name: values[name][0] for name in jobs}
    return {name: out[name] for name in settings}


def similarity_report(name: str, x, y, settings: dict | None = None) -> dict:
    """In-memory twin of similarity_from_hdf5: {"value", "note", "details"[, "ci_low", ...]}."""
    metric, s = resolve(name, settings)
    source = ArrayPair(metric, x, y, s["reshape"], s["resize"])
    return report(metric, metric_kwargs(metric, s), source, s["bootstrap"])


def similarity_stream(name: str, chunks, **settings) -> float:
    """Metric over an iterable of (x_chunk, y_chunk) row chunks, never holding all rows.

    Chunks are 2-D (m, p1), (m, p2) matrices (already reshaped) that together form X and Y.
    Only moment and direct routes stream; an RBF kernel or form 'gram' needs all rows at once.
    """
    metric, s = resolve(name, settings)
    if s["bootstrap"] is not None:
        raise ValueError("bootstrap needs the rows again; it cannot be streamed")
    return compute({name: (metric, metric_kwargs(metric, s))}, ChunkPair(chunks))[name][0]


def similarity_from_hdf5(name, path_a, key_a, path_b, key_b, settings: dict) -> dict:
    """Metric between dataset ``key_a`` of ``path_a`` and ``key_b`` of ``path_b``, streamed.

    Datasets are (n, c, h, w) or (n, features) activations of the same n probe images.
    ``settings`` is the metric's config block (reshape, resize, bootstrap and the metric's own
    keys; defaults in ``DEFAULT_SETTINGS``). Reads image blocks (~32 MiB in float64), so memory
    is O((p1 + p2)²) on the moment route and O(n²) on the Gram route, never the whole layer.

    Returns a JSON-able dict: {"value": float | None, "note": None | str, "details": {...}} plus
    "ci_low", "ci_high", "bootstrap_samples" when ``bootstrap`` is set (one extra streamed pass
    per resample on the moment route; the Gram route resamples its Gram). "note" says why a
    value is missing (None) or, next to a value, why it is uninformative.
    """
    metric, s = resolve(name, settings)
    with open_h5(path_a) as fa, open_h5(path_b) as fb:
        da, db = dataset(fa, key_a, path_a), dataset(fb, key_b, path_b)
        source = HDF5Pair(metric, da, db, s["reshape"], s["resize"])
        return report(metric, metric_kwargs(metric, s), source, s["bootstrap"])
