"""Intrinsic dimension of each layer, one line per IMP iteration (torch-free).

Inputs: ``table`` (``intrinsic_dimension.csv``). Outputs: ``figure`` (SVG), ``png``.
Params: ``figures`` (the ``figures`` config block: density_axis, similarity_bands).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import matplotlib

matplotlib.use("Agg")

from prunesim.joblog import run_job


def main(log):
    from prunesim import plotting

    settings = plotting.figure_settings(snakemake.params.figures)
    out = [snakemake.output.figure, snakemake.output.png]
    plotting.plot_intrinsic_dimension(
        snakemake.input.table,
        out,
        bands=settings["similarity_bands"],
        density_axis=settings["density_axis"],
    )
    log.info("wrote %s", ", ".join(out))


run_job(snakemake, main)
