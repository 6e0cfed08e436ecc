"""Mask files and mask overlap (Jaccard) between runs; all torch-free."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from prunesim.errors import CorruptFileError
from prunesim.masks import (
    MASK_TABLE_COLUMNS,
    jaccard,
    load_mask_npz,
    mask_overlap_table,
    random_jaccard,
    save_mask_npz,
)


def reference_jaccard(a, b):
    """Plain-set reference: indices alive in both over indices alive in either."""
    sa = {i for i, v in enumerate(np.ravel(a)) if v}
    sb = {i for i, v in enumerate(np.ravel(b)) if v}
    return 1.0 if not sa | sb else len(sa & sb) / len(sa | sb)


def test_roundtrip_keeps_names_order_shapes_and_bits(tmp_path):
    rng = np.random.default_rng(0)
    masks = {
        "features.0.weight": rng.random((8, 3, 3, 3)) < 0.3,
        "odd.weight": rng.random((7, 5)) < 0.5,  # 35 bits: packbits pads the last byte
        "one.weight": np.array([True]),
        "classifier.weight": np.zeros((10, 13), dtype=bool),
    }
    path = tmp_path / "mask.npz"
    save_mask_npz(path, masks)
    back = load_mask_npz(path)
    assert list(back) == list(masks)
    for name, m in masks.items():
        assert back[name].dtype == np.bool_
        assert back[name].shape == m.shape
        assert np.array_equal(back[name], m)
    assert [p.name for p in tmp_path.iterdir()] == ["mask.npz"]  # no partial file left


def test_file_is_compact(tmp_path):
    m = np.random.default_rng(1).random((256, 256, 3, 3)) < 0.5
    save_mask_npz(tmp_path / "m.npz", {"w": m})
    assert (tmp_path / "m.npz").stat().st_size < m.size / 7  # ~1 bit per weight


def test_non_bool_masks_are_refused(tmp_path):
    with pytest.raises(TypeError, match="bool"):
        save_mask_npz(tmp_path / "m.npz", {"w": np.ones(3)})


def test_corrupt_file_says_what_to_do(tmp_path):
    path = tmp_path / "mask.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(CorruptFileError, match=rf"--forcerun {path}"):
        load_mask_npz(path)
    np.savez(path, other=np.ones(2))
    with pytest.raises(CorruptFileError):
        load_mask_npz(path)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1, 1, 0, 0], [1, 0, 1, 0], 1 / 3),
        ([1, 1, 0, 0], [1, 1, 0, 0], 1.0),
        ([1, 0, 0, 0], [0, 1, 0, 0], 0.0),
        ([0, 0, 0], [0, 0, 0], 1.0),
        ([1, 1, 1, 1], [1, 1, 0, 0], 0.5),
    ],
)
def test_jaccard_on_hand_made_masks(a, b, expected):
    a, b = np.array(a, dtype=bool), np.array(b, dtype=bool)
    assert jaccard(a, b) == pytest.approx(expected)
    assert jaccard(b, a) == jaccard(a, b)  # symmetric


def test_jaccard_matches_set_reference_and_bounds():
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = rng.random((4, 6)) < rng.random(), rng.random((4, 6)) < rng.random()
        value = jaccard(a, b)
        assert 0.0 <= value <= 1.0
        assert value == pytest.approx(reference_jaccard(a, b))
    with pytest.raises(ValueError, match="shape"):
        jaccard(np.ones(3, bool), np.ones(4, bool))


def test_random_baseline_matches_simulation():
    rng = np.random.default_rng(3)
    a, b = rng.random(200_000) < 0.3, rng.random(200_000) < 0.6
    assert jaccard(a, b) == pytest.approx(random_jaccard(0.3, 0.6), abs=0.005)
    assert random_jaccard(1.0, 1.0) == 1.0


def test_overlap_table_on_hand_made_masks(tmp_path):
    # Two layers; three runs at iteration 1, two at iteration 2 (one given as a file).
    l1 = {0: [1, 1, 0, 0], 1: [1, 0, 1, 0], 2: [1, 1, 0, 0]}
    l2 = {0: [1, 0], 1: [1, 0], 2: [0, 1]}
    masks = {
        (r, 1): {"a.weight": np.array(l1[r], bool), "b.weight": np.array(l2[r], bool)}
        for r in range(3)
    }
    masks[(0, 2)] = {"a.weight": np.array([1, 0, 0, 0], bool), "b.weight": np.array([1, 0], bool)}
    save_mask_npz(tmp_path / "m.npz", {"a.weight": np.array([0, 0, 0, 1], bool),
                                       "b.weight": np.array([1, 0], bool)})  # fmt: skip
    masks[(1, 2)] = tmp_path / "m.npz"
    table = mask_overlap_table(masks, "exp")
    assert list(table.columns) == MASK_TABLE_COLUMNS
    assert len(table) == 3 * 3 + 1 * 3  # (pairs × (layers + all)) per iteration
    assert set(table["experiment"]) == {"exp"}

    def row(iteration, a, b, layer):
        sel = table[(table.iteration == iteration) & (table.run_a == a) & (table.run_b == b)
                    & (table.parameter == layer)]  # fmt: skip
        assert len(sel) == 1
        return sel.iloc[0]

    assert row(1, 0, 1, "a.weight").jaccard == pytest.approx(1 / 3)
    assert row(1, 0, 2, "a.weight").jaccard == 1.0
    assert row(1, 1, 2, "b.weight").jaccard == 0.0
    # "all" pools the layers: run0 = 110010, run1 = 101010 -> |∩| = 2, |∪| = 4.
    assert row(1, 0, 1, "all").jaccard == pytest.approx(2 / 4)
    assert row(1, 0, 1, "all").density == pytest.approx(0.5)
    assert row(1, 0, 1, "b.weight").density == pytest.approx(0.5)
    assert row(2, 0, 1, "a.weight").jaccard == 0.0
    assert row(2, 0, 1, "a.weight").density == pytest.approx(0.25)
    assert row(2, 0, 1, "all").jaccard == pytest.approx(1 / 3)
    # Every pair is listed once, with run_a < run_b.
    for it, runs in ((1, range(3)), (2, range(2))):
        pairs = set(zip(*table[table.iteration == it][["run_a", "run_b"]].values.T, strict=True))
        assert pairs == set(itertools.combinations(runs, 2))


def test_overlap_table_refuses_mismatched_layers():
    masks = {(0, 1): {"a": np.ones(2, bool)}, (1, 1): {"b": np.ones(2, bool)}}
    with pytest.raises(ValueError, match="different layers"):
        mask_overlap_table(masks, "exp")


def test_masks_module_never_imports_torch():
    code = (
        "import sys, prunesim.masks as m, numpy as np\n"
        "m.mask_overlap_table({(0, 1): {'a': np.ones(2, bool)}, (1, 1): {'a': np.ones(2, bool)}},"
        " 'e')\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
