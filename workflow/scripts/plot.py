"""Draw one experiment's figures from its tables (torch-free).

Inputs: ``similarity``, ``accuracy``, ``masks`` (the aggregate rule's CSV tables).
Outputs: ``accuracy``, ``output_similarity``, ``mask_overlap``, ``similarity_<metric>`` for
every metric in ``params.metrics``, and optionally ``cross_layer_<metric>`` (a heatmap of
every pruned layer vs every dense layer at the last IMP iteration). The format follows each
file's suffix (.svg, .png, .pdf).
Params: ``metrics`` (list of metric names).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import matplotlib

matplotlib.use("Agg")

from prunesim.joblog import run_job


def main(log):
    from prunesim import plotting

    tables, out = snakemake.input, snakemake.output
    metrics = list(snakemake.params.metrics)
    plotting.plot_accuracy(tables.accuracy, out.accuracy)
    plotting.plot_output_similarity(tables.similarity, out.output_similarity, metrics=metrics)
    plotting.plot_mask_overlap(tables.masks, out.mask_overlap)
    for metric in metrics:
        plotting.plot_layerwise(tables.similarity, metric, out[f"similarity_{metric}"])
        if f"cross_layer_{metric}" in out.keys():  # noqa: SIM118 (Namedlist: keys are the names)
            plotting.plot_cross_layer(tables.similarity, metric, out[f"cross_layer_{metric}"])
    log.info("wrote %s", ", ".join(str(p) for p in out))


run_job(snakemake, main)
