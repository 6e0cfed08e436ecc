"""The paper's claims as data, checked on small synthetic tables: holds, differs, skipped."""

from __future__ import annotations

import copy
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY_CONFIG
from prunesim.layers import compared_layers
from prunesim.metrics import METRICS
from prunesim.paper import (
    COMPARISON_COLUMNS,
    KINDS,
    STATUSES,
    ClaimsError,
    compare_with_paper,
    load_claims,
    parse_claims,
    write_comparison,
)

CLAIMS_FILE = REPO / "workflow" / "resources" / "paper_claims.yaml"
IMP = {"iterations": 20, "rate": 0.2, "density_tolerance": 0.05}
# the tables' columns this comparison reads (prunesim.tables may add more)
SIMILARITY_COLUMNS = [
    "model", "dataset", "run", "iteration", "density", "layer", "layer_index", "layer_kind",
    "metric", "value", "note", "layer_b",
]  # fmt: skip
ACCURACY_COLUMNS = ["model", "dataset", "run", "iteration", "density", "test_accuracy"]


def similarity_table(model, dataset, metrics, *, runs=2, iterations=20, value=0.9, rate=0.2):
    """Every compared layer, run and iteration of ``model``; ``value(metric, run, it, layer)``."""
    rows = []
    for metric in metrics:
        for run in range(1, runs + 1):
            for it in range(1, iterations + 1):
                for index, (layer, kind) in enumerate(compared_layers(model)):
                    v = value(metric, run, it, layer) if callable(value) else value
                    rows.append(
                        [model, dataset, run, it, (1 - rate) ** it, layer, index, kind, metric,
                         v, None, layer]
                    )  # fmt: skip
    return pd.DataFrame(rows, columns=SIMILARITY_COLUMNS)


def accuracy_table(model, dataset, accuracy, *, runs=2, iterations=20, rate=0.2):
    """Dense (iteration 0) + every run's iterations; ``accuracy(run, iteration)``."""
    rows = [[model, dataset, 0, 0, 1.0, accuracy(0, 0)]]  # dense: run 0 (prunesim.tables)
    rows += [
        [model, dataset, run, it, (1 - rate) ** it, accuracy(run, it)]
        for run in range(1, runs + 1)
        for it in range(1, iterations + 1)
    ]
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS)


def peak_at_iteration_10(run, it):
    """0.90 dense, rising to 0.93 at iteration 10 (10.7 % of the weights), then falling."""
    return 0.90 + 0.003 * it if it <= 10 else 0.93 - 0.02 * (it - 10)


def claims(*entries):
    return parse_claims({"imp": dict(IMP), "claims": list(entries)})


def claim(**fields):
    base = {
        "id": "c",
        "description": "a claim",
        "figure": "Fig. 5",
        "source": "test",
        "applies_to": [{"model": "vgg16_bn", "dataset": "cifar10"}],
        "metric": "cka",
        "layers": "all",
        "iterations": "all",
        "check": {"kind": "all_values_at_least", "threshold": 0.75},
    }
    return {key: value for key, value in {**base, **fields}.items() if value is not None}


def outcome(table, claim_id):
    row = table.set_index("claim").loc[claim_id]
    return row["status"], row["measured_value"], row["reason"]


# ----------------------------------------------------------------------------- the file


def test_claims_file_loads_and_every_kind_is_known():
    paper = load_claims(CLAIMS_FILE)
    assert (paper.iterations, paper.rate) == (20, 0.2)
    assert len({c.id for c in paper.claims}) == len(paper.claims)
    for c in paper.claims:
        assert c.kind in KINDS
        assert c.source.strip(), c.id
        if not c.on_accuracy:
            assert c.metric in METRICS, f"{c.id}: unknown metric {c.metric}"


def test_the_paper_grid_decides_every_claim_it_is_about():
    """On tables shaped like the paper's study, every claim is holds or differs, none skipped."""
    paper = load_claims(CLAIMS_FILE)
    for model, dataset in [
        ("vgg16_bn", "cifar10"),
        ("vgg_svhn", "svhn"),
        ("resnet_fast", "cifar10"),
    ]:
        sim = similarity_table(model, dataset, list(METRICS), value=0.9)
        acc = accuracy_table(model, dataset, peak_at_iteration_10)
        table = compare_with_paper(sim, acc, paper, model, dataset)
        assert list(table.columns) == COMPARISON_COLUMNS
        assert set(table["status"]) <= set(STATUSES)
        about = [c.id for c in paper.claims if any(m == model for m, _ in c.applies_to)]
        decided = table[table["claim"].isin(about)]
        assert set(decided["status"]) <= {"holds", "differs"}, decided.to_string()
        others = table[~table["claim"].isin(about)]
        assert (others["status"] == "skipped").all()
        assert others["reason"].str.contains(f"this experiment is {model} on {dataset}").all()


