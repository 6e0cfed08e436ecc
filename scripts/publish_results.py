"""Copy a finished study's tables and figures into the repository, with what it cost.

Activations and checkpoints stay where they are (they are large and rebuilt by the
workflow); what a reader needs to see the results is small:

    python scripts/publish_results.py --workdir /path/to/run --out docs/results/cifar10_cpu

copies, per experiment, ``results/<experiment>/tables/*.csv`` and
``results/<experiment>/figures/*.png`` to ``OUT/<experiment>/``, the cross-experiment
figures (``results/figures/*.png``) to ``OUT/``, and writes ``OUT/job_times.csv``: jobs,
summed wall and CPU seconds per rule, from Snakemake's ``benchmark:`` files
(``logs/benchmarks/<rule>/``), and
``OUT/summary.md``: test accuracy per IMP iteration and the comparison with the paper as
Markdown tables, ready to quote in the README. It refuses to publish a study whose tables
are missing (an unfinished run) instead of copying a part.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from collections import defaultdict
from pathlib import Path

TABLES = ("similarity.csv", "accuracy.csv", "masks.csv", "paper_comparison.csv")


def experiments(workdir: Path) -> list[str]:
    """Experiments with a tables folder under ``workdir/results``."""
    return sorted(p.parent.name for p in (workdir / "results").glob("*/tables"))


def missing_tables(workdir: Path, names: list[str]) -> list[str]:
    """Tables a finished study has and this one lacks (relative paths)."""
    return [
        f"results/{name}/tables/{table}"
        for name in names
        for table in TABLES
        if not (workdir / "results" / name / "tables" / table).is_file()
    ]


def copy_files(sources: list[Path], dest: Path) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    for source in sources:
        shutil.copy2(source, dest / source.name)
    return len(sources)


def benchmark_roots(workdir: Path) -> list[Path]:
    """Where the rules' ``benchmark:`` files lie, ``<dir>/<rule>/...``: ``logs/benchmarks``,
    and ``benchmarks`` for a study run before they moved there (beside the bench scripts)."""
    return [workdir / "logs" / "benchmarks", workdir / "benchmarks"]


def job_times(benchmark_dirs: list[Path]) -> list[dict]:
    """Per rule: jobs, summed wall seconds (``s``) and CPU seconds (``cpu_time``)."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for root in benchmark_dirs:
        for tsv in root.rglob("*.tsv"):
            rule = tsv.relative_to(root).parts[0]
            with tsv.open() as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    totals[rule][0] += 1
                    totals[rule][1] += float(row["s"])
                    totals[rule][2] += float(row.get("cpu_time") or 0.0)
    return [
        {"rule": rule, "jobs": n, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
        for rule, (n, wall, cpu) in sorted(totals.items())
    ]


def write_job_times(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["rule", "jobs", "wall_s", "cpu_s"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def markdown_cell(value) -> str:
    """One table cell: ``|`` escaped and line breaks flattened, so the table stays intact."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(markdown_cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def accuracy_summary(path: Path) -> str:
    """Mean (min-max over runs) test accuracy and density of all parameters per iteration."""
    import pandas as pd  # lazily: the copying above needs only the standard library

    table = pd.read_csv(path)
    if "network" in table:  # the controls' networks (seed, random) are not IMP's
        table = table[table["network"].isin(["dense", "imp"])]
    rows = []
    for iteration, group in table.groupby("iteration", sort=True):
        acc = group["test_accuracy"] * 100
        spread = f" ({acc.min():.1f}-{acc.max():.1f})" if len(acc) > 1 else ""
        density = group["density_all_params"].mean() * 100
        rows.append([iteration, f"{density:.1f} %", f"{acc.mean():.2f} %{spread}", len(acc)])
    return markdown_table(["IMP iteration", "parameters left", "test accuracy", "networks"], rows)


def comparison_summary(path: Path) -> str:
    import pandas as pd

    table = pd.read_csv(path, keep_default_na=False)
    columns = ["claim", "figure", "paper_value", "measured_value", "status", "reason"]
    return markdown_table(columns, table[columns].to_numpy().tolist())


def write_summary(results: Path, names: list[str], path: Path) -> None:
    parts = []
    for name in names:
        tables = results / name / "tables"
        parts += [f"## {name}", "", "### Test accuracy", ""]
        parts += [accuracy_summary(tables / "accuracy.csv"), ""]
        parts += ["### Against the paper (`paper_comparison.csv`)", ""]
        parts += [comparison_summary(tables / "paper_comparison.csv"), ""]
    path.write_text("\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="the run's directory")
    parser.add_argument("--out", type=Path, required=True, help="e.g. docs/results/cifar10_cpu")
    args = parser.parse_args(argv)
    names = experiments(args.workdir)
    if not names:
        sys.exit(f"no results/<experiment>/tables under {args.workdir}; is it a run's directory?")
    missing = missing_tables(args.workdir, names)
    if missing:
        sys.exit(
            "the study has not finished (missing: " + ", ".join(missing) + "); rerun its "
            "snakemake command until it completes, then publish"
        )
    results = args.workdir / "results"
    for name in names:
        n_tables = copy_files(sorted((results / name / "tables").glob("*.csv")), args.out / name)
        n_figures = copy_files(sorted((results / name / "figures").glob("*.png")), args.out / name)
        print(f"{name}: {n_tables} tables, {n_figures} figures -> {args.out / name}")
    copy_files(sorted((results / "figures").glob("*.png")), args.out)
    rows = job_times([p for p in benchmark_roots(args.workdir) if p.is_dir()])
    write_job_times(rows, args.out / "job_times.csv")
    write_summary(results, names, args.out / "summary.md")
    total = sum(row["wall_s"] for row in rows)
    print(f"job_times.csv: {len(rows)} rules, {total / 3600:.2f} h of job wall time in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
