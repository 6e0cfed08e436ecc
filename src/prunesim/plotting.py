"""The study's figures (cf. the paper's Figures 4-8), drawn from the tidy tables.

Every ``plot_*`` function takes a table (a path to the CSV written by ``prunesim.tables``,
or the DataFrame itself), returns the ``matplotlib.figure.Figure`` it drew and, when ``out``
is given (one path or several, e.g. an ``.svg`` and a ``.png``), writes it there atomically
in the format named by each suffix (``.svg``, ``.png`` or ``.pdf``). Figures are built
without pyplot (no global state, no GUI backend) and rasterised by Agg; files are
byte-reproducible: a fixed ``svg.hashsalt`` and no dates in the metadata.

Figures:

- :func:`plot_accuracy`: test accuracy vs proportion of parameters remaining (log x), mean
  ± 2 std over runs (clipped to [0, 1]), every run's networks as dots, the dense accuracy
  dotted (paper, Fig. 4); :func:`plot_accuracy_all`: the same, one panel per experiment.
- :func:`plot_layerwise_grid`: SVCCA, PWCCA, CKA and NBS in a 2 × 2 grid, each against the
  layers, one line per IMP iteration (light → dark), mean over runs (paper, Figs 5-7).
- :func:`plot_layerwise`: one metric's panel of that grid as a figure of its own.
- :func:`plot_output_similarity`: output-layer similarity vs IMP iteration, one line (colour
  and marker) per metric, mean over runs, single runs as dots (paper, Fig. 8).
- :func:`plot_mask_overlap`: heatmap of the Jaccard index of two runs' masks, layer ×
  IMP iteration, mean over run pairs, with the chance level of random masks.
- :func:`plot_cross_layer`: heatmap of one metric between every pruned layer and every
  dense layer at one IMP iteration (when cross-layer pairs were computed).
- :func:`plot_random_pruning`: the random-pruning control beside IMP: accuracy, and each
  paper metric layer by layer for IMP and for random pruning at the same iterations.
- :func:`plot_run_vs_run`: the run-against-run control: pruned networks of different runs
  compared with each other, beside the pruned-vs-dense lines.

The paper's figures draw the ``pruned_vs_dense`` rows and IMP's networks only; when the
table holds the seed-baseline control (``seed_vs_dense``), every layerwise panel also shows
its mean ± 1 std over the seed networks as a grey band: the similarity retraining from
scratch alone gives, against which pruning's change can be read.

Settings shared by the figures (the config's ``figures:`` block, :data:`FIGURE_DEFAULTS`):
``density_axis`` (``all_params``: the proportion of all parameters, BN and biases included,
that remain, the paper's axis; ``prunable``: the proportion of prunable weights),
``similarity_bands`` (± 1 std over runs around similarity lines) and ``similarity_ylim``
(``data``: fitted to what is drawn; ``unit``: [0, 1]).

A value a metric could not define (an empty ``value`` with a ``note``) is not averaged in;
where no run has a value the line breaks, and the figure says how many values are missing.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    MaxNLocator,
    NullLocator,
    PercentFormatter,
)

from prunesim.atomic import atomic_path
from prunesim.controls import (
    PRUNED_VS_DENSE,
    RANDOM_PRUNING_RUN,
    RANDOM_VS_DENSE,
    RUN_VS_RUN,
    SEED_VS_DENSE,
)
from prunesim.errors import PrunesimError
from prunesim.layers import compared_layers
from prunesim.masks import ALL_LAYERS, random_jaccard
from prunesim.metrics import METRICS
from prunesim.tables import comparison_rows, network_rows

METRIC_LABELS = {
    "mean_cca": "mean CCA",
    "svcca": "SVCCA",
    "pwcca": "PWCCA",
    "cka": "CKA",
    "nbs": "NBS",
    "cosine": "cosine similarity",
}
#: Colour (Okabe-Ito, colour-blind safe) and marker of each metric, the same in every figure.
METRIC_STYLES = {
    "mean_cca": ("#E69F00", "s"),  # orange, square
    "svcca": ("#0072B2", "o"),  # blue, circle
    "pwcca": ("#009E73", "D"),  # bluish green, diamond
    "cka": ("#D55E00", "^"),  # vermillion, triangle up
    "nbs": ("#CC79A7", "v"),  # reddish purple, triangle down
    "cosine": ("#000000", "X"),  # black, cross
}
_EXTRA_STYLES = [("#56B4E9", "P"), ("#F0E442", "*"), ("#999999", "h")]
#: The four metrics of the paper's layerwise figures, in its order (2 × 2 grid).
PAPER_METRICS = ("svcca", "pwcca", "cka", "nbs")
#: Metrics computed on the output layer only: drawn in the output-layer figure, never layerwise
#: (the registry's ``Metric.output_only``).
OUTPUT_ONLY_METRICS = tuple(name for name, m in METRICS.items() if m.output_only)
#: Defaults of the config's ``figures:`` block (the schema holds the same; a test checks).
FIGURE_DEFAULTS = {
    "density_axis": "all_params",
    "similarity_bands": False,
    "similarity_ylim": "data",
}
#: density_axis → (table column, what it counts); tables without the column use ``density``.
DENSITY_AXES = {
    "all_params": ("density_all_params", "all parameters"),
    "prunable": ("density", "prunable weights"),
}
SIMILARITY_YLIMS = ("data", "unit")

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
_MAX_ITERATION_TICKS = 11
_UNIT_YLIM = (-0.03, 1.03)  # [0, 1] with room for the markers at 0 and 1
_MAX_ANNOTATED_CELLS = 600
_SEED_BAND = "0.6"  # grey: the seed baseline (dense vs dense) is a reference, not a result


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with (
        mpl.rc_context(_RC),
        sns.axes_style("whitegrid"),
        sns.plotting_context("notebook", font_scale=0.85),
    ):
        yield


Out = str | os.PathLike | Sequence[str | os.PathLike] | None


def _paths(out: Out) -> list[Path]:
    if out is None:
        return []
    if isinstance(out, str | os.PathLike):
        return [Path(out)]
    return [Path(p) for p in out]


def save_figure(fig: Figure, out: Out) -> None:
    """Write ``fig`` to ``out`` (a path or several) atomically, in the format of each suffix."""
    paths = _paths(out)
    for path in paths:
        fmt = path.suffix.lstrip(".").lower()
        if fmt not in _FORMATS:
            raise PrunesimError(
                f"cannot write figure {path}: unknown suffix {path.suffix!r}; use one of "
                f"{', '.join('.' + f for f in _FORMATS)}."
            )
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    for path in paths:
        fmt = path.suffix.lstrip(".").lower()
        with mpl.rc_context(_RC), atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt], bbox_inches="tight")


def read_table(table: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """A table from its CSV file (or a copy of the DataFrame), with a clear error if empty."""
    if isinstance(table, pd.DataFrame):
        return table.copy()
    path = Path(table)
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise PrunesimError(
            f"table {path} is empty (not even a header); rerun aggregate."
        ) from None


def figure_settings(settings: Mapping | None = None) -> dict:
    """The ``figures:`` settings with defaults filled in, checked."""
    merged = {**FIGURE_DEFAULTS, **(settings or {})}
    unknown = sorted(set(merged) - set(FIGURE_DEFAULTS))
    if unknown:
        raise PrunesimError(
            f"unknown figure setting(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(FIGURE_DEFAULTS))}"
        )
    _check_choice("density_axis", merged["density_axis"], DENSITY_AXES)
    _check_choice("similarity_ylim", merged["similarity_ylim"], SIMILARITY_YLIMS)
    return merged


def _check_choice(name: str, value, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise PrunesimError(f"{name} is {value!r}; allowed values: {', '.join(allowed)}")


def layerwise_metrics(metrics: Iterable[str]) -> list[str]:
    """The metrics that get a layerwise figure (not the output-layer-only ones)."""
    return [m for m in metrics if m not in OUTPUT_ONLY_METRICS]


def _pct(density: float) -> str:
    """Fraction as a percentage with three significant digits: 0.512 → '51.2%'."""
    return f"{100 * density:.3g}%"


def _metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _similarity_label(metric: str) -> str:
    """Axis label of a metric's values: 'CKA similarity', 'cosine similarity'."""
    label = _metric_label(metric)
    return label if label.endswith("similarity") else f"{label} similarity"