# ----------------------------------------------------------------------------- outcomes


def test_holding_claim_uses_the_mean_over_runs():
    # run 1 at 0.70 is below 0.75, but the mean over runs (0.80) is not
    sim = similarity_table(
        "vgg16_bn",
        "cifar10",
        ["cka"],
        value=lambda metric, run, it, layer: 0.7 if run == 1 else 0.9,
    )
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10)
    table = compare_with_paper(sim, acc, claims(claim()), "vgg16_bn", "cifar10")
    status, measured, reason = outcome(table, "c")
    assert status == "holds", reason
    assert measured.startswith("min 0.800")
    assert table.loc[0, "paper_value"] == ">= 0.75 at every layer and iteration"
    assert "every compared layer; IMP iteration(s) 1-20; mean over runs" in table.loc[0, "scope"]


def test_differing_claim_says_where():
    def value(metric, run, it, layer):
        return 0.6 if (layer, it) == ("conv9", 20) else 0.9

    sim = similarity_table("vgg16_bn", "cifar10", ["cka"], value=value)
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10)
    table = compare_with_paper(sim, acc, claims(claim()), "vgg16_bn", "cifar10")
    status, measured, reason = outcome(table, "c")
    assert status == "differs"
    assert measured == "min 0.600 (conv9, iteration 20)"
    assert reason == "1 layer x iteration mean(s) below 0.75"


def test_skipped_for_another_model_or_dataset():
    sim = similarity_table("vgg_svhn", "digits", ["cka"], iterations=2)
    acc = accuracy_table("vgg_svhn", "digits", peak_at_iteration_10, iterations=2)
    table = compare_with_paper(sim, acc, claims(claim()), "vgg_svhn", "digits")
    status, measured, reason = outcome(table, "c")
    assert (status, measured) == ("skipped", "")
    assert reason == "about vgg16_bn on cifar10; this experiment is vgg_svhn on digits"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"iterations": 3, "claim": {"iterations": [15, 20]}},
            "needs at least one of IMP iteration(s) 15, 20; the experiment's table has 1-3",
        ),
        ({"metrics": ["nbs"]}, "the experiment did not compute cka"),
        ({"layers": ["conv1", "pool5", "out"]}, "needs layer(s) conv2, pool1, conv3"),
        ({"rate": 0.1}, "iteration 1 keeps 90 % of the weights, the paper's 80 %"),
    ],
)
def test_skipped_when_the_experiment_lacks_what_the_claim_needs(change, expected):
    sim = similarity_table(
        "vgg16_bn",
        "cifar10",
        change.get("metrics", ["cka"]),
        iterations=change.get("iterations", 20),
        rate=change.get("rate", 0.2),
    )
    if "layers" in change:
        sim = sim[sim["layer"].isin(change["layers"])]
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10)
    table = compare_with_paper(
        sim, acc, claims(claim(**change.get("claim", {}))), "vgg16_bn", "cifar10"
    )
    status, _, reason = outcome(table, "c")
    assert status == "skipped"
    assert expected in reason


def test_a_value_no_run_defines_skips_the_claim():
    sim = similarity_table("vgg16_bn", "cifar10", ["cka"])
    sim.loc[(sim["layer"] == "conv5") & (sim["iteration"] == 4), "value"] = float("nan")
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10)
    table = compare_with_paper(sim, acc, claims(claim()), "vgg16_bn", "cifar10")
    status, _, reason = outcome(table, "c")
    assert status == "skipped"
    assert "no run has a defined cka value for conv5 at iteration 4" in reason


