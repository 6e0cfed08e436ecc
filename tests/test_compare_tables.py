"""scripts/compare_tables.py: same tables up to noise pass, a changed or lost value fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_tables.py"

#: an older table: no experiment, comparison, run_b or network column (as before the controls)
BEFORE_SIMILARITY = pd.DataFrame(
    {
        "run": [1, 1, 2],
        "iteration": [1, 1, 1],
        "layer": ["conv1", "out", "conv1"],
        "layer_b": ["conv1", "out", "conv1"],
        "metric": ["cka", "cka", "cka"],
        "value": [0.91, 0.97, 0.88],
        "density": [0.8, 0.8, 0.8],
    }
)
#: the dense network's run was left empty then (today: 0)
BEFORE_ACCURACY = pd.DataFrame(
    {"run": [None, 1, 2], "iteration": [0, 1, 1], "test_accuracy": [0.9, 0.91, 0.92]}
)


def after_tables(noise: float = 0.0, drop_last: bool = False):
    """The same rows in today's layout, plus a control's rows that the older run lacks."""
    sim = BEFORE_SIMILARITY.assign(
        experiment="exp",
        comparison="pruned_vs_dense",
        run_b=0,
        value=BEFORE_SIMILARITY.value + noise,
    )
    control = sim.iloc[:1].assign(comparison="seed_vs_dense", run=1, run_b=0, value=0.5)
    sim = pd.concat([sim.iloc[:-1] if drop_last else sim, control])
    acc = BEFORE_ACCURACY.assign(experiment="exp", run=[0, 1, 2], network=["dense", "imp", "imp"])
    seed = acc.iloc[:1].assign(network="seed", run=1, test_accuracy=0.5)  # collides on run/iter
    return sim, pd.concat([acc, seed])


def write_run(root: Path, similarity: pd.DataFrame, accuracy: pd.DataFrame) -> Path:
    tables = root / "results" / "exp" / "tables"
    tables.mkdir(parents=True)
    similarity.to_csv(tables / "similarity.csv", index=False)
    accuracy.to_csv(tables / "accuracy.csv", index=False)
    return root


def compare(before: Path, after: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), str(before), str(after)]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_noise_level_differences_and_control_rows_pass(tmp_path):
    before = write_run(tmp_path / "before", BEFORE_SIMILARITY, BEFORE_ACCURACY)
    after = write_run(tmp_path / "after", *after_tables(noise=3e-13))
    proc = compare(before, after)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exp/similarity.csv: same" in proc.stdout
    assert "only after: seed_vs_dense: 1 rows" in proc.stdout
    assert "exp/accuracy.csv: same" in proc.stdout
    assert "value 3.0e-13" in proc.stdout


def test_a_changed_value_fails(tmp_path):
    before = write_run(tmp_path / "before", BEFORE_SIMILARITY, BEFORE_ACCURACY)
    after = write_run(tmp_path / "after", *after_tables(noise=1e-6))
    proc = compare(before, after)
    assert proc.returncode == 1
    assert "exp/similarity.csv: DIFFERENT" in proc.stdout


def test_a_lost_row_fails(tmp_path):
    before = write_run(tmp_path / "before", BEFORE_SIMILARITY, BEFORE_ACCURACY)
    after = write_run(tmp_path / "after", *after_tables(drop_last=True))
    proc = compare(before, after)
    assert proc.returncode == 1
    assert "before rows missing after: 1" in proc.stdout


def test_a_folder_without_tables_is_refused(tmp_path):
    proc = compare(tmp_path, tmp_path)
    assert proc.returncode == 2
    assert "holds no experiment's tables" in proc.stderr