def _metric_style(metric: str, order: Sequence[str]) -> tuple[str, str]:
    if metric in METRIC_STYLES:
        return METRIC_STYLES[metric]
    extra = [m for m in order if m not in METRIC_STYLES]
    return _EXTRA_STYLES[extra.index(metric) % len(_EXTRA_STYLES)]


def _first(df: pd.DataFrame, column: str, default: str = "?") -> str:
    values = df[column].dropna().unique() if column in df else []
    return str(values[0]) if len(values) else default


def _subject(df: pd.DataFrame) -> str:
    return f"{_first(df, 'model')} on {_first(df, 'dataset')}"


def table_subject(table: str | os.PathLike | pd.DataFrame) -> str:
    """'<model> on <dataset>' of a table with model and dataset columns."""
    return _subject(read_table(table))


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _density_column(df: pd.DataFrame, density_axis: str) -> tuple[str, str]:
    """(column, what it counts) for ``density_axis``; ``density`` if the column is missing."""
    _check_choice("density_axis", density_axis, DENSITY_AXES)
    column, counts = DENSITY_AXES[density_axis]
    if column not in df or df[column].isna().any():
        column, counts = DENSITY_AXES["prunable"]  # a table from before the column existed
    return column, counts


def _density_label(counts: str) -> str:
    return f"proportion of {counts} remaining"


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


def _density_axis(ax, densities: Sequence[float], iterations: Sequence[int], counts: str) -> None:
    """Log x axis of the proportion remaining, pruning progressing to the right.

    Ticks sit at the IMP iterations' densities (labelled in %), and a top axis names the
    iterations.
    """
    pairs = sorted(
        ((d, k) for d, k in zip(densities, iterations, strict=True) if np.isfinite(d) and d > 0),
        reverse=True,
    )
    ax.set_xscale("log")
    ax.set_xlabel(f"{_density_label(counts)} (log scale)")
    if not pairs:
        return
    ticks = _thin(pairs, _MAX_DENSITY_TICKS)
    ax.xaxis.set_major_locator(FixedLocator([d for d, _ in ticks]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _pct(x)))
    ax.xaxis.set_minor_locator(NullLocator())
    lo, hi = pairs[-1][0], pairs[0][0]
    pad = (hi / lo) ** 0.05 if hi > lo else 1.1
    ax.set_xlim(hi * pad, lo / pad)  # inverted: dense on the left
    top = ax.secondary_xaxis("top")
    top.set_xticks([d for d, _ in ticks], labels=[str(k) for _, k in ticks])
    top.xaxis.set_minor_locator(NullLocator())
    top.set_xlabel("IMP iteration")


def _iteration_axis(ax, density: pd.Series, counts: str) -> None:
    """Linear x axis of the IMP iterations; a top axis gives the proportion remaining."""
    iterations = [int(k) for k in density.index]
    ticks = _thin(iterations, _MAX_ITERATION_TICKS)
    ax.set_xticks(ticks)
    ax.xaxis.set_minor_locator(NullLocator())
    if iterations:
        ax.set_xlim(min(iterations) - 0.5, max(iterations) + 0.5)
    ax.set_xlabel("IMP iteration")
    top = ax.secondary_xaxis("top")
    top.set_xticks(ticks, labels=[_pct(density.get(k, np.nan)) for k in ticks])
    top.xaxis.set_minor_locator(NullLocator())
    top.set_xlabel(_density_label(counts))


def _panels_width(n_layers: int, ncols: int, minimum: float) -> float:
    """Figure width (inches) for ``ncols`` columns of layer-by-layer panels: 0.3 in per layer
    tick per column plus the legend's margin, so that a 19-layer VGG16_BN figure stays
    readable at screen size (the random-pruning figure was 54 in wide at 0.9 in)."""
    return max(minimum, 0.3 * n_layers * ncols + 3.5)


