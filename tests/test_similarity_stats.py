"""Shared pair statistics (issue #13): every metric reads the same value from them."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from prunesim.errors import CorruptFileError
from prunesim.metrics import DEFAULT_SETTINGS, _sources, similarity_from_hdf5, uses_stats
from prunesim.metrics import _stats as stats
from prunesim.similarity_job import similarity_records
from prunesim.similarity_stats import main as stats_main
from prunesim.similarity_stats import parse_layers, parse_pairs

# a: Gram-sized when flattened (96 > 40 rows), b and out: moment-sized
SHAPES = {"a": (6, 4, 4), "b": (3, 2, 2), "out": (5,)}
N = 40


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("acts")
    rng = np.random.default_rng(0)
    dense = {k: np.maximum(rng.standard_normal((N, *s)) + 0.2, 0) for k, s in SHAPES.items()}
    dense["b"][:, 1] = 0  # a dead channel, as pruning makes
    pruned = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in dense.items()}
    paths = []
    for name, acts in (("pruned", pruned), ("dense", dense)):
        path = folder / f"{name}.h5"
        with h5py.File(path, "w") as h5:
            for key, value in acts.items():
                h5.create_dataset(key, data=value.astype(np.float32), chunks=(7, *value.shape[1:]))
        paths.append(str(path))
    return folder, *paths


def pairs_for(reshape):
    if reshape == "channels":  # the channel reshape needs equal spatial sizes
        return [[k, k] for k in SHAPES]
    return [[a, b] for a in SHAPES for b in SHAPES]


@pytest.fixture(scope="module", params=["channels", "flatten"])
def files(request, networks):
    folder, pruned, dense = networks
    reshape = request.param
    dense_file = str(folder / reshape / "dense.npz")
    stats.dense_stats(dense, list(SHAPES), reshape, dense_file)
    out = folder / reshape / "run1_iter1.npz"
    stats.pair_stats(pruned, dense, pairs_for(reshape), reshape, dense_file, out)
    return reshape, pruned, dense, str(out), dense_file


VARIANTS = [
    ("mean_cca", {}), ("svcca", {"keep": 0.9}), ("svcca", {"truncate": 0.98}), ("pwcca", {}),
    ("pwcca", {"weights": "morcos"}), ("cka", {}), ("cka", {"form": "feature"}),
    ("cka", {"form": "gram"}), ("cka", {"kernel": "rbf"}), ("cka", {"debiased": True}),
    ("nbs", {}), ("nbs", {"form": "gram"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "extra"), VARIANTS)
def test_value_from_stats_equals_streamed(files, name, extra):
    reshape, pruned, dense, pair_file, dense_file = files
    settings = {**DEFAULT_SETTINGS[name], "reshape": reshape, **extra}
    served = 0
    for a, b in pairs_for(reshape):
        view = stats.read_pair(pair_file, dense_file, a, b)
        got = stats.similarity_from_stats(name, view, settings)
        want = similarity_from_hdf5(name, pruned, a, dense, b, settings)
        if got is None:  # the metric's route is not the stored kind: it reads activations
            continue
        served += 1
        assert got["note"] == want["note"]
        assert got["details"] == want["details"]
        assert got["value"] == pytest.approx(want["value"], abs=1e-10)
    # Gram-only settings find no Grams in channel-reshape files (always moment-sized here);
    # debiased CKA needs fourth moments, so it reads only Gram files from them
    gram_only = extra.get("form") == "gram" or extra.get("kernel") == "rbf" or extra.get("debiased")
    assert served == 0 if gram_only and reshape == "channels" else served > 0


def test_dense_side_is_stored_once_and_not_repeated(files):
    reshape, _, _, pair_file, dense_file = files
    loaded = stats.load_npz(pair_file)
    assert not any(k.endswith("/cyy") or k.endswith("/ky") for k in loaded if "b__b" in k)
    kinds = {k.split("/")[0]: str(v) for k, v in loaded.items() if k.endswith("/kind")}
    expected_a = "gram" if reshape == "flatten" else "moments"
    assert kinds["a__a"] == expected_a
    assert kinds["out__out"] == "moments"
    assert set(stats.load_npz(dense_file, "a/")) == (
        {"gram"} if expected_a == "gram" else {"mean", "cov"}
    )


def test_records_from_stats_equal_records_from_activations(files, tmp_path):
    reshape, pruned, dense, pair_file, dense_file = files
    job = {"experiment": "e", "run": 1, "iteration": 1, "metric": "cka", "base_metric": "cka",
           "settings": {**DEFAULT_SETTINGS["cka"], "reshape": reshape},
           "pairs": pairs_for(reshape)}  # fmt: skip
    log = __import__("logging").getLogger("test")
    shared = similarity_records(job, pruned, dense, log, pair_file, dense_file)
    plain = similarity_records(job, pruned, dense, log)
    for got, want in zip(shared, plain, strict=True):
        assert got["value"] == pytest.approx(want["value"], abs=1e-10)
        assert got["details"] == want["details"]


@pytest.mark.parametrize(
    ("base", "settings", "expected"),
    [
        ("svcca", {"reshape": "channels"}, True),
        ("cka", {"reshape": "flatten"}, True),
        ("cosine", {"reshape": None}, False),
        ("cka", {"reshape": "channels", "resize": "adaptive_avg"}, False),
        ("cka", {"reshape": "flatten", "bootstrap": {"samples": 10}}, False),
        ("cka", {"reshape": None}, False),
    ],
)
def test_which_metrics_read_the_stats(base, settings, expected):
    assert uses_stats(base, settings) is expected


def test_stats_cli_writes_both_files(networks, tmp_path):
    _, pruned, dense = networks
    dense_out = tmp_path / "dense.npz"
    stats_main(["dense", "--acts", dense, "--layers", '["out"]', "--reshape", "flatten",
                "--out", str(dense_out)])  # fmt: skip
    pair_out = tmp_path / "pairs.npz"
    stats_main(["pair", "--pruned", pruned, "--dense", dense, "--reshape", "flatten",
                "--pairs", json.dumps([["out", "out"]]), "--dense-stats", str(dense_out),
                "--out", str(pair_out)])  # fmt: skip
    assert str(stats.load_npz(pair_out)["out__out/kind"]) == "moments"


@pytest.mark.parametrize("text", ["[]", "{}", '[["a"]]', "not json"])
def test_bad_pairs_are_refused(text):
    with pytest.raises(ValueError, match="--pairs"):
        parse_pairs(text)


@pytest.mark.parametrize("text", ["[]", "{}", "[1]", "nope"])
def test_bad_layers_are_refused(text):
    with pytest.raises(ValueError, match="--layers"):
        parse_layers(text)


def test_a_pair_missing_from_the_file_names_the_fix(files):
    _, _, _, pair_file, dense_file = files
    with pytest.raises(CorruptFileError, match="no pair out, conv9.*--forcerun"):
        stats.read_pair(pair_file, dense_file, "out", "conv9")


def test_truncated_stats_file_names_the_fix(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CorruptFileError, match="--forcerun"):
        stats.load_npz(bad)


def test_gram_from_many_blocks_equals_one_block(networks, tmp_path, monkeypatch):
    """The block-pair assembly of the n x n Gram (re-read blocks) is exact."""
    _, pruned, dense = networks
    one = tmp_path / "one.npz"
    stats.dense_stats(dense, ["a"], "flatten", one)
    monkeypatch.setattr(_sources, "_BLOCK_BYTES", 8 * 96 * 7)  # 7 images per block
    many = tmp_path / "many.npz"
    stats.dense_stats(dense, ["a"], "flatten", many)
    np.testing.assert_allclose(stats.load_npz(many)["a/gram"], stats.load_npz(one)["a/gram"],
                               rtol=0, atol=1e-12)  # fmt: skip
