"""The workflow and the code stay lint-clean: snakemake --lint, snakefmt, ruff."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY_CONFIG

BIN = Path(sys.executable).parent


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run `pip install -e .[dev]`")
    return str(path)


@pytest.mark.parametrize("config", [REPO / "config.yaml", TINY_CONFIG], ids=["paper", "tiny"])
def test_snakemake_lint_is_clean(config):
    proc = run([sys.executable, "-m", "snakemake", "--lint", "--configfile", str(config)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_snakefmt_is_clean():
    proc = run([tool("snakefmt"), "--check", "Snakefile", "workflow/rules"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean():
    for args in (["check"], ["format", "--check"]):
        proc = run([tool("ruff"), *args, "src", "tests", "benchmarks", "workflow/scripts"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
