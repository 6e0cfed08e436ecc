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
    assert list(similarity.columns) == [
        "experiment", "model", "dataset", "run", "iteration", "density", "density_all_params",
        "layer", "layer_index", "layer_kind", "metric", "value", "note", "layer_b", "base_metric",
        "comparison", "run_b",
    ]  # fmt: skip
    assert list(accuracy.columns) == [
        "experiment", "model", "dataset", "run", "iteration", "density", "density_all_params",
        "test_accuracy", "network",
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
    # the controls' rows are checked in test_tiny_run_controls
    similarity = similarity[similarity.comparison == "pruned_vs_dense"]
    accuracy = accuracy[accuracy.network.isin(["dense", "imp"])]
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


def test_tiny_run_controls(tiny_workflow):
    """tiny's controls: 1 seed network, random pruning at iteration 2, runs 1 vs 2."""
    tables = tiny_workflow / "results" / "tiny" / "tables"
    similarity = pd.read_csv(tables / "similarity.csv")
    accuracy = pd.read_csv(tables / "accuracy.csv")
    per_network = 3 * 6 + 1  # 3 layers x 6 layerwise metrics (cka_channels incl.) + cosine
    counts = similarity.comparison.value_counts().to_dict()
    assert counts == {
        "pruned_vs_dense": 2 * 2 * per_network + 2 * 6,  # + the cross-layer CKA pairs
        "seed_vs_dense": per_network,
        "random_vs_dense": per_network,
        "run_vs_run": 2 * per_network,  # one pair of runs at 2 iterations
    }
    controls = similarity[similarity.comparison != "pruned_vs_dense"]
    assert (controls.layer == controls.layer_b).all(), "controls compare a layer with itself"
    assert controls.value.notna().all()
    seed = similarity[similarity.comparison == "seed_vs_dense"]
    assert set(zip(seed.run, seed.iteration, seed.run_b, strict=True)) == {(1, 0, 0)}
    assert (seed.density == 1.0).all()
    # another seed is another network: below 1 somewhere (the same seed would give 1)
    assert seed[seed.metric == "cka"].value.min() < 0.999
    runs = similarity[similarity.comparison == "run_vs_run"]
    assert set(zip(runs.run, runs.run_b, strict=True)) == {(1, 2)}
    assert set(runs.iteration) == {1, 2}
    random_net = accuracy[accuracy.network == "random"]
    assert random_net[["run", "iteration"]].values.tolist() == [[1, 2]]
    imp = accuracy[(accuracy.network == "imp") & (accuracy.run == 1) & (accuracy.iteration == 2)]
    # IMP's per-layer counts: the same density, to the weight
    assert random_net.density.iloc[0] == imp.density.iloc[0]
    assert accuracy[accuracy.network == "seed"].test_accuracy.iloc[0] > 0.3
    random_rows = similarity[similarity.comparison == "random_vs_dense"]
    assert set(random_rows.density) == {imp.density.iloc[0]}
    random_dir = tiny_workflow / "results" / "tiny" / "networks" / "random_iter2"
    imp_dir = tiny_workflow / "results" / "tiny" / "networks" / "run1" / "iter2"
    from prunesim.masks import load_mask_npz

    random_mask, imp_mask = (
        load_mask_npz(random_dir / "mask.npz"),
        load_mask_npz(imp_dir / "mask.npz"),
    )
    assert list(random_mask) == list(imp_mask)
    for name in imp_mask:
        assert random_mask[name].sum() == imp_mask[name].sum(), name
    assert any((random_mask[n] != imp_mask[n]).any() for n in imp_mask), "other weights"
    figures = tiny_workflow / "results" / "tiny" / "figures"
    for name in ("random_pruning", "run_vs_run"):
        for suffix in ("svg", "png"):
            assert (figures / f"{name}.{suffix}").stat().st_size > 1000, name
    assert "dense vs dense" in (figures / "layerwise.svg").read_text()
    assert "dense vs dense" in (figures / "similarity_cka.svg").read_text()
    assert not (tiny_workflow / "results" / "tiny_filters" / "figures" / "run_vs_run.svg").exists()


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
    assert len(similarity) == 2 * (3 * 6 + 1)  # no controls in tiny_filters
    assert set(similarity.comparison) == {"pruned_vs_dense"}
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
        "control_similarity_svcca": 4 * 3,  # tiny's 4 control comparisons x 3 layers
        "aggregate": 2,
        "compare_paper": 2,
        "plot": 2,
        "plot_accuracy_all": 1,
        "plot_cross_layer": 1,
        "plot_random_pruning": 1,
        "plot_run_vs_run": 1,
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
        "control_similarity_cka_channels": 4 * 3,
        "aggregate": 2,
        "compare_paper": 2,
        "plot": 2,
        "plot_accuracy_all": 1,
        "plot_cross_layer": 1,
        "plot_random_pruning": 1,
        "plot_run_vs_run": 1,
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
        "control_similarity_nbs": 4 * 3,  # tiny's 4 control comparisons x 3 layers
        "aggregate": 2,
        "compare_paper": 2,
        "plot": 2,
        "plot_accuracy_all": 1,
        "plot_cross_layer": 1,
        "plot_random_pruning": 1,
        "plot_run_vs_run": 1,
        "all": 1,
    }


