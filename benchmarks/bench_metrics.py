"""Similarity engine vs anchor-style numpy baselines, as ratios measured in one run.

Usage: python benchmarks/bench_metrics.py [--quick] [--skip-stream]

Baselines are written here in the anchors' style (google/svcca: np.cov + pinv + eigh square
roots; Kornblith: n×n Gram CKA; Tang: eigenvalues of Kc·Lc for NBS). Targets (issue 5, 2-core
machine): (1) 80,000 × 256 vs 256, all six metrics >= 5x faster than the baselines together and
within 2x of one float64 (p1+p2)² moment pass; (2) n = 5000, 4096 vs 4096: CKA <= 1.6 s, NBS
>= 4x faster than the eigenvalue form; (3) a VGG16 conv1-sized layer pair (5000 × 64 × 32 × 32,
5.1 M × 64 in the channel reshape) streamed from HDF5 with peak RSS < 2 GB.
Timings are best of ``repeat`` runs; the machine may be shared, so compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from prunesim.metrics import similarities, similarity

ALL_SIX = {"mean_cca": {}, "svcca": {}, "pwcca": {}, "cka": {}, "nbs": {}, "cosine": {}}


def best_time(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def relu_data(rng, n, p1, p2, dtype=np.float64):
    """Correlated ReLU activations, like two layers of one network."""
    mix_x = rng.standard_normal((p1, p1)) / p1**0.5
    x = np.maximum(rng.standard_normal((n, p1)) @ mix_x + 0.2, 0)
    mix = rng.standard_normal((p1, p2)) / p1**0.5
    y = np.maximum(0.7 * x @ mix + 0.5 * rng.standard_normal((n, p2)), 0)
    return x.astype(dtype), y.astype(dtype)


# --- anchor-style baselines -------------------------------------------------------------------


def _inv_sqrt_pinv(c):
    w, v = np.linalg.eigh(np.linalg.pinv(c))
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def base_cca(x, y):
    """google get_cca_similarity core: np.cov of the stacked layers, pinv, eigh roots, SVD."""
    p1 = x.shape[1]
    cov = np.cov(x.T, y.T)
    sxx, syy, sxy = cov[:p1, :p1], cov[p1:, p1:], cov[:p1, p1:]
    u, s, vh = np.linalg.svd(_inv_sqrt_pinv(sxx) @ sxy @ _inv_sqrt_pinv(syy))
    return u, s, vh


def base_mean_cca(x, y):
    return base_cca(x, y)[1].mean()


def base_svcca(x, y, keep=0.99):
    def reduce(a):
        a = a - a.mean(0)
        u, s, _ = np.linalg.svd(a, full_matrices=False)
        k = int(np.sum(np.cumsum(s**2) / np.sum(s**2) <= keep)) + 1
        return u[:, :k] * s[:k]

    return base_mean_cca(reduce(x), reduce(y))


def base_pwcca(x, y):
    u, s, _ = base_cca(x, y)
    mean = x.mean(0)
    dirns = u.T @ (x - mean).T + mean[:, None]
    q, _ = np.linalg.qr(dirns.T)
    w = np.abs(q.T @ x).sum(1)
    return np.sum(w / w.sum() * s)


def base_cka_gram(x, y):
    """Kornblith cka(gram_linear(x), gram_linear(y)) with O(n²) centering."""

    def center(k):
        m = k.mean(0)
        return k - m[None, :] - m[:, None] + m.mean()

    k, l_ = center(x @ x.T), center(y @ y.T)
    return np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_))


def base_cka_feature(x, y):
    """Kornblith feature_space_linear_cka (the anchors' only option when n×n does not fit)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def base_nbs_eig(x, y):
    """Tang et al.: Σ sqrt(clip(Re eig(Kc Lc))) / sqrt(tr Kc tr Lc)."""
    x, y = x - x.mean(0), y - y.mean(0)
    k, l_ = x @ x.T, y @ y.T
    lam = np.linalg.eigvals(k @ l_)
    return np.sqrt(np.clip(lam.real, 0, None)).sum() / np.sqrt(np.trace(k) * np.trace(l_))


def base_nbs_svd(x, y):
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.svd(x.T @ y, compute_uv=False).sum() / (np.linalg.norm(x) * np.linalg.norm(y))


def base_cosine(x, y):
    return abs(np.sum(x * y)) / (np.linalg.norm(x) * np.linalg.norm(y))


# --- sections ---------------------------------------------------------------------------------


def tall(n, p, repeat):
    """(1) all six metrics on an (n, p) vs (n, p) pair (a conv layer in channel reshape)."""
    x, y = relu_data(np.random.default_rng(0), n, p, p)
    t_ours, ours = best_time(lambda: similarities(x, y, ALL_SIX), repeat)
    baselines = {
        "mean_cca": base_mean_cca, "svcca": base_svcca, "pwcca": base_pwcca,
        "cka": base_cka_feature, "nbs": base_nbs_svd, "cosine": base_cosine,
    }  # fmt: skip
    t_base, values = 0.0, {}
    for name, fn in baselines.items():
        t, values[name] = best_time(lambda fn=fn: fn(x, y), 1)
        t_base += t
    z = np.hstack([x, y])
    t_mom, _ = best_time(lambda: z.T @ z, repeat)
    print(f"\n[1] {n} x {p} vs {p}, float64, all six metrics")
    for name in ALL_SIX:
        print(f"    {name:9s} ours {ours[name]:.10f}  baseline {values[name]:.10f}")
    print(f"    ours {t_ours:.3f} s | baselines {t_base:.3f} s | one (p1+p2)^2 moment pass "
          f"{t_mom:.3f} s")  # fmt: skip
    print(f"    RATIO baselines/ours = {t_base / t_ours:.1f}x (target >= 5x)")
    print(f"    RATIO ours/moment pass = {t_ours / t_mom:.2f}x (target <= 2x)")


def wide(n, p, repeat, eig_baseline=True):
    """(2) flattened conv: n samples, p vs p features (n < p1 + p2)."""
    x, y = relu_data(np.random.default_rng(1), n, p, p)
    t_cka, v_cka = best_time(lambda: similarity("cka", x, y), repeat)
    t_cka_base, v_cka_base = best_time(lambda: base_cka_gram(x, y), 1)
    t_nbs, v_nbs = best_time(lambda: similarity("nbs", x, y), 1)
    print(f"\n[2] n = {n}, {p} vs {p}, float64")
    print(f"    CKA ours {t_cka:.3f} s ({v_cka:.12f}) | Kornblith Gram {t_cka_base:.3f} s "
          f"({v_cka_base:.12f}) | RATIO {t_cka_base / t_cka:.1f}x")  # fmt: skip
    print("    target: CKA <= 1.6 s at n = 5000, 4096 vs 4096")
    if eig_baseline:
        t_eig, v_eig = best_time(lambda: base_nbs_eig(x, y), 1)
        print(f"    NBS ours {t_nbs:.3f} s ({v_nbs:.12f}) | eig(Kc Lc) {t_eig:.3f} s "
              f"({v_eig:.12f}) | RATIO {t_eig / t_nbs:.1f}x (target >= 4x)")  # fmt: skip
    else:
        print(f"    NBS ours {t_nbs:.3f} s ({v_nbs:.12f})")


# Peak RSS from the child's own VmHWM: ru_maxrss survives fork+exec on Linux, so a child of
# this (large) process would report the parent's peak.
_CHILD = """
import json, sys, time
from prunesim.metrics import similarity_from_hdf5
path, name, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
start = time.perf_counter()
res = similarity_from_hdf5(name, path, "a", path, "b", settings)
elapsed = time.perf_counter() - start
with open("/proc/self/status") as f:
    rss = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
print(json.dumps({"value": res["value"], "note": res["note"], "s": elapsed, "rss_mb": rss}))
"""


def stream(n_img, c, hw, tmpdir):
    """(3) an HDF5 pair the size of VGG16 conv1 on the probe set, streamed in a subprocess."""
    import h5py

    path = Path(tmpdir) / "conv1.h5"
    rng = np.random.default_rng(2)
    mix = rng.standard_normal((c, c)) / c**0.5
    with h5py.File(path, "w") as h5:
        shape = (n_img, c, hw, hw)
        da = h5.create_dataset("a", shape, dtype="f4", chunks=(16, c, hw, hw))
        db = h5.create_dataset("b", shape, dtype="f4", chunks=(16, c, hw, hw))
        for i in range(0, n_img, 250):
            m = min(250, n_img - i)
            a = np.maximum(rng.standard_normal((m, c, hw, hw), dtype=np.float32) + 0.1, 0)
            da[i : i + m] = a
            mixed = np.einsum("nchw,cd->ndhw", a, mix.astype(np.float32))
            db[i : i + m] = np.maximum(mixed + rng.standard_normal(a.shape, dtype=np.float32), 0)
    size_gb = 2 * n_img * c * hw * hw * 4 / 1e9
    print(f"\n[3] streamed from HDF5: {n_img} x {c} x {hw} x {hw} pair ({size_gb:.2f} GB float32), "
          f"channel reshape {n_img * hw * hw} x {c}")  # fmt: skip
    runs = [(name, {}) for name in ("mean_cca", "svcca", "pwcca")]
    runs += [("cka", {"reshape": "channels"}), ("nbs", {"reshape": "channels"}), ("cosine", {})]
    for name, settings in runs:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), name, json.dumps(settings)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"    {name:9s} {json.dumps(settings):24s} value {r['value']:.6f}  {r['s']:.2f} s  "
              f"peak RSS {r['rss_mb']:.0f} MB (target < 2048)")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke version (seconds)")
    parser.add_argument("--skip-stream", action="store_true", help="skip the HDF5 section")
    args = parser.parse_args()
    if args.quick:
        tall(8000, 64, repeat=2)
        wide(400, 600, repeat=2)
        if not args.skip_stream:
            with tempfile.TemporaryDirectory() as tmp:
                stream(200, 16, 16, tmp)
        return
    tall(80_000, 256, repeat=3)
    wide(5000, 4096, repeat=2)
    if not args.skip_stream:
        with tempfile.TemporaryDirectory() as tmp:
            stream(5000, 64, 32, tmp)


if __name__ == "__main__":
    main()
