"""Invariances, bounds, equal forms, streaming, torch input, degenerate layers and errors."""

from __future__ import annotations

import logging
import subprocess
import sys

import h5py
import numpy as np
import pytest
from scipy.stats import ortho_group

import prunesim.metrics as pm
from prunesim.errors import DegenerateRepresentationError
from prunesim.metrics import (
    DEFAULT_SETTINGS,
    METRICS,
    _cca,
    as_matrix,
    similarities,
    similarity,
    similarity_from_hdf5,
    similarity_report,
    similarity_stream,
)

TOL = 1e-8
INVARIANT = ["mean_cca", "svcca", "pwcca", "cka", "nbs"]  # all but cosine
SYMMETRIC = ["mean_cca", "svcca", "cka", "nbs", "cosine"]  # pwcca weights one side


def relu_pair(seed, n=180, p1=9, p2=12):
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((n, p1)) @ rng.standard_normal((p1, p1)) + 0.3, 0)
    y = np.maximum(x @ rng.standard_normal((p1, p2)) * 0.5 + rng.standard_normal((n, p2)), 0)
    return x, y


def acts_pair(seed, n=16, c1=5, c2=7, hw=(6, 6), hw2=None):
    rng = np.random.default_rng(seed)
    a = np.maximum(rng.standard_normal((n, c1, *hw)) + 0.1, 0).astype(np.float32)
    b = np.maximum(rng.standard_normal((n, c2, *(hw2 or hw))) + 0.1, 0).astype(np.float32)
    if hw2 is None:
        b[:, :c1] += a
    return a, b


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", INVARIANT)
def test_identity_orthogonal_and_scale_invariance(name, seed):
    x, y = relu_pair(seed)
    assert similarity(name, x, x) == pytest.approx(1.0, abs=TOL)
    q = ortho_group.rvs(y.shape[1], random_state=seed)
    base = similarity(name, x, y)
    assert similarity(name, x, y @ q) == pytest.approx(base, abs=TOL)
    shift = 0.0 if name == "pwcca" else 1.5  # google's PWCCA weights use raw activations
    assert similarity(name, 4.2 * x + shift, 0.3 * y - 2.0) == pytest.approx(base, abs=TOL)


def test_pwcca_weights_see_the_mean_but_morcos_weights_do_not():
    """google adds the neuron means back before its QR, so shifting layer a changes PWCCA."""
    x, y = relu_pair(1)
    assert abs(similarity("pwcca", x + 1.5, y) - similarity("pwcca", x, y)) > 1e-4
    morcos = similarity("pwcca", x, y, weights="morcos")
    assert similarity("pwcca", x + 1.5, y, weights="morcos") == pytest.approx(morcos, abs=TOL)


@pytest.mark.parametrize("name", SYMMETRIC)
def test_symmetry(name):
    x, y = relu_pair(4, p2=9)
    assert similarity(name, x, y) == pytest.approx(similarity(name, y, x), abs=TOL)


def test_pwcca_symmetric_only_for_its_definition():
    """PWCCA takes its weights from one side: not symmetric in general (documented)."""
    x, y = relu_pair(5, p2=9)
    assert abs(similarity("pwcca", x, y) - similarity("pwcca", y, x)) > 1e-6


def dependent_pair(seed, n=300):
    """Layer a: 8 nonnegative neurons of rank 5 (exact dependencies); layer b: 10 neurons."""
    rng = np.random.default_rng(seed)
    base = np.maximum(rng.standard_normal((n, 5)) + 0.3, 0)
    x = base @ rng.uniform(0.2, 1.5, (5, 8))
    y = np.maximum(base @ rng.standard_normal((5, 10)) + 0.7 * rng.standard_normal((n, 10)), 0)
    return x, y


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_pwcca_dependent_neurons_dropped_whatever_their_order(order):
    """Which dependent neurons go is decided by variance, not by column order."""
    x, y = dependent_pair(1)
    perm = np.arange(8)[::-1] if order == "reversed" else np.random.default_rng(2).permutation(8)
    for a, weights in ((x, "morcos"), (x - x.mean(0), "svcca")):
        base = similarity("pwcca", a, y, weights=weights)
        assert similarity("pwcca", a[:, perm], y, weights=weights) == pytest.approx(base, abs=TOL)