def test_range_and_argmin_at_the_last_iteration():
    def value(metric, run, it, layer):
        if metric == "cosine":
            return 0.99 if it == 1 else 0.9
        return 0.5 if (layer == "conv10" and it == 20) else 0.95

    sim = similarity_table("vgg16_bn", "cifar10", ["cosine", "svcca"], value=value)
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10)
    middle = ["conv3", "conv10"]
    paper = claims(
        claim(
            id="cos",
            metric="cosine",
            layers=["out"],
            check={"kind": "range", "low": 0.8, "high": 0.97},
        ),
        claim(
            id="mid",
            metric="svcca",
            iterations="last",
            check={"kind": "argmin_layer_in", "layers": middle},
        ),
        claim(
            id="first",
            metric="svcca",
            iterations="last",
            check={"kind": "argmin_layer_in", "layers": ["conv1"]},
        ),
    )
    table = compare_with_paper(sim, acc, paper, "vgg16_bn", "cifar10")
    assert outcome(table, "cos") == (
        "differs",
        "min 0.900 (out, iteration 2), max 0.990 (out, iteration 1)",
        "above 0.97 at out, iteration 1",
    )
    assert outcome(table, "mid") == ("holds", "conv10 (0.500) at iteration 20", "")
    status, _, reason = outcome(table, "first")
    assert (status, reason) == (
        "differs",
        "least similar layer outside the set: conv10 at iteration 20",
    )


def test_accuracy_peak_and_kept_accuracy():
    paper = claims(
        claim(
            id="peak",
            metric=None,
            layers=None,
            check={"kind": "peak_accuracy_near_density", "density": 0.1, "factor": 2.0},
        ),
        claim(
            id="kept",
            metric=None,
            layers=None,
            check={"kind": "accuracy_kept_down_to_density", "density": 0.1, "tolerance": 0.005},
        ),
    )
    for entry in paper.claims:
        assert entry.on_accuracy
    sim = similarity_table("vgg16_bn", "cifar10", ["cka"])
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10)
    table = compare_with_paper(sim, acc, paper, "vgg16_bn", "cifar10")
    status, measured, _ = outcome(table, "peak")
    assert status == "holds"
    assert measured.startswith("peak 0.930 at 10.7 % (iteration 10)")
    assert outcome(table, "kept")[0] == "holds"
    assert "IMP iteration(s) 0-10 (0 = dense)" in table.set_index("claim").loc["kept", "scope"]

    # dense best: the peak is at 100 % and pruning costs accuracy from the first iteration
    acc = accuracy_table("vgg16_bn", "cifar10", lambda run, it: 0.95 - 0.01 * it)
    table = compare_with_paper(sim, acc, paper, "vgg16_bn", "cifar10")
    status, _, reason = outcome(table, "peak")
    assert (status, reason) == ("differs", "the peak is at 100 %, outside 5 %-20 %")
    status, measured, reason = outcome(table, "kept")
    assert status == "differs"
    assert measured.startswith("lowest accuracy - dense: -0.1000 at iteration 10")
    assert reason == "10 iteration(s) more than 0.005 below the dense accuracy"


# ----------------------------------------------------------------------------- reduced studies

REDUCED = "evaluated on IMP iterations 1-8 (down to 16.8 % of the weights); "


def accuracy_claims(**check):
    return claims(
        claim(
            id="peak",
            metric=None,
            layers=None,
            check={"kind": "peak_accuracy_near_density", "density": 0.1, "factor": 2.0},
        ),
        claim(
            id="kept",
            metric=None,
            layers=None,
            check={"kind": "accuracy_kept_down_to_density", "density": 0.1, "tolerance": 0.005},
        ),
    )


def test_a_reduced_study_is_compared_on_the_iterations_it_has():
    """8 IMP iterations (as config/cifar10_cpu.yaml): `all` is decided on 1-8, and says so."""

    def value(metric, run, it, layer):
        return 0.6 if (metric, layer, it) == ("cosine", "out", 5) else 0.9

    sim = similarity_table("vgg16_bn", "cifar10", ["cka", "cosine"], iterations=8, value=value)
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10, iterations=8)
    paper = claims(
        claim(),
        claim(
            id="cos",
            metric="cosine",
            layers=["out"],
            check={"kind": "range", "low": 0.8, "high": 0.97},
        ),
    )
    table = compare_with_paper(sim, acc, paper, "vgg16_bn", "cifar10")
    coverage = REDUCED + "the paper's claim covers iterations 1-20 (down to 1.15 %)"
    assert outcome(table, "c") == ("holds", "min 0.900 (conv1, iteration 1)", coverage)
    scope = table.set_index("claim").loc["c", "scope"]
    assert scope == (
        "cka; every compared layer; IMP iteration(s) 1-8 (the paper's claim: 1-20); mean over runs"
    )
    status, measured, reason = outcome(table, "cos")
    assert (status, measured) == (
        "differs",
        "min 0.600 (out, iteration 5), max 0.900 (out, iteration 1)",
    )
    assert reason == f"below 0.8 at out, iteration 5; {coverage}"


