"""Draw the random-pruning control beside IMP for one experiment (torch-free).

Inputs: ``similarity``, ``accuracy`` (the aggregate rule's tables).
Outputs: ``figure`` (SVG) and ``png``.
Params: ``density_axis``, ``ylim`` (the config's ``figures:`` settings these figures use).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import matplotlib

matplotlib.use("Agg")

from prunesim.joblog import run_job


def main(log):
    from prunesim import plotting

    params = snakemake.params
    settings = plotting.figure_settings(
        {"density_axis": params.density_axis, "similarity_ylim": params.ylim}
    )
    plotting.plot_random_pruning(
        snakemake.input.similarity,
        snakemake.input.accuracy,
        [snakemake.output.figure, snakemake.output.png],
        ylim=settings["similarity_ylim"],
        density_axis=settings["density_axis"],
    )
    log.info("wrote %s", ", ".join(str(p) for p in snakemake.output))


run_job(snakemake, main)
