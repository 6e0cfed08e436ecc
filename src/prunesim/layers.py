"""The compared layers of every model, as a torch-free table.

The Snakefile needs layer names to build a static DAG, and must not import torch to get
them. ``prunesim.models`` builds networks whose ``compared_layers`` equal these lists
(a test asserts it). Kinds: ``conv`` (after BN+ReLU), ``pool``, ``add`` (residual sum),
``out`` (pre-softmax logits).
"""

from __future__ import annotations

_VGG16_BN = [
    ("conv1", "conv"), ("conv2", "conv"), ("pool1", "pool"),
    ("conv3", "conv"), ("conv4", "conv"), ("pool2", "pool"),
    ("conv5", "conv"), ("conv6", "conv"), ("conv7", "conv"), ("pool3", "pool"),
    ("conv8", "conv"), ("conv9", "conv"), ("conv10", "conv"), ("pool4", "pool"),
    ("conv11", "conv"), ("conv12", "conv"), ("conv13", "conv"), ("pool5", "pool"),
    ("out", "out"),
]  # fmt: skip

_VGG_SVHN = [
    ("conv1", "conv"), ("conv2", "conv"), ("pool1", "pool"),
    ("conv3", "conv"), ("conv4", "conv"), ("pool2", "pool"),
    ("conv5", "conv"), ("conv6", "conv"), ("pool3", "pool"),
    ("conv7", "conv"), ("pool4", "pool"),
    ("out", "out"),
]  # fmt: skip

_RESNET_FAST = [
    ("prep", "conv"),
    ("layer1_conv", "conv"), ("layer1_pool", "pool"),
    ("layer1_res1", "conv"), ("layer1_res2", "conv"), ("layer1_add", "add"),
    ("layer2_conv", "conv"), ("layer2_pool", "pool"),
    ("layer3_conv", "conv"), ("layer3_pool", "pool"),
    ("layer3_res1", "conv"), ("layer3_res2", "conv"), ("layer3_add", "add"),
    ("pool", "pool"),
    ("out", "out"),
]  # fmt: skip

COMPARED_LAYERS: dict[str, list[tuple[str, str]]] = {
    "vgg16_bn": _VGG16_BN,
    "vgg_svhn": _VGG_SVHN,
    "resnet_fast": _RESNET_FAST,
}

MODEL_NAMES = tuple(COMPARED_LAYERS)


def compared_layers(model_name: str) -> list[tuple[str, str]]:
    """Return ``[(layer name, kind), ...]`` in forward order for ``model_name``."""
    try:
        return list(COMPARED_LAYERS[model_name])
    except KeyError:
        raise KeyError(
            f"unknown model {model_name!r}; choose one of {', '.join(MODEL_NAMES)}"
        ) from None


#: The compared layer a model's output-layer weight belongs to (``fc.weight`` -> ``out``).
_OUTPUT_MODULE = "fc"


def layer_of_parameter(model_name: str, parameter: str) -> str:
    """The compared layer whose output a prunable parameter produces.

    Prunable parameters are named ``<layer>.conv.weight`` (its output is the compared layer
    ``<layer>``, after BN+ReLU) or ``fc.weight`` (the logits, ``out``). Tables name layers
    the compared way everywhere; the parameter name is kept in a column of its own.
    """
    module = parameter.split(".", 1)[0]
    layer = "out" if module == _OUTPUT_MODULE else module
    names = {name for name, _ in compared_layers(model_name)}
    if layer not in names:
        raise KeyError(
            f"parameter {parameter!r} belongs to no compared layer of {model_name} "
            f"({', '.join(sorted(names))}); is the mask from another model?"
        )
    return layer
