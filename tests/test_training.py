"""Training: schedules, masks, snapshots, resume-after-kill, LARS, the dense-network rule."""

from __future__ import annotations

import io
import json
import logging
import re

import numpy as np
import pytest
import torch

from prunesim.checkpoint import load_checkpoint, load_network
from prunesim.data import load_arrays, prepare_dataset
from prunesim.errors import ConfigError
from prunesim.evaluation import evaluate
from prunesim.imp import train_dense_network
from prunesim.lars import LARS
from prunesim.models import build_model
from prunesim.pruning import prunable_parameters
from prunesim.settings import TrainSettings
from prunesim.training import PAPER_TRAIN_SETTINGS, train

# Small and fast: ResNet_fast at width 1/16 (mechanics) or 1/8 (learning) on digits.
FAST_BLOCK = {
    "epochs": 3,
    "batch_size": 64,
    "optimizer": "sgd",
    "nesterov": True,
    "schedule": {"kind": "piecewise_linear", "epochs": [0, 1, 3], "values": [0.0, 0.4, 0.0]},
    "augment": {"crop": 2, "flip": False, "affine": False, "cutout": 0},
    "eval_batch_size": 500,
}


def fast(**changes) -> TrainSettings:
    """FAST_BLOCK with ``changes``, built as a job builds its settings."""
    return TrainSettings.from_config({**FAST_BLOCK, **changes})


FAST = fast()


@pytest.fixture(scope="module")
def digits_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "arrays.npz"
    prepare_dataset({"source": "digits"}, path, path.with_name("probe.npy"), 100, 0)
    return path


@pytest.fixture(scope="module")
def digits(digits_path):
    return load_arrays(digits_path)


@pytest.fixture(scope="module")
def small_path(tmp_path_factory):
    """400 training images: enough to test mechanics in a fraction of a second per epoch."""
    path = tmp_path_factory.mktemp("small") / "arrays.npz"
    spec = {"source": "digits", "train_subset": 400, "test_subset": 150}
    prepare_dataset(spec, path, path.with_name("probe.npy"), 100, 0)
    return path


@pytest.fixture(scope="module")
def small(small_path):
    return load_arrays(small_path)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: as fast as two on a quiet 2-core machine for nets this small, and it does
    not collapse when other jobs share the cores (training.md, section 8.1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fresh(name="resnet_fast", width=0.0625, seed=0):
    torch.manual_seed(seed)
    return build_model(name, width)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------- schedules


def test_step_schedule_matches_multisteplr():
    s = TrainSettings.from_config()  # the schema's defaults: VGG16_BN's schedule
    expected = {0: 0.1, 79: 0.1, 79.99: 0.1, 80: 0.01, 119: 0.01, 120: 0.001, 159: 0.001}
    for epoch, lr in expected.items():
        assert s.learning_rate(epoch) == pytest.approx(lr), epoch
    svhn = TrainSettings.from_config(PAPER_TRAIN_SETTINGS["vgg_svhn"])
    assert [round(svhn.learning_rate(e), 6) for e in (0, 6, 7, 11, 12, 14)] == [
        0.1, 0.1, 0.01, 0.01, 0.001, 0.001,
    ]  # fmt: skip
    # torch's own MultiStepLR gives the same per-epoch values
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[80, 120], gamma=0.1)
    for epoch in range(160):
        assert s.learning_rate(epoch) == pytest.approx(opt.param_groups[0]["lr"]), epoch
        opt.step()
        sched.step()


def test_piecewise_linear_schedule_of_resnet_fast():
    s = TrainSettings.from_config(PAPER_TRAIN_SETTINGS["resnet_fast"])
    expected = {0: 0.0, 2.5: 0.2, 5: 0.4, 14.5: 0.2, 24: 0.0}
    for epoch, lr in expected.items():
        assert s.learning_rate(epoch) == pytest.approx(lr), epoch
    assert s.final_learning_rate(steps_per_epoch=98) == pytest.approx(0.4 / 19 / 98)
    assert TrainSettings.from_config().final_learning_rate() == pytest.approx(0.001)
    constant = TrainSettings.from_config({"schedule": {"kind": "constant"}, "lr": 0.05})
    assert constant.learning_rate(100) == 0.05


