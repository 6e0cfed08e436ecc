"""One experiment's intrinsic dimensions as a tidy table (torch-free).

Inputs: ``ids`` (every network's intrinsic-dimension JSON), ``networks`` (their
``metrics.json``, for the densities). Outputs: ``table`` (``intrinsic_dimension.csv``).
Params: ``experiment``, ``model``, ``dataset``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job


def main(log):
    from prunesim.tables import intrinsic_dimension_table, read_network_metrics, write_csv

    params = snakemake.params
    table = intrinsic_dimension_table(
        snakemake.input.ids,
        read_network_metrics(snakemake.input.networks),
        params.experiment,
        params.model,
        params.dataset,
    )
    write_csv(table, snakemake.output.table)
    log.info("wrote %s (%d rows)", snakemake.output.table, len(table))


run_job(snakemake, main)
