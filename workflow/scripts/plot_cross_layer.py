"""Heatmap of one metric between every pruned layer and every dense layer (torch-free).

Inputs: ``similarity`` (the aggregate rule's similarity table, with cross-layer rows).
Outputs: ``heatmap`` (mean over runs at the last cross-layer IMP iteration).
Wildcards: ``metric``. Params: ``iteration`` (the IMP iteration shown).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import matplotlib

matplotlib.use("Agg")

from prunesim.joblog import run_job


def main(log):
    from prunesim import plotting

    metric = snakemake.wildcards.metric
    plotting.plot_cross_layer(
        snakemake.input.similarity,
        metric,
        snakemake.output.heatmap,
        iteration=snakemake.params.iteration,
    )
    log.info("wrote %s", snakemake.output.heatmap)


run_job(snakemake, main)
