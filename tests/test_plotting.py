"""Figures from synthetic tables: what is drawn, gaps shown, files reproducible byte for byte."""

from __future__ import annotations

import itertools
import subprocess
import sys

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.transforms import Bbox

from prunesim import plotting
from prunesim.config import load_schema
from prunesim.errors import PrunesimError
from prunesim.layers import compared_layers
from prunesim.masks import random_jaccard

MODEL, DATASET = "vgg_svhn", "svhn"
LAYERS = compared_layers(MODEL)
RUNS, ITERATIONS = (1, 2, 3), (1, 2, 3, 4)
SIMILARITY_METRICS = ("svcca", "pwcca", "cka", "nbs", "cosine")
ALL_PARAMS_LABEL = "proportion of all parameters remaining (log scale)"
PRUNABLE_LABEL = "proportion of prunable weights remaining (log scale)"


def density(k: int) -> float:
    """Proportion of prunable weights remaining after k IMP iterations."""
    return 0.8**k


def density_all(k: int) -> float:
    """Proportion of all parameters remaining (BN and biases, 2 % of them, never pruned)."""
    return 0.02 + 0.98 * 0.8**k


@pytest.fixture
def accuracy() -> pd.DataFrame:
    rows = [dict(run=None, iteration=0, density=1.0, density_all_params=1.0, test_accuracy=0.9)]
    for run in RUNS:
        for k in ITERATIONS:
            rows.append(
                dict(run=run, iteration=k, density=density(k), density_all_params=density_all(k),
                     test_accuracy=0.9 - 0.01 * k * run)
            )  # fmt: skip
    return pd.DataFrame(rows).assign(model=MODEL, dataset=DATASET)


def value(metric: str, run: int, k: int, index: int) -> float:
    offset = {"svcca": 0.1, "pwcca": 0.05, "nbs": 0.02}.get(metric, 0.0)
    return 1 - 0.05 * k - 0.01 * index - 0.002 * run - offset


@pytest.fixture
def similarity() -> pd.DataFrame:
    rows = []
    for metric in SIMILARITY_METRICS:
        for run in RUNS:
            for k in ITERATIONS:
                for index, (layer, kind) in enumerate(LAYERS):
                    if metric == "cosine" and kind != "out":
                        continue
                    rows.append(
                        dict(run=run, iteration=k, density=density(k),
                             density_all_params=density_all(k), layer=layer, layer_index=index,
                             layer_kind=kind, metric=metric, value=value(metric, run, k, index),
                             note=None, layer_b=layer)
                    )  # fmt: skip
    return pd.DataFrame(rows).assign(model=MODEL, dataset=DATASET)


MASK_LAYERS = ("features.0.weight", "features.3.weight")


def jaccard(layer: str, k: int) -> float:
    return 1.0 if k == 1 else 0.9 - 0.1 * k - (0.05 if layer == MASK_LAYERS[1] else 0.0)


@pytest.fixture
def masks() -> pd.DataFrame:
    rows = []
    for k in ITERATIONS:
        for run_a, run_b in ((1, 2), (1, 3), (2, 3)):
            for layer in (*MASK_LAYERS, "all"):
                rows.append(
                    dict(experiment="exp", iteration=k, density=density(k), layer=layer,
                         run_a=run_a, run_b=run_b, jaccard=jaccard(layer, k) + 0.01 * run_a)
                )  # fmt: skip
    return pd.DataFrame(rows)


def labelled_lines(ax):
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def legend_texts(legend):
    return [t.get_text() for t in legend.get_texts()]


def bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def luminance(colour) -> float:
    r, g, b = mcolors.to_rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def drawn_extent(fig, artist) -> Bbox:
    fig.canvas.draw()
    return artist.get_window_extent()


# ---------------------------------------------------------------------------- settings


def test_figure_defaults_match_the_schema():
    block = load_schema()["properties"]["figures"]
    assert {key: spec["default"] for key, spec in block["properties"].items()} == (
        plotting.FIGURE_DEFAULTS
    )
    assert block["properties"]["density_axis"]["enum"] == list(plotting.DENSITY_AXES)
    assert block["properties"]["similarity_ylim"]["enum"] == list(plotting.SIMILARITY_YLIMS)


def test_figure_settings_fill_defaults_and_refuse_unknown_values():
    assert plotting.figure_settings({"similarity_bands": True}) == {
        **plotting.FIGURE_DEFAULTS,
        "similarity_bands": True,
    }
    with pytest.raises(PrunesimError, match="allowed values: all_params, prunable"):
        plotting.figure_settings({"density_axis": "weights"})
    with pytest.raises(PrunesimError, match="unknown figure setting"):
        plotting.figure_settings({"bands": True})