def test_a_metric_block_without_its_defaults_plans_the_same_jobs(tiny_copy, tmp_path):
    """Omitted keys mean the metric's defaults (prunesim.metrics.DEFAULT_SETTINGS), in the
    rules as in the jobs: the stats inputs and params stay the same, so nothing reruns."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["metrics"]["cka"] = {}  # reshape: flatten by default
    config["metrics"]["mean_cca"] = {}  # reshape: channels by default
    edited = tmp_path / "defaults.yaml"
    edited.write_text(yaml.safe_dump(config))
    assert planned_jobs(tiny_copy, edited) == {}


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
                "plot_random_pruning": 1,
                "plot_run_vs_run": 1,
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


#: What a change to the tiny experiment's tables reruns besides the changed jobs themselves.
TINY_COLLECTORS = {
    "aggregate": 1,
    "compare_paper": 1,
    "plot": 1,
    "plot_accuracy_all": 1,
    "plot_cross_layer": 1,
    "plot_random_pruning": 1,
    "plot_run_vs_run": 1,
    "all": 1,
}
#: Similarity jobs of one control comparison in tiny (pair jobs: 3 layers, cosine 1).
COMPARISON_JOBS = {
    f"control_similarity_{m}": 3
    for m in ["mean_cca", "svcca", "pwcca", "cka", "nbs", "cka_channels"]
} | {"control_similarity_cosine": 1}


def edited_tiny(tmp_path, name, edit):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    edit(config["experiments"]["tiny"]["controls"])
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_another_seed_network_adds_only_its_own_jobs(tiny_copy, tmp_path):
    config = edited_tiny(tmp_path, "seeds", lambda c: c.update(seed_baseline=2))
    assert planned_jobs(tiny_copy, config) == {
        "train_seed": 1, "extract_acts": 1, **COMPARISON_JOBS, **TINY_COLLECTORS,
    }  # fmt: skip


def test_another_random_pruning_iteration_adds_only_its_own_jobs(tiny_copy, tmp_path):
    config = edited_tiny(tmp_path, "random", lambda c: c.update(random_pruning=[1, 2]))
    assert planned_jobs(tiny_copy, config) == {
        "random_prune": 1, "extract_acts": 1, **COMPARISON_JOBS, **TINY_COLLECTORS,
    }  # fmt: skip


def test_turning_controls_off_reruns_only_tables_and_figures(tiny_copy, tmp_path):
    config = edited_tiny(tmp_path, "off", lambda c: c.update(run_vs_run=None, random_pruning=[]))
    expected = {k: v for k, v in TINY_COLLECTORS.items() if not k.endswith(("random_pruning",
                "run_vs_run"))}  # fmt: skip
    assert planned_jobs(tiny_copy, config) == expected


def test_controls_plan_in_network_mode_and_through_slurm_groups(tmp_path):
    """`similarity_jobs: network` gives one control job per comparison and metric; the SLURM
    profile puts a control network's training and extraction in one group, and a control
    comparison's similarity jobs in another."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["similarity_jobs"] = "network"
    edited = tmp_path / "network.yaml"
    edited.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tmp_path, edited)
    assert jobs["control_similarity_cka"] == 4
    assert jobs["train_seed"] == 1
    assert jobs["random_prune"] == 1
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    groups = profile["groups"]
    assert (
        groups["train_seed"].replace("{seed_network}", "{network}").replace("seed", "")
        == (groups["extract_acts"])
    )
    assert groups["random_prune"] == "net_{experiment}_random_iter{iteration}"
    # the rule sets its group (a variant's rule too); the profile lets it hold many jobs
    controls = (REPO / "workflow" / "rules" / "controls.smk").read_text()
    group = re.search(r'CONTROL_SIMILARITY_GROUP = \(?\s*"([^"]+)"', controls).group(1)
    assert group in profile["group-components"]
    for metric in ("mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine"):
        assert profile["set-resources"][f"control_similarity_{metric}"]["mem_mb"] > 0
    for rule in ("train_seed", "random_prune"):
        assert (
            profile["set-resources"][rule]["slurm_partition"]
            == (profile["set-resources"]["imp_iter"]["slurm_partition"])
        )


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
    assert "train_seed" not in jobs  # the seed baseline does not depend on pruning
    assert jobs["imp_iter"] == 4
    assert jobs["random_prune"] == 1  # prunes and retrains as IMP does
    assert jobs["extract_acts"] == 5


def test_network_jobs_give_the_same_table_as_pair_jobs(tiny_copy, tmp_path):
    """`similarity_jobs: network` batches a network's pairs into one job, same numbers."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["similarity_jobs"] = "network"
    edited = tmp_path / "network.yaml"
    edited.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tiny_copy, edited)
    metrics = ["mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine", "cka_channels"]
    assert {k: v for k, v in jobs.items() if k.startswith("similarity_")} == {
        f"similarity_{m}": 6 for m in metrics
    }
    # one job per control comparison of tiny: seed 1, random iter 2, runs 1-2 at 2 iterations
    assert {k: v for k, v in jobs.items() if k.startswith("control_similarity_")} == {
        f"control_similarity_{m}": 4 for m in metrics
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
