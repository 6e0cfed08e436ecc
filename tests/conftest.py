"""Shared fixtures: run the tiny workflow once per session in a temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "config" / "tiny.yaml"
SNAKEMAKE_TIMEOUT_S = 900


def snakemake_command(workdir: Path, *args: str, config: Path = TINY_CONFIG) -> list[str]:
    """The command line that runs the repo's Snakefile in ``workdir`` with ``config``."""
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(config),
        "--workflow-profile", "none",
        "--cores", "2",
        *args,
    ]  # fmt: skip


def snakemake(
    workdir: Path,
    *args: str,
    config: Path = TINY_CONFIG,
    timeout: int | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run the repo's Snakefile in ``workdir`` under a time limit, so a hang fails."""
    cmd = snakemake_command(workdir, *args, config=config)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout or SNAKEMAKE_TIMEOUT_S, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory) -> Path:
    """A working directory in which the tiny config has run to completion."""
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(workdir)
    return workdir


@pytest.fixture
def tiny_copy(tiny_workflow, tmp_path) -> Path:
    """A private copy of the finished tiny run (tests that modify it must not share it)."""
    dest = tmp_path / "run"
    shutil.copytree(tiny_workflow, dest, symlinks=True)
    return dest