def test_last_falls_back_to_the_experiments_last_iteration():
    def value(metric, run, it, layer):
        return 0.5 if (layer, it) == ("conv10", 8) else 0.95

    sim = similarity_table("vgg16_bn", "cifar10", ["svcca"], iterations=8, value=value)
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10, iterations=8)
    paper = claims(
        claim(
            id="mid",
            metric="svcca",
            iterations="last",
            check={"kind": "argmin_layer_in", "layers": ["conv3", "conv10"]},
        )
    )
    table = compare_with_paper(sim, acc, paper, "vgg16_bn", "cifar10")
    assert outcome(table, "mid") == (
        "holds",
        "conv10 (0.500) at iteration 8",
        "evaluated at the experiment's last IMP iteration, 8 (16.8 % of the weights); the "
        "paper's claim is about iteration 20 (1.15 %)",
    )
    assert (
        "IMP iteration(s) 8 (the experiment's last; the paper's claim: 20)"
        in (table.loc[0, "scope"])
    )


@pytest.mark.parametrize("iterations", ["all", "last", [2, 5, 30]])
def test_a_reduced_study_with_another_schedule_is_still_skipped(iterations):
    sim = similarity_table("vgg16_bn", "cifar10", ["cka"], iterations=8, rate=0.1)
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10, iterations=8, rate=0.1)
    table = compare_with_paper(
        sim, acc, claims(claim(iterations=iterations)), "vgg16_bn", "cifar10"
    )
    status, measured, reason = outcome(table, "c")
    assert (status, measured) == ("skipped", "")
    first = 8 if iterations == "last" else 1 if iterations == "all" else 2
    assert reason.startswith(f"iteration {first} keeps {100 * 0.9**first:.3g} % of the weights")
    assert "another pruning schedule" in reason


def test_an_explicit_list_is_evaluated_on_the_listed_iterations_present():
    sim = similarity_table("vgg16_bn", "cifar10", ["cka"], iterations=8)
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10, iterations=8)
    table = compare_with_paper(
        sim, acc, claims(claim(iterations=[2, 5, 12])), "vgg16_bn", "cifar10"
    )
    assert outcome(table, "c")[0] == "holds"
    assert outcome(table, "c")[2] == (
        "evaluated on IMP iterations 2, 5 (down to 32.8 % of the weights); the paper's claim "
        "covers iterations 2, 5, 12 (down to 6.87 %)"
    )