def _fit_ylim(ax, values: Iterable[float], mode: str) -> None:
    """y range: [0, 1] (``unit``) or fitted to the finite ``values`` drawn (``data``)."""
    _check_choice("similarity_ylim", mode, SIMILARITY_YLIMS)
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if mode == "unit" or finite.size == 0:
        ax.set_ylim(*_UNIT_YLIM)
        return
    lo, hi = float(finite.min()), float(finite.max())
    pad = max(0.06 * (hi - lo), 0.005)
    ax.set_ylim(lo - pad, hi + pad)


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


def _bands_note(bands: bool) -> str:
    return "bands: ± 1 std over runs." if bands else "no bands (figures.similarity_bands)."


def _lines_note(n_runs: int, bands: bool, n_seeds: int) -> str:
    """Footnote of the layerwise figures: what a line, a band and the grey band are."""
    return (
        f"Lines: mean over {_plural(n_runs, 'run', 'runs')}; "
        + _bands_note(bands)
        + _seed_note(n_seeds)
    )


def _figure_legend(fig: Figure, ax, title: str, ncol: int = 1) -> None:
    """One legend for all panels, from ``ax``'s lines, outside on the right."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, title=title, loc="outside right upper", frameon=False, ncol=ncol)


def _placeholder(title: str, message: str, out: Out) -> Figure:
    """A figure that says why there is nothing to draw (the rule's output must exist)."""
    with _style():
        fig = Figure(figsize=(6.4, 2.4), layout="constrained")
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(title)
        ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, color="0.3")
    save_figure(fig, out)
    return fig


def _mean_std(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Mean, std (0 for a single value) and counts of ``value`` per group; NaN not averaged."""
    grouped = df.groupby(by, sort=True)[value]
    stats = grouped.agg(["mean", "std", "count", "size"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    return stats


# ---------------------------------------------------------------------------- accuracy


def _accuracy_table(accuracy: str | os.PathLike | pd.DataFrame, *kinds: str) -> pd.DataFrame:
    """The accuracy table's networks of ``kinds`` (default the paper's: dense and IMP)."""
    df = network_rows(read_table(accuracy), *(kinds or ("dense", "imp")))
    df = df.dropna(subset=["test_accuracy"])
    if not df.empty and df["test_accuracy"].max() > 1.0:  # tolerate percentages
        df["test_accuracy"] = df["test_accuracy"] / 100.0
    return df


def _percent_axis(ax, values: Iterable[float]) -> None:
    """Accuracy axis fitted to ``values`` within [0, 1], labelled in % at a sensible precision."""
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    pad = max(0.08 * (hi - lo), 0.004)
    bottom, top = max(0.0, lo - pad), min(1.0, hi + pad)
    if top - bottom < 0.01:  # a flat line: show at least one percentage point
        bottom = max(0.0, top - 0.01)
    ax.set_ylim(bottom, top)
    locator = MaxNLocator(nbins=6, steps=[1, 2, 5, 10])
    ax.yaxis.set_major_locator(locator)
    ticks = locator.tick_values(bottom, top)
    step = float(np.min(np.diff(ticks))) if len(ticks) > 1 else 0.1
    decimals = max(0, math.ceil(-math.log10(100 * step) - 1e-9))
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))
    ax.set_ylabel("test accuracy")


def _draw_accuracy(ax, df: pd.DataFrame, density_axis: str) -> dict:
    """Fig. 4 in ``ax``: mean ± 2 std over runs (clipped to [0, 1]), dots, dense dotted."""
    column, counts = _density_column(df, density_axis)
    dense = df[df["iteration"] == 0]
    pruned = df[df["iteration"] > 0]
    stats = _mean_std(pruned, ["iteration"], "test_accuracy")
    dens = pruned.groupby("iteration", sort=True)[column].mean().to_numpy()
    x, y, s, its = dens, stats["mean"].to_numpy(), stats["std"].to_numpy(), list(stats["iteration"])
    dense_acc = dense["test_accuracy"].mean() if not dense.empty else np.nan
    if not dense.empty:
        x, y = np.r_[dense[column].mean(), x], np.r_[dense_acc, y]
        s, its = np.r_[0.0, s], [0, *its]
    n_runs = pruned["run"].nunique()
    low, high = np.clip(y - 2 * s, 0.0, 1.0), np.clip(y + 2 * s, 0.0, 1.0)  # feasible range
    colour = sns.color_palette("deep")[0]
    ax.fill_between(x, low, high, color=colour, alpha=0.2, lw=0, label="± 2 std")
    ax.plot(x, y, color=colour, marker="o", ms=4, lw=1.8, label=f"mean over {n_runs} runs")
    ax.scatter(
        pruned[column],
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
    _density_axis(ax, x, its, counts)
    _percent_axis(ax, [*low, *high, *pruned["test_accuracy"], dense_acc])
    return {"n_runs": n_runs, "dense": dense_acc}


def plot_accuracy(
    accuracy: str | os.PathLike | pd.DataFrame,
    out: Out = None,
    *,
    density_axis: str = FIGURE_DEFAULTS["density_axis"],
    title: str | None = None,
) -> Figure:
    """Test accuracy vs proportion of parameters remaining (paper, Fig. 4).

    Mean over runs per IMP iteration with a ± 2 std band clipped to [0, 1]; every run's
    network is a dot; the dense network's accuracy is the dotted line (and the leftmost
    point). ``density_axis``: ``all_params`` (all parameters, BN and biases included) or
    ``prunable`` (prunable weights); tables without ``density_all_params`` use the latter.
    """
    df = _accuracy_table(accuracy)
    title = title or f"Test accuracy under IMP: {_subject(df)}"
    if df.empty:
        return _placeholder(title, "no network has a test accuracy yet", out)
    with _style():
        fig = Figure(figsize=(7.6, 4.4), layout="constrained")
        ax = fig.add_subplot()
        _draw_accuracy(ax, df, density_axis)
        ax.set_title(title)
        _legend_outside(ax, "")
    save_figure(fig, out)
    return fig


def plot_accuracy_all(
    accuracy: Mapping[str, str | os.PathLike | pd.DataFrame],
    out: Out = None,
    *,
    density_axis: str = FIGURE_DEFAULTS["density_axis"],
    title: str | None = None,
) -> Figure:
    """Fig. 4 for every experiment side by side: one panel per experiment (model).

    ``accuracy`` maps experiment names to their accuracy tables, in panel order. Each panel
    is :func:`plot_accuracy`'s plot with its own y range; one legend below serves all.
    """
    title = title or "Test accuracy under IMP"
    tables = {name: _accuracy_table(table) for name, table in accuracy.items()}
    if not tables or all(df.empty for df in tables.values()):
        return _placeholder(title, "no network has a test accuracy yet", out)
    subjects = {name: _subject(df) for name, df in tables.items()}
    repeated = {s for s in subjects.values() if list(subjects.values()).count(s) > 1}
    with _style():
        fig = Figure(figsize=(4.6 * len(tables) + 0.6, 4.6), layout="constrained")
        axes = fig.subplots(1, len(tables), squeeze=False)[0]
        handles = []
        for ax, (name, df) in zip(axes, tables.items(), strict=True):
            subject = subjects[name] + (f" ({name})" if subjects[name] in repeated else "")
            if df.empty:
                ax.set_axis_off()
                ax.set_title(subject)
                ax.text(0.5, 0.5, "no test accuracy yet", ha="center", va="center", color="0.3")
                continue
            info = _draw_accuracy(ax, df, density_axis)
            dense = f", dense {_pct(info['dense'])}" if np.isfinite(info["dense"]) else ""
            ax.set_title(f"{subject}\n{_plural(info['n_runs'], 'run', 'runs')}{dense}")
            if not handles:
                handles = ax.get_legend_handles_labels()[0]
        labels = ["± 2 std over runs", "mean over runs", "single runs", "dense network"]
        fig.legend(handles, labels[: len(handles)], loc="outside lower center", ncol=4)
        fig.suptitle(title)
    save_figure(fig, out)
    return fig


# ---------------------------------------------------------------------------- similarity


def _paper_and_seed_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the paper's pruned-vs-dense rows, the seed baseline's rows) of a similarity table."""
    return comparison_rows(df, PRUNED_VS_DENSE), comparison_rows(df, SEED_VS_DENSE)


