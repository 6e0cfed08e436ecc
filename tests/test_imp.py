"""IMP iterations end to end on a tiny network: counts, masks, and each retraining variant.

The learning rate is observed with a global optimizer step hook, so the tests see the rate
every step actually used, independently of how ``prunesim.training`` computes it.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from prunesim import training
from prunesim.checkpoint import load_checkpoint, load_network
from prunesim.errors import ConfigError, PrunesimError
from prunesim.imp import run_imp_iteration, train_dense_network
from prunesim.masks import load_mask_npz, mask_overlap_table
from prunesim.pruning import prunable_parameters, prune_step
from prunesim.seeds import derive_seed
from prunesim.settings import PruneSettings, TrainSettings

# lr 0.05 at epoch 0, 0.025 at epoch 1, 0.0125 at epoch 2: every variant starts elsewhere.
TRAIN = {
    "epochs": 3,
    "batch_size": 32,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": {"kind": "step", "milestones": [1, 2], "gamma": 0.5},
    "augment": False,
    "eval_batch_size": 64,
    "channels_last": False,
}
STEPS_PER_EPOCH = 2  # 64 training images / batch 32
METRICS_KEYS = {
    "experiment", "model", "dataset", "run", "iteration", "test_accuracy", "density",
    "density_all_params", "prunable_weights", "alive_weights", "density_per_layer",
    "prune_output_layer", "method", "scope", "retrain", "seed", "network",
}  # fmt: skip


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """A dense vgg_svhn at width 1/8 trained 3 epochs on random images, with its rewind point."""
    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(0)
    arrays = root / "data" / "toy" / "arrays.npz"
    arrays.parent.mkdir(parents=True)
    np.savez(
        arrays,
        x_train=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, 64).astype(np.int64),
        x_test=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, 40).astype(np.int64),
        mean=np.full(3, 0.5, np.float32),
        std=np.full(3, 0.3, np.float32),
        classes=np.array([str(i) for i in range(10)]),
    )
    net = root / "networks" / "dense"
    train_dense_network(
        arrays, "toy_exp", "vgg_svhn", 0.125, TrainSettings.from_config(TRAIN), net / "model.pt",
        net / "metrics.json", 1, net / "rewind.pt", seed=0, threads=1, device="cpu",
    )  # fmt: skip
    return {"root": root, "arrays": arrays, "model": net / "model.pt", "rewind": net / "rewind.pt"}


def run_iter(dense, run, iteration, prune=None, prev=None, tag=""):
    out = dense["root"] / "networks" / f"{tag}run{run}" / f"iter{iteration}"
    if prev is None:
        prev = (
            dense["model"]
            if iteration == 1
            else dense["root"] / "networks" / f"{tag}run{run}" / f"iter{iteration - 1}" / "model.pt"
        )
    metrics = run_imp_iteration(
        prev, dense["rewind"], dense["arrays"], "toy_exp", run, iteration,
        TrainSettings.from_config(TRAIN), PruneSettings.from_config(prune),
        out / "model.pt", out / "metrics.json", out / "mask.npz",
        seed=derive_seed(0, "toy_exp", run, iteration), threads=1,
        resume_path=out / "resume.pt", device="cpu",
    )  # fmt: skip
    return out, metrics


@contextlib.contextmanager
def recorded_lrs():
    """Collect the lr of every optimizer step taken inside the block."""
    lrs = []

    def hook(optimizer, args, kwargs):
        lrs.append(optimizer.param_groups[0]["lr"])

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield lrs
    finally:
        handle.remove()


@pytest.fixture
def spy_train(monkeypatch):
    """Record the model state and keyword arguments ``train`` is called with, then train."""
    calls = []
    real = training.train

    def spy(model, arrays, settings, **kw):
        calls.append({"state": {k: v.clone() for k, v in model.state_dict().items()}, **kw})
        return real(model, arrays, settings, **kw)

    monkeypatch.setattr(training, "train", spy)
    return calls


def saved_density(path):
    """Nonzeros over the prunable tensors of a saved checkpoint, counted independently."""
    payload = load_checkpoint(path)
    names = list(payload["masks"])
    state = payload["state_dict"]
    alive = sum(int(torch.count_nonzero(state[n])) for n in names)
    return alive, sum(state[n].numel() for n in names)


def test_lrr_iterations(dense):
    prev_masks = {}
    prev_state = load_checkpoint(dense["model"])["state_dict"]
    alive_expected = None
    for k in (1, 2, 3):
        with recorded_lrs() as lrs:
            out, metrics = run_iter(dense, 0, k)
        # LRR: full original schedule from epoch 0 every iteration, fresh each time.
        assert lrs[0] == TRAIN["lr"]
        assert len(lrs) == TRAIN["epochs"] * STEPS_PER_EPOCH
        assert lrs[-1] == pytest.approx(TRAIN["lr"] * 0.25)

        payload = load_checkpoint(out / "model.pt")
        masks, state, meta = payload["masks"], payload["state_dict"], payload["meta"]
        names = list(masks)
        assert "fc.weight" not in names
        assert all(n.endswith(".weight") for n in names)
        total = sum(m.numel() for m in masks.values())
        if alive_expected is None:
            alive_expected = total
        alive_expected -= int(0.2 * alive_expected + 0.5)
        assert sum(int(m.sum()) for m in masks.values()) == alive_expected
        assert abs(alive_expected - 0.8**k * total) <= len(names)  # one weight per tensor

        # Pruned weights stay exactly zero through momentum + weight decay; survivors trained.
        for n, m in masks.items():
            assert torch.all(state[n][~m] == 0), n
            assert not torch.equal(state[n][m], prev_state[n][m]), n
        # Nested masks, and the npz file holds exactly the checkpoint's masks.
        for n, m in prev_masks.items():
            assert not torch.any(masks[n] & ~m), n
        npz = load_mask_npz(out / "mask.npz")
        assert list(npz) == names
        assert all(np.array_equal(npz[n], masks[n].numpy()) for n in names)

        # metrics.json: the contract's fields, density from the saved state's actual zeros.
        on_disk = json.loads((out / "metrics.json").read_text())
        assert on_disk == metrics
        assert set(on_disk) == METRICS_KEYS
        alive, total_saved = saved_density(out / "model.pt")
        assert on_disk["density"] == alive / total_saved == meta["density"]
        assert on_disk["alive_weights"] == alive
        assert on_disk["prunable_weights"] == total_saved
        assert set(on_disk["density_per_layer"]) == set(names)
        assert (on_disk["run"], on_disk["iteration"], on_disk["dataset"]) == (0, k, "toy")
        assert (on_disk["scope"], on_disk["retrain"], on_disk["prune_output_layer"]) == (
            "global", "lrr", False,
        )  # fmt: skip
        assert 0.0 <= on_disk["test_accuracy"] <= 1.0
        assert meta["iteration"] == k
        assert meta["model"] == "vgg_svhn"
        assert meta["prune_output_layer"] is False
        assert int(torch.count_nonzero(state["fc.weight"])) == state["fc.weight"].numel()
        assert not (out / "resume.pt").exists()
        prev_masks, prev_state = masks, state

    # A second run from the same dense net: another seed, another mask, same density.
    out1, metrics1 = run_iter(dense, 1, 1)
    first = json.loads((dense["root"] / "networks/run0/iter1/metrics.json").read_text())
    assert metrics1["seed"] != first["seed"]
    assert metrics1["alive_weights"] == first["alive_weights"]
    table = mask_overlap_table(
        {(0, 1): dense["root"] / "networks/run0/iter1/mask.npz", (1, 1): out1 / "mask.npz"},
        "toy_exp",
    )
    overall = table[table.parameter == "all"].jaccard.item()
    assert 0.0 < overall <= 1.0


def test_wr_rewinds_every_parameter_and_buffer(dense, spy_train):
    run_iter(dense, 0, 1, tag="wr")  # iteration 1 trained with LRR, so its weights differ
    prev = dense["root"] / "networks/wrrun0/iter1/model.pt"
    with recorded_lrs() as lrs:
        out, metrics = run_iter(dense, 0, 2, {"retrain": "wr", "rewind_epoch": 1}, tag="wr")
    call = spy_train[-1]
    assert call["start_epoch"] == 1
    assert lrs[0] == TRAIN["lr"] * 0.5  # the schedule as it stands at the rewind epoch
    assert len(lrs) == (TRAIN["epochs"] - 1) * STEPS_PER_EPOCH

    masks = load_checkpoint(out / "model.pt")["masks"]
    rewind = load_checkpoint(dense["rewind"])
    assert rewind["meta"]["epoch"] == 1
    for key, value in rewind["state_dict"].items():
        expected = value * masks[key] if key in masks else value
        assert torch.equal(call["state"][key], expected), key  # surviving weights, BN, biases
    # The mask is ranked on iteration 1's trained weights, not on the rewound ones.
    model, prev_masks, _ = load_network(prev)
    expected_masks = prune_step(model, prev_masks, PruneSettings.from_config({"retrain": "wr"}))
    assert all(torch.equal(masks[n], expected_masks[n]) for n in masks)
    assert metrics["retrain"] == "wr"
    state = load_checkpoint(out / "model.pt")["state_dict"]
    assert all(torch.all(state[n][~m] == 0) for n, m in masks.items())


def test_ft_keeps_weights_and_trains_at_the_final_lr(dense, spy_train):
    with recorded_lrs() as lrs:
        out, metrics = run_iter(dense, 0, 1, {"retrain": "ft", "finetune_epochs": 2}, tag="ft")
    final = TRAIN["lr"] * 0.25
    assert lrs == [pytest.approx(final)] * (2 * STEPS_PER_EPOCH)
    call = spy_train[-1]
    assert call["constant_lr"] == pytest.approx(final)
    masks = load_checkpoint(out / "model.pt")["masks"]
    dense_state = load_checkpoint(dense["model"])["state_dict"]
    for key, value in dense_state.items():
        expected = value * masks[key] if key in masks else value
        assert torch.equal(call["state"][key], expected), key
    assert metrics["retrain"] == "ft"


def test_output_layer_flag_is_respected_and_recorded(dense):
    prune = {"prune_output_layer": True}
    out, metrics = run_iter(dense, 0, 1, prune, tag="fc")
    payload = load_checkpoint(out / "model.pt")
    fc_mask = payload["masks"]["fc.weight"]
    assert not fc_mask.all()
    assert torch.all(payload["state_dict"]["fc.weight"][~fc_mask] == 0)
    assert metrics["prune_output_layer"] is True
    assert payload["meta"]["prune_output_layer"] is True
    assert "fc.weight" in metrics["density_per_layer"]
    # Switching the flag mid-run would make masks mean different things: refused.
    with pytest.raises(ConfigError, match="prune_output_layer"):
        run_iter(dense, 0, 2, {"prune_output_layer": False}, tag="fc")


def test_mixed_and_local_scopes_run_and_are_recorded(dense):
    out, metrics = run_iter(dense, 0, 1, {"scope": "local"}, tag="local")
    per_layer = metrics["density_per_layer"]
    masks = load_checkpoint(out / "model.pt")["masks"]
    for name, d in per_layer.items():
        assert d == pytest.approx(0.8, abs=1 / masks[name].numel())
    prune = {"scope": "mixed", "mixed_rates": {"conv": 0.5, "linear": 0.1}}
    out, metrics = run_iter(dense, 0, 1, prune, tag="mixed")
    assert metrics["scope"] == "mixed"
    assert load_checkpoint(out / "model.pt")["meta"]["mixed_rates"] == prune["mixed_rates"]
    assert metrics["density"] == pytest.approx(0.5, abs=1e-3)  # all prunable tensors are conv


def test_revived_weights_stop_the_job(dense, monkeypatch):
    def careless_train(model, arrays, settings, **kw):
        with torch.no_grad():
            for p in prunable_parameters(model).values():
                p.add_(0.01)  # what momentum does to pruned weights when masks are not kept
        return {}

    monkeypatch.setattr(training, "train", careless_train)
    with pytest.raises(PrunesimError, match="nonzero after retraining"):
        run_iter(dense, 0, 1, tag="careless")
    assert not (dense["root"] / "networks/carelessrun0/iter1").exists()


def test_previous_network_must_be_iteration_k_minus_1(dense):
    with pytest.raises(PrunesimError, match="must start from iteration 1"):
        run_iter(dense, 0, 2, prev=dense["model"], tag="wiring")


def _filter_counts(state, model_units):
    """Alive filters per unit, counted from the saved weights (a filter is a nonzero row)."""
    return {
        u.conv: int((state[u.weight].reshape(len(state[u.weight]), -1) != 0).any(1).sum())
        for u in model_units
    }


@pytest.mark.parametrize("scope", ["local", "global"])
def test_filter_pruning_removes_whole_filters_that_stay_removed(dense, scope):
    from prunesim.models import build_model

    units = build_model("vgg_svhn", 0.125).filter_units()
    prune = {"method": "filter_l1", "scope": scope}
    state = load_checkpoint(dense["model"])["state_dict"]
    counts = _filter_counts(state, units)
    total_before = sum(counts.values())
    for k in (1, 2):
        out, metrics = run_iter(dense, 0, k, prune, tag=f"filter_{scope}")
        state = load_checkpoint(out / "model.pt")["state_dict"]
        now = _filter_counts(state, units)
        if scope == "local":  # round(0.2 x alive) per layer, half up, never the last filter
            expected = {c: n - min(int(0.2 * n + 0.5), n - 1) for c, n in counts.items()}
            assert now == expected
        else:  # the same count in one pool; every layer keeps a filter
            assert sum(now.values()) == total_before - int(0.2 * total_before + 0.5)
            assert min(now.values()) >= 1
        counts = now
        total_before = sum(now.values())
        for unit, consumer in zip(units, units[1:], strict=False):
            rows = state[unit.weight].reshape(len(state[unit.weight]), -1)
            dead = ~(rows != 0).any(1)
            # BN scale/shift and conv bias of a dead filter are zero, after retraining too
            for vector in (*unit.bn, f"{unit.conv}.conv.bias"):
                assert torch.all(state[vector][dead] == 0), vector
            # and so is the next conv's input column that reads it
            assert torch.all(state[consumer.weight][:, dead] == 0)
        # density counts the prunable weights actually removed (conv weights here)
        weights = [u.weight for u in units]
        alive = sum(int(torch.count_nonzero(state[w])) for w in weights)
        assert metrics["density"] == pytest.approx(alive / sum(state[w].numel() for w in weights))
        assert metrics["method"] == "filter_l1"
    assert metrics["density"] < 0.8**2  # the next layers' input columns go too


def test_filter_pruning_refuses_mixed_scope():
    with pytest.raises(ConfigError, match="filter_l1 takes scope local or global"):
        PruneSettings.from_config({"method": "filter_l1", "scope": "mixed"})
    with pytest.raises(ConfigError, match="method"):
        PruneSettings.from_config({"method": "random"})


def test_random_pruning_control_copies_imp_counts_and_retraining(dense, spy_train):
    """random_target: the same parent, IMP's per-layer counts, other weights, the same
    retraining (mode, epochs, job seed); recorded as network `random`."""
    imp_dir, imp_metrics = run_iter(dense, 1, 1, tag="rnd")
    out = dense["root"] / "networks" / "random_iter1"
    seed = derive_seed(0, "toy_exp", 1, 1)
    metrics = run_imp_iteration(
        dense["model"], dense["rewind"], dense["arrays"], "toy_exp", 1, 1,
        TrainSettings.from_config(TRAIN), PruneSettings.from_config({}),
        out / "model.pt", out / "metrics.json", out / "mask.npz", seed=seed, threads=1,
        device="cpu", random_target=imp_dir / "mask.npz", random_seed=7,
    )  # fmt: skip
    assert metrics["network"] == "random"
    assert imp_metrics["network"] == "imp"
    assert metrics["seed"] == imp_metrics["seed"] == seed  # same data order as IMP
    assert metrics["alive_weights"] == imp_metrics["alive_weights"]
    assert metrics["density_per_layer"] == imp_metrics["density_per_layer"]
    random_mask, imp_mask = load_mask_npz(out / "mask.npz"), load_mask_npz(imp_dir / "mask.npz")
    assert all((random_mask[n] != imp_mask[n]).any() for n in imp_mask)
    imp_call, random_call = spy_train[0], spy_train[1]
    assert random_call["start_epoch"] == imp_call["start_epoch"] == 0  # LRR both
    assert random_call["seed"] == imp_call["seed"]
    payload = load_checkpoint(out / "model.pt")
    assert payload["meta"]["network"] == "random"
    assert saved_density(out / "model.pt")[0] == imp_metrics["alive_weights"]
