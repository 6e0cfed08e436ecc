"""Heatmap of one metric between every pruned layer and every dense layer (torch-free).

Inputs: ``similarity`` (the aggregate rule's similarity table, with cross-layer rows).
Outputs: ``heatmap`` (SVG) and ``png`` (the same figure as PNG): mean over runs at the last
cross-layer IMP iteration.
Wildcards: ``metric``. Params: ``iteration`` (the IMP iteration shown), ``density_axis``
(``figures.density_axis``: which proportion remaining the title gives).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import matplotlib

matplotlib.use("Agg")

from prunesim.joblog import run_job


def main(log):
    from prunesim import plotting

    out = [snakemake.output.heatmap, snakemake.output.png]
    plotting.plot_cross_layer(
        snakemake.input.similarity,
        snakemake.wildcards.metric,
        out,
        iteration=snakemake.params.iteration,
        density_axis=snakemake.params.density_axis,
    )
    log.info("wrote %s", ", ".join(out))


run_job(snakemake, main)
