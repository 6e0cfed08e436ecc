"""scripts/publish_results.py: copies a finished study's tables and PNGs, sums job times,
and refuses an unfinished one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "publish_results.py"
TABLES = ("similarity.csv", "accuracy.csv", "masks.csv", "paper_comparison.csv")
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def fake_run(root: Path, experiments=("a", "b"), benchmarks="logs/benchmarks") -> Path:
    for name in experiments:
        tables, figures = root / "results" / name / "tables", root / "results" / name / "figures"
        tables.mkdir(parents=True)
        figures.mkdir(parents=True)
        for table in TABLES:
            (tables / table).write_text(f"x\n{name}\n")
        (tables / "accuracy.csv").write_text(
            "experiment,run,iteration,density_all_params,test_accuracy\n"
            f"{name},0,0,1.0,0.9\n{name},1,1,0.8,0.91\n{name},2,1,0.8,0.93\n"
        )
        (tables / "paper_comparison.csv").write_text(
            "claim,figure,description,scope,paper_value,measured_value,status,reason\n"
            "cka_floor,Fig. 6,CKA,all,>= 0.75,0.8,holds,\n"
            "cos,Fig. 8,cosine,last,[0.80 | 0.97],0.5,differs,narrower net\n"
        )
        (figures / "layerwise.png").write_bytes(b"png")
        (figures / "layerwise.svg").write_text("<svg/>")  # not published: PNG copies only
    (root / "results" / "figures").mkdir()
    (root / "results" / "figures" / "accuracy_all.png").write_bytes(b"png")
    jobs = {"train_dense": [(100.0, 190.0), (50.5, 99.0)], "aggregate": [(2, 1)]}
    for rule, rows in jobs.items():
        for i, (wall, cpu) in enumerate(rows):
            tsv = root / benchmarks / rule / "x" / f"{i}.tsv"
            tsv.parent.mkdir(parents=True, exist_ok=True)
            tsv.write_text(BENCH_HEADER + f"{wall}\t0:00:00\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    return root


def publish(workdir: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--workdir", str(workdir), "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


# the rules' benchmark: files; a study run before they moved under logs/ has them in benchmarks/
@pytest.mark.parametrize("benchmarks", ["logs/benchmarks", "benchmarks"])
def test_publishes_tables_pngs_and_job_times(tmp_path, benchmarks):
    run = fake_run(tmp_path / "run", benchmarks=benchmarks)
    out = tmp_path / "docs"
    proc = publish(run, out)
    assert proc.returncode == 0, proc.stderr
    for name in ("a", "b"):
        assert sorted(p.name for p in (out / name).iterdir()) == sorted([*TABLES, "layerwise.png"])
        assert (out / name / "masks.csv").read_text() == f"x\n{name}\n"
    assert (out / "accuracy_all.png").read_bytes() == b"png"
    summary = (out / "summary.md").read_text()
    assert "| 0 | 100.0 % | 90.00 % | 1 |" in summary
    assert "| 1 | 80.0 % | 92.00 % (91.0-93.0) | 2 |" in summary
    assert "| cos | Fig. 8 | [0.80 \\| 0.97] | 0.5 | differs | narrower net |" in summary
    assert summary.count("## ") == 2 + 2 * 2  # per experiment: its heading and two tables
    times = pd.read_csv(out / "job_times.csv")
    assert times.to_dict("records") == [
        {"rule": "aggregate", "jobs": 1, "wall_s": 2.0, "cpu_s": 1.0},
        {"rule": "train_dense", "jobs": 2, "wall_s": 150.5, "cpu_s": 289.0},
    ]


def test_refuses_an_unfinished_study(tmp_path):
    run = fake_run(tmp_path / "run")
    (run / "results" / "b" / "tables" / "paper_comparison.csv").unlink()
    proc = publish(run, tmp_path / "docs")
    assert proc.returncode != 0
    assert "has not finished" in proc.stderr
    assert "results/b/tables/paper_comparison.csv" in proc.stderr
    assert not (tmp_path / "docs").exists(), "an unfinished study was partly published"


def test_accuracy_summary_leaves_out_the_controls_networks(tmp_path):
    """A seed network (iteration 0) and a random network (iteration 1) are not IMP's."""
    run = fake_run(tmp_path / "run", experiments=("a",))
    (run / "results" / "a" / "tables" / "accuracy.csv").write_text(
        "experiment,run,iteration,density_all_params,test_accuracy,network\n"
        "a,0,0,1.0,0.9,dense\na,1,1,0.8,0.91,imp\na,2,1,0.8,0.93,imp\n"
        "a,1,0,1.0,0.5,seed\na,1,1,0.8,0.1,random\n"
    )
    proc = publish(run, tmp_path / "docs")
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "docs" / "summary.md").read_text()
    assert "| 0 | 100.0 % | 90.00 % | 1 |" in summary
    assert "| 1 | 80.0 % | 92.00 % (91.0-93.0) | 2 |" in summary
