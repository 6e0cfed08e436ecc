"""Draw one experiment's figures from its tables (torch-free).

Inputs: ``similarity``, ``accuracy``, ``masks`` (the aggregate rule's CSV tables).
Outputs, each an SVG (``<name>``) and a PNG beside it (``<name>_png``): ``accuracy``,
``layerwise`` (SVCCA, PWCCA, CKA, NBS in a 2 × 2 grid), ``output_similarity``,
``mask_overlap`` and ``similarity_<metric>`` for every metric in ``params.metrics`` except
the output-layer-only ones (cosine).
Params: ``metrics`` (list of metric names), ``figures`` (the config's ``figures:`` block).
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
    settings = plotting.figure_settings(snakemake.params.figures)
    axis = {"density_axis": settings["density_axis"]}
    similarity_style = {
        "bands": settings["similarity_bands"],
        "ylim": settings["similarity_ylim"],
        **axis,
    }

    def files(name):
        return [out[name], out[f"{name}_png"]]

    similarity = plotting.read_table(tables.similarity)
    plotting.plot_accuracy(tables.accuracy, files("accuracy"), **axis)
    plotting.plot_layerwise_grid(similarity, files("layerwise"), **similarity_style)
    plotting.plot_output_similarity(
        similarity, files("output_similarity"), metrics=metrics, **similarity_style
    )
    plotting.plot_mask_overlap(
        tables.masks, files("mask_overlap"), subject=plotting.table_subject(tables.accuracy)
    )
    for metric in plotting.layerwise_metrics(metrics):
        plotting.plot_layerwise(
            similarity, metric, files(f"similarity_{metric}"), **similarity_style
        )
    log.info("wrote %s", ", ".join(str(p) for p in out))


run_job(snakemake, main)