def _seed_note(n_seeds: int) -> str:
    """The grey band's footnote; one seed network has no spread, so no band, only its line."""
    if not n_seeds:
        return ""
    if n_seeds == 1:
        return (
            "\nGrey dotted line: dense vs dense, one network trained with another seed (no "
            "band: one network has no spread): the similarity retraining alone gives."
        )
    return (
        f"\nGrey band: dense vs dense, {n_seeds} networks trained with other seeds "
        "(mean ± 1 std, dotted: mean): the similarity retraining alone gives."
    )


def _same_layer(df: pd.DataFrame) -> pd.DataFrame:
    if "layer_b" not in df:
        return df
    return df[df["layer_b"].isna() | (df["layer"] == df["layer_b"])]


def _iter_label(iteration: int, density: pd.Series) -> str:
    d = density.get(iteration, np.nan)
    return f"{_pct(d)} ({iteration})" if np.isfinite(d) else f"? ({iteration})"


class _Layerwise:
    """What every layerwise panel of a table shares: layers, iterations, colours, densities."""

    def __init__(self, df: pd.DataFrame, density_axis: str, seed: pd.DataFrame | None = None):
        df = _same_layer(df)
        column, self.counts = _density_column(df, density_axis)
        order = df.drop_duplicates("layer").sort_values("layer_index")
        self.layers = list(order["layer"])
        position = {name: i for i, name in enumerate(self.layers)}
        self.df = df.assign(position=df["layer"].map(position))
        self.density = self.df.groupby("iteration", sort=True)[column].mean()
        self.iterations = list(self.density.index)
        self.palette = sns.color_palette(_LAYERWISE_PALETTE, len(self.iterations))
        self.legend_title = f"{self.counts} remaining\n(IMP iteration)"
        seed = _same_layer(seed) if seed is not None else df.iloc[0:0]
        self.seed = seed.assign(position=seed["layer"].map(position))

    def n_seeds(self, metrics: Iterable[str]) -> int:
        """Seed networks behind the grey band of ``metrics`` (0: no band)."""
        return self.seed.loc[self.seed["metric"].isin(list(metrics)), "run"].nunique()

    def draw_seed_band(self, ax, metric: str) -> list[float]:
        """The seed baseline of ``metric``: mean ± 1 std over the seed networks, per layer.

        With one seed network the std is not defined, so only its line is drawn, and the
        legend names no band that is not there.
        """
        seed = self.seed[self.seed["metric"] == metric].dropna(subset=["position"])
        if seed.empty:
            return []
        x = np.arange(len(self.layers))
        st = _mean_std(seed, ["position"], "value").set_index("position").reindex(x)
        mean, std = st["mean"].to_numpy(), st["std"].to_numpy()
        n = seed["run"].nunique()
        if n == 1:
            ax.plot(x, mean, color=_SEED_BAND, ls=":", lw=1.4, zorder=1.5,
                    label="dense vs dense (1 seed)")  # fmt: skip
            return list(mean)
        ax.fill_between(
            x, mean - std, mean + std, color=_SEED_BAND, alpha=0.35, lw=0, zorder=1,
            label=f"dense vs dense ({n} seeds): ± 1 std",
        )  # fmt: skip
        ax.plot(x, mean, color=_SEED_BAND, ls=":", lw=1.4, zorder=1.5, label="dense vs dense: mean")
        return [*(mean - std), *(mean + std)]

    def draw(self, ax, metric: str, *, bands: bool, ylim: str) -> tuple[int, int]:
        """One metric's lines in ``ax``; returns (undefined values, values)."""
        df = self.df[self.df["metric"] == metric]
        stats = _mean_std(df, ["iteration", "position"], "value")
        x = np.arange(len(self.layers))
        drawn: list[float] = self.draw_seed_band(ax, metric)
        for colour, k in zip(self.palette, self.iterations, strict=True):
            st = stats[stats["iteration"] == k].set_index("position").reindex(x)
            mean, std = st["mean"].to_numpy(), st["std"].to_numpy()
            if bands:
                ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
                drawn += [*(mean - std), *(mean + std)]
            ax.plot(
                x,
                mean,
                color=colour,
                marker="o",
                ms=3.5,
                lw=1.6,
                label=_iter_label(k, self.density),
            )
            drawn += list(mean)
        missing = df[df["value"].isna()]
        if not missing.empty:
            ax.scatter(
                missing["position"],
                np.full(len(missing), 0.03),
                transform=ax.get_xaxis_transform(),  # at the bottom, whatever the y range
                marker="x",
                color="firebrick",
                s=24,
                label="undefined (see note)",
                zorder=4,
                clip_on=False,
            )
        ax.set_xticks(x, labels=self.layers, rotation=60, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.5, len(self.layers) - 0.5)
        _fit_ylim(ax, drawn, ylim)
        return len(missing), len(df)

    def n_runs(self, metrics: Iterable[str]) -> int:
        return self.df.loc[self.df["metric"].isin(list(metrics)), "run"].nunique()


