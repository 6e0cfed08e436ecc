"""Test accuracy of every experiment side by side, one panel each (torch-free).

Inputs: ``accuracy`` (every experiment's accuracy table, in ``params.experiments`` order).
Outputs: ``figure`` (SVG) and ``png`` (the same figure as PNG).
Params: ``experiments`` (experiment names, the panels' order), ``density_axis``
(``figures.density_axis``: all_params | prunable).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import matplotlib

matplotlib.use("Agg")

from prunesim.joblog import run_job


def main(log):
    from prunesim import plotting

    tables = dict(zip(snakemake.params.experiments, snakemake.input.accuracy, strict=True))
    out = [snakemake.output.figure, snakemake.output.png]
    plotting.plot_accuracy_all(tables, out, density_axis=snakemake.params.density_axis)
    log.info("wrote %s", ", ".join(out))


run_job(snakemake, main)