def test_cosine_gets_no_layerwise_figure():
    assert plotting.layerwise_metrics(["mean_cca", "svcca", "cka", "cosine"]) == [
        "mean_cca",
        "svcca",
        "cka",
    ]


# ---------------------------------------------------------------------------- accuracy


def test_accuracy_figure(accuracy, tmp_path):
    accuracy.to_csv(tmp_path / "accuracy.csv", index=False)
    fig = plotting.plot_accuracy(tmp_path / "accuracy.csv", tmp_path / "accuracy.svg")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    left, right = ax.get_xlim()
    assert left > right, "pruning should progress to the right (inverted x)"
    assert ax.get_title() == f"Test accuracy under IMP: {MODEL} on {DATASET}"
    assert ax.get_xlabel() == ALL_PARAMS_LABEL
    assert legend_texts(ax.get_legend()) == [
        "± 2 std",
        "mean over 3 runs",
        "individual runs",
        "dense (90%)",
    ]
    mean_line, dense_line = labelled_lines(ax)
    pruned = accuracy[accuracy.iteration > 0]
    expected = [0.9] + [pruned[pruned.iteration == k].test_accuracy.mean() for k in ITERATIONS]
    np.testing.assert_allclose(mean_line.get_ydata(), expected)
    np.testing.assert_allclose(mean_line.get_xdata(), [1.0] + [density_all(k) for k in ITERATIONS])
    assert dense_line.get_linestyle() == ":"
    np.testing.assert_allclose(dense_line.get_ydata(), [0.9, 0.9])
    # every network of every run is visible, at its proportion of all parameters
    dots = ax.collections[-1].get_offsets()
    assert len(dots) == len(RUNS) * len(ITERATIONS)
    np.testing.assert_allclose(sorted(dots[:, 0]), sorted(pruned.density_all_params))
    # the band is mean ± 2 std (sample std over runs)
    band = bands(ax)[0].get_paths()[0].vertices[:, 1]
    std = pruned.groupby("iteration").test_accuracy.std().to_numpy()
    assert band.min() == pytest.approx(min(np.array(expected[1:]) - 2 * std))
    assert band.max() == pytest.approx(0.9)
    # ticks at the iterations' densities, labelled in %
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        plotting._pct(d) for d in [1.0] + [density_all(k) for k in ITERATIONS]
    ]
    assert (tmp_path / "accuracy.svg").stat().st_size > 5000


@pytest.mark.parametrize(
    ("density_axis", "drop", "label", "column"),
    [
        ("all_params", False, ALL_PARAMS_LABEL, "density_all_params"),
        ("prunable", False, PRUNABLE_LABEL, "density"),
        ("all_params", True, PRUNABLE_LABEL, "density"),  # old table: falls back, says so
    ],
    ids=["all_params", "prunable", "old-table"],
)
def test_accuracy_density_axis(accuracy, density_axis, drop, label, column):
    table = accuracy.drop(columns="density_all_params") if drop else accuracy
    fig = plotting.plot_accuracy(table, density_axis=density_axis)
    ax = fig.axes[0]
    assert ax.get_xlabel() == label
    mean_line = labelled_lines(ax)[0]
    expected = accuracy.groupby("iteration")[column].mean().to_numpy()
    np.testing.assert_allclose(mean_line.get_xdata(), expected)


def test_accuracy_never_passes_100_percent(accuracy):
    # near-perfect networks with a wide spread: mean + 2 std would be above 100 %
    accuracy["test_accuracy"] = np.where(
        accuracy["run"] == 2, 0.999, np.where(accuracy["iteration"] == 0, 0.998, 0.96)
    )
    fig = plotting.plot_accuracy(accuracy)
    ax = fig.axes[0]
    assert ax.get_ylim()[1] <= 1.0
    assert bands(ax)[0].get_paths()[0].vertices[:, 1].max() <= 1.0
    assert ax.get_ylim()[0] < 0.96, "every run stays in view"
    fig.canvas.draw()
    ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(ticks) == len(set(ticks)) >= 3, f"ticks at too coarse a precision: {ticks}"
    assert all(float(t.rstrip("%")) <= 100 for t in ticks)


def test_accuracy_legend_is_off_the_plot(accuracy):
    fig = plotting.plot_accuracy(accuracy)
    ax = fig.axes[0]
    legend = drawn_extent(fig, ax.get_legend())
    assert legend.x0 >= ax.get_window_extent().x1, "the legend must not cover the data"


def test_accuracy_accepts_a_dataframe_without_dense(accuracy):
    fig = plotting.plot_accuracy(accuracy[accuracy.iteration > 0])
    assert "dense" not in " ".join(legend_texts(fig.axes[0].get_legend()))


