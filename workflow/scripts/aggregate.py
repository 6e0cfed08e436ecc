"""Collect one experiment's per-job results into the tidy tables (torch-free).

Inputs: ``similarity`` (every similarity job's JSON), ``networks`` (every network's
``metrics.json``, dense included), ``masks`` (every pruned network's ``mask.npz``, under
``run<r>/iter<k>/``), ``controls`` (the controls' similarity JSON), ``control_networks``
(the control networks' ``metrics.json``).
Outputs: ``similarity``, ``accuracy``, ``masks`` (CSV tables, see docs/architecture.md).
Params: ``experiment``, ``model``, ``dataset``, ``masks`` ([run, iteration] of each mask
file), ``controls`` ([comparison, run_b] of each control similarity file; run_b null: the
dense network), each in its input's order.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job


def main(log):
    from prunesim.masks import mask_overlap_table
    from prunesim.tables import build_tables

    params, inputs = snakemake.params, snakemake.input
    masks = {tuple(net): path for net, path in zip(params.masks, inputs.masks, strict=True)}
    controls = [
        (comparison, run_b, path)
        for (comparison, run_b), path in zip(params.controls, inputs.controls, strict=True)
    ]
    log.info("mask overlap of %d pruned networks", len(masks))
    overlap = mask_overlap_table(masks, params.experiment) if masks else None
    log.info(
        "tables from %d similarity files and %d networks",
        len(inputs.similarity) + len(controls),
        len(inputs.networks) + len(inputs.control_networks),
    )
    tables = build_tables(
        params.experiment,
        params.model,
        params.dataset,
        inputs.similarity,
        [*inputs.networks, *inputs.control_networks],
        overlap,
        out_similarity=snakemake.output.similarity,
        out_accuracy=snakemake.output.accuracy,
        out_masks=snakemake.output.masks,
        control_similarity=controls,
    )
    gaps = tables["similarity"]["value"].isna().sum()
    if gaps:
        log.warning("%d similarity values are undefined; the note column says why", gaps)
    log.info("wrote %s", ", ".join(str(p) for p in snakemake.output))


run_job(snakemake, main)
