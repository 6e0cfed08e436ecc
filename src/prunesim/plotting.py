"""The study's figures (cf. the paper's Figures 4-8), drawn from the tidy tables.

Every ``plot_*`` function takes a table (a path to the CSV written by ``prunesim.tables``,
or the DataFrame itself), returns the ``matplotlib.figure.Figure`` it drew and, when ``out``
is given, writes it there atomically in the format named by the suffix (``.svg``, ``.png``
or ``.pdf``). Figures are built without pyplot (no global state, no GUI backend) and
rasterised by Agg; files are byte-reproducible: a fixed ``svg.hashsalt`` and no dates in
the metadata.

Figures:

- :func:`plot_accuracy`: test accuracy vs fraction of weights remaining (log x), mean
  ± 2 std over runs, every run's networks as dots, the dense accuracy dotted.
- :func:`plot_layerwise`: one metric's same-layer similarity of pruned vs dense, layer by
  layer in forward order, one line per IMP iteration (light → dark), mean ± 1 std over runs.
- :func:`plot_output_similarity`: output-layer similarity vs fraction of weights remaining,
  one line per metric, mean ± 1 std over runs.
- :func:`plot_mask_overlap`: Jaccard index of two runs' masks per layer vs fraction of
  weights remaining, mean ± 1 std over run pairs, with the chance level of random masks.
- :func:`plot_cross_layer`: heatmap of one metric between every pruned layer and every
  dense layer at one IMP iteration (when cross-layer pairs were computed).

A value a metric could not define (an empty ``value`` with a ``note``) is not averaged in;
where no run has a value the line breaks, and the figure says how many values are missing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, PercentFormatter

from prunesim.atomic import atomic_path
from prunesim.errors import PrunesimError
from prunesim.layers import compared_layers
from prunesim.masks import ALL_LAYERS, random_jaccard

METRIC_LABELS = {
    "mean_cca": "mean CCA",
    "svcca": "SVCCA",
    "pwcca": "PWCCA",
    "cka": "CKA",
    "nbs": "NBS",
    "cosine": "cosine similarity",
}

#: rcParams in force while drawing and saving: what makes the files reproducible.
_RC = {
    "svg.hashsalt": "prunesim",  # stable ids for clip paths instead of random uuids
    "svg.fonttype": "none",  # text stays text: small files, searchable labels
    "pdf.fonttype": 42,
    "savefig.dpi": 150,
}
_METADATA = {
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "ModDate": None},
    "png": {},
}
_FORMATS = tuple(_METADATA)
_LAYERWISE_PALETTE = "crest"  # sequential: light (early iteration) → dark (late iteration)
_MAX_DENSITY_TICKS = 8


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with (
        mpl.rc_context(_RC),
        sns.axes_style("whitegrid"),
        sns.plotting_context("notebook", font_scale=0.85),
    ):
        yield


def save_figure(fig: Figure, out: str | os.PathLike) -> None:
    """Write ``fig`` to ``out`` atomically, reproducibly, in the format of its suffix."""
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in _FORMATS:
        raise PrunesimError(
            f"cannot write figure {out}: unknown suffix {out.suffix!r}; use one of "
            f"{', '.join('.' + f for f in _FORMATS)}."
        )
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with mpl.rc_context(_RC), atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt], bbox_inches="tight")


def _table(table: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table.copy()
    path = Path(table)
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise PrunesimError(
            f"table {path} is empty (not even a header); rerun aggregate."
        ) from None


def _pct(density: float) -> str:
    """Fraction as a percentage with three significant digits: 0.512 → '51.2%'."""
    return f"{100 * density:.3g}%"


def _metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _first(df: pd.DataFrame, column: str, default: str = "?") -> str:
    values = df[column].dropna().unique() if column in df else []
    return str(values[0]) if len(values) else default


def _subject(df: pd.DataFrame) -> str:
    return f"{_first(df, 'model')} on {_first(df, 'dataset')}"


def _thin(values: Sequence, most: int) -> list:
    """At most ``most`` values at a regular step from the first, always keeping the last."""
    values = list(values)
    if len(values) <= most:
        return values
    step = -(-(len(values) - 1) // (most - 1))  # ceil: first + (most - 1) steps cover all
    picks = list(range(0, len(values), step))
    if picks[-1] != len(values) - 1:
        if len(values) - 1 - picks[-1] < step / 2:
            picks.pop()  # too close to the last one to label both
        picks.append(len(values) - 1)
    return [values[i] for i in picks]


def _density_axis(ax, densities: Sequence[float], iterations: Sequence[int]) -> None:
    """Log x axis of the fraction of weights remaining, pruning progressing to the right.

    Ticks sit at the IMP iterations' densities (labelled in %), and a top axis names the
    iterations.
    """
    pairs = sorted(
        ((d, k) for d, k in zip(densities, iterations, strict=True) if np.isfinite(d) and d > 0),
        reverse=True,
    )
    ax.set_xscale("log")
    if not pairs:
        return
    ticks = _thin(pairs, _MAX_DENSITY_TICKS)
    ax.xaxis.set_major_locator(FixedLocator([d for d, _ in ticks]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _pct(x)))
    ax.xaxis.set_minor_locator(NullLocator())
    lo, hi = pairs[-1][0], pairs[0][0]
    pad = (hi / lo) ** 0.05 if hi > lo else 1.1
    ax.set_xlim(hi * pad, lo / pad)  # inverted: dense on the left
    ax.set_xlabel("fraction of weights remaining (log scale)")
    top = ax.secondary_xaxis("top")
    top.set_xticks([d for d, _ in ticks], labels=[str(k) for _, k in ticks])
    top.xaxis.set_minor_locator(NullLocator())
    top.set_xlabel("IMP iteration")


def _similarity_axis(ax, label: str) -> None:
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel(label)


def _legend_outside(ax, title: str, ncol: int = 1) -> None:
    ax.legend(title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, ncol=ncol)


def _footnote(fig: Figure, text: str, n_missing: int = 0, n_total: int = 0) -> None:
    """What lines and bands are, and how many values are missing (explained gaps)."""
    if n_missing:
        text += (
            f" {n_missing} of {n_total} values undefined (e.g. a constant layer): not "
            "averaged; the table's note column says why."
        )
    fig.text(0.01, -0.01, text, fontsize="small", color="0.35", va="top")


def _placeholder(title: str, message: str, out) -> Figure:
    """A figure that says why there is nothing to draw (the rule's output must exist)."""
    with _style():
        fig = Figure(figsize=(6.4, 2.4), layout="constrained")
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(title)
        ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, color="0.3")
    if out is not None:
        save_figure(fig, out)
    return fig


