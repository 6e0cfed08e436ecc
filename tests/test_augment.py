"""Batch augmentation: shapes, ranges, each switch on its own, seeding, test set untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prunesim import training
from prunesim.augment import augment_batch, normalize_augment_settings, to_float
from prunesim.errors import ConfigError
from prunesim.models import build_model
from prunesim.settings import TrainSettings

ZERO = torch.zeros(3)
ONE = torch.ones(3)


def images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)


def run(x, aug, seed=0, mean=ZERO, std=ONE, channels_last=False):
    settings = normalize_augment_settings(aug)
    return augment_batch(x, mean, std, settings, torch.Generator().manual_seed(seed), channels_last)


def test_everything_off_is_plain_normalisation():
    x = images()
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    ref = (x.permute(0, 3, 1, 2).double() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    for off in (False, None, {}, {"crop": 0, "flip": False, "affine": False, "cutout": 0}):
        out = run(x, off, mean=mean, std=std)
        assert out.shape == (16, 3, 32, 32)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(to_float(x, mean, std, False).double(), ref, rtol=1e-6, atol=1e-6)


def test_full_augmentation_shapes_ranges_layout():
    x = images(64)
    aug = {"crop": 4, "flip": True, "affine": {"degrees": 15, "translate": 0.1}, "cutout": 8}
    out = run(x, aug)
    assert out.shape == (64, 3, 32, 32)
    assert out.dtype == torch.float32
    assert out.min() >= 0
    assert out.max() <= 1
    assert not torch.equal(out, run(x, False))
    cl = run(x, aug, channels_last=True)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, out)


def test_crop_is_a_window_of_the_zero_padded_image():
    x = images(8)
    out = run(x, {"crop": 4})
    padded = F.pad(x.permute(0, 3, 1, 2).float() / 255, (4, 4, 4, 4))
    offsets = set()
    for i in range(8):
        hits = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if torch.equal(padded[i, :, dy : dy + 32, dx : dx + 32], out[i])
        ]
        assert hits, f"image {i} is not a crop"
        offsets.add(hits[0])
    assert len(offsets) > 1
    reflect = run(x, {"crop": 4, "pad_mode": "reflect"})
    assert (reflect == 0).float().mean() < (out == 0).float().mean()  # no black borders


def test_flip_mirrors_about_half():
    x = images(200)
    out = run(x, {"flip": True})
    plain = run(x, False)
    same = (out == plain).flatten(1).all(1)
    mirrored = (out == plain.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all()
    assert 60 < mirrored.sum() < 140


def test_cutout_zeroes_one_square_inside_the_image():
    x = torch.full((50, 32, 32, 3), 255, dtype=torch.uint8)
    out = run(x, {"cutout": 8})
    zeros = (out == 0).all(1)  # (n, h, w)
    assert (zeros.flatten(1).sum(1) == 64).all()
    for z in zeros:
        rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
        assert len(rows) == len(cols) == 8
        assert rows[-1] - rows[0] == 7
        assert cols[-1] - cols[0] == 7


def test_cutout_is_the_mean_colour_after_normalisation():
    x = images(4)
    mean = torch.tensor([0.4, 0.5, 0.6])
    out = run(x, {"cutout": 32}, mean=mean, std=torch.tensor([0.2, 0.2, 0.2]))
    assert (out == 0).all()  # the whole image is the mean colour


def test_affine_identity_and_rotation():
    x = images(8)
    identity = run(x, {"affine": {"degrees": 0, "translate": 0}})
    torch.testing.assert_close(identity, run(x, False))
    rotated = run(x, {"affine": {"degrees": 30, "translate": 0.0, "interpolation": "bilinear"}})
    assert not torch.allclose(rotated, identity)
    assert rotated.min() >= 0
    assert rotated.max() <= 1
    # a shift of up to 25 % leaves zero-filled borders but keeps most of the image
    ones = torch.full((4, 32, 32, 3), 255, dtype=torch.uint8)
    shifted = run(ones, {"affine": {"degrees": 0, "translate": 0.25}})
    assert (shifted == 0).any()  # zero fill where the image moved away
    assert shifted.sum() > 0.4 * shifted.numel()


def test_same_seed_same_batch_different_seed_different_batch():
    x = images(32)
    aug = {"crop": 4, "flip": True, "affine": {"degrees": 15, "translate": 0.1}, "cutout": 8}
    torch.testing.assert_close(run(x, aug, seed=3), run(x, aug, seed=3), rtol=0, atol=0)
    assert not torch.equal(run(x, aug, seed=3), run(x, aug, seed=4))


def test_bad_settings():
    with pytest.raises(ConfigError, match="unknown keys"):
        normalize_augment_settings({"crop": 4, "rotate": 3})
    with pytest.raises(ConfigError, match="pad_mode"):
        normalize_augment_settings({"crop": 4, "pad_mode": "wrap"})
    with pytest.raises(ConfigError, match="affine"):
        normalize_augment_settings({"affine": {"shear": 3}})
    with pytest.raises(ConfigError):
        normalize_augment_settings("yes")


def test_training_augments_only_the_training_set(monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 40).astype(np.int64),
        "x_test": rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 30).astype(np.int64),
        "mean": np.full(3, 0.5, np.float32),
        "std": np.full(3, 0.25, np.float32),
    }
    before = {k: v.copy() for k, v in arrays.items()}
    augmented = []
    real = training.augment_batch

    def spy(x, *args, **kwargs):
        augmented.append(len(x))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(training, "augment_batch", spy)
    model = build_model("vgg_svhn", 0.125)
    settings = TrainSettings.from_config({"epochs": 2, "batch_size": 16, "eval_batch_size": 7})
    training.train(model, arrays, settings, seed=0, device="cpu")
    assert sum(augmented) == 2 * 40  # every training image once per epoch, nothing else
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], before[k])
    # evaluation sees exactly the normalised test images, whatever the augmentation settings
    model.eval()
    x = to_float(
        torch.from_numpy(arrays["x_test"]), torch.full((3,), 0.5), torch.full((3,), 0.25), False
    )
    with torch.no_grad():
        expected = (model(x).argmax(1).numpy() == arrays["y_test"]).mean()
    got = training.evaluate(
        model, arrays["x_test"], arrays["y_test"], arrays["mean"], arrays["std"], "cpu", 7
    )
    assert got == pytest.approx(expected)
