"""`python -m prunesim.similarity_job`: the similarity rules' lean entry point (issue #13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import REPO
from prunesim.metrics import DEFAULT_SETTINGS, similarity_from_hdf5
from prunesim.similarity_job import main, parse_job


def write_h5(path, **datasets):
    with h5py.File(path, "w") as h5:
        for key, value in datasets.items():
            h5.create_dataset(key, data=value)
    return str(path)


@pytest.fixture
def activations(tmp_path):
    rng = np.random.default_rng(0)
    dense = {"conv1": rng.standard_normal((30, 4, 3, 3)), "out": rng.standard_normal((30, 5))}
    pruned = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in dense.items()}
    return write_h5(tmp_path / "pruned.h5", **pruned), write_h5(tmp_path / "dense.h5", **dense)


def job(metric="svcca", pairs=(("conv1", "conv1"),), single=True, **settings):
    return {
        "experiment": "e",
        "run": 1,
        "iteration": 2,
        "metric": metric,
        "base_metric": metric,
        "settings": {**DEFAULT_SETTINGS[metric], **settings},
        "pairs": [list(p) for p in pairs],
        "single": single,
    }


def run_cli(activations, tmp_path, spec):
    pruned, dense = activations
    out, log = tmp_path / "out.json", tmp_path / "job.log"
    argv = ["--pruned", pruned, "--dense", dense, "--out", str(out), "--log", str(log)]
    main([*argv, "--job", json.dumps(spec)])
    return json.loads(out.read_text()), log.read_text()


def test_single_pair_record_equals_the_library(activations, tmp_path):
    spec = job(keep=0.9)
    record, log = run_cli(activations, tmp_path, spec)
    expected = similarity_from_hdf5("svcca", *activations[:1], "conv1", activations[1], "conv1",
                                    spec["settings"])  # fmt: skip
    assert record["value"] == expected["value"]
    assert record["details"] == expected["details"]
    assert (record["experiment"], record["run"], record["iteration"]) == ("e", 1, 2)
    assert (record["layer_a"], record["layer_b"], record["metric"]) == ("conv1", "conv1", "svcca")
    assert record["settings"] == spec["settings"]
    assert "svcca(conv1, conv1) = " in log


def test_network_job_writes_every_pair(activations, tmp_path):
    pairs = [("conv1", "conv1"), ("out", "out")]
    result, _ = run_cli(activations, tmp_path, job("cka", pairs=pairs, single=False))
    assert [(r["layer_a"], r["layer_b"]) for r in result["records"]] == pairs
    assert all(0 <= r["value"] <= 1 for r in result["records"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"experiment": "e"}', "lacks"),
    ],
)
def test_bad_job_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_job(text)


def test_bad_pairs_are_refused():
    spec = job()
    spec["pairs"] = [["conv1"]]
    with pytest.raises(ValueError, match=r"\[layer_a, layer_b\]"):
        parse_job(json.dumps(spec))


def test_cli_imports_neither_snakemake_nor_torch(activations, tmp_path):
    """What makes a job cheap: no Snakemake preamble, no torch, no unused metric libraries."""
    pruned, dense = activations
    spec = json.dumps(job("cka"))
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['x', '--pruned', {pruned!r}, '--dense', {dense!r}, "
        f"'--out', {str(tmp_path / 'o.json')!r}, '--job', {spec!r}]\n"
        "runpy.run_module('prunesim.similarity_job', run_name='__main__')\n"
        "heavy = sorted(m for m in ('snakemake', 'torch', 'pandas', 'scipy') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert json.loads((tmp_path / "o.json").read_text())["value"] > 0
