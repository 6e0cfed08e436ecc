"""Train the dense network of one experiment.

Inputs: ``arrays`` (prepared dataset).
Outputs: ``model`` (checkpoint), ``rewind`` (weights at ``rewind_epoch``, for weight
rewinding), ``metrics`` (test accuracy, density).
Params: ``model``, ``width``, ``train`` (training settings), ``rewind_epoch``,
``prune_output_layer``, ``seed``, ``resume`` (per-epoch checkpoint that survives a kill).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job
from prunesim.seeds import derive_seed


def main(log):
    from prunesim.imp import train_dense_network
    from prunesim.settings import TrainSettings

    experiment = snakemake.wildcards.experiment
    train_dense_network(
        snakemake.input.arrays,
        experiment=experiment,
        model_name=snakemake.params.model,
        width=snakemake.params.width,
        train_settings=TrainSettings.from_config(snakemake.params.train),
        out_model=snakemake.output.model,
        out_metrics=snakemake.output.metrics,
        rewind_epoch=snakemake.params.rewind_epoch,
        out_rewind=snakemake.output.rewind,
        seed=derive_seed(snakemake.params.seed, experiment, "dense"),
        threads=snakemake.threads,
        resume_path=snakemake.params.resume,
        prune_output_layer=snakemake.params.prune_output_layer,
    )


run_job(snakemake, main, resume=snakemake.params.resume)
