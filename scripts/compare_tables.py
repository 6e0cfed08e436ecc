"""Compare the tables of two runs of the workflow: the same numbers up to floating-point noise?

    python scripts/compare_tables.py BEFORE_DIR AFTER_DIR [--tolerance 1e-9]

Why: a change meant to be a refactor or a speed-up (issue #13's shared statistics, the
``shell:`` similarity jobs) must leave every table as it was. Each directory is a workflow's
working directory; per experiment (``results/<experiment>/tables``) the script matches the
rows of ``similarity.csv`` and ``accuracy.csv`` on the key columns both tables have, reports
the largest absolute difference of each numeric column, and the rows only one run has (e.g.
the controls' comparisons, which an older run lacks). Rows only in AFTER are listed by
comparison, not counted as differences; a row of BEFORE missing from AFTER is one.

Exit status 1 if a shared value differs by more than ``--tolerance`` or a BEFORE row is
missing from AFTER.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from prunesim.controls import NETWORK_KINDS, PRUNED_VS_DENSE
from prunesim.tables import DENSE_RUN

#: Columns that identify a row (those both tables have are used).
KEYS = {
    "similarity.csv": [
        "experiment",
        "comparison",
        "run",
        "run_b",
        "iteration",
        "layer",
        "layer_b",
        "metric",
    ],
    "accuracy.csv": ["experiment", "network", "run", "iteration"],
}
#: Numeric columns compared (those both tables have).
VALUES = {
    "similarity.csv": ["value", "density", "density_all_params"],
    "accuracy.csv": ["test_accuracy", "density", "density_all_params"],
}
#: The key values a row of an older table can have (it predates the column, and the controls):
#: IMP's pruned networks against the dense one; the dense and IMP networks' accuracies.
IMPLICIT = {"comparison": {PRUNED_VS_DENSE}, "network": set(NETWORK_KINDS[:2])}


def load(path: Path, experiment: str) -> pd.DataFrame:
    """A table in today's key layout: an ``experiment`` column, the dense network's run
    (``DENSE_RUN``; older accuracy tables left it empty)."""
    table = pd.read_csv(path)
    if "experiment" not in table.columns:
        table.insert(0, "experiment", experiment)
    if "run" in table.columns:
        table["run"] = table["run"].fillna(DENSE_RUN).astype(int)
    return table


def restrict_to_before(before: pd.DataFrame, after: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """AFTER's rows of the kinds BEFORE has (a column BEFORE lacks holds its implicit value)."""
    extra = []
    for column, implicit in IMPLICIT.items():
        if column in after.columns and column not in before.columns:
            counts = after[column].value_counts().items()
            extra += [f"{k}: {v} rows" for k, v in counts if k not in implicit]
            after = after[after[column].isin(implicit)]
    return after, "; ".join(extra)


def compare_table(before: pd.DataFrame, after: pd.DataFrame, name: str) -> tuple[dict, int, str]:
    """({column: largest |difference|}, rows of BEFORE missing in AFTER, AFTER-only kinds)."""
    after, extra = restrict_to_before(before, after)
    keys = [k for k in KEYS[name] if k in before.columns and k in after.columns]
    values = [v for v in VALUES[name] if v in before.columns and v in after.columns]
    merged = before[keys + values].merge(
        after[keys + values], on=keys, how="left", suffixes=("_before", "_after"), indicator=True
    )
    missing = int((merged["_merge"] == "left_only").sum())
    both = merged[merged["_merge"] == "both"]
    diffs = {
        v: float((both[f"{v}_before"] - both[f"{v}_after"]).abs().max()) if len(both) else 0.0
        for v in values
    }
    return diffs, missing, extra


def compare_runs(before_dir: Path, after_dir: Path, tolerance: float) -> bool:
    """Print the comparison of every experiment's tables; True if they agree."""
    ok = True
    for tables in sorted((before_dir / "results").glob("*/tables")):
        experiment = tables.parent.name
        for name in KEYS:
            other = after_dir / "results" / experiment / "tables" / name
            if not (tables / name).is_file():
                continue
            if not other.is_file():
                print(f"{experiment}/{name}: missing in {after_dir}")
                ok = False
                continue
            diffs, missing, extra = compare_table(
                load(tables / name, experiment), load(other, experiment), name
            )
            worst = max(diffs.values(), default=0.0)
            status = "same" if worst <= tolerance and not missing else "DIFFERENT"
            ok &= status == "same"
            detail = ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
            print(f"{experiment}/{name}: {status}; largest |before - after|: {detail}; "
                  f"before rows missing after: {missing}"
                  + (f"; only after: {extra}" if extra else ""))  # fmt: skip
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="working directory of the first run")
    parser.add_argument("after", type=Path, help="working directory of the second run")
    parser.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args(argv)
    if not list((args.before / "results").glob("*/tables")):
        parser.error(f"{args.before}/results holds no experiment's tables: is it a run's folder?")
    return 0 if compare_runs(args.before, args.after, args.tolerance) else 1


if __name__ == "__main__":
    sys.exit(main())
