"""Tidy tables from synthetic job outputs: exact columns and rows, gaps kept, clear errors."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prunesim.errors import CorruptFileError, PrunesimError
from prunesim.masks import mask_overlap_table
from prunesim.tables import (
    ACCURACY_COLUMNS,
    MASK_COLUMNS,
    SIMILARITY_COLUMNS,
    build_tables,
)

MODEL, DATASET, EXPERIMENT = "vgg_svhn", "svhn", "exp"


def all_params(density: float) -> float:
    """A made-up fraction of all parameters: half of them are never pruned."""
    return 1 - (1 - density) / 2


def write_network(root: Path, run, iteration, accuracy, density) -> Path:
    where = "dense" if run is None else f"run{run}/iter{iteration}"
    path = root / "networks" / where / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "experiment": EXPERIMENT, "model": MODEL, "dataset": DATASET, "run": run,
        "iteration": iteration, "test_accuracy": accuracy, "density": density,
        "density_all_params": all_params(density), "prunable_weights": 1000,
        "alive_weights": round(1000 * density),
        "density_per_layer": {}, "prune_output_layer": False, "scope": "global",
        "retrain": "lrr", "seed": 1,
    }  # fmt: skip
    path.write_text(json.dumps(record))
    return path


def write_similarity(root: Path, metric, run, iteration, layer_a, layer_b, value, **extra) -> Path:
    path = root / "similarity" / metric / f"run{run}/iter{iteration}/{layer_a}__{layer_b}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "experiment": EXPERIMENT, "model": MODEL, "dataset": DATASET, "run": run,
        "iteration": iteration, "metric": metric, "layer_a": layer_a, "layer_b": layer_b,
        "value": value, "note": None, "settings": {"reshape": "flatten"}, **extra,
    }  # fmt: skip
    # allow_nan: a job could (wrongly) record NaN; the table must still explain it
    path.write_text(json.dumps(record, allow_nan=True))
    return path


@pytest.fixture
def study(tmp_path):
    """Dense + 2 runs x 2 iterations; CKA on conv1, pool1, out; one degenerate value."""
    networks = [write_network(tmp_path, None, 0, 0.9, 1.0)]
    sims = []
    for run in (1, 2):
        for k in (1, 2):
            density = 0.8**k
            networks.append(write_network(tmp_path, run, k, 0.9 - 0.01 * k - 0.001 * run, density))
            for layer in ("out", "conv1", "pool1"):  # out of forward order on purpose
                value = round(1 - 0.1 * k - 0.01 * run, 6)
                note = None
                if (run, k, layer) == (2, 2, "pool1"):
                    value, note = None, "layer_a is constant"
                sims.append(
                    write_similarity(tmp_path, "cka", run, k, layer, layer, value, note=note)
                )
    return tmp_path, sims, networks


def build(root, sims, networks, masks=None, controls=()):
    tables = root / "tables"
    out = build_tables(
        EXPERIMENT, MODEL, DATASET, sims, networks, masks,
        tables / "similarity.csv", tables / "accuracy.csv", tables / "masks.csv",
        control_similarity=controls,
    )  # fmt: skip
    return tables, out


def test_similarity_table_columns_and_rows(study):
    root, sims, networks = study
    tables, out = build(root, sims, networks)
    table = pd.read_csv(tables / "similarity.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns) == SIMILARITY_COLUMNS
    assert SIMILARITY_COLUMNS == [
        "experiment", "model", "dataset", "run", "iteration", "density", "density_all_params",
        "layer", "layer_index", "layer_kind", "metric", "value", "note", "layer_b", "base_metric",
        "comparison", "run_b",
    ]  # fmt: skip
    assert len(table) == 2 * 2 * 3
    # sorted by metric, run, iteration, then forward layer order
    assert list(table["layer"][:3]) == ["conv1", "pool1", "out"]
    assert list(table["layer_index"][:3]) == [0, 2, 11]
    assert list(table["layer_kind"][:3]) == ["conv", "pool", "out"]
    assert list(zip(table["run"], table["iteration"], strict=True))[::3] == [
        (1, 1), (1, 2), (2, 1), (2, 2),
    ]  # fmt: skip
    assert (table["layer"] == table["layer_b"]).all()
    assert set(table["experiment"]) == {EXPERIMENT}
    assert set(table["model"]) == {MODEL}
    assert set(table["dataset"]) == {DATASET}
    row = table[(table.run == 1) & (table.iteration == 2) & (table.layer == "out")].iloc[0]
    assert row.density == 0.8**2  # exactly, as recorded in metrics.json
    assert row.density_all_params == all_params(0.8**2)  # the paper's axis, from metrics.json
    assert row.value == round(1 - 0.2 - 0.01, 6)
    assert math.isnan(row.note)
    pd.testing.assert_frame_equal(
        out["similarity"].reset_index(drop=True), table, check_dtype=False
    )


def test_degenerate_value_is_an_explained_gap(study):
    root, sims, networks = study
    tables, _ = build(root, sims, networks)
    lines = (tables / "similarity.csv").read_text().splitlines()
    gap = [line for line in lines if "constant" in line]
    assert gap == [
        f"{EXPERIMENT},{MODEL},{DATASET},2,2,0.6400000000000001,{all_params(0.8**2)!r},pool1,2,pool,cka,,"
        "layer_a is constant,pool1,cka,pruned_vs_dense,0"
    ]


def test_non_finite_value_becomes_a_gap_with_a_note(tmp_path):
    networks = [
        write_network(tmp_path, None, 0, 0.9, 1.0),
        write_network(tmp_path, 1, 1, 0.8, 0.8),
    ]
    sims = [write_similarity(tmp_path, "svcca", 1, 1, "conv1", "conv1", float("nan"))]
    _, out = build(tmp_path, sims, networks)
    row = out["similarity"].iloc[0]
    assert math.isnan(row.value)
    assert row.note == "value is not finite (nan)"


def test_missing_network_leaves_density_empty_with_note(tmp_path):
    networks = [write_network(tmp_path, None, 0, 0.9, 1.0)]
    sims = [write_similarity(tmp_path, "cka", 3, 1, "out", "out", 0.5)]
    _, out = build(tmp_path, sims, networks)
    row = out["similarity"].iloc[0]
    assert math.isnan(row.density)
    assert row.value == 0.5
    assert "no metrics.json for the imp network of run 3 iteration 1" in row.note


def test_confidence_interval_columns_only_when_recorded(tmp_path):
    networks = [write_network(tmp_path, 1, 1, 0.8, 0.8)]
    sims = [
        write_similarity(tmp_path, "cka", 1, 1, "conv1", "conv1", 0.5, ci_low=0.4, ci_high=0.6),
        write_similarity(tmp_path, "cka", 1, 1, "out", "out", 0.7),
    ]
    tables, out = build(tmp_path, sims, networks)
    assert list(out["similarity"].columns) == [*SIMILARITY_COLUMNS, "ci_low", "ci_high"]
    text = (tables / "similarity.csv").read_text().splitlines()
    assert text[1].endswith(",0.5,,conv1,cka,pruned_vs_dense,0,0.4,0.6")
    assert text[2].endswith(",0.7,,out,cka,pruned_vs_dense,0,,")
    _, plain = build(tmp_path, sims[1:], networks)
    assert list(plain["similarity"].columns) == SIMILARITY_COLUMNS


def test_cross_layer_pairs_keep_layer_b_in_forward_order(tmp_path):
    networks = [write_network(tmp_path, 1, 1, 0.8, 0.8)]
    sims = [
        write_similarity(tmp_path, "cka", 1, 1, "conv1", b, 0.5) for b in ("out", "conv2", "conv1")
    ]
    _, out = build(tmp_path, sims, networks)
    assert list(out["similarity"]["layer_b"]) == ["conv1", "conv2", "out"]
    assert set(out["similarity"]["layer"]) == {"conv1"}


def test_accuracy_table_exact(study):
    root, sims, networks = study
    tables, _ = build(root, sims, networks)
    assert ACCURACY_COLUMNS == [
        "experiment", "model", "dataset", "run", "iteration", "density", "density_all_params",
        "test_accuracy", "network",
    ]  # fmt: skip
    ids = f"{EXPERIMENT},{MODEL},{DATASET}"
    expected = [
        "experiment,model,dataset,run,iteration,density,density_all_params,test_accuracy,network",
        f"{ids},0,0,1.0,1.0,0.9,dense",  # the dense network: run 0, documented in prunesim.tables
        f"{ids},1,1,0.8,{all_params(0.8)!r},{0.9 - 0.01 - 0.001!r},imp",
        f"{ids},1,2,{0.8**2!r},{all_params(0.8**2)!r},{0.9 - 0.02 - 0.001!r},imp",
        f"{ids},2,1,0.8,{all_params(0.8)!r},{0.9 - 0.01 - 0.002!r},imp",
        f"{ids},2,2,{0.8**2!r},{all_params(0.8**2)!r},{0.9 - 0.02 - 0.002!r},imp",
    ]
    assert (tables / "accuracy.csv").read_text().splitlines() == expected


def test_masks_table_from_prunesim_masks(study):
    root, sims, networks = study
    rng = np.random.default_rng(0)
    masks = {
        (run, k): {
            "conv1.conv.weight": rng.random((4, 3)) < 0.8**k,
            "fc.weight": rng.random(5) < 0.5,
        }
        for run in (1, 2, 3)
        for k in (1, 2)
    }
    tables, out = build(root, sims, networks, mask_overlap_table(masks, EXPERIMENT))
    table = pd.read_csv(tables / "masks.csv")
    assert list(table.columns) == MASK_COLUMNS
    assert MASK_COLUMNS[:3] == ["experiment", "model", "dataset"]
    assert set(zip(table.experiment, table.model, table.dataset, strict=True)) == {
        (EXPERIMENT, MODEL, DATASET)
    }
    # 2 iterations x 3 run pairs x (2 layers + all), layers named as in the other tables
    assert len(table) == 2 * 3 * 3
    assert list(table["layer"][:6]) == ["conv1"] * 3 + ["out"] * 3
    assert list(table["parameter"][:6]) == ["conv1.conv.weight"] * 3 + ["fc.weight"] * 3
    assert list(table["layer"][-3:]) == list(table["parameter"][-3:]) == ["all"] * 3
    assert table["jaccard"].between(0, 1).all()
    assert (table["run_a"] < table["run_b"]).all()


def test_no_masks_gives_header_only(study):
    root, sims, networks = study
    tables, _ = build(root, sims, networks, None)
    assert (tables / "masks.csv").read_text() == ",".join(MASK_COLUMNS) + "\n"


def test_masks_of_another_model_are_refused(study):
    root, sims, networks = study
    masks = {(run, 1): {"layer1_conv.conv.weight": np.ones(3, bool)} for run in (1, 2)}
    with pytest.raises(KeyError, match="layer1_conv.conv.weight.*no compared layer of vgg_svhn"):
        build(root, sims, networks, mask_overlap_table(masks, EXPERIMENT))


def test_same_inputs_in_any_order_give_identical_bytes(study, tmp_path):
    root, sims, networks = study
    first, _ = build(root, sims, networks)
    snapshot = {p.name: p.read_bytes() for p in first.iterdir()}
    shuffled_sims, shuffled_nets = sims[:], networks[:]
    random.Random(1).shuffle(shuffled_sims)
    random.Random(2).shuffle(shuffled_nets)
    for p in first.iterdir():
        p.unlink()
    again, _ = build(root, shuffled_sims, shuffled_nets)
    assert {p.name: p.read_bytes() for p in again.iterdir()} == snapshot


def test_writes_leave_no_partial_files(study):
    root, sims, networks = study
    tables, _ = build(root, sims, networks)
    assert sorted(p.name for p in tables.iterdir()) == [
        "accuracy.csv", "masks.csv", "similarity.csv",
    ]  # fmt: skip


def test_failed_build_leaves_no_tables(study):
    root, sims, networks = study
    (root / "bad.json").write_text("{ truncated")
    with pytest.raises(CorruptFileError, match="bad.json"):
        build(root, [*sims, root / "bad.json"], networks)
    assert not (root / "tables").exists() or not any((root / "tables").iterdir())


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{ truncated", "is not valid JSON"),
        ("[1, 2]", "not an object"),
        ('{"run": 1}', "lacks the key"),
    ],
)
def test_corrupt_similarity_file_names_the_file(tmp_path, content, match):
    bad = tmp_path / "similarity.json"
    bad.write_text(content)
    with pytest.raises(CorruptFileError, match=match) as info:
        build(tmp_path, [bad], [])
    assert str(bad) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CorruptFileError, match="does not exist"):
        build(tmp_path, [tmp_path / "nope.json"], [])


def test_unknown_layer_is_refused(tmp_path):
    sims = [write_similarity(tmp_path, "cka", 1, 1, "layer1_add", "layer1_add", 0.5)]
    with pytest.raises(PrunesimError, match="not a compared layer of vgg_svhn"):
        build(tmp_path, sims, [])


def test_duplicate_job_output_is_refused(tmp_path):
    a = write_similarity(tmp_path, "cka", 1, 1, "out", "out", 0.5)
    b = tmp_path / "copy.json"
    b.write_text(a.read_text())
    with pytest.raises(PrunesimError, match="both hold cka"):
        build(tmp_path, [a, b], [])


def test_other_experiment_is_refused(tmp_path):
    path = write_similarity(tmp_path, "cka", 1, 1, "out", "out", 0.5)
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "experiment": "other"}))
    with pytest.raises(PrunesimError, match="belongs to experiment 'other'"):
        build(tmp_path, [path], [])


def test_import_does_not_load_torch():
    code = (
        "import sys, prunesim.tables; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"prunesim.tables imported {proc.stdout}{proc.stderr}"


def test_intrinsic_dimension_table(tmp_path):
    from prunesim.tables import (
        INTRINSIC_DIMENSION_COLUMNS,
        intrinsic_dimension_table,
        read_network_metrics,
    )

    networks = [write_network(tmp_path, None, 0, 0.9, 1.0), write_network(tmp_path, 1, 1, 0.8, 0.8)]
    jobs = []
    for run, iteration, ids in ((None, 0, (7.5, 3.0)), (1, 1, (6.0, None))):
        path = tmp_path / f"id_{iteration}.json"
        records = [
            {"layer": "conv1", "id": ids[0], "r": 0.99, "n_used": 90, "n_dropped": 0},
            {"layer": "out", "id": ids[1], "r": None, "n_used": 0, "n_dropped": 100,
             "note": None if ids[1] else "TwoNN has 0 usable points"},
        ]  # fmt: skip
        path.write_text(json.dumps({"run": run, "iteration": iteration, "records": records}))
        jobs.append(path)
    table = intrinsic_dimension_table(
        jobs[::-1], read_network_metrics(networks), EXPERIMENT, MODEL, DATASET
    )
    assert list(table.columns) == INTRINSIC_DIMENSION_COLUMNS
    assert table["iteration"].tolist() == [0, 0, 1, 1]  # dense first, layers in order
    assert table["layer"].tolist() == ["conv1", "out", "conv1", "out"]
    assert table.loc[2, "density"] == 0.8
    assert table.loc[2, "density_all_params"] == all_params(0.8)
    assert math.isnan(table.loc[3, "intrinsic_dimension"])
    assert "usable points" in table.loc[3, "note"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"run": 1, "iteration": 1, "records": [{"layer": "fc9"}]}))
    with pytest.raises(PrunesimError, match="not a compared layer"):
        intrinsic_dimension_table([bad], [], EXPERIMENT, MODEL, DATASET)


def write_control_network(root: Path, name: str, network: str, run, iteration, accuracy, density):
    """metrics.json of a control network (``seed<k>``, ``random_iter<k>``)."""
    scratch = write_network(root / "scratch", run, iteration, accuracy, density)
    target = root / "networks" / name / "metrics.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({**json.loads(scratch.read_text()), "network": network}))
    return target


def write_control_similarity(root, comparison, run, iteration, run_b, layer, value):
    """A control similarity file, as the aggregate job gets it: ``(comparison, run_b, path)``.
    Its path says nothing of the comparison: the table must take the label it is given."""
    where = f"control{comparison}{run}{iteration}{run_b}/{layer}__{layer}.json"
    path = root / "similarity" / "cka" / where
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "experiment": EXPERIMENT, "run": run, "iteration": iteration, "metric": "cka",
        "layer_a": layer, "layer_b": layer, "value": value, "note": None,
    }  # fmt: skip
    path.write_text(json.dumps(record))
    return comparison, run_b, path


def test_controls_get_their_comparison_run_b_and_own_density(study):
    """Seed, random and run-vs-run rows sit beside IMP's, told apart by `comparison`; seed
    network 1 (run 1, iteration 0) and random network 2 (run 1, iteration 2) are not
    mistaken for the dense network or for IMP run 1 iteration 2."""
    root, sims, networks = study
    networks += [
        write_control_network(root, "seed1", "seed", 1, 0, 0.88, 1.0),
        write_control_network(root, "seed2", "seed", 2, 0, 0.87, 1.0),
        write_control_network(root, "random_iter2", "random", 1, 2, 0.5, 0.6401),
    ]
    controls = [
        write_control_similarity(root, "seed_vs_dense", 1, 0, None, "conv1", 0.95),
        write_control_similarity(root, "seed_vs_dense", 2, 0, None, "conv1", 0.93),
        write_control_similarity(root, "random_vs_dense", 1, 2, None, "conv1", 0.4),
        write_control_similarity(root, "run_vs_run", 1, 2, 2, "conv1", 0.7),
    ]
    _, out = build(root, sims, networks, controls=controls)
    table = out["similarity"]
    assert list(table.comparison.unique()) == [
        "pruned_vs_dense", "seed_vs_dense", "random_vs_dense", "run_vs_run",
    ]  # fmt: skip
    controls = table[table.comparison != "pruned_vs_dense"].set_index("comparison")
    assert controls.loc["seed_vs_dense", "density"].tolist() == [1.0, 1.0]
    assert controls.loc["seed_vs_dense", "run_b"].tolist() == [0, 0]
    assert controls.loc["random_vs_dense", "density"] == 0.6401  # its own, not IMP's 0.64
    assert controls.loc["run_vs_run", "run_b"] == 2
    assert controls.loc["run_vs_run", "density"] == pytest.approx(0.64)
    assert controls.note.isna().all()
    imp = table[table.comparison == "pruned_vs_dense"]
    assert len(imp) == 12
    assert set(imp.run_b) == {0}
    accuracy = out["accuracy"]
    assert accuracy.network.tolist() == ["dense"] + ["imp"] * 4 + ["seed", "seed", "random"]
    assert accuracy[accuracy.network == "seed"].run.tolist() == [1, 2]
    random = accuracy[accuracy.network == "random"].iloc[0]
    assert (random.run, random.iteration, random.test_accuracy) == (1, 2, 0.5)


def test_a_control_file_labelled_with_an_unknown_comparison_is_refused(tmp_path):
    _, _, path = write_control_similarity(tmp_path, "seed_vs_dense", 1, 0, None, "out", 0.9)
    with pytest.raises(PrunesimError, match="'pruned_vs_dense', not a control comparison"):
        build(tmp_path, [], [], controls=[("pruned_vs_dense", None, path)])


def test_old_metrics_files_without_network_still_read(study):
    """metrics.json written before the controls has no `network`: dense at iteration 0."""
    root, sims, networks = study
    for path in networks:
        record = json.loads(path.read_text())
        assert "network" not in record
    _, out = build(root, sims, networks)
    assert out["accuracy"].network.tolist() == ["dense"] + ["imp"] * 4
