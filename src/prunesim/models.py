"""The paper's three networks, exact, with a width multiplier for CPU runs.

Every model exposes ``compared_layers`` (equal to the torch-free table in
``prunesim.layers``), ``forward_features(x)`` (every compared layer's output, in forward
order) and ``output_layer_name`` (the final ``nn.Linear``, for ``prune_output_layer``).
Layer names are attribute names, so parameter names read ``conv3.conv.weight``,
``layer1_res2.bn.bias``, ``fc.weight``.

Initialisation is PyTorch's default for every layer: the authors' repo
(``pruned_layer_similarity/layer_sim/networks.py``) and cifar10-fast (``dawn_utils.py``)
both leave it at the default.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from prunesim.layers import MODEL_NAMES
from prunesim.layers import compared_layers as _layer_table


class FilterUnit(NamedTuple):
    """A conv whose output channels (filters) structured pruning can remove as a whole.

    ``consumers`` are the weights whose input dimension (dim 1) reads *only* this unit's
    channels, so a removed filter's column there multiplies zeros and can go too; a channel
    that is added to a skip path (a residual branch's last conv, or a conv whose output is
    also the skip) has no exclusive consumer beyond the branch.
    """

    conv: str  # attribute of the ConvBNReLU unit, e.g. "conv3" or "layer1_res2"
    consumers: tuple[str, ...]  # parameter names, e.g. ("conv4.conv.weight",)

    @property
    def weight(self) -> str:
        return f"{self.conv}.conv.weight"

    @property
    def bn(self) -> tuple[str, str]:
        return f"{self.conv}.bn.weight", f"{self.conv}.bn.bias"


def scaled(channels: int, width: float) -> int:
    """Channel count after the width multiplier: rounded, never below 1."""
    return max(1, round(channels * width))


class ConvBNReLU(nn.Module):
    """3x3 conv (stride 1, pad 1) -> BatchNorm -> ReLU: the compared ``conv`` unit."""

    def __init__(self, c_in: int, c_out: int, bias: bool):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class _Compared(nn.Module):
    """Shared plumbing: ``forward`` is ``forward_features`` without keeping the outputs."""

    model_name: str
    output_layer_name = "fc"

    def __init__(self, width: float, num_classes: int):
        super().__init__()
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
        # What load_network needs to rebuild the net; training copies it into snapshot meta.
        self.spec = {"model": self.model_name, "width": float(width), "num_classes": num_classes}

    @property
    def compared_layers(self) -> list[tuple[str, str]]:
        return _layer_table(self.model_name)

    def _run(self, x, emit):
        raise NotImplementedError

    def forward(self, x):
        return self._run(x, lambda name, t: None)

    def forward_features(self, x) -> dict[str, torch.Tensor]:
        """Return ``{layer name: output}`` for every compared layer, in forward order."""
        features: dict[str, torch.Tensor] = {}

        def emit(name, t):
            features[name] = t

        self._run(x, emit)
        return features


class _VGG(_Compared):
    """Plain VGG: blocks of ConvBNReLU, a max-pool after each block, GAP, one linear layer."""

    blocks: tuple[tuple[int, ...], ...]

    def __init__(self, width: float = 1.0, num_classes: int = 10):
        super().__init__(width, num_classes)
        c_in, k = 3, 0
        self._order: list[tuple[str, str]] = []  # (attribute, compared name) in forward order
        for b, block in enumerate(self.blocks, start=1):
            for c in block:
                k += 1
                c_out = scaled(c, width)
                setattr(self, f"conv{k}", ConvBNReLU(c_in, c_out, bias=True))
                self._order.append((f"conv{k}", f"conv{k}"))
                c_in = c_out
            setattr(self, f"pool{b}", nn.MaxPool2d(2, 2))
            self._order.append((f"pool{b}", f"pool{b}"))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def filter_units(self) -> list[FilterUnit]:
        """Every conv unit, consumed by the next conv (or, after GAP, by ``fc``'s columns)."""
        convs = [attr for attr, _ in self._order if attr.startswith("conv")]
        nexts = [f"{c}.conv.weight" for c in convs[1:]] + ["fc.weight"]
        return [FilterUnit(c, (n,)) for c, n in zip(convs, nexts, strict=True)]

    def _run(self, x, emit):
        for attr, name in self._order:
            x = getattr(self, attr)(x)
            emit(name, x)
        x = self.fc(torch.flatten(self.gap(x), 1))
        emit("out", x)
        return x


class VGG16BN(_VGG):
    """VGG16 with BN (conv biases kept, as open_lth's ``cifar_vgg_16``), 5 pools, GAP, linear.

    Five pools take 32x32 to 1x1, so GAP is a no-op at width 1; open_lth's 4 pools + AvgPool(2)
    has the same 14,728,266 parameters (training.md, section 1.1).
    """

    model_name = "vgg16_bn"
    blocks = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGGSVHN(_VGG):
    """The authors' VGG_SVHN (``layer_sim/networks.py``): 2x32, 2x64, 2x128, 1x256, GAP, linear."""

    model_name = "vgg_svhn"
    blocks = ((32, 32), (64, 64), (128, 128), (256,))


class ResNetFast(_Compared):
    """cifar10-fast's DAWNBench ResNet (``dawn_utils.net()`` defaults), training.md section 2.

    Convs have no bias; residual branches are two ConvBNReLU with no ReLU after the add and
    no projection; global max pool; linear without bias; logits scaled by 0.125.
    """

    model_name = "resnet_fast"
    logit_scale = 0.125  # cifar10-fast dawn_utils.net(weight=0.125)

    def __init__(self, width: float = 1.0, num_classes: int = 10):
        super().__init__(width, num_classes)
        c64, c128, c256, c512 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.prep = ConvBNReLU(3, c64, bias=False)
        self.layer1_conv = ConvBNReLU(c64, c128, bias=False)
        self.layer1_pool = nn.MaxPool2d(2)
        self.layer1_res1 = ConvBNReLU(c128, c128, bias=False)
        self.layer1_res2 = ConvBNReLU(c128, c128, bias=False)
        self.layer2_conv = ConvBNReLU(c128, c256, bias=False)
        self.layer2_pool = nn.MaxPool2d(2)
        self.layer3_conv = ConvBNReLU(c256, c512, bias=False)
        self.layer3_pool = nn.MaxPool2d(2)
        self.layer3_res1 = ConvBNReLU(c512, c512, bias=False)
        self.layer3_res2 = ConvBNReLU(c512, c512, bias=False)
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(c512, num_classes, bias=False)

    def _run(self, x, emit):
        for name in ("prep", "layer1_conv", "layer1_pool"):
            x = getattr(self, name)(x)
            emit(name, x)
        x = self._residual(x, "layer1", emit)
        for name in ("layer2_conv", "layer2_pool", "layer3_conv", "layer3_pool"):
            x = getattr(self, name)(x)
            emit(name, x)
        x = self._residual(x, "layer3", emit)
        x = self.pool(x)
        emit("pool", x)
        x = self.fc(torch.flatten(x, 1)) * self.logit_scale
        emit("out", x)
        return x

    def filter_units(self) -> list[FilterUnit]:
        """Conv units and their exclusive consumers. The output of ``layer{1,3}_conv`` is
        also the residual skip, and ``layer{1,3}_res2`` is added to it: their channels stay
        alive after the add, so only the branch's own first conv consumes them exclusively."""
        w = "{}.conv.weight".format
        return [
            FilterUnit("prep", (w("layer1_conv"),)),
            FilterUnit("layer1_conv", (w("layer1_res1"),)),
            FilterUnit("layer1_res1", (w("layer1_res2"),)),
            FilterUnit("layer1_res2", ()),
            FilterUnit("layer2_conv", (w("layer3_conv"),)),
            FilterUnit("layer3_conv", (w("layer3_res1"),)),
            FilterUnit("layer3_res1", (w("layer3_res2"),)),
            FilterUnit("layer3_res2", ()),
        ]

    def _residual(self, x, stage, emit):
        r = getattr(self, f"{stage}_res1")(x)
        emit(f"{stage}_res1", r)
        r = getattr(self, f"{stage}_res2")(r)
        emit(f"{stage}_res2", r)
        x = x + r
        emit(f"{stage}_add", x)
        return x


_MODELS = {"vgg16_bn": VGG16BN, "vgg_svhn": VGGSVHN, "resnet_fast": ResNetFast}
assert set(_MODELS) == set(MODEL_NAMES)


def build_model(name: str, width: float = 1.0, num_classes: int = 10) -> nn.Module:
    """Build ``name`` (``vgg16_bn`` | ``vgg_svhn`` | ``resnet_fast``) with scaled channel counts."""
    try:
        cls = _MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(_MODELS)}") from None
    return cls(width=width, num_classes=num_classes)
