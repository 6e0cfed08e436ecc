"""Activations of every compared layer of one network on the probe set, to HDF5.

Inputs: ``model`` (checkpoint), ``arrays`` (dataset), ``probe`` (probe indices).
Outputs: ``acts`` (one HDF5 dataset per layer, chunked along samples).
Params: ``layers`` (null = all compared layers), ``dtype``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job


def main(log):
    from prunesim.activations import extract_activations

    extract_activations(
        snakemake.input.model,
        snakemake.input.arrays,
        snakemake.input.probe,
        snakemake.output.acts,
        layers=snakemake.params.layers,
        dtype=snakemake.params.dtype,
        threads=snakemake.threads,
    )


run_job(snakemake, main)
