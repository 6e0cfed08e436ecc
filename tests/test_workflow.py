"""End-to-end runs of the tiny config: outputs, rerun granularity, determinism."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY_CONFIG, snakemake
from prunesim.layers import compared_layers

pytestmark = pytest.mark.workflow


def planned_jobs(workdir: Path, config: Path = TINY_CONFIG) -> dict[str, int]:
    """Rule -> number of jobs a dry run of ``workdir`` would execute."""
    out = snakemake(workdir, "--dry-run", config=config).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
        elif counts and not line.strip():
            break
    return counts


def test_tiny_run_writes_tables_and_figures(tiny_workflow):
    tables = tiny_workflow / "results" / "tiny" / "tables"
    similarity = pd.read_csv(tables / "similarity.csv")
    accuracy = pd.read_csv(tables / "accuracy.csv")
    assert list(similarity.columns[:12]) == [
        "experiment", "model", "dataset", "run", "iteration", "density", "density_all_params",
        "layer", "layer_index", "layer_kind", "metric", "value",
    ]  # fmt: skip
    assert list(accuracy.columns) == [
        "experiment", "model", "dataset", "run", "iteration", "density", "density_all_params",
        "test_accuracy",
    ]  # fmt: skip
    masks = pd.read_csv(tables / "masks.csv")
    for table in (similarity, accuracy, masks):
        assert set(zip(table.experiment, table.model, table.dataset, strict=True)) == {
            ("tiny", "vgg_svhn", "digits")
        }
    # masks.csv names layers as the other tables do; the parameter has its own column
    compared = {name for name, _ in compared_layers("vgg_svhn")}
    assert set(masks.layer) - {"all"} <= compared, set(masks.layer)
    assert (masks.parameter[masks.layer == "conv1"] == "conv1.conv.weight").all()
    # BN and biases are never pruned: more of all parameters remain than of prunable weights
    pruned_rows = accuracy[accuracy.iteration > 0]
    assert (pruned_rows.density_all_params > pruned_rows.density).all()
    # 2 runs x 2 iterations x (3 layers x 6 metrics incl. the cka_channels variant + cosine on
    # the output layer), plus the 6 off-diagonal CKA pairs of the cross-layer heatmap at
    # iteration 2 of each run
    assert len(similarity) == 2 * 2 * (3 * 6 + 1) + 2 * 6
    cross = similarity[similarity.layer != similarity.layer_b]
    assert set(cross.metric) == {"cka"}
    assert set(cross.iteration) == {2}
    assert similarity["value"].between(0, 1).all()
    assert set(similarity["metric"]) == {
        "mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine", "cka_channels",
    }  # fmt: skip
    variant = similarity[similarity.metric == "cka_channels"]
    assert set(variant.base_metric) == {"cka"}
    # the channel reshape is a different metric from the flatten one on conv layers
    paired = variant.merge(similarity[similarity.metric == "cka"], on=["run", "iteration", "layer",
                           "layer_b"], suffixes=("_ch", "_fl"))  # fmt: skip
    conv = paired[paired.layer == "conv1"]
    assert not np.allclose(conv.value_ch, conv.value_fl)
    assert set(similarity.loc[similarity.metric == "cosine", "layer"]) == {"out"}
    dense = accuracy[accuracy.iteration == 0]
    assert len(dense) == 1
    assert dense.run.iloc[0] == 0, "the dense network is run 0 in every table"
    assert dense.density.iloc[0] == pytest.approx(1.0)
    assert dense.test_accuracy.iloc[0] > 0.3, "dense net should be well above chance (0.1)"
    pruned = accuracy[accuracy.iteration > 0].sort_values(["run", "iteration"])
    assert len(pruned) == 4
    # density from the checkpoints' zeros: 0.8^k of the prunable weights
    for _, row in pruned.iterrows():
        assert row.density == pytest.approx(0.8**row.iteration, abs=2e-3)
    figures = tiny_workflow / "results" / "tiny" / "figures"
    for name in (
        ["accuracy", "layerwise", "output_similarity", "mask_overlap"]
        + [f"similarity_{m}" for m in ["mean_cca", "svcca", "pwcca", "cka", "nbs", "cka_channels"]]
        + ["cross_layer_cka"]
    ):
        for suffix in ("svg", "png"):
            path = figures / f"{name}.{suffix}"
            assert path.exists(), path.name
            assert path.stat().st_size > 1000, path.name
    assert not (figures / "similarity_cosine.svg").exists(), "cosine: output layer only"
    assert (tiny_workflow / "results" / "figures" / "accuracy_all.svg").stat().st_size > 1000


def test_tiny_run_intrinsic_dimension(tiny_workflow):
    """Opt-in intrinsic dimension: one row per network and compared layer, and its figure."""
    table = pd.read_csv(tiny_workflow / "results" / "tiny" / "tables" / "intrinsic_dimension.csv")
    assert len(table) == (1 + 2 * 2) * 3  # dense + 2 runs x 2 iterations, 3 layers
    assert set(table.layer) == {"conv1", "pool2", "out"}
    defined = table.intrinsic_dimension.dropna()
    assert len(defined) == len(table)
    assert ((defined > 0.5) & (defined < 100)).all()
    figure = tiny_workflow / "results" / "tiny" / "figures" / "intrinsic_dimension.svg"
    assert figure.stat().st_size > 1000


def test_tiny_run_structured_pruning(tiny_workflow):
    """prune.method filter_l1 runs through every stage; density counts the removed weights."""
    tables = tiny_workflow / "results" / "tiny_filters" / "tables"
    accuracy = pd.read_csv(tables / "accuracy.csv")
    pruned = accuracy[accuracy.iteration > 0].sort_values("iteration")
    # filters and the next layers' input columns go: below 0.8^k of the weights
    assert (pruned.density.to_numpy() < 0.8 ** pruned.iteration.to_numpy()).all()
    similarity = pd.read_csv(tables / "similarity.csv")
    assert len(similarity) == 2 * (3 * 6 + 1)
    figures = tiny_workflow / "results" / "tiny_filters" / "figures"
    assert (figures / "layerwise.svg").stat().st_size > 1000


def test_up_to_date_after_run(tiny_copy):
    assert planned_jobs(tiny_copy) == {}


def test_changing_one_metric_reruns_only_that_metric(tiny_copy, tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["metrics"]["svcca"]["keep"] = 0.98
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tiny_copy, edited)
    # (2 runs of tiny + 1 of tiny_filters) x 2 iterations x 3 layers of svcca, then the
    # cheap collectors and figures of both experiments; intrinsic dimension is not touched
    assert jobs == {
        "similarity_svcca": 18,
        "aggregate": 2,
        "compare_paper": 2,
        "plot": 2,
        "plot_accuracy_all": 1,
        "plot_cross_layer": 1,
        "all": 1,
    }
    snakemake(tiny_copy, config=edited)
    assert planned_jobs(tiny_copy, edited) == {}


def test_changing_a_metric_variant_reruns_only_that_variant(tiny_copy, tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["metrics"]["cka_channels"]["debiased"] = True
    edited = tmp_path / "variant.yaml"
    edited.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tiny_copy, edited)
    assert jobs == {
        "similarity_cka_channels": 18,
        "aggregate": 2,
        "compare_paper": 2,
        "plot": 2,
        "plot_accuracy_all": 1,
        "plot_cross_layer": 1,
        "all": 1,
    }


def test_changing_a_metric_reshape_reuses_the_shared_statistics(tiny_copy, tmp_path):
    """NBS on the channel reshape reads the statistics the CCA family already made."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["metrics"]["nbs"]["reshape"] = "channels"
    edited = tmp_path / "reshape.yaml"
    edited.write_text(yaml.safe_dump(config))
    assert planned_jobs(tiny_copy, edited) == {
        "similarity_nbs": 18,
        "aggregate": 2,
        "compare_paper": 2,
        "plot": 2,
        "plot_accuracy_all": 1,
        "plot_cross_layer": 1,
        "all": 1,
    }