def plot_layerwise(
    similarity: str | os.PathLike | pd.DataFrame,
    metric: str,
    out: Out = None,
    *,
    bands: bool = FIGURE_DEFAULTS["similarity_bands"],
    ylim: str = FIGURE_DEFAULTS["similarity_ylim"],
    density_axis: str = FIGURE_DEFAULTS["density_axis"],
    title: str | None = None,
) -> Figure:
    """One metric's similarity of each pruned layer to the same dense layer (paper, Figs 5-7).

    x: the compared layers in forward order, named; y: similarity, fitted to the data
    (``ylim="data"``) or [0, 1] (``"unit"``); one line per IMP iteration from light (first)
    to dark (last), mean over runs, with a ± 1 std band if ``bands``. Legend entries give
    the proportion remaining (``density_axis``). With seed-baseline rows, a grey band.
    """
    df, seed = _paper_and_seed_rows(read_table(similarity))
    label = _metric_label(metric)
    title = title or f"{label}, pruned vs dense, layer by layer: {_subject(df)}"
    part = _same_layer(df[df["metric"] == metric])
    if part.empty:
        return _placeholder(title, f"no same-layer {label} values in the table", out)
    lw = _Layerwise(part, density_axis, seed)

    with _style():
        fig = Figure(figsize=(max(6.0, 0.42 * len(lw.layers) + 3.5), 4.6), layout="constrained")
        ax = fig.add_subplot()
        n_missing, n_total = lw.draw(ax, metric, bands=bands, ylim=ylim)
        ax.set_xlabel("layer (forward order)")
        ax.set_ylabel(_similarity_label(metric))
        ax.set_title(title)
        _legend_outside(ax, lw.legend_title, ncol=1 if len(lw.iterations) <= 12 else 2)
        _footnote(
            fig, _lines_note(lw.n_runs([metric]), bands, lw.n_seeds([metric])), n_missing, n_total
        )
    save_figure(fig, out)
    return fig


