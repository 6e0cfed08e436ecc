"""profiles/slurm on a real SLURM cluster: the tiny config's `tiny` experiment submitted
through it gives the same tables as a local run, in grouped submissions, with GPUs requested
where the profile says so.

Needs the local single-node cluster of scripts/slurm_up.sh with at least one fake GPU
(`FAKE_GPUS=1 bash scripts/slurm_up.sh`, as root; .ci/slurm.sh does it). Skips only where the
SLURM client is not installed (no `sbatch`); a client without a running cluster fails.
Every snakemake call runs under `timeout` and a subprocess timeout, so a hang fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "config" / "tiny.yaml"
SLURM_PROFILE = REPO / "profiles" / "slurm"
SLURM_LOCAL_PROFILE = REPO / "profiles" / "slurm-local"
LOCAL_TIMEOUT_S = 900
# SLURM adds ~5 s per job plus the executor's polling back-off (up to 180 s between checks).
SLURM_TIMEOUT_S = 1500
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED"}

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        shutil.which("sbatch") is None,
        reason="SLURM client not installed (no sbatch); bring a local cluster up with "
        "`FAKE_GPUS=1 bash scripts/slurm_up.sh` (root)",
    ),
]


def same_threads() -> list[str]:
    """One thread per job in both runs: torch's CPU kernels sum in a thread-count-dependent
    order, and the point is that SLURM changes nothing else (profiles/slurm asks for 8)."""
    rules = ["train_dense", "imp_iter", "extract_acts", "train_seed", "random_prune"]
    for metric in yaml.safe_load(TINY_CONFIG.read_text())["metrics"]:
        rules += [f"similarity_{metric}", f"control_similarity_{metric}"]
    return ["--set-threads", *(f"{rule}=1" for rule in rules)]


def cancel_jobs_of(workdir: Path) -> None:
    """scancel the SLURM jobs (by id) whose working directory is ``workdir``."""
    ids = [job["JobID"] for job in squeue_jobs_of(workdir) if job["State"] in ACTIVE]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


def run_snakemake(
    workdir: Path, config: Path, *args: str, timeout: int
) -> subprocess.CompletedProcess:
    """The repo's Snakefile on ``config`` in ``workdir``, killed after ``timeout`` s.

    `timeout -k` sends SIGTERM and then SIGKILL: with the SLURM executor, snakemake may
    ignore SIGTERM while it waits on jobs (../shared/notes/slurm.md, pitfall 1).
    """
    cmd = [
        "timeout", "-k", "10", str(timeout),
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(config),
        *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30, env=env)
    except subprocess.TimeoutExpired:
        cancel_jobs_of(workdir)
        raise
    if proc.returncode != 0:
        cancel_jobs_of(workdir)
        hint = " (timed out)" if proc.returncode in (124, 128 + signal.SIGKILL) else ""
        raise AssertionError(
            f"snakemake {' '.join(args)} failed with {proc.returncode}{hint}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def cluster() -> str:
    """Fail (not skip) when the client is there but the cluster is not usable."""
    up = "run `FAKE_GPUS=1 bash scripts/slurm_up.sh` as root"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    assert "UP" in ping.stdout, f"no SLURM controller answers ({ping.stdout.strip()}); {up}"
    nodes = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N|%t|%G|%P"], capture_output=True, text=True, timeout=30
    ).stdout
    usable = [line for line in nodes.splitlines() if line.split("|")[1] in ("idle", "mix", "alloc")]
    assert usable, f"no usable SLURM node (drained or down?):\n{nodes}\n{up}"
    assert any("gpu" in line.split("|")[2] for line in usable), (
        f"profiles/slurm requests GPUs for training, but no node has gres/gpu:\n{nodes}\n{up}"
    )
    # must fail, not skip, when missing: pip install -e ".[workflow]"
    import snakemake_executor_plugin_slurm  # noqa: F401

    return nodes


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    """tests/config/tiny.yaml with only its `tiny` experiment and no intrinsic dimension, one
    snapshot for both runs (the file may be edited while this module runs).

    SLURM adds seconds of scheduling and polling to every job; the other experiment and the
    intrinsic-dimension rules exercise no profile feature, and with them the SLURM run took
    17 minutes of CI's budget.
    """
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"] = {"tiny": config["experiments"]["tiny"]}
    config.pop("intrinsic_dimension", None)
    snapshot = tmp_path_factory.mktemp("config") / "tiny.yaml"
    snapshot.write_text(yaml.safe_dump(config, sort_keys=False))
    return snapshot


def control_jobs(config: Path) -> tuple[int, int]:
    """(control networks, control comparisons) of ``config`` (experiments.<e>.controls)."""
    from prunesim.config import validate_config
    from prunesim.controls import control_comparisons, random_pruning_iterations, seed_networks

    experiments = validate_config(yaml.safe_load(config.read_text()))["experiments"].values()
    networks = sum(len(seed_networks(e)) + len(random_pruning_iterations(e)) for e in experiments)
    return networks, sum(len(control_comparisons(e)) for e in experiments)


def pruned_networks(config: Path) -> dict[str, int]:
    """Pruned networks per experiment of ``config`` (runs x IMP iterations)."""
    experiments = yaml.safe_load(config.read_text())["experiments"]
    return {name: spec["runs"] * spec["prune"]["iterations"] for name, spec in experiments.items()}


@pytest.fixture(scope="module")
def local_run(tiny_config, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("local")
    run_snakemake(
        workdir,
        tiny_config,
        "--workflow-profile", "none",
        "--cores", "2",
        *same_threads(),
        timeout=LOCAL_TIMEOUT_S,
    )  # fmt: skip
    return workdir


@pytest.fixture(scope="module")
def slurm_run(cluster, tiny_config, tmp_path_factory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("slurm")
    proc = run_snakemake(
        workdir,
        tiny_config,
        # profiles/slurm with the test cluster's partition, sizes and polling layered on top
        "--profile", str(SLURM_PROFILE),
        "--workflow-profile", str(SLURM_LOCAL_PROFILE),
        *same_threads(),
        timeout=SLURM_TIMEOUT_S,
    )  # fmt: skip
    return workdir, proc.stdout + proc.stderr


def read_table(workdir: Path, name: str) -> pd.DataFrame:
    table = pd.read_csv(workdir / "results" / "tiny" / "tables" / f"{name}.csv")
    return table.sort_values(list(table.columns)).reset_index(drop=True)


@pytest.mark.parametrize("table", ["similarity", "accuracy"])
def test_slurm_run_equals_local_run(local_run, slurm_run, table):
    slurm_workdir, _ = slurm_run
    local, remote = read_table(local_run, table), read_table(slurm_workdir, table)
    assert len(local) > 0
    # same seed, same threads, CPU both times: the numbers must be identical, not just close
    pd.testing.assert_frame_equal(remote, local, check_exact=True)


def test_similarity_jobs_are_grouped_per_network(slurm_run, tiny_config):
    workdir, log = slurm_run
    networks = pruned_networks(tiny_config)
    submissions = re.findall(r"submitted with SLURM jobid (\d+)", log)
    groups = re.findall(r"^.*Group job (\w+) ", log, flags=re.MULTILINE)
    control_networks, comparisons = control_jobs(tiny_config)
    sim_groups = {g for g in groups if g.startswith("sim_")}
    net_groups = {g for g in groups if g.startswith("net_")}
    ctl_groups = {g for g in groups if g.startswith("ctl_")}
    # one similarity group per pruned network and per control comparison; one GPU group per
    # network (dense and the controls' included)
    assert len(sim_groups) == sum(networks.values()), groups
    assert len(ctl_groups) == comparisons, groups
    assert len(net_groups) == sum(networks.values()) + len(networks) + control_networks, groups
    # every other submission is a single job (printed unindented, group members indented),
    # and none of those is a training, extraction or similarity job
    singles = re.findall(r"^rule (\w+):", log, flags=re.MULTILINE)
    assert len(submissions) == len(groups) + len(singles), (singles, groups)
    grouped_rules = {"train_dense", "imp_iter", "extract_acts", "train_seed", "random_prune"}
    assert not [r for r in singles if r in grouped_rules or "similarity_" in r]
    assert (workdir / ".snakemake" / "slurm_logs").is_dir()


def squeue_jobs_of(workdir: Path) -> list[dict[str, str]]:
    """Jobs (finished ones too: MinJobAge = 3600 s, see slurm_up.sh) run in ``workdir``."""
    fields = ["JobID", "WorkDir", "tres-per-job", "State"]
    out = subprocess.run(
        [
            "squeue",
            "--states=all",
            "-h",
            "-O",
            "JobID:20|,WorkDir:4096|,tres-per-job:200|,State:20",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    rows = [[value.strip() for value in line.split("|", 3)] for line in out.splitlines()]
    jobs = [dict(zip(fields, row, strict=True)) for row in rows]
    return [job for job in jobs if job["WorkDir"].rstrip("/") == str(workdir).rstrip("/")]


def test_training_jobs_got_a_gpu_from_slurm(slurm_run, tiny_config):
    """profiles/slurm's GPU request (`gpu: 1` -> sbatch --gpus=1) reaches SLURM: every
    train_dense/imp_iter group job holds one GPU, the similarity jobs none."""
    workdir, _ = slurm_run
    ours = squeue_jobs_of(workdir)
    assert ours, f"no job of {workdir} in squeue"
    assert all(job["State"] == "COMPLETED" for job in ours), ours
    with_gpu = [job for job in ours if "gpu" in job["tres-per-job"]]
    networks = pruned_networks(tiny_config)
    control_networks, _ = control_jobs(tiny_config)
    assert len(with_gpu) == sum(networks.values()) + len(networks) + control_networks, ours
