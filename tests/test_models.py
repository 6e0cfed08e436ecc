"""The paper's architectures: layer names, activation shapes, parameter counts."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn

from prunesim.layers import MODEL_NAMES, compared_layers, layer_of_parameter
from prunesim.models import build_model, scaled
from prunesim.pruning import prunable_parameters

# training.md, section 1 and 8.1 (measured on independent re-implementations).
PARAMS = {
    ("vgg16_bn", 1.0): 14_728_266,
    ("vgg16_bn", 0.25): 924_186,
    ("vgg16_bn", 0.125): 232_274,
    ("vgg_svhn", 1.0): 586_154,
    ("vgg_svhn", 0.25): 37_682,
    ("vgg_svhn", 0.125): 9_774,
    ("resnet_fast", 1.0): 6_573_120,
    ("resnet_fast", 0.25): 412_944,
    ("resnet_fast", 0.125): 103_944,
}

SHAPES_FULL_WIDTH = {
    "vgg16_bn": {
        "conv1": (64, 32, 32), "conv2": (64, 32, 32), "pool1": (64, 16, 16),
        "conv3": (128, 16, 16), "conv4": (128, 16, 16), "pool2": (128, 8, 8),
        "conv5": (256, 8, 8), "conv6": (256, 8, 8), "conv7": (256, 8, 8), "pool3": (256, 4, 4),
        "conv8": (512, 4, 4), "conv9": (512, 4, 4), "conv10": (512, 4, 4), "pool4": (512, 2, 2),
        "conv11": (512, 2, 2), "conv12": (512, 2, 2), "conv13": (512, 2, 2), "pool5": (512, 1, 1),
        "out": (10,),
    },
    "vgg_svhn": {
        "conv1": (32, 32, 32), "conv2": (32, 32, 32), "pool1": (32, 16, 16),
        "conv3": (64, 16, 16), "conv4": (64, 16, 16), "pool2": (64, 8, 8),
        "conv5": (128, 8, 8), "conv6": (128, 8, 8), "pool3": (128, 4, 4),
        "conv7": (256, 4, 4), "pool4": (256, 2, 2), "out": (10,),
    },
    "resnet_fast": {
        "prep": (64, 32, 32), "layer1_conv": (128, 32, 32), "layer1_pool": (128, 16, 16),
        "layer1_res1": (128, 16, 16), "layer1_res2": (128, 16, 16), "layer1_add": (128, 16, 16),
        "layer2_conv": (256, 16, 16), "layer2_pool": (256, 8, 8),
        "layer3_conv": (512, 8, 8), "layer3_pool": (512, 4, 4),
        "layer3_res1": (512, 4, 4), "layer3_res2": (512, 4, 4), "layer3_add": (512, 4, 4),
        "pool": (512, 1, 1), "out": (10,),
    },
}  # fmt: skip


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "width"), list(PARAMS))
def test_parameter_counts(name, width):
    assert n_params(build_model(name, width)) == PARAMS[(name, width)]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_compared_layers_match_torch_free_table(name):
    model = build_model(name, 0.125)
    assert model.compared_layers == compared_layers(name)
    for layer, kind in model.compared_layers:
        assert re.fullmatch(r"[A-Za-z0-9_]+", layer)
        assert "__" not in layer
        assert kind in {"conv", "pool", "add", "out"}
    assert model.compared_layers[-1] == ("out", "out")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_features_names_order_and_shapes(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
    assert list(feats) == [n for n, _ in compared_layers(name)]
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == SHAPES_FULL_WIDTH[name]
    torch.testing.assert_close(feats["out"], logits, rtol=0, atol=0)
    kinds = dict(compared_layers(name))
    for layer, t in feats.items():
        if kinds[layer] in ("conv", "pool"):  # after ReLU (pools of ReLU outputs)
            assert t.min() >= 0, layer


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_prunable_parameter_names_the_layer_it_produces(name):
    """layer_of_parameter (torch-free, for masks.csv) agrees with the network: the module that
    owns a conv weight outputs exactly that compared layer's activation, fc gives `out`."""
    torch.manual_seed(0)
    model = build_model(name, 0.25).eval()
    outputs = {}
    for module_name, module in model.named_children():
        module.register_forward_hook(lambda m, i, o, key=module_name: outputs.__setitem__(key, o))
    with torch.no_grad():
        feats = model.forward_features(torch.randn(2, 3, 32, 32))
    kinds = dict(compared_layers(name))
    for parameter in prunable_parameters(model, prune_output_layer=True):
        layer = layer_of_parameter(name, parameter)
        if kinds[layer] == "out":
            assert parameter == "fc.weight"
            continue
        assert kinds[layer] == "conv", parameter
        torch.testing.assert_close(outputs[parameter.split(".")[0]], feats[layer], rtol=0, atol=0)
    with pytest.raises(KeyError, match="belongs to no compared layer"):
        layer_of_parameter(name, "classifier.weight")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_layer_is_the_final_linear(name):
    model = build_model(name, 0.25, num_classes=7)
    fc = dict(model.named_modules())[model.output_layer_name]
    assert isinstance(fc, nn.Linear)
    assert fc.out_features == 7
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears == [fc]
    assert model(torch.zeros(3, 3, 32, 32)).shape == (3, 7)
    assert model.spec == {"model": name, "width": 0.25, "num_classes": 7}