def plot_layerwise_grid(
    similarity: str | os.PathLike | pd.DataFrame,
    out: Out = None,
    *,
    metrics: Sequence[str] = PAPER_METRICS,
    bands: bool = FIGURE_DEFAULTS["similarity_bands"],
    ylim: str = FIGURE_DEFAULTS["similarity_ylim"],
    density_axis: str = FIGURE_DEFAULTS["density_axis"],
    title: str | None = None,
) -> Figure:
    """The paper's layerwise figure for one model: SVCCA, PWCCA, CKA, NBS in a 2 × 2 grid.

    Each panel is :func:`plot_layerwise`'s plot of one metric (x: the layers, one line per
    IMP iteration light → dark, mean over runs); one legend serves all panels. A metric
    missing from the table leaves its panel saying so.
    """
    df, seed = _paper_and_seed_rows(read_table(similarity))
    title = title or f"Layerwise similarity, pruned vs dense: {_subject(df)}"
    present = set(_same_layer(df)["metric"])
    drawable = [m for m in metrics if m in present]
    if not drawable:
        names = ", ".join(_metric_label(m) for m in metrics)
        return _placeholder(title, f"no same-layer {names} values in the table", out)
    lw = _Layerwise(df[df["metric"].isin(drawable)], density_axis, seed)
    ncols = 2 if len(metrics) > 1 else 1
    nrows = -(-len(metrics) // ncols)

    with _style():
        width = _panels_width(len(lw.layers), ncols, 9.0)
        fig = Figure(figsize=(width, 3.4 * nrows + 1.2), layout="constrained")
        axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
        n_missing = n_total = 0
        for ax, metric in zip(axes, metrics, strict=False):
            label = _metric_label(metric)
            ax.set_title(label)
            if metric not in present:
                ax.text(
                    0.5, 0.5, f"{label} not in the similarity table", ha="center",
                    va="center", transform=ax.transAxes, color="0.3",
                )  # fmt: skip
                ax.set_yticks([])
                continue
            missing, total = lw.draw(ax, metric, bands=bands, ylim=ylim)
            n_missing, n_total = n_missing + missing, n_total + total
            ax.set_ylabel(_similarity_label(metric))
        for ax in axes[len(metrics) :]:
            ax.set_axis_off()
        for ax in axes[-ncols:]:
            ax.set_xlabel("layer (forward order)")
        ncol = 1 if len(lw.iterations) <= 16 else 2
        _figure_legend(fig, axes[metrics.index(drawable[0])], lw.legend_title, ncol)
        fig.suptitle(title)
        _footnote(
            fig,
            _lines_note(lw.n_runs(drawable), bands, lw.n_seeds(drawable))
            + (" y ranges fitted to each panel's data." if ylim == "data" else ""),
            n_missing,
            n_total,
        )
    save_figure(fig, out)
    return fig


def _draw_output_metric(ax, part: pd.DataFrame, metric: str, order, offset: float, bands: bool):
    """One metric of the output-layer figure: mean line, optional ± 1 std band, and every
    run's value as a dot shifted by ``offset`` (so that no metric hides another). Returns
    the values drawn, for the y-limits."""
    colour, marker = _metric_style(metric, order)
    st = _mean_std(part, ["iteration"], "value")
    x = st["iteration"].to_numpy(dtype=float)
    mean, std = st["mean"].to_numpy(), st["std"].to_numpy()
    drawn = [*mean, *part["value"]]
    if bands:
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
        drawn += [*(mean - std), *(mean + std)]
    ax.scatter(part["iteration"] + offset, part["value"], color=colour, marker=marker, s=16,
               alpha=0.6, lw=0, zorder=2.5)  # fmt: skip
    ax.plot(x, mean, color=colour, marker=marker, ms=6, mec="white", mew=0.6, lw=1.8,
            label=_metric_label(metric), zorder=3)  # fmt: skip
    return drawn


def plot_output_similarity(
    similarity: str | os.PathLike | pd.DataFrame,
    out: Out = None,
    *,
    metrics: Sequence[str] | None = None,
    bands: bool = FIGURE_DEFAULTS["similarity_bands"],
    ylim: str = FIGURE_DEFAULTS["similarity_ylim"],
    density_axis: str = FIGURE_DEFAULTS["density_axis"],
    title: str | None = None,
) -> Figure:
    """Output-layer similarity of pruned vs dense across IMP iterations (paper, Fig. 8).

    x: IMP iteration (top axis: proportion remaining); one line per metric, each with its
    own colour and marker (mean over runs, ± 1 std band if ``bands``); every run's value is
    a dot beside its iteration (shifted a little per metric so that none hides another).
    """
    df = comparison_rows(read_table(similarity), PRUNED_VS_DENSE)
    title = title or f"Output-layer similarity, pruned vs dense: {_subject(df)}"
    df = _same_layer(df[df["layer_kind"] == "out"])
    if metrics is not None:
        df = df[df["metric"].isin(list(metrics))]
    if df.empty:
        return _placeholder(title, "no output-layer similarity values in the table", out)
    present = list(dict.fromkeys(df["metric"]))
    known = list(metrics or METRIC_LABELS)
    order = [m for m in known if m in present] + sorted(m for m in present if m not in known)
    column, counts = _density_column(df, density_axis)
    density = df.groupby("iteration", sort=True)[column].mean()
    shift = 0.32 / max(len(order), 1)

    with _style():
        fig = Figure(figsize=(7.6, 4.4), layout="constrained")
        ax = fig.add_subplot()
        drawn: list[float] = []
        for i, metric in enumerate(order):
            offset = (i - (len(order) - 1) / 2) * shift
            part = df[df["metric"] == metric]
            drawn += _draw_output_metric(ax, part, metric, order, offset, bands)
        _iteration_axis(ax, density, counts)
        _fit_ylim(ax, drawn, ylim)
        ax.set_ylabel("similarity of the output layer")
        ax.set_title(title)
        _legend_outside(ax, "metric")
        _footnote(
            fig,
            f"Lines: mean over {_plural(df['run'].nunique(), 'run', 'runs')}; small "
            "markers beside each iteration: single runs; " + _bands_note(bands),
            int(df["value"].isna().sum()),
            len(df),
        )
    save_figure(fig, out)
    return fig


# ---------------------------------------------------------------------------- masks


def plot_mask_overlap(
    masks: str | os.PathLike | pd.DataFrame,
    out: Out = None,
    *,
    subject: str | None = None,
    title: str | None = None,
) -> Figure:
    """Jaccard index of the masks of two IMP runs: heatmap of layer × IMP iteration.

    Each cell is the mean over pairs of runs, annotated; rows are the prunable layers in
    table order, then all prunable weights together and the overlap two random masks of
    the same density would have (chance level). Columns name the iteration and the
    proportion of prunable weights remaining (masks cover prunable weights only).
    ``subject`` ('<model> on <dataset>', from the table by default) titles the figure.
    """
    df = read_table(masks)
    subject = subject or (_subject(df) if "model" in df else _first(df, "experiment"))
    title = title or f"Mask overlap between IMP runs: {subject}"
    df = df.dropna(subset=["jaccard"])
    if df.empty:
        return _placeholder(
            title, "no pair of runs to compare (mask overlap needs at least 2 runs)", out
        )
    layers = [name for name in dict.fromkeys(df["layer"]) if name != ALL_LAYERS]
    overall = df[df["layer"] == ALL_LAYERS]
    basis = overall if not overall.empty else df
    density = basis.groupby("iteration", sort=True)["density"].mean()
    iterations = list(density.index)
    grid = df.pivot_table(index="layer", columns="iteration", values="jaccard", aggfunc="mean")
    rows = layers + ([ALL_LAYERS] if not overall.empty else [])
    grid = grid.reindex(index=rows, columns=iterations)
    chance = pd.DataFrame(
        [[random_jaccard(d, d) for d in density.to_numpy()]], index=["chance"], columns=iterations
    )
    grid = pd.concat([grid, chance])
    names = {ALL_LAYERS: "all prunable weights", "chance": "random masks (chance)"}
    grid.index = [names.get(name, name) for name in grid.index]
    grid.columns = [f"{k}\n{_pct(density[k])}" for k in iterations]
    n_pairs = len(df[["run_a", "run_b"]].drop_duplicates())

    with _style():
        width = 0.62 * len(iterations) + 4.2
        fig = Figure(figsize=(width, 0.3 * len(grid) + 2.2), layout="constrained")
        ax = fig.add_subplot()
        sns.heatmap(
            grid,
            ax=ax,
            vmin=0.0,
            vmax=1.0,
            cmap="mako",
            annot=grid.size <= _MAX_ANNOTATED_CELLS,
            fmt=".2f",
            annot_kws={"fontsize": 7},
            cbar_kws={"label": "Jaccard index of two runs' masks", "shrink": 0.8},
            linewidths=0.4,
            linecolor="white",
        )
        ax.axhline(len(layers), color="white", lw=3)  # layers | totals
        ax.axhline(len(grid) - 1, color="white", lw=3)  # measured | chance
        ax.tick_params(axis="y", labelrotation=0)
        ax.tick_params(axis="x", labelrotation=0)
        ax.set_xlabel("IMP iteration (proportion of prunable weights remaining)")
        ax.set_ylabel("prunable layer")
        ax.set_title(title)
        _footnote(
            fig,
            f"Cells: mean over {_plural(n_pairs, 'pair', 'pairs')} of runs; chance: d / (2 - d) "
            "at density d.",
        )
    save_figure(fig, out)
    return fig


# ---------------------------------------------------------------------------- cross-layer


def plot_cross_layer(
    similarity: str | os.PathLike | pd.DataFrame,
    metric: str,
    out: Out = None,
    *,
    iteration: int | None = None,
    density_axis: str = FIGURE_DEFAULTS["density_axis"],
    title: str | None = None,
) -> Figure:
    """Heatmap of one metric between every pruned layer (rows) and every dense layer (columns).

    Mean over runs at ``iteration`` (default: the last one in the table). Drawn only where
    cross-layer pairs were computed; otherwise the figure says so.
    """
    df = comparison_rows(read_table(similarity), PRUNED_VS_DENSE)
    label = _metric_label(metric)
    df = df[df["metric"] == metric]
    cross = "layer_b" in df and bool((df["layer_b"].notna() & (df["layer"] != df["layer_b"])).any())
    if iteration is None and not df.empty:
        iteration = int(df["iteration"].max())
    at = df[df["iteration"] == iteration] if iteration is not None else df
    column, counts = _density_column(at, density_axis)
    density = at[column].mean() if not at.empty else np.nan
    when = f"iteration {iteration}, {_pct(density)} of {counts}" if np.isfinite(density) else ""
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
            cbar_kws={"label": _similarity_label(metric), "shrink": 0.8},
            linewidths=0.3,
            linecolor="white",
        )
        ax.tick_params(axis="y", labelrotation=0)
        ax.tick_params(axis="x", labelrotation=60 if len(cols) > 8 else 0)
        ax.set_xlabel("dense network's layer")
        ax.set_ylabel("pruned network's layer")
        ax.set_title(title)
    save_figure(fig, out)
    return fig


