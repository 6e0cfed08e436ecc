"""Figures from synthetic tables: what is drawn, gaps shown, files reproducible byte for byte."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

from prunesim import plotting
from prunesim.errors import PrunesimError
from prunesim.layers import compared_layers
from prunesim.masks import random_jaccard

MODEL, DATASET = "vgg_svhn", "svhn"
LAYERS = compared_layers(MODEL)
RUNS, ITERATIONS = (1, 2, 3), (1, 2, 3, 4)


def density(k: int) -> float:
    return 0.8**k


@pytest.fixture
def accuracy() -> pd.DataFrame:
    rows = [dict(run=None, iteration=0, density=1.0, test_accuracy=0.9)]
    for run in RUNS:
        for k in ITERATIONS:
            rows.append(
                dict(run=run, iteration=k, density=density(k), test_accuracy=0.9 - 0.01 * k * run)
            )
    return pd.DataFrame(rows).assign(model=MODEL, dataset=DATASET)


def value(metric: str, run: int, k: int, index: int) -> float:
    return 1 - 0.05 * k - 0.01 * index - 0.002 * run - (0.1 if metric == "svcca" else 0.0)


@pytest.fixture
def similarity() -> pd.DataFrame:
    rows = []
    for metric in ("cka", "svcca", "cosine"):
        for run in RUNS:
            for k in ITERATIONS:
                for index, (layer, kind) in enumerate(LAYERS):
                    if metric == "cosine" and kind != "out":
                        continue
                    rows.append(
                        dict(run=run, iteration=k, density=density(k), layer=layer,
                             layer_index=index, layer_kind=kind, metric=metric,
                             value=value(metric, run, k, index), note=None, layer_b=layer)
                    )  # fmt: skip
    return pd.DataFrame(rows).assign(model=MODEL, dataset=DATASET)


@pytest.fixture
def masks() -> pd.DataFrame:
    rows = []
    for k in ITERATIONS:
        for run_a, run_b in ((1, 2), (1, 3), (2, 3)):
            for layer in ("features.0.weight", "features.3.weight", "all"):
                rows.append(
                    dict(experiment="exp", iteration=k, density=density(k), layer=layer,
                         run_a=run_a, run_b=run_b, jaccard=0.9 - 0.1 * k)
                )  # fmt: skip
    return pd.DataFrame(rows)


def labelled_lines(ax):
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def luminance(colour) -> float:
    r, g, b = mcolors.to_rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# ---------------------------------------------------------------------------- accuracy


def test_accuracy_figure(accuracy, tmp_path):
    accuracy.to_csv(tmp_path / "accuracy.csv", index=False)
    fig = plotting.plot_accuracy(tmp_path / "accuracy.csv", tmp_path / "accuracy.svg")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    left, right = ax.get_xlim()
    assert left > right, "pruning should progress to the right (inverted x)"
    assert ax.get_title() == f"Test accuracy under IMP: {MODEL} on {DATASET}"
    assert legend_texts(ax) == ["± 2 std", "mean over 3 runs", "individual runs", "dense (90%)"]
    mean_line, dense_line = labelled_lines(ax)
    pruned = accuracy[accuracy.iteration > 0]
    expected = [0.9] + [pruned[pruned.iteration == k].test_accuracy.mean() for k in ITERATIONS]
    np.testing.assert_allclose(mean_line.get_ydata(), expected)
    np.testing.assert_allclose(mean_line.get_xdata(), [1.0] + [density(k) for k in ITERATIONS])
    assert dense_line.get_linestyle() == ":"
    np.testing.assert_allclose(dense_line.get_ydata(), [0.9, 0.9])
    # every network of every run is visible
    dots = ax.collections[-1].get_offsets()
    assert len(dots) == len(RUNS) * len(ITERATIONS)
    # the band is mean ± 2 std (sample std over runs)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    std = pruned.groupby("iteration").test_accuracy.std().to_numpy()
    assert band.min() == pytest.approx(min(np.array(expected[1:]) - 2 * std))
    assert band.max() == pytest.approx(0.9)
    # ticks at the iterations' densities, labelled in %
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100%", "80%", "64%", "51.2%", "41%"]
    assert (tmp_path / "accuracy.svg").stat().st_size > 5000


def test_accuracy_accepts_a_dataframe_without_dense(accuracy):
    fig = plotting.plot_accuracy(accuracy[accuracy.iteration > 0])
    assert "dense" not in " ".join(legend_texts(fig.axes[0]))


# ---------------------------------------------------------------------------- layerwise


def test_layerwise_one_line_per_iteration_light_to_dark(similarity):
    fig = plotting.plot_layerwise(similarity, "cka")
    ax = fig.axes[0]
    lines = labelled_lines(ax)
    assert len(lines) == len(ITERATIONS)
    assert legend_texts(ax) == ["80% (1)", "64% (2)", "51.2% (3)", "41% (4)"]
    shades = [luminance(line.get_color()) for line in lines]
    assert shades == sorted(shades, reverse=True), "later iterations should be darker"
    assert [t.get_text() for t in ax.get_xticklabels()] == [name for name, _ in LAYERS]
    assert ax.get_ylim() == pytest.approx((-0.03, 1.03))
    assert "CKA" in ax.get_title()
    assert MODEL in ax.get_title()
    for k, line in zip(ITERATIONS, lines, strict=True):
        expected = [np.mean([value("cka", r, k, i) for r in RUNS]) for i in range(len(LAYERS))]
        np.testing.assert_allclose(line.get_ydata(), expected)


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
    assert "undefined (see note)" in legend_texts(ax)
    assert any("4 of 144 values undefined" in t.get_text() for t in fig.texts)


def test_layerwise_output_only_metric(similarity):
    fig = plotting.plot_layerwise(similarity, "cosine")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["out"]
    assert len(labelled_lines(ax)) == len(ITERATIONS)


def test_layerwise_unknown_metric_gives_an_explaining_figure(similarity):
    fig = plotting.plot_layerwise(similarity, "nbs")
    assert "no same-layer NBS values" in fig.axes[0].texts[0].get_text()


def test_layerwise_ignores_cross_layer_rows(similarity):
    others = similarity[(similarity.metric == "cka") & (similarity.layer != "conv1")]
    cross = others.assign(layer_b="conv1", value=0.0)
    fig = plotting.plot_layerwise(pd.concat([similarity, cross]), "cka")
    line = labelled_lines(fig.axes[0])[0]
    assert np.nanmin(line.get_ydata()) > 0.5


# ---------------------------------------------------------------------------- output layer


def test_output_similarity_one_line_per_metric(similarity):
    fig = plotting.plot_output_similarity(similarity, metrics=["cka", "svcca", "cosine"])
    ax = fig.axes[0]
    assert legend_texts(ax) == ["CKA", "SVCCA", "cosine similarity"]
    lines = labelled_lines(ax)
    out_index = len(LAYERS) - 1
    for metric, line in zip(("cka", "svcca", "cosine"), lines, strict=True):
        expected = [np.mean([value(metric, r, k, out_index) for r in RUNS]) for k in ITERATIONS]
        np.testing.assert_allclose(line.get_ydata(), expected)
        np.testing.assert_allclose(line.get_xdata(), [density(k) for k in ITERATIONS])
    assert ax.get_xscale() == "log"


# ---------------------------------------------------------------------------- masks


def test_mask_overlap_lines_and_chance_level(masks):
    fig = plotting.plot_mask_overlap(masks)
    ax = fig.axes[0]
    assert legend_texts(ax) == [
        "features.0.weight",
        "features.3.weight",
        "all prunable weights",
        "random masks",
    ]
    *layers, overall, chance = labelled_lines(ax)
    assert overall.get_color() == "black"
    np.testing.assert_allclose(overall.get_ydata(), [0.9 - 0.1 * k for k in ITERATIONS])
    np.testing.assert_allclose(
        chance.get_ydata(), [random_jaccard(density(k), density(k)) for k in ITERATIONS]
    )
    assert any("mean over 3 pairs of runs" in t.get_text() for t in fig.texts)


def test_mask_overlap_single_run_gives_an_explaining_figure(tmp_path):
    empty = pd.DataFrame(
        columns=["experiment", "iteration", "density", "layer", "run_a", "run_b", "jaccard"]
    )
    empty.to_csv(tmp_path / "masks.csv", index=False)
    fig = plotting.plot_mask_overlap(tmp_path / "masks.csv", tmp_path / "mask_overlap.svg")
    assert "at least 2 runs" in fig.axes[0].texts[0].get_text()
    assert (tmp_path / "mask_overlap.svg").exists()


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
    assert "iteration 4" in ax.get_title()


def test_cross_layer_without_pairs_says_so(similarity):
    fig = plotting.plot_cross_layer(similarity, "cka")
    assert "no cross-layer CKA pairs" in fig.axes[0].texts[0].get_text()


# ---------------------------------------------------------------------------- files


@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_figures_are_byte_reproducible(similarity, accuracy, masks, tmp_path, suffix):
    def draw(where):
        plotting.plot_accuracy(accuracy, where / f"accuracy.{suffix}")
        plotting.plot_layerwise(similarity, "cka", where / f"similarity_cka.{suffix}")
        plotting.plot_output_similarity(similarity, where / f"output_similarity.{suffix}")
        plotting.plot_mask_overlap(masks, where / f"mask_overlap.{suffix}")
        return {p.name: p.read_bytes() for p in sorted(where.iterdir())}

    first, second = draw(tmp_path / "a"), draw(tmp_path / "b")
    assert len(first) == 4, "no partial or extra files"
    assert first == second


def test_svg_has_no_date_and_keeps_text(similarity, tmp_path):
    plotting.plot_layerwise(similarity, "cka", tmp_path / "s.svg")
    svg = (tmp_path / "s.svg").read_text()
    assert "<dc:date>" not in svg
    assert ">conv1<" in svg
    assert "51.2% (3)" in svg


def test_unknown_suffix_is_refused(accuracy, tmp_path):
    with pytest.raises(PrunesimError, match="unknown suffix"):
        plotting.plot_accuracy(accuracy, tmp_path / "accuracy.jpeg")
    assert list(tmp_path.iterdir()) == []


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