def _mean_std(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Mean, std (0 for a single value) and counts of ``value`` per group; NaN not averaged."""
    grouped = df.groupby(by, sort=True)[value]
    stats = grouped.agg(["mean", "std", "count", "size"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    return stats


def plot_accuracy(
    accuracy: str | os.PathLike | pd.DataFrame,
    out: str | os.PathLike | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Test accuracy vs fraction of weights remaining (paper, Fig. 4).

    Mean over runs per IMP iteration with a ± 2 std band; every run's network is a dot;
    the dense network's accuracy is the dotted line (and the leftmost point).
    """
    df = _table(accuracy)
    title = title or f"Test accuracy under IMP: {_subject(df)}"
    df = df.dropna(subset=["test_accuracy"])
    if df.empty:
        return _placeholder(title, "no network has a test accuracy yet", out)
    dense = df[df["iteration"] == 0]
    pruned = df[df["iteration"] > 0]
    stats = _mean_std(pruned, ["iteration"], "test_accuracy")
    dens = pruned.groupby("iteration", sort=True)["density"].mean().to_numpy()
    x, y, s, its = dens, stats["mean"].to_numpy(), stats["std"].to_numpy(), list(stats["iteration"])
    if not dense.empty:
        dense_acc, dense_density = dense["test_accuracy"].mean(), dense["density"].mean()
        x, y = np.r_[dense_density, x], np.r_[dense_acc, y]
        s, its = np.r_[0.0, s], [0, *its]
    n_runs = pruned["run"].nunique()
    scale = 100.0 if df["test_accuracy"].max() > 1.0 else 1.0  # tolerate percentages

    with _style():
        fig = Figure(figsize=(7.0, 4.4), layout="constrained")
        ax = fig.add_subplot()
        colour = sns.color_palette("deep")[0]
        ax.fill_between(x, y - 2 * s, y + 2 * s, color=colour, alpha=0.2, lw=0, label="± 2 std")
        ax.plot(x, y, color=colour, marker="o", ms=4, lw=1.8, label=f"mean over {n_runs} runs")
        ax.scatter(
            pruned["density"],
            pruned["test_accuracy"],
            s=14,
            color="0.25",
            alpha=0.45,
            lw=0,
            label="individual runs",
            zorder=3,
        )
        if not dense.empty:
            ax.axhline(dense_acc, color="0.1", ls=":", lw=1.4, label=f"dense ({_pct(dense_acc)})")
        _density_axis(ax, x, its)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=scale))
        ax.set_ylabel("test accuracy")
        ax.set_title(title)
        ax.legend(loc="lower left", frameon=True)
    if out is not None:
        save_figure(fig, out)
    return fig


