"""Decode a dataset once into uint8 arrays and draw the fixed probe subset.

Inputs: none (the dataset comes from ``params.spec``: torchvision, a local tree, or embedded).
Outputs: ``arrays`` (.npz: x/y train/test, per-channel mean/std), ``probe`` (.npy indices).
Params: ``spec`` (this dataset's config block), ``probe_size``, ``seed``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job


def main(log):
    from prunesim.data import prepare_dataset

    prepare_dataset(
        snakemake.params.spec,
        snakemake.output.arrays,
        snakemake.output.probe,
        probe_size=snakemake.params.probe_size,
        seed=snakemake.params.seed,
    )


run_job(snakemake, main)