def test_accuracy_all_one_panel_per_experiment(accuracy, tmp_path):
    other = accuracy.assign(model="resnet_fast", dataset="cifar10")
    other["test_accuracy"] -= 0.2
    tables = {"first": accuracy, "second": other, "again": accuracy}
    outs = [tmp_path / "accuracy_all.svg", tmp_path / "accuracy_all.png"]
    fig = plotting.plot_accuracy_all(tables, outs, density_axis="prunable")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().splitlines()[0] for ax in panels] == [
        f"{MODEL} on {DATASET} (first)",  # the same model twice: the experiment tells them apart
        "resnet_fast on cifar10",
        f"{MODEL} on {DATASET} (again)",
    ]
    assert panels[1].get_title().splitlines()[1] == "3 runs, dense 70%"
    for ax, table in zip(panels, tables.values(), strict=True):
        assert ax.get_xlabel() == PRUNABLE_LABEL
        mean_line, dense_line = labelled_lines(ax)
        expected = table.groupby("iteration").test_accuracy.mean().to_numpy()
        np.testing.assert_allclose(mean_line.get_ydata(), expected)
        assert ax.get_ylim()[1] <= 1.0
        assert ax.get_legend() is None
    assert legend_texts(fig.legends[0]) == [
        "± 2 std over runs",
        "mean over runs",
        "single runs",
        "dense network",
    ]
    assert all(p.stat().st_size > 5000 for p in outs)
    assert outs[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------- layerwise


def test_layerwise_one_line_per_iteration_light_to_dark(similarity):
    fig = plotting.plot_layerwise(similarity, "cka")
    ax = fig.axes[0]
    lines = labelled_lines(ax)
    assert len(lines) == len(ITERATIONS)
    legend = ax.get_legend()
    assert legend_texts(legend) == [f"{plotting._pct(density_all(k))} ({k})" for k in ITERATIONS]
    assert legend.get_title().get_text() == "all parameters remaining\n(IMP iteration)"
    shades = [luminance(line.get_color()) for line in lines]
    assert shades == sorted(shades, reverse=True), "later iterations should be darker"
    assert [t.get_text() for t in ax.get_xticklabels()] == [name for name, _ in LAYERS]
    assert ax.get_ylabel() == "CKA similarity"
    assert "CKA" in ax.get_title()
    assert MODEL in ax.get_title()
    for k, line in zip(ITERATIONS, lines, strict=True):
        expected = [np.mean([value("cka", r, k, i) for r in RUNS]) for i in range(len(LAYERS))]
        np.testing.assert_allclose(line.get_ydata(), expected)


def test_layerwise_legend_follows_the_density_axis(similarity):
    fig = plotting.plot_layerwise(similarity, "cka", density_axis="prunable")
    legend = fig.axes[0].get_legend()
    assert legend_texts(legend) == ["80% (1)", "64% (2)", "51.2% (3)", "41% (4)"]
    assert legend.get_title().get_text().startswith("prunable weights remaining")


def test_layerwise_y_range_fitted_by_default_unit_on_request(similarity):
    cka = similarity[similarity.metric == "cka"]
    means = cka.groupby(["iteration", "layer"]).value.mean()
    ax = plotting.plot_layerwise(similarity, "cka").axes[0]
    low, high = ax.get_ylim()
    assert means.min() - 0.05 < low < means.min()
    assert means.max() < high < means.max() + 0.05
    assert high - low < 0.75, "a fitted axis shows the data, not [0, 1]"
    ax = plotting.plot_layerwise(similarity, "cka", ylim="unit").axes[0]
    assert ax.get_ylim() == pytest.approx((-0.03, 1.03))


def test_layerwise_bands_only_when_switched_on(similarity):
    ax = plotting.plot_layerwise(similarity, "cka").axes[0]
    assert bands(ax) == []
    assert any("no bands" in t.get_text() for t in ax.figure.texts)
    ax = plotting.plot_layerwise(similarity, "cka", bands=True).axes[0]
    assert len(bands(ax)) == len(ITERATIONS)
    assert any("bands: ± 1 std over runs" in t.get_text() for t in ax.figure.texts)
    # the fitted range makes room for the bands
    low = min(b.get_paths()[0].vertices[:, 1].min() for b in bands(ax))
    assert ax.get_ylim()[0] < low


def test_layerwise_shows_gaps(similarity):
    gap = (similarity.metric == "cka") & (similarity.layer == "conv3")
    gap_all_runs = gap & (similarity.iteration == 4)
    gap_one_run = gap & (similarity.iteration == 3) & (similarity.run == 1)
    similarity.loc[gap_all_runs | gap_one_run, "value"] = np.nan
    similarity.loc[gap_all_runs | gap_one_run, "note"] = "layer_a is constant"
    fig = plotting.plot_layerwise(similarity, "cka")
    ax = fig.axes[0]
    lines = labelled_lines(ax)
    position = [name for name, _ in LAYERS].index("conv3")
    assert np.isnan(lines[3].get_ydata()[position]), "no value at all: the line breaks"
    assert lines[2].get_ydata()[position] == pytest.approx(
        np.mean([value("cka", r, 3, position) for r in (2, 3)])
    ), "one run undefined: mean over the others"
    assert "undefined (see note)" in legend_texts(ax.get_legend())
    assert any("4 of 144 values undefined" in t.get_text() for t in fig.texts)


def test_layerwise_unknown_metric_gives_an_explaining_figure(similarity):
    fig = plotting.plot_layerwise(similarity, "mean_cca")
    assert "no same-layer mean CCA values" in fig.axes[0].texts[0].get_text()


def test_layerwise_ignores_cross_layer_rows(similarity):
    others = similarity[(similarity.metric == "cka") & (similarity.layer != "conv1")]
    cross = others.assign(layer_b="conv1", value=0.0)
    fig = plotting.plot_layerwise(pd.concat([similarity, cross]), "cka")
    line = labelled_lines(fig.axes[0])[0]
    assert np.nanmin(line.get_ydata()) > 0.5


def test_layerwise_grid_four_panels_as_the_paper(similarity, tmp_path):
    outs = [tmp_path / "layerwise.svg", tmp_path / "layerwise.png"]
    fig = plotting.plot_layerwise_grid(similarity, outs)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["SVCCA", "PWCCA", "CKA", "NBS"]
    assert fig.get_suptitle() == f"Layerwise similarity, pruned vs dense: {MODEL} on {DATASET}"
    for ax, metric in zip(axes, plotting.PAPER_METRICS, strict=True):
        lines = labelled_lines(ax)
        assert len(lines) == len(ITERATIONS), metric
        for k, line in zip(ITERATIONS, lines, strict=True):
            expected = [np.mean([value(metric, r, k, i) for r in RUNS]) for i in range(len(LAYERS))]
            np.testing.assert_allclose(line.get_ydata(), expected)
        assert bands(ax) == []
        assert ax.get_ylim()[1] - ax.get_ylim()[0] < 0.75, "fitted y range"
        assert ax.get_ylabel() == f"{plotting.METRIC_LABELS[metric]} similarity"
    # the layer names are written under the bottom row only (shared x axis)
    fig.canvas.draw()
    bottom = [t.get_text() for t in axes[2].get_xticklabels()]
    assert bottom == [name for name, _ in LAYERS]
    assert not any(t.get_visible() and t.get_text() for t in axes[0].get_xticklabels())
    # one legend for all panels, one entry per iteration
    assert len(fig.legends) == 1
    assert len(legend_texts(fig.legends[0])) == len(ITERATIONS)
    assert all(p.stat().st_size > 5000 for p in outs)


def test_layerwise_grid_settings(similarity):
    fig = plotting.plot_layerwise_grid(similarity, bands=True, ylim="unit")
    for ax in [ax for ax in fig.axes if ax.get_title()]:
        assert len(bands(ax)) == len(ITERATIONS)
        assert ax.get_ylim() == pytest.approx((-0.03, 1.03))


def test_layerwise_grid_says_which_metric_is_missing(similarity):
    fig = plotting.plot_layerwise_grid(similarity[similarity.metric != "nbs"])
    nbs = next(ax for ax in fig.axes if ax.get_title() == "NBS")
    assert labelled_lines(nbs) == []
    assert "NBS not in the similarity table" in nbs.texts[0].get_text()
    cka = next(ax for ax in fig.axes if ax.get_title() == "CKA")
    assert len(labelled_lines(cka)) == len(ITERATIONS)


# ---------------------------------------------------------------------------- output layer


def test_output_similarity_lines_per_metric_against_iteration(similarity):
    metrics = ["cka", "svcca", "cosine"]
    fig = plotting.plot_output_similarity(similarity, metrics=metrics)
    ax = fig.axes[0]
    assert legend_texts(ax.get_legend()) == ["CKA", "SVCCA", "cosine similarity"]
    assert ax.get_xlabel() == "IMP iteration"
    assert ax.get_xscale() == "linear"
    lines = labelled_lines(ax)
    out_index = len(LAYERS) - 1
    for metric, line in zip(metrics, lines, strict=True):
        expected = [np.mean([value(metric, r, k, out_index) for r in RUNS]) for k in ITERATIONS]
        np.testing.assert_allclose(line.get_ydata(), expected)
        np.testing.assert_allclose(line.get_xdata(), ITERATIONS)
    # the top axis gives the proportion of all parameters remaining
    top = ax.child_axes[0] if ax.child_axes else None
    assert top is not None
    assert top.get_xlabel() == "proportion of all parameters remaining"


def test_output_similarity_metrics_are_told_apart(similarity):
    metrics = list(plotting.METRIC_STYLES)  # every metric, mean CCA too
    mean_cca = similarity[similarity.metric == "cka"].assign(metric="mean_cca")
    table = pd.concat([similarity, mean_cca])
    ax = plotting.plot_output_similarity(table, metrics=metrics).axes[0]
    lines = labelled_lines(ax)
    assert len(lines) == len(metrics)
    markers = [line.get_marker() for line in lines]
    assert len(set(markers)) == len(markers), "one marker per metric"
    colours = [np.array(mcolors.to_rgb(line.get_color())) for line in lines]
    for a, b in itertools.combinations(colours, 2):
        assert np.linalg.norm(a - b) > 0.25, "colours too close to tell apart"


def test_output_similarity_single_runs_are_visible(similarity):
    metrics = ["cka", "svcca", "cosine"]
    ax = plotting.plot_output_similarity(similarity, metrics=metrics).axes[0]
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(dots) == len(metrics)
    xs = []
    for dot, line in zip(dots, labelled_lines(ax), strict=True):
        offsets = dot.get_offsets()
        assert len(offsets) == len(RUNS) * len(ITERATIONS)
        assert dot.get_alpha() >= 0.5
        assert mcolors.same_color(dot.get_facecolor()[0][:3], line.get_color())
        xs.append(np.round(offsets[:, 0] - np.round(offsets[:, 0]), 6)[0])
    assert len(set(xs)) == len(metrics), "each metric's dots sit beside the others'"


def test_output_similarity_y_range_and_bands(similarity):
    out = similarity[similarity.layer_kind == "out"]
    ax = plotting.plot_output_similarity(similarity).axes[0]
    low, high = ax.get_ylim()
    assert out.value.min() - 0.05 < low < out.value.min()
    assert out.value.max() < high < out.value.max() + 0.05
    assert bands(ax) == []
    ax = plotting.plot_output_similarity(similarity, bands=True, ylim="unit").axes[0]
    assert ax.get_ylim() == pytest.approx((-0.03, 1.03))
    assert len(bands(ax)) == len(SIMILARITY_METRICS)


# ---------------------------------------------------------------------------- masks


def test_mask_overlap_heatmap(masks):
    fig = plotting.plot_mask_overlap(masks, subject=f"{MODEL} on {DATASET}")
    ax = fig.axes[0]
    assert ax.get_title() == f"Mask overlap between IMP runs: {MODEL} on {DATASET}"
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == [*MASK_LAYERS, "all prunable weights", "random masks (chance)"]
    columns = [t.get_text() for t in ax.get_xticklabels()]
    assert columns == [f"{k}\n{plotting._pct(density(k))}" for k in ITERATIONS]
    grid = ax.collections[0].get_array().reshape(len(rows), len(columns))
    mean_offset = np.mean([0.01 * a for a in (1, 1, 2)])  # run_a of the pairs
    for i, layer in enumerate(MASK_LAYERS):
        np.testing.assert_allclose(grid[i], [jaccard(layer, k) + mean_offset for k in ITERATIONS])
    np.testing.assert_allclose(
        grid[-1], [random_jaccard(density(k), density(k)) for k in ITERATIONS]
    )
    # annotated: every cell can be read
    assert len(ax.texts) == grid.size
    assert any("mean over 3 pairs of runs" in t.get_text() for t in fig.texts)


def test_mask_overlap_one_pair_grammar_and_experiment_fallback(masks):
    one = masks[(masks.run_a == 1) & (masks.run_b == 2)]
    fig = plotting.plot_mask_overlap(one)
    assert any("mean over 1 pair of runs" in t.get_text() for t in fig.texts)
    assert fig.axes[0].get_title() == "Mask overlap between IMP runs: exp"


def test_mask_overlap_single_run_gives_an_explaining_figure(tmp_path):
    empty = pd.DataFrame(
        columns=["experiment", "iteration", "density", "layer", "run_a", "run_b", "jaccard"]
    )
    empty.to_csv(tmp_path / "masks.csv", index=False)
    fig = plotting.plot_mask_overlap(tmp_path / "masks.csv", tmp_path / "mask_overlap.svg")
    assert "at least 2 runs" in fig.axes[0].texts[0].get_text()
    assert (tmp_path / "mask_overlap.svg").exists()


def test_table_subject(accuracy):
    assert plotting.table_subject(accuracy) == f"{MODEL} on {DATASET}"


# ---------------------------------------------------------------------------- cross-layer


def test_cross_layer_heatmap(similarity):
    cka = similarity[(similarity.metric == "cka") & (similarity.iteration == 4)]
    cross = [
        cka.assign(layer_b=name, value=cka["value"] - 0.01 * i)
        for i, (name, _) in enumerate(LAYERS)
        if name != "conv1"
    ]
    table = pd.concat([similarity, *cross])
    fig = plotting.plot_cross_layer(table, "cka")
    ax = fig.axes[0]
    names = [name for name, _ in LAYERS]
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    grid = ax.collections[0].get_array().reshape(len(names), len(names))
    at = table[(table.metric == "cka") & (table.iteration == 4)]
    expected = at.pivot_table(index="layer", columns="layer_b", values="value", aggfunc="mean")
    np.testing.assert_allclose(grid, expected.reindex(index=names, columns=names).to_numpy())
    assert f"iteration 4, {plotting._pct(density_all(4))} of all parameters" in ax.get_title()
    fig = plotting.plot_cross_layer(table, "cka", density_axis="prunable")
    assert "iteration 4, 41% of prunable weights" in fig.axes[0].get_title()


def test_cross_layer_without_pairs_says_so(similarity):
    fig = plotting.plot_cross_layer(similarity, "cka")
    assert "no cross-layer CKA pairs" in fig.axes[0].texts[0].get_text()


# ---------------------------------------------------------------------------- files


@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_figures_are_byte_reproducible(similarity, accuracy, masks, tmp_path, suffix):
    def draw(where):
        plotting.plot_accuracy(accuracy, where / f"accuracy.{suffix}")
        plotting.plot_accuracy_all({"a": accuracy}, where / f"accuracy_all.{suffix}")
        plotting.plot_layerwise(similarity, "cka", where / f"similarity_cka.{suffix}")
        plotting.plot_layerwise_grid(similarity, where / f"layerwise.{suffix}")
        plotting.plot_output_similarity(similarity, where / f"output_similarity.{suffix}")
        plotting.plot_mask_overlap(masks, where / f"mask_overlap.{suffix}")
        return {p.name: p.read_bytes() for p in sorted(where.iterdir())}

    first, second = draw(tmp_path / "a"), draw(tmp_path / "b")
    assert len(first) == 6, "no partial or extra files"
    assert first == second


def test_svg_has_no_date_and_keeps_text(similarity, tmp_path):
    plotting.plot_layerwise(similarity, "cka", tmp_path / "s.svg")
    svg = (tmp_path / "s.svg").read_text()
    assert "<dc:date>" not in svg
    assert ">conv1<" in svg
    assert f"{plotting._pct(density_all(3))} (3)" in svg


def test_one_figure_written_as_svg_and_png(accuracy, tmp_path):
    outs = [tmp_path / "accuracy.svg", tmp_path / "accuracy.png"]
    plotting.plot_accuracy(accuracy, outs)
    assert outs[0].read_text().lstrip().startswith("<?xml")
    assert outs[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_suffix_is_refused(accuracy, tmp_path):
    with pytest.raises(PrunesimError, match="unknown suffix"):
        plotting.plot_accuracy(accuracy, tmp_path / "accuracy.jpeg")
    with pytest.raises(PrunesimError, match="unknown suffix"):
        plotting.plot_accuracy(accuracy, [tmp_path / "accuracy.svg", tmp_path / "accuracy.jpeg"])
    assert list(tmp_path.iterdir()) == [], "nothing written when one of the paths is refused"


def test_empty_table_file_is_a_clear_error(tmp_path):
    (tmp_path / "accuracy.csv").write_text("")
    with pytest.raises(PrunesimError, match="is empty"):
        plotting.plot_accuracy(tmp_path / "accuracy.csv")


def test_import_does_not_load_torch():
    code = (
        "import sys, prunesim.plotting, prunesim.tables; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"prunesim.plotting imported {proc.stdout}{proc.stderr}"


# ---------------------------------------------------------------------------- controls

SEED_VALUES = {1: 0.97, 2: 0.91}  # two seed networks: band 0.94 ± 0.042 on every layer


def with_controls(similarity: pd.DataFrame) -> pd.DataFrame:
    """The fixture's rows (pruned_vs_dense) plus each control's, as aggregate writes them."""
    paper = similarity.assign(comparison="pruned_vs_dense", run_b=0)
    rows = []
    for metric in ("svcca", "pwcca", "cka", "nbs"):
        for index, (layer, kind) in enumerate(LAYERS):
            common = dict(layer=layer, layer_index=index, layer_kind=kind, metric=metric,
                          note=None, layer_b=layer, model=MODEL, dataset=DATASET)  # fmt: skip
            for k, v in SEED_VALUES.items():
                rows.append(dict(common, comparison="seed_vs_dense", run=k, run_b=0, iteration=0,
                                 density=1.0, density_all_params=1.0, value=v))  # fmt: skip
            rows.append(dict(common, comparison="random_vs_dense", run=1, run_b=0, iteration=2,
                             density=density(2), density_all_params=density_all(2),
                             value=0.3))  # fmt: skip
            for k in ITERATIONS:
                for a, b in ((1, 2), (1, 3), (2, 3)):
                    rows.append(dict(common, comparison="run_vs_run", run=a, run_b=b,
                                     iteration=k, density=density(k),
                                     density_all_params=density_all(k),
                                     value=0.5 + 0.1 * a))  # fmt: skip
    return pd.concat([paper, pd.DataFrame(rows)], ignore_index=True)


def seed_bands(ax):
    grey = mcolors.to_rgba(plotting._SEED_BAND)[:3]
    return [b for b in bands(ax) if tuple(b.get_facecolor()[0][:3]) == pytest.approx(grey)]


def test_seed_band_on_layerwise_figures_controls_left_out_of_the_lines(similarity):
    table = with_controls(similarity)
    ax = plotting.plot_layerwise(table, "cka").axes[0]
    (band,) = seed_bands(ax)
    ys = band.get_paths()[0].vertices[:, 1]
    spread = np.std(list(SEED_VALUES.values()), ddof=1)
    assert ys.min() == pytest.approx(0.94 - spread)
    assert ys.max() == pytest.approx(0.94 + spread)
    lines = [line for line in labelled_lines(ax) if "dense vs dense" not in line.get_label()]
    assert len(lines) == len(ITERATIONS)  # the control rows add no IMP line ...
    for k, line in zip(ITERATIONS, lines, strict=True):  # ... nor move one
        expected = [np.mean([value("cka", r, k, i) for r in RUNS]) for i in range(len(LAYERS))]
        np.testing.assert_allclose(line.get_ydata(), expected)
    assert any("Grey band: dense vs dense, 2 networks" in t.get_text() for t in ax.figure.texts)
    assert ax.get_ylim()[1] > 0.94 + spread, "the fitted range makes room for the band"
    grid = plotting.plot_layerwise_grid(table)
    assert all(len(seed_bands(ax)) == 1 for ax in grid.axes[:4])
    # without seed rows: no band, no note
    plain = plotting.plot_layerwise(similarity, "cka").axes[0]
    assert seed_bands(plain) == []
    assert not any("Grey band" in t.get_text() for t in plain.figure.texts)


def test_one_seed_network_draws_its_line_and_promises_no_band(similarity):
    table = with_controls(similarity)
    table = table[~((table["comparison"] == "seed_vs_dense") & (table["run"] == 2))]
    ax = plotting.plot_layerwise(table, "cka").axes[0]
    assert seed_bands(ax) == [], "one network has no spread: no zero-width band"
    (line,) = [x for x in labelled_lines(ax) if "dense vs dense" in x.get_label()]
    np.testing.assert_allclose(line.get_ydata(), SEED_VALUES[1])
    labels = ax.get_legend_handles_labels()[1]
    assert "dense vs dense (1 seed)" in labels
    assert not any("std" in s for s in labels)
    notes = " ".join(t.get_text() for t in ax.figure.texts)
    assert "one network trained with another seed" in notes
    assert "Grey band" not in notes


def test_paper_figures_ignore_control_rows(similarity, accuracy):
    table = with_controls(similarity)
    a = plotting.plot_output_similarity(table).axes[0]
    b = plotting.plot_output_similarity(similarity).axes[0]
    for la, lb in zip(labelled_lines(a), labelled_lines(b), strict=True):
        np.testing.assert_allclose(la.get_ydata(), lb.get_ydata())
    acc = pd.concat([accuracy.assign(network=np.where(accuracy.iteration == 0, "dense", "imp")),
                     pd.DataFrame([dict(run=1, iteration=2, density=0.64, density_all_params=0.65,
                                        test_accuracy=0.1, network="random", model=MODEL,
                                        dataset=DATASET)])])  # fmt: skip
    ys = plotting.plot_accuracy(acc).axes[0].collections[1].get_offsets()[:, 1]
    assert 0.1 not in ys, "the random network is not one of IMP's dots"


def test_random_pruning_figure(similarity, accuracy):
    table = with_controls(similarity)
    acc = pd.concat([accuracy.assign(network=np.where(accuracy.iteration == 0, "dense", "imp")),
                     pd.DataFrame([dict(run=1, iteration=2, density=0.64, density_all_params=0.65,
                                        test_accuracy=0.42, network="random", model=MODEL,
                                        dataset=DATASET)])])  # fmt: skip
    fig = plotting.plot_random_pruning(table, acc)
    first, cka = fig.axes[0], fig.axes[3]
    assert cka.get_title() == "CKA"
    crosses = [c for c in first.collections if c.get_label() == "random pruning"]
    assert crosses[0].get_offsets()[:, 1].tolist() == [0.42]
    lines = {line.get_label(): line for line in labelled_lines(cka)}
    label = plotting._iter_label(2, pd.Series({2: density_all(2)}))
    np.testing.assert_allclose(lines[f"random, {label}"].get_ydata(), 0.3)
    np.testing.assert_allclose(
        lines[f"IMP run 1, {label}"].get_ydata(),
        [value("cka", 1, 2, i) for i in range(len(LAYERS))],
    )
    assert len(seed_bands(cka)) == 1
    empty = plotting.plot_random_pruning(similarity, accuracy)
    assert "no random-pruning" in empty.axes[0].texts[0].get_text()


def test_run_vs_run_figure(similarity):
    table = with_controls(similarity)
    fig = plotting.plot_run_vs_run(table)
    assert [ax.get_title() for ax in fig.axes[:4]] == ["SVCCA", "PWCCA", "CKA", "NBS"]
    lines = {line.get_label(): line for line in labelled_lines(fig.axes[2])}
    density = pd.Series({k: density_all(k) for k in ITERATIONS})
    for k in ITERATIONS:
        label = plotting._iter_label(k, density)
        # mean over the pairs (1, 2), (1, 3), (2, 3): (0.6 + 0.6 + 0.7) / 3
        np.testing.assert_allclose(lines[f"run vs run, {label}"].get_ydata(), 1.9 / 3)
        np.testing.assert_allclose(
            lines[f"pruned vs dense, {label}"].get_ydata(),
            [np.mean([value("cka", r, k, i) for r in RUNS]) for i in range(len(LAYERS))],
        )
    assert any("3 pairs of runs" in t.get_text() for t in fig.texts)
    empty = plotting.plot_run_vs_run(similarity)
    assert "no run-against-run" in empty.axes[0].texts[0].get_text()


# ---------------------------------------------------------------------------- intrinsic dimension


def intrinsic(run: int, k: int, index: int) -> float:
    return 10.0 + index - 0.5 * k + 0.1 * run


def test_intrinsic_dimension_figure_as_the_layerwise_ones(tmp_path):
    """ID against layers (issue 16): one line per IMP iteration, light to dark, means over
    runs; the dense network dashed; the y axis fitted to the IDs, not [0, 1]."""
    rows = []
    for index, (layer, kind) in enumerate(LAYERS):
        common = dict(layer=layer, layer_index=index, layer_kind=kind, note=None)
        rows.append(dict(run=0, iteration=0, density=1.0, density_all_params=1.0,
                         intrinsic_dimension=intrinsic(0, 0, index), **common))  # fmt: skip
        for run, k in itertools.product(RUNS, ITERATIONS):
            rows.append(dict(run=run, iteration=k, density=density(k),
                             density_all_params=density_all(k),
                             intrinsic_dimension=intrinsic(run, k, index), **common))  # fmt: skip
    table = pd.DataFrame(rows).assign(experiment="exp", model=MODEL, dataset=DATASET)
    outs = [tmp_path / "intrinsic_dimension.svg", tmp_path / "intrinsic_dimension.png"]
    ax = plotting.plot_intrinsic_dimension(table, outs).axes[0]
    *lines, dense = labelled_lines(ax)
    assert len(lines) == len(ITERATIONS)
    for k, line in zip(ITERATIONS, lines, strict=True):
        expected = [np.mean([intrinsic(r, k, i) for r in RUNS]) for i in range(len(LAYERS))]
        np.testing.assert_allclose(line.get_ydata(), expected)
    shades = [luminance(line.get_color()) for line in lines]
    assert shades == sorted(shades, reverse=True), "later iterations should be darker"
    assert dense.get_label() == "dense"
    assert dense.get_linestyle() == "--"
    np.testing.assert_allclose(dense.get_ydata(), [intrinsic(0, 0, i) for i in range(len(LAYERS))])
    assert [t.get_text() for t in ax.get_xticklabels()] == [name for name, _ in LAYERS]
    assert ax.get_ylabel() == "intrinsic dimension (TwoNN)"
    assert ax.get_ylim()[0] > 1, "fitted to the IDs"
    assert bands(ax) == []
    assert all(p.stat().st_size > 5000 for p in outs)


@pytest.mark.parametrize("ncols", [1, 2, 3])
def test_layer_panels_stay_screen_sized_for_vgg16(ncols):
    """19 layers (VGG16_BN) in up to 3 columns: under 22 in wide (was 54 in for random
    pruning); a short network keeps the minimum width."""
    assert plotting._panels_width(19, ncols, 9.0) <= 22
    assert plotting._panels_width(3, ncols, 9.0) == 9.0
