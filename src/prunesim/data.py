"""Decode a dataset once into a compact uint8 array file, plus the fixed probe subset.

Training and extraction jobs read ``arrays.npz`` (a few hundred MB at most) instead of
decoding images again: on 2 cores decoding CIFAR-10's JPEGs takes ~15 s, loading the
cached arrays well under a second (training.md, section 8.1).

``arrays.npz`` holds ``x_train``/``x_test`` (uint8, N x 32 x 32 x 3, NHWC), ``y_train``/``y_test``
(int64), ``mean``/``std`` (float32, per channel, on the [0, 1] pixel scale) and ``classes``
(str). ``mean``/``std`` are computed from the (subset) training set unless the dataset spec
fixes them (``mean: [..]``, ``std: [..]``; e.g. the authors' SVHN loader uses 0.5/0.5).

Sources (``spec["source"]``):

- ``cifar10``: torchvision's CIFAR-10 under ``root`` (``download: true`` fetches it),
- ``svhn``: ``train_32x32.mat``/``test_32x32.mat`` under ``root`` (``download: true`` fetches
  them with torchvision); the ``extra`` split is not used, as in the authors' loader,
- ``imagefolder``: ``root/train/<class>/*`` and ``root/test/<class>/*``, decoded with PIL
  (images that are not 32x32 are resized bilinearly),
- ``digits``: scikit-learn's bundled handwritten digits (1,797 8x8 images, no download),
  upscaled bilinearly to 32x32 grey-as-RGB; a fixed stratified split (``test_fraction``,
  default 0.2, seed 0) so every config sees the same train/test sets.

Each takes optional ``train_subset``/``test_subset`` (an image count; stratified, seeded by
``seed``). The torch-free parts (digits, imagefolder, SVHN .mat) never import torch.
"""

from __future__ import annotations

import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from prunesim.atomic import atomic_path
from prunesim.errors import ConfigError, CorruptFileError, DatasetError, rebuild_hint

log = logging.getLogger(__name__)

IMAGE_SIZE = 32
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "mean", "std", "classes")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
SOURCES = ("cifar10", "svhn", "imagefolder", "digits")
_SPEC_KEYS = {
    "source", "root", "download", "train_subset", "test_subset", "mean", "std", "test_fraction",
}  # fmt: skip


# ----------------------------------------------------------------------------- public API


