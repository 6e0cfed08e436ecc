"""Representations of a network on the probe set, streamed batch by batch into HDF5.

One file per network, one dataset per compared layer (conv after BN+ReLU, pool, residual
add, pre-softmax output), shaped ``(n_probe, c, h, w)`` or ``(n_probe, features)`` and
chunked along samples so metrics can stream it. The network is in eval mode (BN uses its
running statistics), probe images are normalised exactly as at test time and never augmented.
"""

from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import torch

from prunesim.atomic import atomic_path
from prunesim.checkpoint import load_network
from prunesim.data import load_arrays, load_probe
from prunesim.devices import job_device
from prunesim.errors import CorruptFileError, rebuild_hint

LOG = logging.getLogger(__name__)

# ~1-4 MiB chunks: small enough to stream a layer in pieces, large enough for fast I/O.
_TARGET_CHUNK_BYTES = 2 * 1024 * 1024


def _chunk_rows(sample_shape: tuple[int, ...], itemsize: int, n: int) -> int:
    per_sample = int(np.prod(sample_shape)) * itemsize
    return int(max(1, min(n, _TARGET_CHUNK_BYTES // max(per_sample, 1))))


def probe_images(arrays_path: str | os.PathLike, probe_path: str | os.PathLike):
    """Probe images (uint8 NHWC), labels and the per-channel normalisation of the dataset."""
    arrays = load_arrays(arrays_path)
    probe = load_probe(probe_path)
    if probe.ndim != 1 or (len(probe) and probe.max() >= len(arrays["x_test"])):
        raise CorruptFileError(
            f"probe file {probe_path} does not index the test set of {arrays_path} (rule "
            f"prepare_data writes both). {rebuild_hint(probe_path)}"
        )
    return arrays["x_test"][probe], arrays["y_test"][probe], arrays["mean"], arrays["std"]


@torch.no_grad()
def extract_activations(
    checkpoint_path: str | os.PathLike,
    arrays_path: str | os.PathLike,
    probe_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    layers: list[str] | None = None,
    dtype: str = "float32",
    batch_size: int = 250,
    device: str | None = None,
    threads: int | None = None,
) -> dict[str, tuple[int, ...]]:
    """Write the activations of ``layers`` (default: all compared layers) to ``out_path``.

    Returns ``{layer: shape}``. The file appears only when complete (atomic rename).
    ``device`` and ``threads`` are chosen and set where every job's are
    (:func:`prunesim.devices.job_device`).
    """
    device = job_device(device, threads)
    model, _, meta = load_network(checkpoint_path, device=device)
    model.eval()
    images, labels, mean, std = probe_images(arrays_path, probe_path)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    compared = [(name, kind) for name, kind in model.compared_layers]
    if layers is not None:
        unknown = sorted(set(layers) - {name for name, _ in compared})
        if unknown:
            raise ValueError(f"unknown layers {unknown}; model has {[n for n, _ in compared]}")
        compared = [(name, kind) for name, kind in compared if name in layers]
    n = len(images)
    np_dtype = np.dtype(dtype)
    shapes: dict[str, tuple[int, ...]] = {}
    correct = 0
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        for key in ("experiment", "run", "iteration", "density", "model", "width"):
            value = meta.get(key)
            h5.attrs[key] = -1 if value is None else value
        datasets: dict[str, h5py.Dataset] = {}
        for start in range(0, n, batch_size):
            batch = torch.as_tensor(images[start : start + batch_size], device=device)
            x = (batch.permute(0, 3, 1, 2).float() / 255.0 - mean_t) / std_t
            features = model.forward_features(x)
            correct += int(
                (features["out"].argmax(1).cpu() == torch.as_tensor(labels[start : start + len(x)]))
                .sum()
                .item()
            )
            for index, (name, kind) in enumerate(compared):
                act = features[name].float().cpu().numpy().astype(np_dtype, copy=False)
                if name not in datasets:
                    sample_shape = act.shape[1:]
                    datasets[name] = h5.create_dataset(
                        name,
                        shape=(n, *sample_shape),
                        dtype=np_dtype,
                        chunks=(_chunk_rows(sample_shape, np_dtype.itemsize, n), *sample_shape),
                    )
                    datasets[name].attrs["kind"] = kind
                    datasets[name].attrs["index"] = index
                    shapes[name] = (n, *sample_shape)
                datasets[name][start : start + len(x)] = act
            LOG.info("extracted %d/%d probe images", min(start + batch_size, n), n)
        h5.attrs["probe_accuracy"] = correct / max(n, 1)
        h5.attrs["layers"] = [name for name, _ in compared]
    LOG.info("probe accuracy %.4f; layers: %s", correct / max(n, 1), ", ".join(shapes))
    return shapes