def plot_intrinsic_dimension(
    table: str | os.PathLike | pd.DataFrame,
    out: Out = None,
    *,
    bands: bool = FIGURE_DEFAULTS["similarity_bands"],
    density_axis: str = FIGURE_DEFAULTS["density_axis"],
) -> Figure:
    """TwoNN intrinsic dimension of each layer (Ansuini et al. 2019), laid out as Figs 5-7.

    x: the compared layers in forward order; y: ID, fitted to the data; the dense network
    in black, one line per IMP iteration from light to dark (mean over runs, ± 1 std band if
    ``bands``); an undefined ID (see the table's note) is a red cross at the bottom.
    """
    df = read_table(table)
    title = f"Intrinsic dimension (TwoNN) of each layer: {_subject(df)}"
    frame = df.assign(metric="intrinsic_dimension", value=df["intrinsic_dimension"])
    frame = frame.assign(layer_b=frame["layer"])
    pruned = frame[frame["iteration"] > 0]
    dense = frame[frame["iteration"] == 0].sort_values("layer_index")
    if pruned.empty and dense.empty:
        return _placeholder(title, "no intrinsic-dimension values in the table", out)
    lw = _Layerwise(pruned if not pruned.empty else dense, density_axis)
    with _style():
        fig = Figure(figsize=(max(6.0, 0.42 * len(lw.layers) + 3.5), 4.6), layout="constrained")
        ax = fig.add_subplot()
        n_missing, n_total = (0, 0)
        if not pruned.empty:
            n_missing, n_total = lw.draw(ax, "intrinsic_dimension", bands=bands, ylim="data")
        position = {name: i for i, name in enumerate(lw.layers)}
        ax.plot(
            dense["layer"].map(position), dense["value"], color="black", ls="--", marker="s",
            ms=3.5, lw=1.4, label="dense", zorder=3,
        )  # fmt: skip
        _fit_ylim(ax, [*frame["value"].dropna()], "data")
        ax.set_xlabel("layer (forward order)")
        ax.set_ylabel("intrinsic dimension (TwoNN)")
        ax.set_title(title)
        _legend_outside(ax, lw.legend_title, ncol=1 if len(lw.iterations) <= 12 else 2)
        _footnote(
            fig,
            f"Lines: mean over {_plural(max(lw.n_runs(['intrinsic_dimension']), 1), 'run', 'runs')}"
            f"; dense network dashed; {_bands_note(bands)}",
            n_missing,
            n_total,
        )
    save_figure(fig, out)
    return fig


# ---------------------------------------------------------------------------- controls