def prepare_dataset(
    spec: dict,
    arrays_path: str | os.PathLike,
    probe_path: str | os.PathLike,
    probe_size: int,
    seed: int,
) -> dict:
    """Decode the dataset ``spec`` into ``arrays_path`` and write the probe indices.

    The probe set is a stratified, seeded subset of ``probe_size`` test images (sorted int64
    indices into ``x_test``). A ``probe_size`` larger than the test set is a DatasetError
    naming both numbers (clamping it would leave the configured size in the report and
    captions). Returns a small summary dict. Both files are written atomically.
    """
    spec = dict(spec)
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ConfigError(
            f"dataset spec has unknown keys {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}"
        )
    source = spec.get("source")
    loaders = {
        "cifar10": _load_cifar10,
        "svhn": _load_svhn,
        "imagefolder": _load_imagefolder,
        "digits": _load_digits,
    }
    if source not in loaders:
        raise ConfigError(f"dataset source {source!r} unknown; choose one of {', '.join(SOURCES)}")
    if not (isinstance(probe_size, int | np.integer) and probe_size > 0):
        raise ConfigError(f"probe_size must be a positive integer, got {probe_size!r}")

    x_train, y_train, x_test, y_test, classes = loaders[source](spec)
    rng = np.random.default_rng(seed)
    x_train, y_train = _subset(x_train, y_train, spec.get("train_subset"), rng, "train_subset")
    x_test, y_test = _subset(x_test, y_test, spec.get("test_subset"), rng, "test_subset")
    _check_arrays(x_train, y_train, x_test, y_test, len(classes), f"source {source!r}")

    if probe_size > len(y_test):
        # Refused, not clamped: the report and captions state the configured probe size.
        subset = spec.get("test_subset")
        raise DatasetError(
            f"probe_size is {probe_size}, but the test set of source {source!r} has only "
            f"{len(y_test)} images"
            + (f" (test_subset: {subset})" if subset is not None else "")
            + f": set probe_size to at most {len(y_test)} in your config"
            + (" or raise test_subset" if subset is not None else "")
            + "."
        )
    mean, std = _channel_stats(x_train, spec)
    probe = stratified_indices(y_test, int(probe_size), rng)

    with atomic_path(arrays_path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            x_train=x_train,
            y_train=y_train,
            x_test=x_test,
            y_test=y_test,
            mean=mean,
            std=std,
            classes=np.asarray(classes, dtype=str),
        )
    with atomic_path(probe_path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, probe)
    summary = {
        "source": source,
        "n_train": len(y_train),
        "n_test": len(y_test),
        "n_probe": len(probe),
        "classes": list(classes),
        "mean": mean.tolist(),
        "std": std.tolist(),
    }
    log.info("prepared %s", summary)
    return summary


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load ``arrays.npz`` fully into memory (no pickle); raise CorruptFileError if unusable."""
    path = Path(path)
    fix = f"(rule prepare_data writes it). {rebuild_hint(path)}"
    if not path.exists():
        raise CorruptFileError(f"array file {path} does not exist {fix}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = set(ARRAY_KEYS) - set(npz.files)
            if missing:
                raise CorruptFileError(
                    f"array file {path} lacks {sorted(missing)}; it was not written by "
                    f"prunesim.data.prepare_dataset {fix}"
                )
            arrays = {k: npz[k] for k in ARRAY_KEYS}
    except CorruptFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CorruptFileError(
            f"array file {path} cannot be read ({type(exc).__name__}: {exc}); it is truncated "
            f"or not an .npz file {fix}"
        ) from exc
    try:
        _check_arrays(
            arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
            len(arrays["classes"]), str(path),
        )  # fmt: skip
    except DatasetError as exc:
        raise CorruptFileError(f"{exc} {fix}") from exc
    return arrays


def load_probe(path: str | os.PathLike) -> np.ndarray:
    """Load ``probe.npy`` (int64 indices into the test set)."""
    path = Path(path)
    try:
        probe = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(
            f"probe file {path} cannot be read ({type(exc).__name__}: {exc}; rule prepare_data "
            f"writes it). {rebuild_hint(path)}"
        ) from exc
    return probe.astype(np.int64, copy=False)


def stratified_indices(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` sorted indices into ``y`` with class proportions kept (largest remainder).

    Every class gets ``floor(n * share)`` picks, the remaining picks go to the classes with
    the largest fractional parts (ties by class order), so the count is exactly ``n``.
    """
    y = np.asarray(y)
    if not 0 <= n <= len(y):
        raise ValueError(f"cannot draw {n} of {len(y)} items")
    classes, counts = np.unique(y, return_counts=True)
    quota = n * counts / len(y)
    take = np.floor(quota).astype(np.int64)
    short = n - int(take.sum())
    order = np.argsort(-(quota - take), kind="stable")
    take[order[:short]] += 1
    picks = [
        rng.choice(np.flatnonzero(y == c), size=k, replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64)


# ----------------------------------------------------------------------------- helpers


def _subset(x, y, size, rng, key):
    if size is None:
        return x, y
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size <= 0:
        raise ConfigError(f"{key} must be a positive image count or null, got {size!r}")
    if size >= len(y):
        return x, y
    idx = stratified_indices(y, int(size), rng)
    return x[idx], y[idx]


def _channel_stats(x_train: np.ndarray, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean/std of the training pixels on the [0, 1] scale, or the spec's values."""
    given_mean, given_std = spec.get("mean") is not None, spec.get("std") is not None
    if given_mean != given_std:
        raise ConfigError("dataset spec must give both `mean` and `std` or neither")
    if given_mean:
        mean = np.asarray(spec["mean"], dtype=np.float32)
        std = np.asarray(spec["std"], dtype=np.float32)
        if mean.shape != (3,) or std.shape != (3,) or np.any(std <= 0):
            raise ConfigError(f"mean/std need 3 values each, std > 0; got {mean}, {std}")
        return mean, std
    # float64 sums over chunks: exact enough and no 600 MB float copy of CIFAR-10.
    s = np.zeros(3)
    s2 = np.zeros(3)
    for chunk in np.array_split(x_train, max(1, len(x_train) // 5000)):
        c = chunk.reshape(-1, 3).astype(np.float64) / 255.0
        s += c.sum(0)
        s2 += (c * c).sum(0)
    n = x_train.shape[0] * x_train.shape[1] * x_train.shape[2]
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
    std[std == 0] = 1.0  # a constant channel would otherwise divide by zero
    return mean.astype(np.float32), std.astype(np.float32)


def _check_arrays(x_train, y_train, x_test, y_test, n_classes, where):
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise DatasetError(
                f"{where}: x_{name} must be uint8 N x 32 x 32 x 3, got {x.dtype} {x.shape}"
            )
        if y.shape != (x.shape[0],) or y.dtype != np.int64:
            raise DatasetError(f"{where}: y_{name} must be int64 of length {x.shape[0]}")
        if len(y) == 0:
            raise DatasetError(f"{where}: the {name} set is empty")
        if y.min() < 0 or y.max() >= n_classes:
            raise DatasetError(f"{where}: y_{name} has labels outside 0..{n_classes - 1}")


def _root(spec: dict, source: str) -> Path:
    if not spec.get("root"):
        raise ConfigError(f"dataset source {source!r} needs a `root` directory")
    return Path(spec["root"]).expanduser()


def _load_cifar10(spec):
    root = _root(spec, "cifar10")
    download = bool(spec.get("download", False))
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as exc:  # torchvision is in the `torch` extra
        raise DatasetError("source cifar10 needs torchvision: pip install -e '.[torch]'") from exc
    splits = []
    for train in (True, False):
        try:
            ds = CIFAR10(str(root), train=train, download=download)
        except RuntimeError as exc:  # "Dataset not found or corrupted"
            raise DatasetError(
                f"CIFAR-10 not found or corrupted under {root} ({exc}). Set `download: true` "
                f"(needs internet), put torchvision's cifar-10-batches-py/ in {root}, or use "
                f"source `imagefolder` on a local copy."
            ) from exc
        except Exception as exc:  # urllib errors when offline
            raise DatasetError(
                f"downloading CIFAR-10 into {root} failed ({type(exc).__name__}: {exc}); you are "
                f"probably offline. Copy cifar-10-batches-py/ into {root} and set "
                f"`download: false`, or use source `imagefolder`."
            ) from exc
        splits += [np.ascontiguousarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, np.int64)]
    return (*splits, list(ds.classes))


def _load_svhn(spec):
    root = _root(spec, "svhn")
    files = {split: root / f"{split}_32x32.mat" for split in ("train", "test")}
    if not all(f.exists() for f in files.values()) and spec.get("download", False):
        try:
            from torchvision.datasets import SVHN

            for split, f in files.items():
                if not f.exists():
                    SVHN(str(root), split=split, download=True)
        except Exception as exc:
            raise DatasetError(
                f"downloading SVHN into {root} failed ({type(exc).__name__}: {exc}); you are "
                f"probably offline. Put train_32x32.mat and test_32x32.mat from "
                f"http://ufldl.stanford.edu/housenumbers/ into {root}."
            ) from exc
    out = []
    for f in files.values():
        if not f.exists():
            raise DatasetError(
                f"SVHN file {f} not found. Put train_32x32.mat and test_32x32.mat in {root} or "
                f"set `download: true` (needs internet)."
            )
        out += _read_svhn_mat(f)
    return (*out, [str(d) for d in range(10)])


def _read_svhn_mat(path: Path):
    from scipy.io import loadmat

    try:
        mat = loadmat(path, variable_names=["X", "y"])
        x = np.ascontiguousarray(np.transpose(mat["X"], (3, 0, 1, 2)), dtype=np.uint8)
        y = mat["y"].astype(np.int64).reshape(-1)
    except Exception as exc:
        raise DatasetError(
            f"SVHN file {path} cannot be read ({type(exc).__name__}: {exc}); it is truncated or "
            f"not the official *_32x32.mat: delete it and download it again."
        ) from exc
    y[y == 10] = 0  # the .mat files label digit 0 as 10
    return [x, y]


def _list_split(root: Path, split: str):
    base = root / split
    if not base.is_dir():
        raise DatasetError(
            f"image folder {base} not found: `root` must contain train/<class>/* and "
            f"test/<class>/* (got root {root})."
        )
    classes = sorted(d.name for d in base.iterdir() if d.is_dir())
    if not classes:
        raise DatasetError(f"image folder {base} has no class subdirectories")
    files, labels = [], []
    for k, c in enumerate(classes):
        found = sorted(
            p for p in (base / c).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            # An empty class would silently train a classifier that can never predict it.
            raise DatasetError(
                f"class {c!r} of the {split} split has no images ({base / c} holds no image "
                f"files): add its images, or remove the {c!r} folder from both "
                f"{root / 'train'} and {root / 'test'}."
            )
        files += found
        labels += [k] * len(found)
    if not files:
        raise DatasetError(f"image folder {base} contains no images")
    return classes, files, np.asarray(labels, dtype=np.int64)


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except Exception as exc:
        raise DatasetError(
            f"image {path} cannot be decoded ({type(exc).__name__}: {exc}); delete or replace it"
        ) from exc


def _load_imagefolder(spec):
    root = _root(spec, "imagefolder")
    out = []
    class_lists = []
    for split in ("train", "test"):
        classes, files, labels = _list_split(root, split)
        class_lists.append(classes)
        # PIL releases the GIL while decoding: a small gain on 2 cores, more on bigger machines.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            images = list(pool.map(_decode, files, chunksize=256))
        out += [np.stack(images), labels]
    if class_lists[0] != class_lists[1]:
        raise DatasetError(
            f"image folder {root}: train classes {class_lists[0]} differ from test classes "
            f"{class_lists[1]}"
        )
    return (*out, class_lists[0])


def _load_digits(spec):
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()  # bundled with scikit-learn: never downloads
    images = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)
    up = np.stack(
        [
            np.asarray(
                Image.fromarray(im).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            )
            for im in images
        ]
    )
    x = np.ascontiguousarray(np.repeat(up[..., None], 3, axis=3))
    y = bunch.target.astype(np.int64)
    fraction = spec.get("test_fraction", 0.2)
    if not (isinstance(fraction, float | int) and 0 < fraction < 1):
        raise ConfigError(f"digits `test_fraction` must be in (0, 1), got {fraction!r}")
    # Fixed seed 0, independent of the config seed: the digits test set is part of the dataset.
    test = stratified_indices(y, round(fraction * len(y)), np.random.default_rng(0))
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    return x[~is_test], y[~is_test], x[is_test], y[is_test], [str(d) for d in range(10)]
