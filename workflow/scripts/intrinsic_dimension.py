"""Intrinsic dimension (TwoNN) of every compared layer of one network on the probe set.

Torch-free. Inputs: ``acts`` (the network's activation HDF5 file). Outputs: one JSON file
``{"experiment", "run", "iteration", "settings", "records": [{layer, id, r, n_used,
n_dropped, note}]}``. Params: ``layers`` (compared layers), ``settings`` (the
``intrinsic_dimension`` config block: fraction, resamples), ``run``, ``iteration``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job


def main(log):
    from prunesim.atomic import write_json
    from prunesim.intrinsic_dimension import layer_dimensions

    params = snakemake.params
    settings = dict(params.settings)
    records = layer_dimensions(
        snakemake.input.acts,
        params.layers,
        fraction=settings["fraction"],
        resamples=settings["resamples"],
        seed=params.seed,
    )
    for rec in records:
        log.info("%s: ID %s %s", rec["layer"], rec["id"], rec["note"] or "")
    write_json(
        snakemake.output[0],
        {
            "experiment": snakemake.wildcards.experiment,
            "run": params.run,
            "iteration": params.iteration,
            "settings": settings,
            "records": records,
        },
    )


run_job(snakemake, main)
