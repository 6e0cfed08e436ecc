"""Collect one experiment's per-job results into the tidy tables (torch-free).

Inputs: ``similarity`` (every similarity job's JSON), ``networks`` (every network's
``metrics.json``, dense included), ``masks`` (every pruned network's ``mask.npz``, under
``run<r>/iter<k>/``), ``controls`` (the controls' similarity JSON), ``control_networks``
(the control networks' ``metrics.json``).
Outputs: ``similarity``, ``accuracy``, ``masks`` (CSV tables, see docs/architecture.md).
Params: ``experiment``, ``model``, ``dataset``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job


def main(log):
    from prunesim.masks import mask_overlap_table
    from prunesim.tables import build_tables, network_of_path

    params = snakemake.params
    masks = {network_of_path(path): path for path in snakemake.input.masks}
    log.info("mask overlap of %d pruned networks", len(masks))
    overlap = mask_overlap_table(masks, params.experiment) if masks else None
    log.info(
        "tables from %d similarity files and %d networks",
        len(snakemake.input.similarity) + len(snakemake.input.controls),
        len(snakemake.input.networks) + len(snakemake.input.control_networks),
    )
    tables = build_tables(
        params.experiment,
        params.model,
        params.dataset,
        [*snakemake.input.similarity, *snakemake.input.controls],
        [*snakemake.input.networks, *snakemake.input.control_networks],
        overlap,
        out_similarity=snakemake.output.similarity,
        out_accuracy=snakemake.output.accuracy,
        out_masks=snakemake.output.masks,
    )
    gaps = tables["similarity"]["value"].isna().sum()
    if gaps:
        log.warning("%d similarity values are undefined; the note column says why", gaps)
    log.info("wrote %s", ", ".join(str(p) for p in snakemake.output))


run_job(snakemake, main)
