"""Entry points: settings -> route (moments / Gram / direct) -> metric; in memory or streamed.

Why routes: every metric is exact on each route it offers, so the engine picks the cheapest for
the shapes (a moment pass for tall matrices, n×n Grams when features outnumber samples) and
shares one pass between metrics in ``similarities``.
"""

from __future__ import annotations

import numpy as np

from ..errors import CorruptFileError, DegenerateRepresentationError, rebuild_hint
from ._backend import NUMPY, backend_for
from ._checks import check_choice, check_pair, check_settings
from ._moments import MomentAccumulator, chunk_rows, moments
from ._reshape import RESHAPES, RESIZES, as_matrix, common_size, prepare_pair, resize

_GRAM_LIMIT_BYTES = 4 << 30  # one float64 n×n Gram; beyond this a Gram route is refused
_BLOCK_BYTES = 1 << 28  # float64 data block for Gram accumulation (256 MiB)


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


def _kwargs(metric, s):
    return {k: s[k] for k in metric.defaults}


def _as_pair(metric, x, y, s):
    """Resize/reshape; cosine (reshape null) vectorises any equal shapes per sample."""
    if metric.name == "cosine" and s["reshape"] is None:
        if tuple(x.shape) != tuple(y.shape):
            raise ValueError(
                f"cosine needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if len(x.shape) < 1:
            raise ValueError("Expected arrays with a sample axis, got 0-d input")
        return x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    return prepare_pair(x, y, s["reshape"], s["resize"])


# --- in-memory routes -------------------------------------------------------------------------


def gram(x, bk):
    """Linear Gram (n, n) in float64, built over column blocks (bounded memory).

    Metrics center Grams themselves (H K H in O(n²)), so float64 input is multiplied as is
    (no n×p copy; Kornblith's approach, exact to ~1e-15 here); other dtypes are converted and
    centered block by block, which also keeps the float64 products well scaled.
    """
    n, p = x.shape
    if 8 * n * n > _GRAM_LIMIT_BYTES:
        raise ValueError(
            f"This route needs an n×n Gram with n = {n} ({8 * n * n / 2**30:.0f} GiB); use a "
            "linear kernel with form 'feature' / 'auto', the flatten reshape, or fewer samples"
        )
    if bk is NUMPY and x.dtype == np.float64:
        return x @ x.T  # symmetric rank-k update (syrk)
    k = bk.zeros((n, n))
    cols = max(1, _BLOCK_BYTES // (8 * n))
    for f in range(0, p, cols):
        blk = bk.asarray(x[:, f : f + cols])
        blk = blk - blk.mean(0)
        k += blk @ blk.T
    return k


def _row_chunks(x, y, weights):
    rows = chunk_rows(x.shape[1] + y.shape[1])
    for i in range(0, x.shape[0], rows):
        w = None if weights is None else weights[i : i + rows]
        yield x[i : i + rows], y[i : i + rows], w


def _evaluate(metric, kw, x, y, bk, route, *, weights=None, grams=None):
    """(value, details) for matrices x, y on the given route."""
    if route == "direct":
        value, details = metric.direct(_row_chunks(x, y, weights), bk)
    elif route == "moments":
        mom = moments(
            x, y, full=metric.needs_full(kw), fourth=metric.needs_fourth(kw), weights=weights, bk=bk
        )
        value, details = metric.from_moments(mom, **kw)
    else:
        kx, ky = grams if grams is not None else (gram(x, bk), gram(y, bk))
        value, details = metric.from_gram(kx, ky, bk, **kw)
    return value, {"route": route, **details}


def _prepare(name, x, y, settings):
    metric, s = resolve(name, settings)
    bk = backend_for(x, y)
    xm, ym = _as_pair(metric, x, y, s)
    check_pair(xm, ym)
    kw = _kwargs(metric, s)
    route = metric.plan(xm.shape[0], xm.shape[1], ym.shape[1], kw)
    return metric, s, kw, bk, xm, ym, route


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
    metric, s, kw, bk, xm, ym, route = _prepare(name, x, y, settings)
    return _evaluate(metric, kw, xm, ym, bk, route)[0]


def similarity_report(name: str, x, y, settings: dict | None = None) -> dict:
    """In-memory twin of similarity_from_hdf5: {"value", "note", "details"[, "ci_low", "ci_high"]}.

    Degenerate inputs give value None and a note instead of an exception; a note next to a
    value says why that value is uninformative (CCA family with n - 1 <= p).
    """
    metric, s, kw, bk, xm, ym, route = _prepare(name, x, y, settings)
    n_img = x.shape[0]

    def run(weights=None, grams=None):
        return _evaluate(metric, kw, xm, ym, bk, route, weights=weights, grams=grams)

    grams = (gram(xm, bk), gram(ym, bk)) if route == "gram" else None
    return _report(lambda: run(grams=grams), s["bootstrap"], n_img, xm.shape[0] // n_img,
                   lambda w: run(weights=bk.from_numpy(w)),
                   None if grams is None else lambda idx: run(grams=_take(grams, idx)))  # fmt: skip


def _take(grams, idx):
    return tuple(k[idx][:, idx] for k in grams)


def _report(compute, boot, n_img, rows_per_image, weighted, resampled) -> dict:
    """Run the metric (and the bootstrap), turning undefined values into notes."""
    try:
        value, details = compute()
    except DegenerateRepresentationError as err:
        return {"value": None, "note": str(err)}
    # a metric may flag a defined but uninformative value (CCA family with n - 1 <= p)
    note = details.pop("note", None)
    out = {"value": float(value), "note": note, "details": details}
    if boot is not None:
        out.update(_bootstrap(boot, n_img, rows_per_image, weighted, resampled))
    return out


def _bootstrap(boot, n_img, rows_per_image, weighted, resampled) -> dict:
    """Percentile interval over resampled probe images (all rows of an image move together)."""
    rng = np.random.default_rng(boot["seed"])
    values = []
    for _ in range(boot["samples"]):
        counts = np.bincount(rng.integers(0, n_img, n_img), minlength=n_img)
        try:
            if resampled is not None:
                img = np.repeat(np.arange(n_img), counts)
                rows = (img[:, None] * rows_per_image + np.arange(rows_per_image)).ravel()
                values.append(resampled(rows)[0])
            else:
                values.append(weighted(np.repeat(counts.astype(np.float64), rows_per_image))[0])
        except DegenerateRepresentationError:
            continue  # a resample can hit only dead images; it has no value, not a NaN
    alpha = (1 - boot["level"]) / 2
    if len(values) < 2:
        return {"ci_low": None, "ci_high": None, "bootstrap_samples": len(values)}
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return {"ci_low": float(low), "ci_high": float(high), "bootstrap_samples": len(values)}


def similarities(x, y, settings: dict) -> dict:
    """Several metrics on one pair sharing one moment pass (and one pair of Grams).

    settings: {metric name: settings block}. Returns {name: float}; raises like similarity.
    """
    resolved = {name: resolve(name, block) for name, block in settings.items()}
    out = {}
    groups: dict = {}
    conv = len(x.shape) == 4
    for name, (_, s) in resolved.items():
        # 2-D inputs ignore reshape/resize, so all metrics then share one pass
        key = (s["reshape"], s["resize"]) if conv else None
        groups.setdefault(key, []).append(name)
    for names in groups.values():
        bk = backend_for(x, y)
        plans = {}
        for name in names:
            metric, s = resolved[name]
            xm, ym = _as_pair(metric, x, y, s)
            check_pair(xm, ym)
            kw = _kwargs(metric, s)
            plans[name] = (metric, kw, metric.plan(xm.shape[0], xm.shape[1], ym.shape[1], kw))
        full = any(m.needs_full(kw) for m, kw, r in plans.values() if r == "moments")
        need_mom = any(r == "moments" for _, _, r in plans.values())
        mom = grams = None
        if need_mom:
            fourth = any(m.needs_fourth(kw) for m, kw, r in plans.values() if r == "moments")
            mom = moments(xm, ym, full=full, fourth=fourth, bk=bk)
        for name, (metric, kw, route) in plans.items():
            if mom is not None and _reuses(mom, metric, kw, route):
                out[name] = metric.from_moments(mom, **kw)[0]
            elif route == "gram":
                grams = grams or (gram(xm, bk), gram(ym, bk))
                out[name] = metric.from_gram(*grams, bk, **kw)[0]
            else:
                out[name] = _evaluate(metric, kw, xm, ym, bk, route)[0]
    return out


def _reuses(mom, metric, kw, route) -> bool:
    """Whether a metric can read moments already computed for others (a free pass)."""
    if route == "moments":
        return True
    if route == "direct":
        return mom.raw_dot is not None
    return (
        kw.get("form") == "auto"
        and kw.get("kernel", "linear") == "linear"
        and (mom.cxx is not None or not metric.needs_full(kw))
        and (mom.rxx is not None or not metric.needs_fourth(kw))
    )


# --- streaming --------------------------------------------------------------------------------


def similarity_stream(name: str, chunks, **settings) -> float:
    """Metric over an iterable of (x_chunk, y_chunk) row chunks, never holding all rows.

    Chunks are 2-D (m, p1), (m, p2) matrices (already reshaped) that together form X and Y.
    Only moment and direct routes stream; an RBF kernel or form 'gram' needs all rows at once.
    """
    metric, s = resolve(name, settings)
    kw = _kwargs(metric, s)
    route = metric.plan(float("inf"), 1, 1, kw)
    if route == "gram":
        raise ValueError(f"{name} with {kw} needs an n×n Gram; it cannot be streamed")
    it = iter(chunks)
    first = next(it, None)
    if first is None:
        raise ValueError("Expected at least one chunk, got an empty iterable")
    bk = backend_for(*first)

    def all_chunks():
        yield first
        yield from it

    if route == "direct":
        return metric.direct(((x, y, None) for x, y in all_chunks()), bk)[0]
    acc = None
    for x, y in all_chunks():
        if x.shape[0] > 1:  # a one-row tail chunk is fine; check_pair wants ≥ 2 rows
            check_pair(x, y)
        if acc is None:
            acc = MomentAccumulator(x.shape[1], y.shape[1], full=metric.needs_full(kw),
                                    fourth=metric.needs_fourth(kw), bk=bk)  # fmt: skip
        acc.update(x, y)
    return metric.from_moments(acc.result(), **kw)[0]


class _PairReader:
    """Reads two HDF5 datasets image block by image block, resized and reshaped."""

    def __init__(self, da, db, metric, s):
        if da.shape[0] != db.shape[0]:
            raise ValueError(
                f"Expected both layers to hold the same probe images, got {da.shape[0]} and "
                f"{db.shape[0]} samples"
            )
        self.da, self.db, self.metric, self.s = da, db, metric, s
        self.size = common_size(tuple(da.shape), tuple(db.shape), s["resize"])
        x, y = self.read(0, 1)
        self.n_img = da.shape[0]
        self.rows_per_image = x.shape[0]
        self.p1, self.p2 = x.shape[1], y.shape[1]

    def read(self, i0, i1, which="xy"):
        a = self.da[i0:i1] if "x" in which else None
        b = self.db[i0:i1] if "y" in which else None
        if self.size is not None:
            a = None if a is None else resize(a, self.size, self.s["resize"])
            b = None if b is None else resize(b, self.size, self.s["resize"])
        if self.metric.name == "cosine" and self.s["reshape"] is None:
            if tuple(self.da.shape) != tuple(self.db.shape):
                raise ValueError(
                    f"cosine needs equal shapes, got {tuple(self.da.shape)} and "
                    f"{tuple(self.db.shape)}"
                )
            return (None if a is None else a.reshape(a.shape[0], -1),
                    None if b is None else b.reshape(b.shape[0], -1))  # fmt: skip
        if a is not None and b is not None:
            return prepare_pair(a, b, self.s["reshape"], None)
        return (None if a is None else as_matrix(a, self.s["reshape"]),
                None if b is None else as_matrix(b, self.s["reshape"]))  # fmt: skip

    def blocks(self, p):
        """Image ranges whose float64 (rows, p) block is ~32 MiB."""
        step = max(1, chunk_rows(p) // self.rows_per_image)
        for i in range(0, self.n_img, step):
            yield i, min(i + step, self.n_img)

    def chunks(self, weights=None):
        for i0, i1 in self.blocks(self.p1 + self.p2):
            x, y = self.read(i0, i1)
            r = self.rows_per_image
            yield x, y, None if weights is None else weights[i0 * r : i1 * r]

    def gram(self, which):
        """Centered Gram of one layer from image blocks: a mean pass, then block pairs.

        Memory: the (n, n) Gram plus two float64 blocks of ≤ 256 MiB; blocks are re-read
        (≈ blocks/2 passes) rather than held, so no layer is ever loaded whole.
        """
        p = self.p1 if which == "x" else self.p2
        n = self.n_img * self.rows_per_image
        if 8 * n * n > _GRAM_LIMIT_BYTES:
            raise ValueError(f"This route needs an n×n Gram with n = {n}; use the moment route")
        step = max(1, _BLOCK_BYTES // (8 * p * self.rows_per_image))
        ranges = [(i, min(i + step, self.n_img)) for i in range(0, self.n_img, step)]

        def load(i0, i1):
            m = self.read(i0, i1, which)[0 if which == "x" else 1]
            return np.asarray(m, dtype=np.float64)

        mean = sum(load(i0, i1).sum(0) for i0, i1 in ranges) / n
        r = self.rows_per_image
        k = np.empty((n, n))
        for bi, (i0, i1) in enumerate(ranges):
            xi = load(i0, i1) - mean
            k[i0 * r : i1 * r, i0 * r : i1 * r] = xi @ xi.T
            for j0, j1 in ranges[:bi]:
                block = xi @ (load(j0, j1) - mean).T
                k[i0 * r : i1 * r, j0 * r : j1 * r] = block
                k[j0 * r : j1 * r, i0 * r : i1 * r] = block.T
        return k


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
    import h5py

    metric, s = resolve(name, settings)
    kw = _kwargs(metric, s)
    with _open_h5(h5py, path_a) as fa, _open_h5(h5py, path_b) as fb:
        da, db = _dataset(fa, key_a, path_a), _dataset(fb, key_b, path_b)
        reader = _PairReader(da, db, metric, s)
        n = reader.n_img * reader.rows_per_image
        route = metric.plan(n, reader.p1, reader.p2, kw)

        def run(weights=None, grams=None):
            if route == "direct":
                return metric.direct(reader.chunks(weights), NUMPY)
            if route == "moments":
                acc = MomentAccumulator(reader.p1, reader.p2, full=metric.needs_full(kw),
                                        fourth=metric.needs_fourth(kw))  # fmt: skip
                for x, y, w in reader.chunks(weights):
                    acc.update(x, y, w)
                return metric.from_moments(acc.result(), **kw)
            return metric.from_gram(*grams, NUMPY, **kw)

        def with_route(result):
            return result[0], {"route": route, **result[1]}

        grams = None
        try:
            grams = (reader.gram("x"), reader.gram("y")) if route == "gram" else None
        except DegenerateRepresentationError as err:  # pragma: no cover - gram never raises it
            return {"value": None, "note": str(err)}
        return _report(
            lambda: with_route(run(grams=grams)), s["bootstrap"], reader.n_img,
            reader.rows_per_image, lambda w: run(weights=w),
            None if grams is None else lambda idx: run(grams=_take(grams, idx)),
        )  # fmt: skip


def _open_h5(h5py, path):
    """Open an activation file; a truncated or foreign file is a CorruptFileError, not OSError."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise CorruptFileError(
            f"activation file {path} cannot be read ({exc}); it is truncated or not an HDF5 "
            f"file (rule extract_acts writes it). {rebuild_hint(path)}"
        ) from exc


def _dataset(h5, key, path):
    if key not in h5:
        raise CorruptFileError(
            f"activation file {path} has no dataset {key!r} (it holds {sorted(h5.keys())}); "
            f"it was written for other layers or is incomplete. {rebuild_hint(path)}"
        )
    return h5[key]


# --- cross-layer ------------------------------------------------------------------------------


def similarity_matrix(name: str, acts_a: dict, acts_b: dict, settings: dict | None = None):
    """Every layer of network a against every layer of network b: a (len(a), len(b)) array.

    acts_*: {layer name: (n, ...) activations} for the same n probe images (numpy, torch or
    h5py datasets). Layers of different spatial sizes need ``resize`` for the channel reshape.
    Returns a numpy masked array (rows follow acts_a's order, columns acts_b's); undefined
    pairs (a constant layer) are masked, never NaN.
    """
    metric, s = resolve(name, settings)
    values = np.zeros((len(acts_a), len(acts_b)))
    mask = np.zeros(values.shape, dtype=bool)
    block = {k: v for k, v in s.items() if k != "bootstrap"}
    for i, a in enumerate(acts_a.values()):
        a = a[()] if hasattr(a, "id") else a  # h5py dataset -> array
        for j, b in enumerate(acts_b.values()):
            b = b[()] if hasattr(b, "id") else b
            try:
                values[i, j] = similarity(name, a, b, **block)
            except DegenerateRepresentationError:
                mask[i, j] = True
    return np.ma.MaskedArray(values, mask=mask)