def test_statistics_are_planned_once_per_pair_and_dense_layer(tmp_path):
    """One pass per network and reshape; the dense side once per experiment, not network."""
    jobs = planned_jobs(tmp_path)
    # dense: (tiny + tiny_filters) x (channels, flatten), every layer in one job
    assert jobs["dense_stats"] == 2 * 2
    # pruned: (2 runs of tiny + 1 of tiny_filters) x 2 iterations x 2 reshapes, each job
    # every pair of its network (tiny's cross-layer pairs included)
    assert jobs["pair_stats"] == 3 * 2 * 2
    # one job per metric per pair, as before (cosine: the output layer only)
    assert jobs["similarity_svcca"] == 18
    assert jobs["similarity_cka"] == 18 + 2 * 6
    assert jobs["similarity_cosine"] == 6


@pytest.mark.parametrize(
    ("setting", "value", "rules"),
    [
        ("similarity_bands", True, {"plot": 2, "plot_intrinsic_dimension": 2}),
        (
            "density_axis",
            "prunable",
            {
                "plot": 2,
                "plot_accuracy_all": 1,
                "plot_cross_layer": 1,
                "plot_intrinsic_dimension": 2,
            },
        ),
    ],
)
def test_changing_a_figure_setting_redraws_only_figures(tiny_copy, tmp_path, setting, value, rules):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["figures"] = {setting: value}
    edited = tmp_path / "figures.yaml"
    edited.write_text(yaml.safe_dump(config))
    assert planned_jobs(tiny_copy, edited) == {**rules, "all": 1}