def test_accuracy_claims_on_a_reduced_study():
    sim = similarity_table("vgg16_bn", "cifar10", ["cka"], iterations=8)
    paper = accuracy_claims()

    # accuracy still rising at the last iteration (16.8 %): where it peaks cannot be told
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10, iterations=8)
    table = compare_with_paper(sim, acc, paper, "vgg16_bn", "cifar10")
    status, measured, reason = outcome(table, "peak")
    assert status == "skipped"
    assert measured.startswith("peak 0.924 at 16.8 % (iteration 8)")
    assert reason.startswith(
        "undecidable: the mean test accuracy is highest at the lowest density the experiment "
        "reaches (16.8 %, iteration 8)"
    )
    assert reason.endswith(
        "evaluated on IMP iterations 1-8 and the dense network (down to 16.8 % of the "
        "weights); the paper's claim covers iterations 1-20 (down to 1.15 %)"
    )
    # `kept` covers 1-10 (down to 10.7 %) in the paper; 1-8 here
    status, _, reason = outcome(table, "kept")
    assert status == "holds"
    assert reason == (
        "evaluated on IMP iterations 1-8 and the dense network (down to 16.8 % of the "
        "weights); the paper's claim covers iterations 1-10 (down to 10.7 %)"
    )
    kept_scope = table.set_index("claim").loc["kept", "scope"]
    assert "IMP iteration(s) 0-8 (0 = dense; the paper's claim: 0-10)" in kept_scope

    # dense best, falling from the first iteration on: the peak is clearly outside 5-20 %
    acc = accuracy_table("vgg16_bn", "cifar10", lambda r, it: 0.95 - 0.01 * it, iterations=8)
    table = compare_with_paper(sim, acc, paper, "vgg16_bn", "cifar10")
    status, _, reason = outcome(table, "peak")
    assert status == "differs"
    assert reason.startswith("the peak is at 100 %, outside 5 %-20 %; evaluated on IMP")
    assert outcome(table, "kept")[0] == "differs"

    # a peak inside the evaluated range and the window: holds (10 iterations, peak at 9)
    def peak_at_9(run, it):
        return 0.90 + 0.003 * it if it <= 9 else 0.92

    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_9, iterations=10)
    table = compare_with_paper(sim, acc, paper, "vgg16_bn", "cifar10")
    status, measured, reason = outcome(table, "peak")
    assert status == "holds"
    assert measured.startswith("peak 0.927 at 13.4 % (iteration 9)")
    assert "the paper's claim covers iterations 1-20" in reason
    assert outcome(table, "kept")[0] == "holds"
    assert outcome(table, "kept")[2] == ""  # 0-10 is all the claim covers

    # still rising at the last iteration, but that is already below the window: differs
    acc = accuracy_table("vgg16_bn", "cifar10", lambda r, it: 0.9 + 0.001 * it, iterations=15)
    table = compare_with_paper(sim, acc, paper, "vgg16_bn", "cifar10")
    status, _, reason = outcome(table, "peak")
    assert status == "differs"
    assert reason.startswith("the peak is at 3.52 %, outside 5 %-20 %")

    # no dense network: nothing to compare with
    acc = accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10, iterations=8)
    table = compare_with_paper(sim, acc[acc["iteration"] > 0], paper, "vgg16_bn", "cifar10")
    for claim_id in ("peak", "kept"):
        status, _, reason = outcome(table, claim_id)
        assert status == "skipped"
        assert reason == "needs the dense network (iteration 0), which the experiment's table lacks"


def test_the_real_claims_on_a_reduced_cifar10_study():
    """config/cifar10_cpu.yaml's shape: every claim about the network is decided, except a
    peak the 8 iterations cannot locate; each decided one says it covers iterations 1-8."""
    paper = load_claims(CLAIMS_FILE)
    for model in ("vgg16_bn", "resnet_fast"):
        sim = similarity_table(model, "cifar10", list(METRICS), iterations=8, value=0.9)
        acc = accuracy_table(model, "cifar10", peak_at_iteration_10, iterations=8)
        table = compare_with_paper(sim, acc, paper, model, "cifar10").set_index("claim")
        about = [c.id for c in paper.claims if any(m == model for m, _ in c.applies_to)]
        for claim_id in about:
            status, reason = table.loc[claim_id, ["status", "reason"]]
            if claim_id == "cifar10_accuracy_peak_near_10pct":
                assert status == "skipped"
                assert reason.startswith("undecidable"), reason
                continue
            assert status in ("holds", "differs"), (claim_id, reason)
            assert "evaluated " in reason, reason
            assert "the paper's claim " in reason, reason


def test_comparison_written_atomically_from_csv_files(tmp_path):
    sim_path, acc_path = tmp_path / "similarity.csv", tmp_path / "accuracy.csv"
    similarity_table("resnet_fast", "cifar10", ["svcca", "pwcca", "cka", "cosine"]).to_csv(
        sim_path, index=False
    )
    accuracy_table("resnet_fast", "cifar10", peak_at_iteration_10).to_csv(acc_path, index=False)
    out = tmp_path / "tables" / "paper_comparison.csv"
    table = write_comparison(sim_path, acc_path, CLAIMS_FILE, "resnet_fast", "cifar10", out)
    assert [p.name for p in out.parent.iterdir()] == ["paper_comparison.csv"]
    again = pd.read_csv(out, keep_default_na=False)
    assert list(again.columns) == COMPARISON_COLUMNS
    assert again["status"].tolist() == table["status"].tolist()
    statuses = dict(zip(again["claim"], again["status"], strict=True))
    assert statuses["resnet_fast_svcca_min_above_0_40"] == "holds"
    assert statuses["vgg16_svcca_min_in_middle_layers"] == "skipped"