def test_lr_seen_by_training_follows_schedule_start_epoch_and_constant_lr(small):
    lines = []
    train(fresh(), small, fast(epochs=4), seed=0, device="cpu", start_epoch=2, log=lines.append)
    # lr of the last step of epochs 2 and 3 (0-based): interpolated per iteration
    steps = 7  # ceil(400 / 64)
    lrs = [float(line.split(" lr ")[1].split()[0]) for line in lines]
    sched = fast(epochs=4)
    assert lrs == pytest.approx(
        [sched.learning_rate(e + (steps - 1) / steps) for e in (2, 3)], rel=1e-4
    )
    lines.clear()
    train(
        fresh(),
        small,
        FAST,
        seed=0,
        device="cpu",
        end_epoch=2,
        constant_lr=0.0123,
        log=lines.append,
    )
    assert all(" lr 0.0123 " in line for line in lines)
    assert len(lines) == 2


def test_settings_validation():
    build = TrainSettings.from_config
    with pytest.raises(ConfigError, match=r"invalid settings for train: unknown key\(s\) 'epochz'"):
        build({"epochz": 3})
    with pytest.raises(ConfigError, match="optimizer"):
        build({"optimizer": "adam"})
    with pytest.raises(ConfigError, match="milestones"):
        build({"schedule": {"kind": "step", "milestones": [120, 80], "gamma": 0.1}})
    with pytest.raises(ConfigError, match="piecewise_linear"):
        build({"schedule": {"kind": "piecewise_linear", "epochs": [0, 5, 9], "values": [1, 0]}})
    with pytest.raises(ConfigError, match="schedule"):
        build({"schedule": {"kind": "cosine"}})
    with pytest.raises(ConfigError, match="batch_size"):
        build({"batch_size": 0})
    for preset in PAPER_TRAIN_SETTINGS.values():
        build(preset)


def test_settings_are_frozen_and_take_the_schemas_defaults():
    """The schema owns the defaults: an omitted key means what the config would fill in."""
    from prunesim.config import load_schema

    schema = load_schema()["$defs"]["train"]["properties"]
    settings = TrainSettings.from_config({"epochs": 7})
    assert settings.epochs == 7
    for key in ("batch_size", "optimizer", "lr", "momentum", "weight_decay", "eval_every"):
        assert getattr(settings, key) == schema[key]["default"], key
    assert (
        settings.augment["cutout"]
        == schema["augment"]["oneOf"][1]["properties"]["cutout"]["default"]
    )
    with pytest.raises(AttributeError):
        settings.epochs = 3
    with pytest.raises(TypeError):
        settings.schedule["kind"] = "constant"
    with pytest.raises(TypeError, match="TrainSettings"):
        train(fresh(), {}, FAST_BLOCK, seed=0)


# ----------------------------------------------------------------------------- training


def test_training_on_digits_learns(digits):
    model = fresh(width=0.125)
    assert evaluate(model, digits["x_test"], digits["y_test"], digits["mean"], digits["std"]) < 0.3
    result = train(model, digits, FAST, seed=0, device="cpu")
    assert result["test_accuracy"] > 0.85  # chance is 0.1
    assert result["epochs"] == 3
    assert len(result["history"]) == 3
    assert result["history"][-1]["train_loss"] < result["history"][0]["train_loss"]
    acc = evaluate(model, digits["x_test"], digits["y_test"], digits["mean"], digits["std"], "cpu")
    assert acc == pytest.approx(result["test_accuracy"])


def test_lars_trains_and_matches_its_formula(digits):
    torch.manual_seed(0)
    w = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    w0, b0 = w.detach().clone(), b.detach().clone()
    opt = LARS([w, b], lr=0.5, momentum=0.9, weight_decay=0.01, eta=0.002)
    (w.sum() * 2 + (b**2).sum()).backward()
    g_w, g_b = w.grad.clone(), b.grad.clone()
    opt.step()
    trust = 0.002 * w0.norm() / (g_w.norm() + 0.01 * w0.norm() + 1e-8)
    torch.testing.assert_close(w.detach(), w0 - 0.5 * trust * (g_w + 0.01 * w0))
    torch.testing.assert_close(b.detach(), b0 - 0.5 * (g_b + 0.01 * b0))  # 1-d: plain SGD
    row = LARS([torch.nn.Parameter(w0.clone())], lr=0.1, granularity="row")
    row.param_groups[0]["params"][0].grad = g_w.clone()
    row.step()
    trust_rows = 1e-3 * w0.norm(dim=1) / (g_w.norm(dim=1) + 1e-8)
    torch.testing.assert_close(
        row.param_groups[0]["params"][0].detach(), w0 - 0.1 * trust_rows[:, None] * g_w
    )
    settings = fast(optimizer="lars", lars={"eta": 0.01})
    result = train(fresh(width=0.125), digits, settings, seed=0, device="cpu")
    assert result["history"][-1]["train_loss"] < result["history"][0]["train_loss"]
    assert result["test_accuracy"] > 0.5


