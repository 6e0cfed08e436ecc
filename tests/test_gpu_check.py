"""benchmarks/gpu_check.py in its CPU mode, and augmentation draws that are device-agnostic."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from prunesim.augment import (
    apply_augment_params,
    augment_batch,
    draw_augment_params,
    normalize_augment_settings,
)
from prunesim.seeds import derive_seed
from prunesim.training import PAPER_TRAIN_SETTINGS

CORRECTNESS = {"training_amp", "masks", "metrics", "activations", "augmentation"}
SETTINGS = {
    "vgg16_bn": normalize_augment_settings(PAPER_TRAIN_SETTINGS["vgg16_bn"]["augment"]),
    "resnet_fast": normalize_augment_settings(PAPER_TRAIN_SETTINGS["resnet_fast"]["augment"]),
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_gpu_check_cpu_mode_writes_every_section(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # CPU mode even on a GPU machine
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["cuda"] is False
    assert "no GPU found" in doc["message"]
    assert doc["mode"] == "tiny"
    assert doc["complete"] is True
    for key in ("environment", "data", "correctness", "data_pipeline", "speed", "paper_grid"):
        assert key in doc, key

    assert set(doc["correctness"]) == CORRECTNESS
    for name, section in doc["correctness"].items():
        assert section["status"] == "passed", (name, section)
    assert doc["passed"] is True
    assert doc["failed_checks"] == []
    assert doc["correctness"]["training_amp"]["tolerance"]["train_loss_rel"] > 0
    assert doc["correctness"]["training_amp"]["tolerance"]["train_loss_abs"] > 0
    masks = doc["correctness"]["masks"]["cases"]  # each optimizer's update path
    assert {case["optimizer"] for case in masks.values()} == {"sgd", "lars"}
    assert all(case["passed"] and case["alive_weights_changed"] > 0 for case in masks.values())
    metrics = doc["correctness"]["metrics"]["metrics"]
    assert set(metrics) == {"mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine"}
    assert all(r["abs_diff"] <= 1e-8 for by_size in metrics.values() for r in by_size.values())
    assert doc["data_pipeline"]["status"] == "skipped"  # no host-to-device copies on a CPU

    models = doc["speed"]["training"]["models"]
    assert set(models) == {"resnet_fast", "vgg16_bn", "vgg_svhn"}
    for model in models.values():
        measured = [v for v in model["variants"].values() if v["status"] == "measured"]
        assert measured
        assert all(v["images_per_second"] > 0 and v["epoch_seconds"] > 0 for v in measured)
    similarity = doc["speed"]["similarity"]["pairs_per_second"]
    assert set(similarity) == {"quickstart", "realistic"}
    assert all(len(by_metric) == 6 for by_metric in similarity.values())
    grid = doc["paper_grid"]
    assert set(grid["experiments"]) == {"vgg16_bn_cifar10", "vgg_svhn_svhn", "resnet_fast_cifar10"}
    assert grid["meaningful"] is False  # CPU figures at tiny width
    assert "no GPU found" in proc.stdout


def images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)


MEAN, STD = torch.tensor([0.49, 0.48, 0.45]), torch.tensor([0.25, 0.24, 0.26])


@pytest.mark.parametrize("model", sorted(SETTINGS))
def test_augment_batch_is_draw_then_apply(model):
    x, settings = images(), SETTINGS[model]
    direct = augment_batch(x, MEAN, STD, settings, torch.Generator().manual_seed(3))
    params = draw_augment_params(24, 32, 32, settings, torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        apply_augment_params(x, MEAN, STD, settings, params), direct, rtol=0, atol=0
    )


def test_same_seed_same_batches_with_the_training_generator():
    """train() seeds one generator per epoch on its device: a seed reproduces the batches."""
    x, settings = images(), SETTINGS["vgg16_bn"]
    device = torch.device("cpu")

    def batch(epoch):
        gen = torch.Generator(device=device).manual_seed(derive_seed(0, "augment", epoch))
        return augment_batch(x, MEAN, STD, settings, gen)

    torch.testing.assert_close(batch(0), batch(0), rtol=0, atol=0)
    assert not torch.equal(batch(0), batch(1))


def test_draws_are_in_range_and_follow_the_switches():
    settings = SETTINGS["vgg16_bn"]
    params = draw_augment_params(500, 32, 32, settings, torch.Generator().manual_seed(0))
    assert set(params) == {"crop_dy", "crop_dx", "flip", "angle", "shift", "cutout_y0", "cutout_x0"}
    for key in ("crop_dy", "crop_dx"):
        assert params[key].min() >= 0
        assert params[key].max() <= 8
    assert params["angle"].abs().max() <= torch.pi * 15 / 180
    assert params["shift"].abs().max() <= 2 * 0.1
    assert params["cutout_y0"].max() <= 32 - 8
    assert 150 < params["flip"].sum() < 350
    none = draw_augment_params(5, 32, 32, normalize_augment_settings(False), torch.Generator())
    assert none == {}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", sorted(SETTINGS))
def test_same_draws_give_the_same_batch_on_every_device(device, model):
    """Draw once (CPU generator), apply on each device: same pixels, float32 rounding at most.

    CPU and CUDA generators are different streams (prunesim.augment), so only identical draws
    can be compared across devices; on the CPU the result is bit-identical.
    """
    x, settings = images(), SETTINGS[model]
    params = draw_augment_params(24, 32, 32, settings, torch.Generator().manual_seed(5))
    reference = apply_augment_params(x, MEAN, STD, settings, params)
    moved = {k: v.to(device) for k, v in params.items()}
    got = apply_augment_params(x.to(device), MEAN.to(device), STD.to(device), settings, moved)
    diff = (got.cpu() - reference).abs()
    if device == "cpu":
        assert torch.equal(got, reference)
    elif settings["affine"]:  # nearest sampling: a half-pixel tie may round to the neighbour
        assert (diff > 1e-4).float().mean() <= 1e-3
    else:
        assert diff.max() <= 2e-6  # CUDA's x / 255 is x * (1 / 255): last-bit differences
