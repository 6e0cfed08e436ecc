"""Dataset preparation: the embedded digits, ImageFolder trees, SVHN .mat files, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prunesim.data import load_arrays, load_probe, prepare_dataset, stratified_indices
from prunesim.errors import ConfigError, CorruptFileError, DatasetError

CIFAR_JPEG = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


def prepare(tmp_path, spec, probe_size=100, seed=0, name="ds"):
    arrays, probe = tmp_path / name / "arrays.npz", tmp_path / name / "probe.npy"
    summary = prepare_dataset(spec, arrays, probe, probe_size, seed)
    return summary, load_arrays(arrays), load_probe(probe)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return prepare(tmp_path_factory.mktemp("digits"), {"source": "digits"}, probe_size=200)


def make_tree(root: Path, classes, n_train, n_test, size=32, suffix=".png", seed=0):
    """An ImageFolder tree of random images; returns {(split, class, index): pixels}."""
    rng = np.random.default_rng(seed)
    pixels = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i:03d}{suffix}")
                pixels[(split, c, i)] = img
    return pixels


# ----------------------------------------------------------------------------- digits


def test_digits_arrays_follow_the_contract(digits):
    summary, arrays, probe = digits
    assert arrays["x_train"].dtype == np.uint8
    assert arrays["x_train"].shape[1:] == (32, 32, 3)
    assert arrays["x_test"].dtype == np.uint8
    assert arrays["x_test"].shape[1:] == (32, 32, 3)
    assert arrays["y_train"].dtype == np.int64
    assert arrays["y_test"].dtype == np.int64
    assert len(arrays["x_train"]) + len(arrays["x_test"]) == 1797  # all of sklearn's digits
    assert len(arrays["x_test"]) == round(0.2 * 1797)
    assert list(arrays["classes"]) == [str(d) for d in range(10)]
    assert arrays["mean"].dtype == np.float32
    assert arrays["mean"].shape == (3,)
    # grey digits replicated to RGB; statistics from the training set on the [0, 1] scale
    x = arrays["x_train"].astype(np.float64) / 255
    np.testing.assert_allclose(arrays["mean"], x.reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(arrays["std"], x.reshape(-1, 3).std(0), rtol=1e-4)
    assert (arrays["x_train"][..., 0] == arrays["x_train"][..., 2]).all()
    assert arrays["x_train"].max() == 255
    assert summary["n_probe"] == 200 == len(probe)


def test_probe_is_stratified_sorted_and_seeded(digits, tmp_path):
    _, arrays, probe = digits
    assert probe.dtype == np.int64
    assert (np.diff(probe) > 0).all()
    assert probe.max() < len(arrays["y_test"])
    counts = np.bincount(arrays["y_test"][probe], minlength=10)
    expected = 200 * np.bincount(arrays["y_test"], minlength=10) / len(arrays["y_test"])
    assert np.abs(counts - expected).max() < 1
    _, again, probe_again = prepare(tmp_path, {"source": "digits"}, probe_size=200, name="a")
    np.testing.assert_array_equal(probe, probe_again)
    np.testing.assert_array_equal(arrays["x_test"], again["x_test"])
    _, other, probe_other = prepare(tmp_path, {"source": "digits"}, 200, seed=1, name="b")
    assert not np.array_equal(probe, probe_other)
    # the digits train/test split is part of the dataset, not of the seed
    np.testing.assert_array_equal(arrays["y_test"], other["y_test"])


def test_probe_larger_than_test_set_is_refused(tmp_path):
    with pytest.raises(DatasetError, match=r"probe_size is 5000.*only 359 images.*at most 359"):
        prepare(tmp_path, {"source": "digits"}, probe_size=5000)
    spec = {"source": "digits", "test_subset": 50}
    with pytest.raises(DatasetError, match=r"probe_size is 60.*only 50.*raise test_subset"):
        prepare(tmp_path, spec, probe_size=60)
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").iterdir())
    # the whole test set is allowed
    _, arrays, probe = prepare(tmp_path, spec, probe_size=50)
    np.testing.assert_array_equal(probe, np.arange(len(arrays["y_test"])))


def test_subsets_are_stratified_and_seeded(tmp_path):
    spec = {"source": "digits", "train_subset": 300, "test_subset": 100}
    summary, arrays, probe = prepare(tmp_path, spec, probe_size=50)
    assert len(arrays["y_train"]) == 300
    assert len(arrays["y_test"]) == 100
    assert len(probe) == 50
    assert np.bincount(arrays["y_train"], minlength=10).min() >= 28
    # statistics come from the subset that is trained on
    x = arrays["x_train"].astype(np.float64) / 255
    np.testing.assert_allclose(arrays["mean"], x.reshape(-1, 3).mean(0), rtol=1e-5)


def test_fixed_normalisation_from_spec(tmp_path):
    spec = {"source": "digits", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    _, arrays, _ = prepare(tmp_path, spec)
    np.testing.assert_array_equal(arrays["mean"], np.full(3, 0.5, np.float32))


def test_stratified_indices_exact_count():
    y = np.array([0] * 7 + [1] * 2 + [2] * 1)
    rng = np.random.default_rng(0)
    for n in range(11):
        idx = stratified_indices(y, n, rng)
        assert len(idx) == n == len(set(idx.tolist()))
    idx = stratified_indices(y, 5, rng)
    assert np.bincount(y[idx], minlength=3).tolist() == [4, 1, 0]
    with pytest.raises(ValueError, match="cannot draw"):
        stratified_indices(y, 11, rng)


# ----------------------------------------------------------------------------- imagefolder


def test_imagefolder_tree(tmp_path):
    pixels = make_tree(tmp_path / "tree", ["b_cls", "a_cls"], n_train=3, n_test=2)
    spec = {"source": "imagefolder", "root": str(tmp_path / "tree")}
    _, arrays, probe = prepare(tmp_path, spec, probe_size=4)
    assert list(arrays["classes"]) == ["a_cls", "b_cls"]  # sorted, like torchvision
    assert arrays["y_train"].tolist() == [0, 0, 0, 1, 1, 1]
    assert arrays["y_test"].tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(arrays["x_train"][3], pixels[("train", "b_cls", 0)])  # lossless
    np.testing.assert_array_equal(arrays["x_test"][1], pixels[("test", "a_cls", 1)])
    assert len(probe) == 4  # the whole test set


def test_imagefolder_resizes_and_converts(tmp_path):
    root = tmp_path / "tree"
    for split in ("train", "test"):
        (root / split / "x").mkdir(parents=True)
        Image.new("L", (40, 48), color=200).save(root / split / "x" / "grey.png")
        Image.new("RGBA", (32, 32), color=(10, 20, 30, 40)).save(root / split / "x" / "rgba.png")
        (root / split / "x" / "notes.txt").write_text("not an image")
    _, arrays, _ = prepare(tmp_path, {"source": "imagefolder", "root": str(root)}, probe_size=2)
    assert arrays["x_train"].shape == (2, 32, 32, 3)
    assert (arrays["x_train"][0] == 200).all()
    assert arrays["x_train"][1, 0, 0].tolist() == [10, 20, 30]


@pytest.mark.skipif(not CIFAR_JPEG.is_dir(), reason="shared cifar10-jpeg copy absent")
def test_shared_cifar10_jpeg_slice(tmp_path):
    root = tmp_path / "slice"
    classes = sorted(p.name for p in (CIFAR_JPEG / "train").iterdir())
    assert len(classes) == 10
    for split, n in (("train", 4), ("test", 2)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for f in sorted((CIFAR_JPEG / split / c).iterdir())[:n]:
                (root / split / c / f.name).symlink_to(f)
    _, arrays, _ = prepare(tmp_path, {"source": "imagefolder", "root": str(root)}, probe_size=10)
    assert arrays["x_train"].shape == (40, 32, 32, 3)
    assert arrays["x_test"].shape == (20, 32, 32, 3)
    assert list(arrays["classes"]) == classes
    first = sorted((CIFAR_JPEG / "train" / classes[1]).iterdir())[0]
    np.testing.assert_array_equal(
        arrays["x_train"][4], np.asarray(Image.open(first).convert("RGB"))
    )
    assert 0.3 < arrays["mean"].mean() < 0.7


# ----------------------------------------------------------------------------- svhn


def test_svhn_from_local_mat_files(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 10)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(-1, 1)  # labels 1..10, 10 = digit 0
        savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
    spec = {"source": "svhn", "root": str(tmp_path), "download": False}
    _, arrays, _ = prepare(tmp_path, spec, probe_size=10)
    assert arrays["x_train"].shape == (20, 32, 32, 3)
    assert sorted(set(arrays["y_train"].tolist())) == list(range(10))
    assert arrays["y_train"][9] == 0  # label 10 -> 0


def test_svhn_missing_or_corrupt(tmp_path):
    with pytest.raises(DatasetError, match=r"train_32x32\.mat not found.*download: true"):
        prepare(tmp_path, {"source": "svhn", "root": str(tmp_path)})
    for split in ("train", "test"):
        (tmp_path / f"{split}_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="cannot be read"):
        prepare(tmp_path, {"source": "svhn", "root": str(tmp_path)})


# ----------------------------------------------------------------------------- errors


def test_cifar10_missing_without_download_names_path_and_fix(tmp_path):
    with pytest.raises(DatasetError, match=rf"{tmp_path}.*download: true"):
        prepare(tmp_path, {"source": "cifar10", "root": str(tmp_path), "download": False})
    assert not (tmp_path / "ds" / "arrays.npz").exists()


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetError, match="train/<class>"):
        prepare(tmp_path, {"source": "imagefolder", "root": str(tmp_path / "nowhere")})
    make_tree(tmp_path / "t1", ["a", "b"], 1, 1)
    (tmp_path / "t1" / "test" / "b").rename(tmp_path / "t1" / "test" / "c")
    with pytest.raises(DatasetError, match="differ"):
        prepare(tmp_path, {"source": "imagefolder", "root": str(tmp_path / "t1")})
    make_tree(tmp_path / "t2", ["a"], 1, 1)
    bad = tmp_path / "t2" / "train" / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        prepare(tmp_path, {"source": "imagefolder", "root": str(tmp_path / "t2")})
    for split in ("train", "test"):  # an empty class folder in either split is refused
        make_tree(tmp_path / split, ["a", "b"], 1, 1)
        for image in (tmp_path / split / split / "b").iterdir():
            image.unlink()
        with pytest.raises(DatasetError, match=rf"class 'b' of the {split} split has no images"):
            prepare(tmp_path, {"source": "imagefolder", "root": str(tmp_path / split)}, 2)
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").iterdir())


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown"):
        prepare(tmp_path, {"source": "mnist"})
    with pytest.raises(ConfigError, match="unknown keys"):
        prepare(tmp_path, {"source": "digits", "train_subsetz": 10})
    with pytest.raises(ConfigError, match="needs a `root`"):
        prepare(tmp_path, {"source": "imagefolder"})
    with pytest.raises(ConfigError, match="train_subset"):
        prepare(tmp_path, {"source": "digits", "train_subset": -3})
    with pytest.raises(ConfigError, match="probe_size"):
        prepare(tmp_path, {"source": "digits"}, probe_size=0)


def test_load_arrays_rejects_truncated_and_foreign_files(digits, tmp_path):
    with pytest.raises(CorruptFileError, match="does not exist"):
        load_arrays(tmp_path / "missing.npz")
    good = tmp_path / "good.npz"
    prepare_dataset({"source": "digits", "train_subset": 50}, good, tmp_path / "p.npy", 10, 0)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=r"truncated.*prepare_data"):
        load_arrays(truncated)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(CorruptFileError, match="lacks"):
        load_arrays(foreign)
    wrong = tmp_path / "wrong.npz"
    arrays = load_arrays(good)
    np.savez(wrong, **{**arrays, "x_train": arrays["x_train"].astype(np.float32)})
    with pytest.raises(CorruptFileError, match="uint8"):
        load_arrays(wrong)
