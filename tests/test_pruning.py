"""Magnitude pruning: exact counts, nested masks, only conv/linear weights, every scope."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunesim.config import load_schema
from prunesim.errors import ConfigError, PrunesimError
from prunesim.pruning import (
    apply_masks,
    check_nested,
    count_weights,
    density,
    density_per_layer,
    prunable_kinds,
    prunable_parameters,
    prune_step,
)
from prunesim.settings import PruneSettings


class SmallNet(nn.Module):
    """Conv + BN + hidden linear + output linear: every kind of tensor IMP must tell apart."""

    output_layer_name = "fc"

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.hidden = nn.Linear(16, 32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = x.mean(dim=(2, 3))
        return self.fc(torch.relu(self.hidden(x)))


def make_net(seed=0):
    torch.manual_seed(seed)
    net = SmallNet()
    # Non-trivial BN state, so "untouched" is a real check.
    with torch.no_grad():
        for bn in (net.bn1, net.bn2):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    return net


def settings(**kw) -> PruneSettings:
    return PruneSettings.from_config(kw)


def expected_alive(n, rate, k):
    for _ in range(k):
        n -= int(rate * n + 0.5)
    return n


def test_prunable_parameters_are_conv_and_linear_weights_only():
    net = make_net()
    assert list(prunable_parameters(net)) == ["conv1.weight", "conv2.weight", "hidden.weight"]
    with_out = prunable_parameters(net, prune_output_layer=True)
    assert list(with_out) == ["conv1.weight", "conv2.weight", "hidden.weight", "fc.weight"]
    assert with_out["fc.weight"] is net.fc.weight
    assert prunable_kinds(net, True) == {
        "conv1.weight": "conv", "conv2.weight": "conv",
        "hidden.weight": "linear", "fc.weight": "linear",
    }  # fmt: skip


def test_model_without_output_layer_name_is_refused():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(PrunesimError, match="output_layer_name"):
        prunable_parameters(net)
    net.output_layer_name = "1"  # a Flatten, not a Linear
    with pytest.raises(PrunesimError, match="not an nn.Linear"):
        prunable_parameters(net)
    net.output_layer_name = "2"
    assert list(prunable_parameters(net)) == ["0.weight"]


@pytest.mark.parametrize("prune_output_layer", [False, True])
def test_global_density_follows_0_8_power_and_masks_nest(prune_output_layer):
    net = make_net()
    s = settings(prune_output_layer=prune_output_layer)
    names = list(prunable_parameters(net, prune_output_layer))
    _, total = count_weights(net, names)
    masks = {}
    for k in range(1, 6):
        new = prune_step(net, masks, s)
        check_nested(new, masks)
        alive = sum(int(m.sum()) for m in new.values())
        assert alive == expected_alive(total, 0.2, k)  # exact count every step
        assert abs(alive - 0.8**k * total) <= len(names)  # within one weight per tensor
        assert count_weights(net, names)[0] == alive  # masks were applied to the weights
        assert density(net.state_dict(), names) == pytest.approx(alive / total)
        masks = new
    if not prune_output_layer:
        assert int(torch.count_nonzero(net.fc.weight)) == net.fc.weight.numel()


def test_global_removes_the_smallest_alive_weights():
    net = make_net()
    masks = prune_step(net, {}, settings())
    before = {n: p.detach().clone() for n, p in prunable_parameters(net).items()}
    new = prune_step(net, masks, settings())
    removed = torch.cat([before[n][masks[n] & ~new[n]].abs() for n in new])
    kept = torch.cat([before[n][new[n]].abs() for n in new])
    assert removed.numel() == int(0.2 * sum(int(m.sum()) for m in masks.values()) + 0.5)
    assert removed.max() <= kept.min()


def test_ties_give_an_exact_deterministic_count():
    net = make_net()
    with torch.no_grad():
        for p in prunable_parameters(net).values():
            p.fill_(0.5)
    n = sum(p.numel() for p in prunable_parameters(net).values())
    masks = prune_step(net, {}, settings())
    assert sum(int((~m).sum()) for m in masks.values()) == int(0.2 * n + 0.5)
    # Earliest positions go first: conv1 (216 weights) is pruned entirely before conv2.
    assert not masks["conv1.weight"].any()
    net2 = make_net()
    with torch.no_grad():
        for p in prunable_parameters(net2).values():
            p.fill_(0.5)
    again = prune_step(net2, {}, settings())
    assert all(torch.equal(masks[n], again[n]) for n in masks)


def test_only_alive_weights_are_ranked():
    # Weights that are zero because they are pruned must not count as "the smallest" again.
    net = make_net()
    masks = prune_step(net, {}, settings(rate=0.5))
    alive = sum(int(m.sum()) for m in masks.values())
    new = prune_step(net, masks, settings(rate=0.5))
    assert sum(int(m.sum()) for m in new.values()) == alive - int(0.5 * alive + 0.5)


def test_biases_and_batchnorm_untouched():
    net = make_net()
    prunable = set(prunable_parameters(net))
    before = {k: v.clone() for k, v in net.state_dict().items() if k not in prunable}
    masks = {}
    for scope in ("global", "local", "mixed"):
        masks = prune_step(net, masks, settings(scope=scope, prune_output_layer=False))
    after = net.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k


def test_local_gives_equal_density_per_layer():
    net = make_net()
    names = list(prunable_parameters(net, True))
    masks = {}
    for k in range(1, 5):
        masks = prune_step(net, masks, settings(scope="local", prune_output_layer=True))
        per_layer = density_per_layer(net.state_dict(), names)
        for n in names:
            numel = masks[n].numel()
            assert int(masks[n].sum()) == expected_alive(numel, 0.2, k)
            assert per_layer[n] == pytest.approx(0.8**k, abs=k / numel)


def test_mixed_gives_each_pool_its_rate():
    net = make_net()
    s = settings(scope="mixed", mixed_rates={"conv": 0.2, "linear": 0.5}, prune_output_layer=True)
    conv = ["conv1.weight", "conv2.weight"]
    linear = ["hidden.weight", "fc.weight"]
    n_conv = count_weights(net, conv)[1]
    n_lin = count_weights(net, linear)[1]
    masks = {}
    for k in range(1, 4):
        masks = prune_step(net, masks, s)
        assert sum(int(masks[n].sum()) for n in conv) == expected_alive(n_conv, 0.2, k)
        assert sum(int(masks[n].sum()) for n in linear) == expected_alive(n_lin, 0.5, k)


def test_mixed_rate_zero_keeps_a_pool_dense_and_missing_rates_default():
    net = make_net()
    masks = prune_step(net, {}, settings(scope="mixed", mixed_rates={"conv": 0.3, "linear": 0}))
    assert masks["hidden.weight"].all()
    assert not masks["conv1.weight"].all()
    # A kind left out keeps its default rate, as the config schema fills it.
    resolved = settings(scope="mixed", mixed_rates={"conv": 0.3})
    default = load_schema()["$defs"]["prune"]["properties"]["mixed_rates"]["default"]
    assert resolved.mixed_rates == {"conv": 0.3, "linear": default["linear"]}


def test_masks_from_another_output_layer_setting_are_refused():
    net = make_net()
    masks = prune_step(net, {}, settings(prune_output_layer=True))
    with pytest.raises(PrunesimError, match="prune_output_layer"):
        prune_step(net, masks, settings(prune_output_layer=False))


def test_non_finite_weights_are_reported():
    net = make_net()
    with torch.no_grad():
        net.conv1.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(PrunesimError, match="diverged"):
        prune_step(net, {}, settings())


def test_apply_masks_and_density_count_actual_zeros():
    net = make_net()
    names = list(prunable_parameters(net))
    masks = {n: torch.rand_like(p) > 0.5 for n, p in prunable_parameters(net).items()}
    apply_masks(net, masks)
    alive = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert density(net.state_dict(), names) == pytest.approx(alive / total)
    # A weight that is zero without being masked still counts as dead: density is measured.
    with torch.no_grad():
        idx = torch.nonzero(masks["hidden.weight"])[0]
        net.hidden.weight[tuple(idx)] = 0.0
    assert count_weights(net.state_dict(), names) == (alive - 1, total)
    with pytest.raises(PrunesimError, match="names no parameter"):
        apply_masks(net, {"nope.weight": masks["hidden.weight"]})


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"rat": 0.2}, r"invalid settings for prune: unknown key\(s\) 'rat'"),
        ({"rate": 1.0}, "'rate'"),
        ({"scope": "layerwise"}, "scope"),
        ({"retrain": "rewind"}, "retrain"),
        ({"mixed_rates": {"fc": 0.1}}, "mixed_rates"),
        ({"prune_output_layer": "no"}, "prune_output_layer"),
        ({"finetune_epochs": 0}, "finetune_epochs"),
        ({"rewind_epoch": -1}, "rewind_epoch"),
    ],
)
def test_bad_settings_are_named(bad, match):
    with pytest.raises(ConfigError, match=match):
        PruneSettings.from_config(bad)


def test_defaults_come_from_the_schema_and_cover_every_setting():
    schema = load_schema()["$defs"]["prune"]["properties"]
    defaults = PruneSettings.from_config().as_dict()
    assert defaults == {key: spec["default"] for key, spec in schema.items()}
    assert set(defaults) == {
        "iterations", "method", "rate", "scope", "mixed_rates", "prune_output_layer",
        "retrain", "rewind_epoch", "finetune_epochs",
    }  # fmt: skip


def test_density_all_params_counts_every_parameter():
    """The paper's x-axis: pruned weights are removed from all parameters, BN/biases stay."""
    from prunesim.models import build_model
    from prunesim.pruning import density_all_params, prunable_parameters

    model = build_model("vgg_svhn", width=0.25)
    names = list(prunable_parameters(model))
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    assert density_all_params(model, names) == 1.0
    with torch.no_grad():
        for n in names:
            params[n].view(-1)[: params[n].numel() // 2] = 0
    removed = sum(params[n].numel() // 2 for n in names)
    assert density_all_params(model, names) == pytest.approx((total - removed) / total)
    # larger than the prunable density, since BN and biases are never pruned
    assert density_all_params(model, names) > 0.5


def test_random_prune_step_matches_imp_counts_per_layer_at_random():
    """The random-pruning control: IMP's per-layer counts, other weights, only alive ones."""
    from prunesim.pruning import random_prune_step

    torch.manual_seed(0)
    parent = SmallNet()
    settings = PruneSettings.from_config({"rate": 0.2, "scope": "global"})
    first = prune_step(parent, {}, settings)  # the parent: an IMP network at iteration 1
    imp_model = SmallNet()
    imp_model.load_state_dict(parent.state_dict())
    imp = prune_step(imp_model, first, settings)  # IMP's iteration 2
    target = {name: m.numpy() for name, m in imp.items()}

    model = SmallNet()
    model.load_state_dict(parent.state_dict())
    masks = random_prune_step(model, first, target, False, seed=3)
    check_nested(masks, first)
    for name in imp:
        assert int(masks[name].sum()) == int(imp[name].sum()), name
        assert torch.equal(model.state_dict()[name] != 0, masks[name]), "masks applied"
    # global magnitude pruning and uniform choice pick different weights
    assert any(not torch.equal(masks[n], imp[n]) for n in imp)

    again = SmallNet()
    again.load_state_dict(parent.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(
        masks.values(), random_prune_step(again, first, target, False, seed=3).values(), strict=True
    ))  # fmt: skip
    other = SmallNet()
    other.load_state_dict(parent.state_dict())
    differs = random_prune_step(other, first, target, False, seed=4)
    assert any(not torch.equal(masks[n], differs[n]) for n in imp)


def test_random_prune_step_from_the_dense_network_is_uniform():
    """From a dense parent ({} masks) every weight is equally likely to go: over many seeds
    each weight of a layer dies about as often as the removed share."""
    from prunesim.pruning import random_prune_step

    model = SmallNet()
    name = "conv2.weight"
    n = model.conv2.weight.numel()
    target = {k: np.ones(tuple(p.shape), bool) for k, p in prunable_parameters(model).items()}
    target[name].reshape(-1)[: n // 4] = False  # IMP removed a quarter of conv2's weights
    deaths = torch.zeros(n)
    for seed in range(200):
        fresh = SmallNet()
        masks = random_prune_step(fresh, {}, target, False, seed=seed)
        assert int((~masks[name]).sum()) == n // 4
        assert all(bool(m.all()) for k, m in masks.items() if k != name)
        deaths += (~masks[name]).reshape(-1).float()
    share = deaths / 200
    assert share.mean() == pytest.approx(0.25, abs=1e-6)
    assert share.min() > 0.1  # binomial(200, 0.25)/200: sd 0.03
    assert share.max() < 0.45


def test_random_prune_step_refuses_a_mask_of_another_network():
    from prunesim.pruning import random_prune_step

    model = SmallNet()
    with pytest.raises(PrunesimError, match="prune_output_layer"):
        random_prune_step(model, {}, {"conv1.weight": np.ones((8, 3, 3, 3), bool)}, False, 0)