def test_masks_hold_after_every_step(small):
    model = fresh()
    g = torch.Generator().manual_seed(1)
    names = list(prunable_parameters(model))
    params = dict(model.named_parameters())
    masks = {n: torch.rand(params[n].shape, generator=g) > 0.5 for n in names}
    before = {n: params[n].detach().clone() for n in names}
    settings = fast(epochs=2, weight_decay=5e-3, grad_clip=1.0, label_smoothing=0.1)
    train(model, small, settings, seed=0, device="cpu", masks=masks)
    for n in names:
        p = params[n].detach()
        assert (p[~masks[n]] == 0).all(), n
        assert not torch.equal(p[masks[n]], before[n][masks[n]]), n  # alive weights trained
    with pytest.raises(ConfigError, match="matches no parameter"):
        train(fresh(), small, FAST, seed=0, device="cpu", masks={"nope.weight": masks[names[0]]})


def test_same_seed_same_weights_other_seed_other_weights(small):
    settings = fast(epochs=1)
    a, b, c = fresh(), fresh(), fresh()
    train(a, small, settings, seed=5, device="cpu")
    train(b, small, settings, seed=5, device="cpu")
    train(c, small, settings, seed=6, device="cpu")
    assert same_weights(a, b)
    assert not same_weights(a, c)


def test_snapshots_hold_the_state_at_the_start_of_their_epoch(small, tmp_path):
    model = fresh()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    snaps = {0: tmp_path / "s0.pt", 1: tmp_path / "s1.pt", 3: tmp_path / "s3.pt"}
    train(model, small, FAST, seed=0, device="cpu", snapshots=snaps)
    s0 = load_checkpoint(snaps[0])
    assert all(torch.equal(s0["state_dict"][k], initial[k]) for k in initial)
    assert s0["meta"]["epoch"] == 0
    final, _, meta = load_network(snaps[3])
    assert same_weights(final, model)
    assert meta["model"] == "resnet_fast"
    # epoch 1's snapshot = the state after one epoch of the same run
    one = fresh()
    train(one, small, FAST, seed=0, device="cpu", end_epoch=1)
    s1, _, _ = load_network(snaps[1])
    assert same_weights(s1, one)


class Killed(Exception):
    pass