def _metric_panels(fig: Figure, n_panels: int, ncols: int):
    axes = fig.subplots(-(-n_panels // ncols), ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    return axes


def _control_lines(ax, lw: _Layerwise, rows: pd.DataFrame, metric: str, styles) -> list[float]:
    """Mean over runs (or pairs) per iteration of ``rows``' ``metric``, one line per
    iteration in ``lw``'s colour; ``styles`` = (line style, marker, label suffix)."""
    ls, marker, what = styles
    rows = _same_layer(rows[rows["metric"] == metric])
    position = {name: i for i, name in enumerate(lw.layers)}
    rows = rows.assign(position=rows["layer"].map(position))
    stats = _mean_std(rows, ["iteration", "position"], "value")
    x = np.arange(len(lw.layers))
    drawn: list[float] = []
    for colour, k in zip(lw.palette, lw.iterations, strict=True):
        st = stats[stats["iteration"] == k].set_index("position").reindex(x)
        if st["mean"].isna().all():
            continue
        mean = st["mean"].to_numpy()
        ax.plot(
            x, mean, color=colour, ls=ls, marker=marker, ms=4, lw=1.6,
            label=f"{what}, {_iter_label(k, lw.density)}",
        )  # fmt: skip
        drawn += list(mean)
    return drawn


def _control_panel(ax, lw: _Layerwise, metric: str, drawn: list[float], ylim: str) -> None:
    """A control figure's metric panel around its lines: the named layers, the y range."""
    x = np.arange(len(lw.layers))
    ax.set_xticks(x, labels=lw.layers, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.5, len(lw.layers) - 0.5)
    _fit_ylim(ax, drawn, ylim)
    ax.set_title(_metric_label(metric))
    ax.set_ylabel(_similarity_label(metric))


def _draw_random_accuracy(ax, accuracy: pd.DataFrame, iterations: Sequence[int]) -> None:
    """IMP's accuracy per iteration (mean over runs, run 1 marked) and the random networks'."""
    imp = _accuracy_table(accuracy, "dense", "imp")
    random = _accuracy_table(accuracy, "random")
    stats = _mean_std(imp, ["iteration"], "test_accuracy")
    colour = sns.color_palette("deep")[0]
    ax.plot(stats["iteration"], stats["mean"], color=colour, marker="o", ms=4, lw=1.6,
            label="IMP: mean over runs")  # fmt: skip
    run = imp[(imp["run"] == RANDOM_PRUNING_RUN) | (imp["iteration"] == 0)]
    ax.scatter(run["iteration"], run["test_accuracy"], color=colour, marker="s", s=22,
               label=f"IMP: run {RANDOM_PRUNING_RUN}", zorder=3)  # fmt: skip
    ax.scatter(random["iteration"], random["test_accuracy"], color="firebrick", marker="X",
               s=48, label="random pruning", zorder=4)  # fmt: skip
    values = [*imp["test_accuracy"], *random["test_accuracy"]]
    its = sorted({0, *stats["iteration"], *iterations})
    ax.set_xticks(its)
    ax.set_xlabel("IMP iteration")
    _percent_axis(ax, values)
    ax.set_title("test accuracy")
    ax.legend(frameon=False, fontsize="small")


def plot_random_pruning(
    similarity: str | os.PathLike | pd.DataFrame,
    accuracy: str | os.PathLike | pd.DataFrame,
    out: Out = None,
    *,
    metrics: Sequence[str] = PAPER_METRICS,
    ylim: str = FIGURE_DEFAULTS["similarity_ylim"],
    density_axis: str = FIGURE_DEFAULTS["density_axis"],
    title: str | None = None,
) -> Figure:
    """The random-pruning control beside IMP, one experiment.

    First panel: test accuracy per IMP iteration (IMP's mean over runs, run 1's networks,
    the random networks as red crosses). Then one panel per metric: layer by layer, for
    every iteration with a random network, IMP run 1 (solid; the random network's sibling:
    same parent, same per-layer counts, same retraining) and random pruning (dashed) vs the
    dense network, in that iteration's colour; the seed baseline's grey band where present.
    """
    df = read_table(similarity)
    paper, seed = _paper_and_seed_rows(df)
    random = comparison_rows(df, RANDOM_VS_DENSE)
    title = title or f"Random pruning at IMP's per-layer counts vs IMP: {_subject(df)}"
    drawable = [m for m in metrics if m in set(random["metric"])]
    if random.empty or not drawable:
        return _placeholder(title, "no random-pruning similarity values in the table", out)
    iterations = sorted(set(random["iteration"]))
    imp = paper[(paper["run"] == RANDOM_PRUNING_RUN) & paper["iteration"].isin(iterations)]
    lw = _Layerwise(pd.concat([imp, random]), density_axis, seed)
    with _style():
        fig = Figure(figsize=(_panels_width(len(lw.layers), 3, 12.0), 8.4), layout="constrained")
        axes = _metric_panels(fig, len(drawable) + 1, 3)
        _draw_random_accuracy(axes[0], read_table(accuracy), iterations)
        for ax, metric in zip(axes[1:], drawable, strict=False):
            drawn = lw.draw_seed_band(ax, metric)
            drawn += _control_lines(
                ax, lw, imp, metric, ("-", "o", f"IMP run {RANDOM_PRUNING_RUN}")
            )
            drawn += _control_lines(ax, lw, random, metric, ("--", "X", "random"))
            _control_panel(ax, lw, metric, drawn, ylim)
        _figure_legend(fig, axes[1], lw.legend_title)
        fig.suptitle(title)
        _footnote(
            fig,
            f"Each random network starts from IMP run {RANDOM_PRUNING_RUN}'s parent of that "
            "iteration, loses as many weights per layer as IMP did\n(chosen uniformly among the "
            "alive ones) and is retrained as IMP was; similarities are to the dense network."
            + _seed_note(lw.n_seeds(drawable)),
        )
    save_figure(fig, out)
    return fig


def plot_run_vs_run(
    similarity: str | os.PathLike | pd.DataFrame,
    out: Out = None,
    *,
    metrics: Sequence[str] = PAPER_METRICS,
    ylim: str = FIGURE_DEFAULTS["similarity_ylim"],
    density_axis: str = FIGURE_DEFAULTS["density_axis"],
    title: str | None = None,
) -> Figure:
    """Run against run: do IMP's runs converge to one representation as sparsity grows?

    One panel per metric, layer by layer: per IMP iteration (light → dark), the similarity
    between pruned networks of different runs (solid, mean over pairs of runs) beside the
    pruned-vs-dense similarity (dashed, mean over runs); the seed baseline's grey band
    (dense vs dense) where present. Solid lines rising with the iterations, above the dashed
    ones, would be the convergence the paper reads into ResNet_fast's figure.
    """
    df = read_table(similarity)
    paper, seed = _paper_and_seed_rows(df)
    runs = comparison_rows(df, RUN_VS_RUN)
    title = title or f"Run against run vs pruned against dense: {_subject(df)}"
    drawable = [m for m in metrics if m in set(runs["metric"])]
    if runs.empty or not drawable:
        return _placeholder(title, "no run-against-run similarity values in the table", out)
    lw = _Layerwise(pd.concat([paper, runs]), density_axis, seed)
    n_pairs = len(runs[["run", "run_b"]].drop_duplicates()) if "run_b" in runs else 0
    with _style():
        fig = Figure(figsize=(_panels_width(len(lw.layers), 2, 10.0), 7.6), layout="constrained")
        axes = _metric_panels(fig, len(drawable), 2)
        for ax, metric in zip(axes, drawable, strict=False):
            drawn = lw.draw_seed_band(ax, metric)
            drawn += _control_lines(ax, lw, runs, metric, ("-", "o", "run vs run"))
            drawn += _control_lines(ax, lw, paper, metric, ("--", None, "pruned vs dense"))
            _control_panel(ax, lw, metric, drawn, ylim)
        n_labels = len(axes[0].get_legend_handles_labels()[1])
        _figure_legend(fig, axes[0], lw.legend_title, 1 if n_labels <= 16 else 2)
        fig.suptitle(title)
        _footnote(
            fig,
            f"Solid: pruned networks of two runs at the same iteration, mean over "
            f"{_plural(n_pairs, 'pair', 'pairs')} of runs; dashed: pruned vs dense, mean over "
            f"{_plural(paper['run'].nunique(), 'run', 'runs')}." + _seed_note(lw.n_seeds(drawable)),
        )
    save_figure(fig, out)
    return fig
