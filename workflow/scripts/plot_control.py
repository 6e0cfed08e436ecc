"""Draw one control's figure for one experiment (torch-free): random pruning beside IMP, or
run against run beside pruned against dense.

Inputs: the aggregate rule's tables the figure reads, in the order its plotting function
takes them: ``similarity`` (then ``accuracy``, for random pruning).
Outputs: ``figure`` (SVG) and ``png``.
Params: ``figure`` (``random_pruning`` | ``run_vs_run``), ``density_axis``, ``ylim`` (the
config's ``figures:`` settings these figures use).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import matplotlib

matplotlib.use("Agg")

from prunesim.joblog import run_job


def main(log):
    from prunesim import plotting

    draw = {
        "random_pruning": plotting.plot_random_pruning,
        "run_vs_run": plotting.plot_run_vs_run,
    }[snakemake.params.figure]
    params = snakemake.params
    settings = plotting.figure_settings(
        {"density_axis": params.density_axis, "similarity_ylim": params.ylim}
    )
    draw(
        *snakemake.input,
        [snakemake.output.figure, snakemake.output.png],
        ylim=settings["similarity_ylim"],
        density_axis=settings["density_axis"],
    )
    log.info("wrote %s", ", ".join(str(p) for p in snakemake.output))


run_job(snakemake, main)