def test_resnet_fast_details():
    model = build_model("resnet_fast")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    assert all(c.bias is None for c in convs)
    assert model.fc.bias is None
    assert model.logit_scale == 0.125
    # The add is x + branch with no ReLU after it: recompute it by hand.
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f = model.forward_features(x)
    torch.testing.assert_close(f["layer1_add"], f["layer1_pool"] + f["layer1_res2"])
    torch.testing.assert_close(f["layer3_add"], f["layer3_pool"] + f["layer3_res2"])
    torch.testing.assert_close(f["out"], model.fc(f["pool"].flatten(1)) * 0.125)


def test_vgg_details():
    vgg = build_model("vgg16_bn")
    convs = [m for m in vgg.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13
    assert all(c.bias is not None for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg.modules()) == 5
    assert sum(isinstance(m, nn.BatchNorm2d) for m in vgg.modules()) == 13
    svhn = build_model("vgg_svhn")
    assert [m.out_channels for m in svhn.modules() if isinstance(m, nn.Conv2d)] == [
        32, 32, 64, 64, 128, 128, 256,
    ]  # fmt: skip


def test_width_rounds_and_never_drops_below_one():
    assert scaled(64, 0.25) == 16
    assert scaled(64, 0.001) == 1
    assert scaled(10, 0.25) == 2  # Python rounds half to even
    tiny = build_model("vgg_svhn", 0.001)
    assert all(m.out_channels == 1 for m in tiny.modules() if isinstance(m, nn.Conv2d))
    assert tiny(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_bad_arguments():
    with pytest.raises(KeyError, match="unknown model"):
        build_model("resnet50")
    with pytest.raises(ValueError, match="width"):
        build_model("vgg_svhn", 0)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("vgg_svhn", 1.0, num_classes=0)


def test_channels_last_gives_same_outputs():
    torch.manual_seed(0)
    model = build_model("resnet_fast", 0.125).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_filter_unit_consumers_read_only_that_filters_channel(name):
    """Structured pruning masks a removed filter's input columns in its consumers: once the
    filter, its bias and its BN entries are zero, masking them must change nothing. A layer
    that reads the channel through a residual sum (still alive there) must not be listed."""
    torch.manual_seed(0)
    model = build_model(name, 0.125).eval()
    params, dense = dict(model.named_parameters()), copy.deepcopy(model.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        for unit in model.filter_units():
            model.load_state_dict(dense)  # one filter gone at a time: no other channel is 0
            for vector in (unit.weight, *unit.bn, f"{unit.conv}.conv.bias"):
                if vector in params:
                    params[vector][0] = 0
            before = model(x)
            for consumer in unit.consumers:
                params[consumer][:, 0] = 0
            torch.testing.assert_close(model(x), before, rtol=0, atol=1e-6, msg=unit.conv)