def _same_layer(df: pd.DataFrame) -> pd.DataFrame:
    if "layer_b" not in df:
        return df
    return df[df["layer_b"].isna() | (df["layer"] == df["layer_b"])]


def plot_layerwise(
    similarity: str | os.PathLike | pd.DataFrame,
    metric: str,
    out: str | os.PathLike | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """One metric's similarity of each pruned layer to the same dense layer (paper, Figs 5-7).

    x: the compared layers in forward order, named; y: similarity in [0, 1]; one line per
    IMP iteration from light (first) to dark (last), mean over runs with a ± 1 std band.
    Legend entries give the fraction of weights remaining.
    """
    df = _table(similarity)
    label = _metric_label(metric)
    title = title or f"{label}, pruned vs dense, layer by layer: {_subject(df)}"
    df = _same_layer(df[df["metric"] == metric])
    if df.empty:
        return _placeholder(title, f"no same-layer {label} values in the table", out)
    order = df.drop_duplicates("layer").sort_values("layer_index")
    layers = list(order["layer"])
    position = {name: i for i, name in enumerate(layers)}
    df = df.assign(position=df["layer"].map(position))
    stats = _mean_std(df, ["iteration", "position"], "value")
    density = df.groupby("iteration", sort=True)["density"].mean()
    iterations = list(density.index)
    palette = sns.color_palette(_LAYERWISE_PALETTE, len(iterations))

    with _style():
        fig = Figure(figsize=(max(6.0, 0.42 * len(layers) + 3.5), 4.6), layout="constrained")
        ax = fig.add_subplot()
        x = np.arange(len(layers))
        for colour, k in zip(palette, iterations, strict=True):
            st = stats[stats["iteration"] == k].set_index("position").reindex(x)
            mean, std = st["mean"].to_numpy(), st["std"].to_numpy()
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
            ax.plot(
                x, mean, color=colour, marker="o", ms=3.5, lw=1.6, label=_iter_label(k, density)
            )
        missing = df[df["value"].isna()]
        if not missing.empty:
            ax.scatter(
                missing["position"],
                np.zeros(len(missing)),
                marker="x",
                color="firebrick",
                s=24,
                label="undefined (see note)",
                zorder=4,
            )
        ax.set_xticks(x, labels=layers, rotation=60, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.5, len(layers) - 0.5)
        ax.set_xlabel("layer (forward order)")
        _similarity_axis(ax, f"{label} similarity")
        ax.set_title(title)
        _legend_outside(
            ax, "weights remaining\n(IMP iteration)", ncol=1 if len(iterations) <= 12 else 2
        )
        _footnote(
            fig,
            f"Lines: mean over {df['run'].nunique()} runs; bands: ± 1 std.",
            len(missing),
            len(df),
        )
    if out is not None:
        save_figure(fig, out)
    return fig


def _iter_label(iteration: int, density: pd.Series) -> str:
    d = density.get(iteration, np.nan)
    return f"{_pct(d)} ({iteration})" if np.isfinite(d) else f"? ({iteration})"


def plot_output_similarity(
    similarity: str | os.PathLike | pd.DataFrame,
    out: str | os.PathLike | None = None,
    *,
    metrics: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Output-layer similarity of pruned vs dense vs fraction of weights remaining (paper, Fig. 8).

    One line per metric (mean over runs, ± 1 std band), each run's value as a faint dot.
    """
    df = _table(similarity)
    title = title or f"Output-layer similarity, pruned vs dense: {_subject(df)}"
    df = _same_layer(df[df["layer_kind"] == "out"])
    if metrics is not None:
        df = df[df["metric"].isin(list(metrics))]
    if df.empty:
        return _placeholder(title, "no output-layer similarity values in the table", out)
    present = list(dict.fromkeys(df["metric"]))
    order = [m for m in (metrics or METRIC_LABELS) if m in present] + sorted(
        m for m in present if m not in (metrics or METRIC_LABELS)
    )
    palette = sns.color_palette("colorblind", len(order))
    density = df.groupby("iteration", sort=True)["density"].mean()

    with _style():
        fig = Figure(figsize=(7.0, 4.4), layout="constrained")
        ax = fig.add_subplot()
        for colour, metric in zip(palette, order, strict=True):
            part = df[df["metric"] == metric]
            st = _mean_std(part, ["iteration"], "value")
            x = density.reindex(st["iteration"]).to_numpy()
            mean, std = st["mean"].to_numpy(), st["std"].to_numpy()
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
            ax.plot(x, mean, color=colour, marker="o", ms=4, lw=1.8, label=_metric_label(metric))
            ax.scatter(part["density"], part["value"], color=colour, s=10, alpha=0.4, lw=0)
        _density_axis(ax, density.to_numpy(), list(density.index))
        _similarity_axis(ax, "similarity of the output layer")
        ax.set_title(title)
        _legend_outside(ax, "metric")
        _footnote(
            fig,
            f"Lines: mean over {df['run'].nunique()} runs; bands: ± 1 std; dots: single runs.",
            int(df["value"].isna().sum()),
            len(df),
        )
    if out is not None:
        save_figure(fig, out)
    return fig


def plot_mask_overlap(
    masks: str | os.PathLike | pd.DataFrame,
    out: str | os.PathLike | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Jaccard index of the masks of two IMP runs, per layer, vs fraction of weights remaining.

    Mean over run pairs with a ± 1 std band; layers from light (first) to dark (last), all
    prunable weights together in black; the dashed line is the overlap two random masks of
    the same density would have (chance level).
    """
    df = _table(masks)
    title = title or f"Mask overlap between IMP runs: {_first(df, 'experiment')}"
    df = df.dropna(subset=["jaccard"])
    if df.empty:
        return _placeholder(
            title, "no pair of runs to compare (mask overlap needs at least 2 runs)", out
        )
    layers = [name for name in dict.fromkeys(df["layer"]) if name != ALL_LAYERS]
    overall = df[df["layer"] == ALL_LAYERS]
    basis = overall if not overall.empty else df
    density = basis.groupby("iteration", sort=True)["density"].mean()
    palette = sns.color_palette("flare", len(layers)) if layers else []

    with _style():
        fig = Figure(figsize=(8.0, 4.6), layout="constrained")
        ax = fig.add_subplot()
        styles = [(name, colour, 1.2, 3) for name, colour in zip(layers, palette, strict=True)]
        if not overall.empty:
            styles.append((ALL_LAYERS, "black", 2.4, 5))
        for name, colour, lw, ms in styles:
            st = _mean_std(df[df["layer"] == name], ["iteration"], "jaccard")
            x = density.reindex(st["iteration"]).to_numpy()
            mean, std = st["mean"].to_numpy(), st["std"].to_numpy()
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.12, lw=0)
            label = "all prunable weights" if name == ALL_LAYERS else name
            ax.plot(x, mean, color=colour, lw=lw, marker="o", ms=ms, label=label)
        chance = [random_jaccard(d, d) for d in density.to_numpy()]
        ax.plot(density.to_numpy(), chance, color="0.45", ls="--", lw=1.2, label="random masks")
        _density_axis(ax, density.to_numpy(), list(density.index))
        _similarity_axis(ax, "Jaccard index of two runs' masks")
        ax.set_title(title)
        _legend_outside(ax, "layer", ncol=1 if len(styles) <= 14 else 2)
        n_pairs = len(df[["run_a", "run_b"]].drop_duplicates())
        _footnote(fig, f"Lines: mean over {n_pairs} pairs of runs; bands: ± 1 std.")
    if out is not None:
        save_figure(fig, out)
    return fig


def plot_cross_layer(
    similarity: str | os.PathLike | pd.DataFrame,
    metric: str,
    out: str | os.PathLike | None = None,
    *,
    iteration: int | None = None,
    title: str | None = None,
) -> Figure:
    """Heatmap of one metric between every pruned layer (rows) and every dense layer (columns).

    Mean over runs at ``iteration`` (default: the last one in the table). Drawn only where
    cross-layer pairs were computed; otherwise the figure says so.
    """
    df = _table(similarity)
    label = _metric_label(metric)
    df = df[df["metric"] == metric]
    cross = "layer_b" in df and bool((df["layer_b"].notna() & (df["layer"] != df["layer_b"])).any())
    if iteration is None and not df.empty:
        iteration = int(df["iteration"].max())
    at = df[df["iteration"] == iteration] if iteration is not None else df
    density = at["density"].mean() if not at.empty else np.nan
    when = f"iteration {iteration}, {_pct(density)} of weights" if np.isfinite(density) else ""
    title = title or f"{label} between layers, pruned vs dense ({when}): {_subject(df)}"
    if not cross or at.empty:
        return _placeholder(title, f"no cross-layer {label} pairs were computed", out)
    model = _first(df, "model")
    try:
        forward = [name for name, _ in compared_layers(model)]
    except KeyError:
        forward = []
    rank = {name: i for i, name in enumerate(forward)}
    rows = sorted(at["layer"].unique(), key=lambda n: (rank.get(n, len(rank)), n))
    cols = sorted(at["layer_b"].unique(), key=lambda n: (rank.get(n, len(rank)), n))
    grid = at.pivot_table(index="layer", columns="layer_b", values="value", aggfunc="mean")
    grid = grid.reindex(index=rows, columns=cols)

    with _style():
        size = 0.42 * max(len(rows), len(cols)) + 2.5
        fig = Figure(figsize=(size + 1.2, size), layout="constrained")
        ax = fig.add_subplot()
        sns.heatmap(
            grid,
            ax=ax,
            vmin=0.0,
            vmax=1.0,
            cmap="rocket",
            square=True,
            annot=len(rows) * len(cols) <= 400,
            fmt=".2f",
            annot_kws={"fontsize": 6},
            cbar_kws={"label": f"{label} similarity", "shrink": 0.8},
            linewidths=0.3,
            linecolor="white",
        )
        ax.tick_params(axis="y", labelrotation=0)
        ax.tick_params(axis="x", labelrotation=60 if len(cols) > 8 else 0)
        ax.set_xlabel("dense network's layer")
        ax.set_ylabel("pruned network's layer")
        ax.set_title(title)
    if out is not None:
        save_figure(fig, out)
    return fig