# ----------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["claims"][0]["check"].update(kind="median_above"),
            "check.kind 'median_above' is not known; choose one of all_values_at_least",
        ),
        (lambda d: d["claims"][0].pop("source"), "lacks the key(s) source"),
        (lambda d: d["claims"][0].update(metrics="cka"), "unknown key(s) metrics"),
        (lambda d: d["claims"][1].update(id=d["claims"][0]["id"]), "is used twice"),
        (
            lambda d: d["claims"][0]["check"].update(layers=["conv99"]),
            "names conv99, not compared layers of vgg16_bn",
        ),
        (
            lambda d: d["claims"][0]["applies_to"][0].update(model="vgg19"),
            "model 'vgg19' is unknown",
        ),
        (
            lambda d: d["claims"][2]["check"].update(threshold="high"),
            "check.threshold must be a number",
        ),
        (
            lambda d: d["claims"][0].update(iterations="first"),
            "iterations must be all, last or a list",
        ),
        (lambda d: d.pop("imp"), "exactly the keys imp and claims"),
    ],
)
def test_bad_claims_file_gives_a_clear_error(tmp_path, edit, message):
    document = copy.deepcopy(yaml.safe_load(CLAIMS_FILE.read_text()))
    edit(document)
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ClaimsError, match="claims.yaml") as info:
        load_claims(path)
    assert message in str(info.value)


def test_unreadable_claims_file(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text("claims: [\n")
    with pytest.raises(ClaimsError, match="is not valid YAML"):
        load_claims(path)
    with pytest.raises(ClaimsError, match="does not exist"):
        load_claims(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------- workflow


def test_rule_compare_paper_writes_the_table(tmp_path):
    """The rule runs on existing tables (upstream rules disallowed) and passes model, dataset."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["datasets"] = {"cifar10": {"source": "cifar10", "root": "cifar10", "download": False}}
    spec = config["experiments"].pop("tiny")
    spec.update(model="vgg16_bn", dataset="cifar10", layers=None, cross_layer=None)
    spec["prune"]["iterations"] = 20
    config["experiments"] = {"paper": spec}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    tables = tmp_path / "results" / "paper" / "tables"
    tables.mkdir(parents=True)
    similarity_table("vgg16_bn", "cifar10", ["cka", "cosine"]).to_csv(
        tables / "similarity.csv", index=False
    )
    accuracy_table("vgg16_bn", "cifar10", peak_at_iteration_10).to_csv(
        tables / "accuracy.csv", index=False
    )
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "results/paper/tables/paper_comparison.csv",
         "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(tmp_path / "config.yaml"), "--workflow-profile", "none",
         "--cores", "1", "--allowed-rules", "compare_paper"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_csv(tables / "paper_comparison.csv", keep_default_na=False)
    statuses = dict(zip(table["claim"], table["status"], strict=True))
    assert statuses["cka_never_below_0_75"] == "holds"
    assert statuses["cifar10_accuracy_peak_near_10pct"] == "holds"
    assert statuses["vgg16_svcca_min_in_middle_layers"] == "skipped"  # no svcca computed
    log = (tmp_path / "logs" / "compare_paper" / "paper.log").read_text()
    assert "claims:" in log


def test_control_rows_are_not_evidence_for_the_paper_claims():
    """Random-pruning rows (low similarity, low accuracy at every iteration) in the tables
    leave every claim's outcome as it was: the claims are about IMP vs dense."""
    paper = load_claims(CLAIMS_FILE)
    model, dataset = "vgg16_bn", "cifar10"
    sim = similarity_table(model, dataset, list(METRICS), value=0.9)
    acc = accuracy_table(model, dataset, peak_at_iteration_10)
    before = compare_with_paper(sim, acc, paper, model, dataset)
    random_sim = sim[sim.run == 1].assign(comparison="random_vs_dense", value=0.01)
    random_acc = acc[acc.run == 1].assign(network="random", test_accuracy=0.1)
    after = compare_with_paper(
        pd.concat([sim.assign(comparison="pruned_vs_dense"), random_sim]),
        pd.concat([acc.assign(network=["dense"] + ["imp"] * (len(acc) - 1)), random_acc]),
        paper, model, dataset,
    )  # fmt: skip
    pd.testing.assert_frame_equal(before, after)