def test_pwcca_default_weights_follow_neuron_order_through_the_means():
    """google adds neuron i's mean to canonical direction i: uncentered data see the order."""
    x, y = relu_pair(1)
    perm = np.arange(x.shape[1])[::-1]
    assert abs(similarity("pwcca", x[:, perm], y) - similarity("pwcca", x, y)) > 1e-4


def test_cosine_scale_invariant_but_not_shift_or_rotation():
    x, y = relu_pair(6, p2=9)
    base = similarity("cosine", x, y)
    assert similarity("cosine", 3 * x, -0.5 * y) == pytest.approx(base, abs=TOL)
    assert abs(similarity("cosine", x, y + 5.0) - base) > 1e-3


@pytest.mark.parametrize("seed", range(6))
def test_bounds(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    x = rng.standard_normal((n, int(rng.integers(2, 40))))
    y = rng.standard_normal((n, int(rng.integers(2, 40))))
    for name in INVARIANT:
        assert 0.0 <= similarity(name, x, y) <= 1.0
    assert 0.0 <= similarity("cosine", x[:, :2], y[:, :2]) <= 1.0
    assert -1.0 <= similarity("cka", x, y, debiased=True) <= 1.0


@pytest.mark.parametrize("shape", [(300, 8, 11), (25, 40, 60)])
def test_cka_feature_form_equals_gram_form(shape):
    n, p1, p2 = shape
    x, y = relu_pair(7, n, p1, p2)
    feature = similarity("cka", x, y, form="feature")
    assert similarity("cka", x, y, form="gram") == pytest.approx(feature, abs=1e-12)


@pytest.mark.parametrize("shape", [(300, 8, 11), (25, 40, 60)])
def test_nbs_nuclear_form_equals_gram_fidelity(shape):
    n, p1, p2 = shape
    x, y = relu_pair(8, n, p1, p2)
    xc, yc = x - x.mean(0), y - y.mean(0)
    nuclear = np.linalg.svd(xc.T @ yc, compute_uv=False).sum()
    nuclear /= np.linalg.norm(xc) * np.linalg.norm(yc)
    assert similarity("nbs", x, y, form="feature") == pytest.approx(nuclear, abs=1e-12)
    assert similarity("nbs", x, y, form="gram") == pytest.approx(nuclear, abs=TOL)


def test_nuclear_norm_gram_route():
    """Above 1024 the numpy path uses eigenvalues of AᵀA; dead units (zero rows) are dropped."""
    from prunesim.metrics._backend import NUMPY
    from prunesim.metrics._linalg import nuclear_norm

    a = np.random.default_rng(0).standard_normal((1100, 1070))
    a[:40] = 0.0  # 1060 x 1030 remain: still above the SVD's limit
    a[:, :40] = 0.0
    expected = np.linalg.svd(a, compute_uv=False).sum()
    assert nuclear_norm(a, NUMPY) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", list(METRICS))
def test_similarities_share_one_pass(name):
    x, y = relu_pair(9, p2=9)
    together = similarities(x, y, {m: {} for m in METRICS})
    assert together[name] == pytest.approx(similarity(name, x, y), abs=1e-12)


# --- conv reshapes, resizing ------------------------------------------------------------------


def test_as_matrix_modes():
    a = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    ch = as_matrix(a, "channels")
    assert ch.shape == (40, 3)
    np.testing.assert_array_equal(ch[7], a[0, :, 1, 2])
    np.testing.assert_array_equal(as_matrix(a, "flatten"), a.reshape(2, 60))
    m = np.ones((4, 3))
    assert as_matrix(m, "channels") is m


def test_channel_invariant_cka_nbs():
    """CKA/NBS on the channel reshape (paper §6.3): invariant to permuting channels."""
    a, b = acts_pair(10)
    perm = np.random.default_rng(0).permutation(b.shape[1])
    for name in ("cka", "nbs"):
        base = similarity(name, a, b, reshape="channels")
        assert similarity(name, a, b[:, perm], reshape="channels") == pytest.approx(base, abs=TOL)


@pytest.mark.parametrize("method", ["adaptive_avg", "interpolate"])
def test_resize_different_spatial_sizes(method):
    a, b = acts_pair(11, hw=(8, 8), hw2=(4, 4))
    with pytest.raises(ValueError, match="Spatial sizes differ"):
        similarity("mean_cca", a, b)
    value = similarity("mean_cca", a, b, resize=method)
    assert 0.0 <= value <= 1.0
    # pooling an 8x8 map to 4x4 is the 2x2 block mean
    from prunesim.metrics._reshape import resize

    pooled = resize(a, (4, 4), "adaptive_avg")
    np.testing.assert_allclose(pooled, a.reshape(16, 5, 4, 2, 4, 2).mean((3, 5)), atol=1e-6)


def test_resize_matches_torch():
    torch = pytest.importorskip("torch")
    from prunesim.metrics._reshape import resize

    a = np.random.default_rng(0).standard_normal((2, 3, 7, 9))
    t = torch.as_tensor(a)
    pool = torch.nn.functional.adaptive_avg_pool2d(t, (3, 4)).numpy()
    interp = torch.nn.functional.interpolate(t, size=(3, 4), mode="bilinear").numpy()
    np.testing.assert_allclose(resize(a, (3, 4), "adaptive_avg"), pool, atol=1e-12)
    np.testing.assert_allclose(resize(a, (3, 4), "interpolate"), interp, atol=1e-12)


# --- streaming --------------------------------------------------------------------------------


@pytest.fixture
def small_chunks(monkeypatch):
    """Force many chunks/blocks so that the streaming code paths really stream."""
    monkeypatch.setattr(pm._moments, "_CHUNK_BYTES", 2048)
    monkeypatch.setattr(pm._sources, "_BLOCK_BYTES", 8 * 40 * 5 * 36)


def write_h5(path, **datasets):
    with h5py.File(path, "w") as h5:
        for key, value in datasets.items():
            h5.create_dataset(key, data=value, chunks=(4, *value.shape[1:]))
    return path


@pytest.mark.parametrize("name", list(METRICS))
def test_hdf5_stream_equals_in_memory(name, tmp_path, small_chunks):
    a, b = acts_pair(12, n=40)
    if name == "cosine":
        b = b[:, : a.shape[1]]
    pa, pb = write_h5(tmp_path / "a.h5", conv=a), write_h5(tmp_path / "b.h5", conv=b)
    settings = dict(DEFAULT_SETTINGS[name])
    result = similarity_from_hdf5(name, pa, "conv", pb, "conv", settings)
    assert result["note"] is None
    assert result["value"] == pytest.approx(similarity(name, a, b, **settings), abs=1e-10)


@pytest.mark.parametrize("name", ["cka", "nbs"])
def test_hdf5_gram_route_equals_in_memory(name, tmp_path, small_chunks):
    a, b = acts_pair(13, n=40)
    pa, pb = write_h5(tmp_path / "a.h5", conv=a), write_h5(tmp_path / "b.h5", conv=b)
    result = similarity_from_hdf5(name, pa, "conv", pb, "conv", {"form": "gram"})
    assert result["details"]["route"] == "gram"
    assert result["value"] == pytest.approx(similarity(name, a, b, form="feature"), abs=TOL)


def test_chunk_iterator_stream_equals_in_memory():
    x, y = relu_pair(14, n=500)
    chunks = ((x[i : i + 37], y[i : i + 37]) for i in range(0, 500, 37))
    assert similarity_stream("svcca", chunks) == pytest.approx(similarity("svcca", x, y), abs=TOL)
    chunks = ((x[i : i + 37], y[i : i + 37]) for i in range(0, 500, 37))
    got = similarity_stream("cka", chunks, debiased=True)
    assert got == pytest.approx(similarity("cka", x, y, debiased=True), abs=TOL)


def test_weighted_moments_equal_repeated_rows():
    """Bootstrap counts as row weights are exactly repeated rows."""
    x, y = relu_pair(15, n=60)
    counts = np.random.default_rng(0).integers(0, 3, 60)
    rows = np.repeat(np.arange(60), counts)
    for name in ("mean_cca", "pwcca", "nbs"):
        from prunesim.metrics._moments import moments

        kw = {k: DEFAULT_SETTINGS[name][k] for k in METRICS[name].defaults}
        mom = moments(x, y, weights=counts.astype(float), full=METRICS[name].needs_full(kw))
        got = METRICS[name].from_moments(mom, **kw)[0]
        assert got == pytest.approx(similarity(name, x[rows], y[rows]), abs=TOL)


def test_bootstrap_interval(tmp_path):
    a, b = acts_pair(16, n=30)
    pa, pb = write_h5(tmp_path / "a.h5", conv=a), write_h5(tmp_path / "b.h5", conv=b)
    for name in ("mean_cca", "cka"):
        settings = {"bootstrap": {"samples": 20, "seed": 1}}
        res = similarity_from_hdf5(name, pa, "conv", pb, "conv", settings)
        assert res["ci_low"] <= res["ci_high"]
        assert 0.0 <= res["ci_low"] <= 1.0
        again = similarity_report(name, a, b, settings)
        assert again["ci_low"] == pytest.approx(res["ci_low"], abs=1e-10)


def test_registry_fields_decide_pairing_and_reshape():
    """output_only / flattens_per_sample live on the Metric: cosine has both, nothing else."""
    assert [n for n, m in METRICS.items() if m.output_only] == ["cosine"]
    assert [n for n, m in METRICS.items() if m.flattens_per_sample] == ["cosine"]
    a, b = acts_pair(18, c2=5)
    flat_a, flat_b = a.reshape(16, -1).astype(np.float64), b.reshape(16, -1).astype(np.float64)
    expected = abs(np.vdot(flat_a, flat_b)) / (np.linalg.norm(flat_a) * np.linalg.norm(flat_b))
    assert similarity("cosine", a, b) == pytest.approx(expected, abs=1e-12)
    together = similarities(a, b, {"cosine": {}, "cka": {}, "mean_cca": {}})
    assert together["cosine"] == pytest.approx(expected, abs=1e-12)
    assert together["cka"] == pytest.approx(similarity("cka", a, b), abs=1e-12)


# --- torch ------------------------------------------------------------------------------------


def test_import_does_not_load_torch():
    code = (
        "import sys, numpy as np; import prunesim.metrics as m; "
        "x = np.random.default_rng(0).standard_normal((50, 4)); "
        "[m.similarity(k, x, x) for k in m.METRICS]; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", list(METRICS))
def test_torch_input_equals_numpy(name):
    torch = pytest.importorskip("torch")
    a, b = acts_pair(18)
    if name == "cosine":
        b = b[:, : a.shape[1]]
    expected = similarity(name, a, b, **DEFAULT_SETTINGS[name])
    got = similarity(name, torch.as_tensor(a), torch.as_tensor(b), **DEFAULT_SETTINGS[name])
    assert got == pytest.approx(expected, abs=1e-10)
    if name == "cka":
        got = similarity(name, torch.as_tensor(a), torch.as_tensor(b), form="gram")
        assert got == pytest.approx(expected, abs=1e-10)
        got = similarity(name, torch.as_tensor(a), torch.as_tensor(b), debiased=True)
        assert got == pytest.approx(similarity(name, a, b, debiased=True), abs=1e-10)


# --- degenerate inputs and errors -------------------------------------------------------------


@pytest.mark.parametrize("fill", [0.0, 3.0])
@pytest.mark.parametrize("name", list(METRICS))
def test_constant_layer_gives_note_not_nan(name, fill):
    x, y = relu_pair(19, p2=9)
    dead = np.full_like(x, fill)
    if name == "cosine" and fill != 0.0:
        assert 0.0 <= similarity(name, dead, y) <= 1.0  # defined: no centering
        return
    with pytest.raises(DegenerateRepresentationError, match="no variance|all zero"):
        similarity(name, dead, y)
    report = similarity_report(name, x, dead, {})
    assert report["value"] is None
    assert "layer b" in report["note"]


CCA_FAMILY = ["mean_cca", "svcca", "pwcca"]


def noise_pair(n, p1, p2=12):
    rng = np.random.default_rng(20)
    return rng.standard_normal((n, p1)), rng.standard_normal((n, p2))


@pytest.mark.parametrize("name", CCA_FAMILY)
def test_few_rows_value_kept_with_a_note(name):
    """n - 1 <= p: independent noise gives CCA 1 by construction; the value stays, flagged."""
    x, y = noise_pair(30, 29)
    report = similarity_report(name, y, x)
    assert "uninformative" in report["note"]
    assert "p = 29 neurons in layer b" in report["note"]
    assert report["value"] > 0.8  # 0.28 for noise_pair(300, 29): ten times more rows
    if name != "svcca":
        assert report["value"] == pytest.approx(1.0, abs=TOL)
    assert similarity_report(name, x[:, :28], y)["note"] is None  # n - 1 = p + 1


def test_few_rows_note_reaches_the_hdf5_record(tmp_path):
    a, b = acts_pair(21, n=12, c1=2, c2=3, hw=(3, 3))  # flatten: 12 rows, 18 and 27 features
    pa, pb = write_h5(tmp_path / "a.h5", conv=a), write_h5(tmp_path / "b.h5", conv=b)
    result = similarity_from_hdf5("pwcca", pa, "conv", pb, "conv", {"reshape": "flatten"})
    assert result["value"] == pytest.approx(1.0, abs=TOL)
    assert "p = 27 neurons in layer b" in result["note"]
    assert similarity_from_hdf5("pwcca", pa, "conv", pb, "conv", {})["note"] is None


def test_few_rows_warning_logged_once_per_process(monkeypatch, caplog):
    monkeypatch.setattr(_cca, "_warned", False)
    x, y = noise_pair(20, 25)
    with caplog.at_level(logging.WARNING, logger="prunesim.metrics"):
        similarity("cka", x, y)
        assert not caplog.records
        for name in CCA_FAMILY:
            similarity(name, x, y)
            similarity_report(name, y, x)
    warned = [r for r in caplog.records if "n - 1 <= p" in r.getMessage()]
    assert len(warned) == 1
    assert "once per process" in warned[0].getMessage()


def test_errors_for_bad_input():
    x = np.ones((10, 3))
    with pytest.raises(ValueError, match="Unknown metric 'cca'"):
        similarity("cca", x, x)
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['kepe'\]"):
        similarity("svcca", x, x, kepe=0.9)
    with pytest.raises(ValueError, match="same number of samples"):
        similarity("cka", x, np.ones((9, 3)))
    with pytest.raises(ValueError, match=r"\(n, features\), got \(10,\)"):
        similarity("cka", np.ones(10), np.ones(10))
    with pytest.raises(ValueError, match=r"\(n, c, h, w\) or \(n, features\)"):
        similarity("cka", np.ones((4, 3, 2)), np.ones((4, 3, 2)))
    with pytest.raises(ValueError, match="cosine needs equal shapes"):
        similarity("cosine", x, np.ones((10, 4)))
    with pytest.raises(ValueError, match="keep to be a number"):
        similarity("svcca", x, x, keep=1.5)
    with pytest.raises(ValueError, match="weights to be one of"):
        similarity("pwcca", x, x, weights="google")
    with pytest.raises(ValueError, match="reshape to be one of"):
        similarity("cka", x, x, reshape="rows")
    with pytest.raises(ValueError, match="bootstrap.samples"):
        similarity_report("cka", x, x, {"bootstrap": {"samples": 1}})
    bad = np.random.default_rng(0).standard_normal((10, 3))
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="contains NaN or inf"):
        similarity("mean_cca", bad, x + bad.shape[0])
    with pytest.raises(ValueError, match="reshape is null"):
        similarity("cka", np.ones((4, 3, 2, 2)), np.ones((4, 3, 2, 2)), reshape=None)


def test_default_settings_are_the_papers():
    assert {k: v["reshape"] for k, v in DEFAULT_SETTINGS.items()} == {
        "mean_cca": "channels", "svcca": "channels", "pwcca": "channels",
        "cka": "flatten", "nbs": "flatten", "cosine": None,
    }  # fmt: skip
    assert DEFAULT_SETTINGS["svcca"]["keep"] == 0.99
    for block in DEFAULT_SETTINGS.values():
        assert {"reshape", "resize", "bootstrap"} <= set(block)