def test_reordering_config_keys_reruns_nothing(tiny_copy, tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    reordered = tmp_path / "sorted.yaml"
    reordered.write_text(yaml.safe_dump(config, sort_keys=True))
    assert planned_jobs(tiny_copy, reordered) == {}


def test_more_iterations_only_adds_iterations(tiny_copy, tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"]["tiny"]["prune"]["iterations"] = 3
    config["experiments"]["tiny"]["cross_layer"] = None
    edited = tmp_path / "more.yaml"
    edited.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tiny_copy, edited)
    assert jobs["imp_iter"] == 2  # iteration 3 of each run, nothing retrained
    assert jobs["extract_acts"] == 2
    assert "train_dense" not in jobs


def test_changing_training_reruns_everything_downstream(tiny_copy, tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"]["tiny"]["prune"]["rate"] = 0.3
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tiny_copy, edited)
    assert "train_dense" not in jobs
    assert "prepare_data" not in jobs
    assert jobs["imp_iter"] == 4
    assert jobs["extract_acts"] == 4


def test_network_jobs_give_the_same_table_as_pair_jobs(tiny_copy, tmp_path):
    """`similarity_jobs: network` batches a network's pairs into one job, same numbers."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["similarity_jobs"] = "network"
    edited = tmp_path / "network.yaml"
    edited.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tiny_copy, edited)
    assert {k: v for k, v in jobs.items() if k.startswith("similarity_")} == {
        f"similarity_{m}": 6
        for m in ["mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine", "cka_channels"]
    }
    assert "extract_acts" not in jobs
    table = tiny_copy / "results" / "tiny" / "tables" / "similarity.csv"
    by_pair = table.read_bytes()
    snakemake(tiny_copy, config=edited)
    assert table.read_bytes() == by_pair


@pytest.mark.parametrize("profile", ["default", "slurm", "slurm-local"])
def test_profiles_do_not_print_shell_commands(profile):
    """printshellcmds prints `Shell command: None` for every job of a `script:` rule."""
    settings = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    assert "printshellcmds" not in settings
    assert "p" not in settings


def test_full_study_dry_run_is_small_and_fast(tmp_path):
    """The paper's grid (~600 networks) plans in seconds: ~6,000 jobs, static DAG."""
    out = snakemake(tmp_path, "--dry-run", config=REPO / "config.yaml", timeout=300).stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], re.M))
    assert counts["imp_iter"] == "600"  # (20 + 5 + 5) runs x 20 iterations
    assert counts["extract_acts"] == "603"
    assert counts["similarity_cka"] == "600"
    assert counts["pair_stats"] == "1200"  # one per network and reshape
    assert counts["dense_stats"] == "6"  # one per experiment and reshape
    assert int(counts["total"]) < 6100


def test_cpu_study_dry_run_plans(tmp_path):
    """config/cifar10_cpu.yaml (the reduced real study) plans: 2 models x (1 + 2 x 8) networks."""
    config = REPO / "config" / "cifar10_cpu.yaml"
    counts = planned_jobs(tmp_path, config)
    assert counts["train_dense"] == 2
    assert counts["imp_iter"] == 2 * 2 * 8
    assert counts["extract_acts"] == 2 * (1 + 2 * 8)
    assert counts["compare_paper"] == 2
    assert {f"similarity_{m}" for m in ["mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine"]} <= (
        set(counts)
    )
