"""Check one experiment's tables against the paper's claims (torch-free).

Inputs: ``similarity``, ``accuracy`` (the aggregate rule's tables), ``claims``
(``workflow/resources/paper_claims.yaml``).
Output: ``comparison`` (CSV, one row per claim: holds / differs / skipped, and why).
Params: ``model``, ``dataset``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job


def main(log):
    from prunesim.paper import write_comparison

    params = snakemake.params
    table = write_comparison(
        snakemake.input.similarity,
        snakemake.input.accuracy,
        snakemake.input.claims,
        params.model,
        params.dataset,
        out=snakemake.output.comparison,
    )
    counts = table["status"].value_counts()
    log.info(
        "%d claims: %s",
        len(table),
        ", ".join(f"{counts.get(s, 0)} {s}" for s in ("holds", "differs", "skipped")),
    )
    for row in table[table["status"] == "differs"].itertuples():
        log.warning("%s differs: %s", row.claim, row.reason)
    log.info("wrote %s", snakemake.output.comparison)


run_job(snakemake, main)