def kill_after(epoch):
    def log(line):
        if line.startswith(f"epoch {epoch}/"):
            raise Killed(line)

    return log


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_resume_after_kill_gives_identical_weights(small, tmp_path, optimizer):
    settings = fast(optimizer=optimizer, eval_every=2)
    reference = fresh()
    ref_result = train(reference, small, settings, seed=3, device="cpu")

    resume = tmp_path / "resume.pt"
    model = fresh()
    with pytest.raises(Killed):
        train(model, small, settings, seed=3, device="cpu", resume_path=resume, log=kill_after(2))
    assert resume.exists()
    lines = []
    resumed = fresh(seed=99)  # whatever the job rebuilds: the checkpoint overrides it
    result = train(
        resumed, small, settings, seed=3, device="cpu", resume_path=resume, log=lines.append
    )
    assert lines[0].startswith("resumed from")
    assert [line.split()[1] for line in lines[1:]] == ["3/3"]  # only the missing epoch ran
    assert same_weights(resumed, reference)
    assert result["history"] == [
        {**h, "images_per_second": r["images_per_second"], "seconds": r["seconds"]}
        for h, r in zip(ref_result["history"], result["history"], strict=True)
    ]
    assert result["test_accuracy"] == ref_result["test_accuracy"]
    assert not resume.exists()


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, to see the progress bar."""

    def isatty(self):
        return True


def test_progress_within_epochs_names_the_network_and_keeps_the_numerics(
    small, caplog, monkeypatch
):
    settings = fast(epochs=2)
    reference = fresh()
    train(reference, small, settings, seed=5, device="cpu")

    # Not a terminal (a log file): a line per progress_seconds with images/s.
    lines, model = [], fresh()
    with caplog.at_level(logging.INFO, logger="prunesim.training"):
        train(model, small, settings, seed=5, device="cpu", log=lines.append,
              label="tiny run 1 iter 2", progress_seconds=0)  # fmt: skip
    steps = 7  # ceil(400 / 64)
    periodic = [r.getMessage() for r in caplog.records if " step " in r.getMessage()]
    assert len(periodic) == 2 * (steps - 1), periodic  # the epoch line covers the last step
    assert re.fullmatch(
        r"tiny run 1 iter 2 epoch 1/2 step 1/7: \d+ img/s, loss \d\.\d{4}", periodic[0]
    )
    assert [line.split(" loss ")[0] for line in lines] == [
        "tiny run 1 iter 2 epoch 1/2",
        "tiny run 1 iter 2 epoch 2/2",
    ]
    assert same_weights(model, reference), "progress reporting changed the training"

    # A terminal: a tqdm bar on stderr, no periodic log lines.
    caplog.clear()
    terminal, model = Terminal(), fresh()
    monkeypatch.setattr("sys.stderr", terminal)
    with caplog.at_level(logging.INFO, logger="prunesim.training"):
        train(model, small, settings, seed=5, device="cpu", label="tiny dense", progress_seconds=0)
    bar = terminal.getvalue()
    assert "tiny dense epoch 1/2" in bar, bar
    assert "img/s" in bar, bar
    assert not [r for r in caplog.records if " step " in r.getMessage()]
    assert same_weights(model, reference)


def test_resume_checkpoint_from_other_settings_is_ignored(small, tmp_path):
    resume = tmp_path / "resume.pt"
    with pytest.raises(Killed):
        train(fresh(), small, FAST, seed=0, device="cpu", resume_path=resume, log=kill_after(1))
    other = fast(weight_decay=1e-3)
    lines = []
    model = fresh()
    train(model, small, other, seed=0, device="cpu", resume_path=resume, log=lines.append)
    assert not any(line.startswith("resumed") for line in lines)
    reference = fresh()
    train(reference, small, other, seed=0, device="cpu")
    assert same_weights(model, reference)


def test_empty_epoch_range_only_evaluates(small):
    model = fresh()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, small, FAST, seed=0, device="cpu", start_epoch=3)
    assert result["epochs"] == 0
    assert 0 <= result["test_accuracy"] <= 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="start_epoch"):
        train(model, small, FAST, seed=0, device="cpu", start_epoch=4)


def test_evaluate_restores_mode_and_matches_manual(small):
    model = fresh().train()
    acc = evaluate(model, small["x_test"], small["y_test"], small["mean"], small["std"], "cpu", 33)
    assert model.training
    model.eval()
    x = (
        torch.from_numpy(small["x_test"]).permute(0, 3, 1, 2).float() / 255
        - torch.from_numpy(small["mean"]).view(1, 3, 1, 1)
    ) / torch.from_numpy(small["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        manual = (model(x).argmax(1).numpy() == small["y_test"]).mean()
    assert acc == pytest.approx(manual)


# ----------------------------------------------------------------------------- dense rule


def test_train_dense_network_writes_the_contract(small_path, tmp_path):
    out = tmp_path / "results" / "exp" / "networks" / "dense"
    metrics = train_dense_network(
        small_path, "exp", "resnet_fast", 0.0625, fast(epochs=2),
        out / "model.pt", out / "metrics.json", 1, out / "rewind.pt",
        seed=0, threads=1, resume_path=out / "resume.pt", device="cpu",
    )  # fmt: skip
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics
    assert set(on_disk) >= {
        "experiment", "model", "dataset", "run", "iteration", "test_accuracy", "density",
        "prunable_weights", "alive_weights", "density_per_layer", "prune_output_layer",
        "scope", "retrain", "seed",
    }  # fmt: skip
    assert on_disk["dataset"] == small_path.parent.name
    assert on_disk["run"] is None
    assert on_disk["iteration"] == 0
    assert on_disk["density"] == 1.0
    assert 0 <= on_disk["test_accuracy"] <= 1  # learning is tested on the full digits set
    model, masks, meta = load_network(out / "model.pt")
    assert masks == {}
    for key in ("model", "width", "num_classes", "experiment", "run", "iteration",
                "test_accuracy", "density", "prune_output_layer", "seed"):  # fmt: skip
        assert key in meta, key
    assert meta["test_accuracy"] == on_disk["test_accuracy"]
    # output layer excluded from the prunable weights by default
    assert "fc.weight" not in on_disk["density_per_layer"]
    assert on_disk["prunable_weights"] == sum(
        p.numel() for n, p in model.named_parameters() if n in on_disk["density_per_layer"]
    )
    rewind, _, rmeta = load_network(out / "rewind.pt")
    assert rmeta["epoch"] == 1
    assert rmeta["rewind_epoch"] == 1
    assert not same_weights(rewind, model)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model.pt", "rewind.pt"]
    # a rerun with the same seed gives the same network
    again = tmp_path / "again"
    train_dense_network(
        small_path, "exp", "resnet_fast", 0.0625, fast(epochs=2),
        again / "model.pt", again / "metrics.json", 1, again / "rewind.pt",
        seed=0, threads=1, resume_path=None, device="cpu", prune_output_layer=True,
    )  # fmt: skip
    model2, _, _ = load_network(again / "model.pt")
    assert same_weights(model, model2)
    assert "fc.weight" in json.loads((again / "metrics.json").read_text())["density_per_layer"]


def test_train_dense_network_bad_rewind_epoch(small_path, tmp_path):
    with pytest.raises(ConfigError, match="rewind_epoch"):
        train_dense_network(
            small_path, "exp", "vgg_svhn", 0.125, fast(epochs=2), tmp_path / "m.pt",
            tmp_path / "m.json", 5, tmp_path / "r.pt", seed=0, threads=1, resume_path=None,
        )  # fmt: skip
    assert not np.any([p.exists() for p in (tmp_path / "m.pt", tmp_path / "r.pt")])


def test_cifar10_fast_lars_matches_its_lars_update():
    """cifar10-fast's LARS_update, computed in its own summed-loss units, equals ours."""
    torch.manual_seed(1)
    batch, wd = 4, 5e-4
    w0, b0 = torch.randn(4, 3), torch.randn(4)
    grads = [(torch.randn(4, 3), torch.randn(4)) for _ in range(2)]  # mean-loss gradients
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = LARS(
        [w, b], lr=0.3, momentum=0.9, nesterov=True, weight_decay=wd,
        variant="cifar10_fast", loss_scale=batch, eta=123.0,  # eta is ignored
    )  # fmt: skip

    def norm(x):  # torch_backend.py: per row; a vector's rows are its entries
        return torch.norm(x.reshape(x.size(0), -1), dim=1).reshape(-1, *[1] * (x.ndim - 1))

    def lars_update(w, dw, v, lr, weight_decay, momentum):  # LARS_update + nesterov_update
        lr = lr * (norm(w) / (norm(dw) + 1e-2))
        dw = (dw + weight_decay * w) * -lr
        v = momentum * v + dw
        return w + dw + momentum * v, v

    ref = {"w": [w0.clone(), torch.zeros_like(w0)], "b": [b0.clone(), torch.zeros_like(b0)]}
    for (g_w, g_b), lr in zip(grads, (0.3, 0.1), strict=True):
        opt.param_groups[0]["lr"] = lr
        w.grad, b.grad = g_w.clone(), g_b.clone()
        opt.step()
        for key, g in (("w", g_w), ("b", g_b)):  # summed loss: gradient x B, lr / B, wd x B
            ref[key] = list(lars_update(*ref[key][:1], batch * g, ref[key][1], lr / batch,
                                        wd * batch, 0.9))  # fmt: skip
    torch.testing.assert_close(w.detach(), ref["w"][0])
    torch.testing.assert_close(b.detach(), ref["b"][0])
    with pytest.raises(ValueError, match="variant"):
        LARS([w], lr=0.1, variant="you")
    built = TrainSettings.from_config({"lars": {"variant": "cifar10_fast"}})
    assert built.lars["variant"] == "cifar10_fast"


def test_evaluate_honours_amp_setting(digits, monkeypatch):
    """`amp: false` means full precision in evaluation too, not only in training steps."""
    from prunesim import evaluation

    seen = []
    real = evaluation.autocast
    monkeypatch.setattr(evaluation, "autocast", lambda dev, on: seen.append(on) or real(dev, on))
    model = fresh(width=0.125)
    args = (model, digits["x_test"], digits["y_test"], digits["mean"], digits["std"], "cpu")
    evaluate(*args)
    assert seen
    assert not any(seen)
    seen.clear()
    evaluate(*args, amp=True)
    assert seen
    assert all(seen)
    seen.clear()
    train(fresh(width=0.125), digits, fast(epochs=1, amp=False), seed=0, device="cpu")
    assert seen
    assert not any(seen)
