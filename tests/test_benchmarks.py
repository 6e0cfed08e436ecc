"""The benchmark scripts still run (smallest sizes; their numbers are not checked here)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_training_benchmark_runs():
    out = run("benchmarks/bench_training.py", "throughput", "--model", "vgg_svhn",
              "--width", "0.125", "--steps", "2", "--repeats", "1", "--threads", "1")  # fmt: skip
    assert "overhead" in out


def test_metrics_benchmark_runs():
    out = run("benchmarks/bench_metrics.py", "--quick", "--skip-stream")
    assert "RATIO baselines/ours" in out


def test_similarity_benchmarks_run():
    out = run("benchmarks/bench_similarity.py", "job", "--repeats", "1", "--probe", "20",
              "--metrics", "cka")  # fmt: skip
    assert "RATIO new job / import numpy,h5py" in out
    out = run("benchmarks/bench_similarity.py", "stage", "--width", "0.125", "--probe", "30",
              "--layers", "1")  # fmt: skip
    assert "RATIO old/new" in out
    assert "EXTRAPOLATED" in out
    assert "BOUND old/new if all else were free" in out
