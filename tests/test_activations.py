"""Activation extraction: every compared layer, exact values, chunked, atomic."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from prunesim.activations import extract_activations
from prunesim.checkpoint import save_checkpoint
from prunesim.data import prepare_dataset
from prunesim.errors import CorruptFileError
from prunesim.models import build_model


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    arrays, probe = root / "arrays.npz", root / "probe.npy"
    prepare_dataset({"source": "digits", "test_subset": 120}, arrays, probe, probe_size=60, seed=0)
    return arrays, probe


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("resnet_fast", width=0.0625)
    model.eval()
    path = tmp_path_factory.mktemp("net") / "model.pt"
    meta = {"model": "resnet_fast", "width": 0.0625, "num_classes": 10, "experiment": "e",
            "run": 1, "iteration": 2, "density": 0.64}  # fmt: skip
    save_checkpoint(path, model, {}, meta)
    return path, model


def test_the_job_sets_its_threads_where_every_job_does(digits, checkpoint, tmp_path):
    arrays_path, probe_path = digits
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        extract_activations(checkpoint[0], arrays_path, probe_path, tmp_path / "a.h5",
                            layers=["out"], device="cpu", threads=1)  # fmt: skip
        assert torch.get_num_threads() == 1
        extract_activations(checkpoint[0], arrays_path, probe_path, tmp_path / "b.h5",
                            layers=["out"], device="cpu")  # fmt: skip
        assert torch.get_num_threads() == 1, "no threads given: the caller's count is kept"
    finally:
        torch.set_num_threads(before)


def test_every_layer_matches_a_direct_forward(digits, checkpoint, tmp_path):
    arrays_path, probe_path = digits
    path, model = checkpoint
    out = tmp_path / "acts.h5"
    shapes = extract_activations(path, arrays_path, probe_path, out, batch_size=25, device="cpu")
    arrays = np.load(arrays_path)
    probe = np.load(probe_path)
    x = torch.as_tensor(arrays["x_test"][probe]).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.as_tensor(arrays["mean"]).view(1, -1, 1, 1)) / torch.as_tensor(
        arrays["std"]
    ).view(1, -1, 1, 1)
    with torch.no_grad():
        expected = model.forward_features(x)
    with h5py.File(out) as h5:
        assert list(h5.attrs["layers"]) == [name for name, _ in model.compared_layers]
        assert h5.attrs["iteration"] == 2
        for index, (name, kind) in enumerate(model.compared_layers):
            data = h5[name]
            assert data.shape == shapes[name] == tuple(expected[name].shape)
            assert data.attrs["kind"] == kind
            assert data.attrs["index"] == index
            assert data.chunks[0] <= data.shape[0]
            assert data.chunks[1:] == data.shape[1:], "chunked along samples only"
            np.testing.assert_allclose(data[...], expected[name].numpy(), rtol=1e-5, atol=1e-5)


def test_layer_subset_and_float16(digits, checkpoint, tmp_path):
    arrays_path, probe_path = digits
    out = tmp_path / "acts.h5"
    extract_activations(
        checkpoint[0], arrays_path, probe_path, out, layers=["prep", "out"], dtype="float16"
    )
    with h5py.File(out) as h5:
        assert sorted(h5) == ["out", "prep"]
        assert h5["prep"].dtype == np.float16


def test_failure_leaves_no_output(digits, tmp_path):
    arrays_path, probe_path = digits
    broken = tmp_path / "model.pt"
    broken.write_bytes(b"not a checkpoint")
    out = tmp_path / "acts.h5"
    with pytest.raises(CorruptFileError, match=rf"cannot be read.*rerun.*--forcerun {broken}"):
        extract_activations(broken, arrays_path, probe_path, out)
    assert list(tmp_path.iterdir()) == [broken]
