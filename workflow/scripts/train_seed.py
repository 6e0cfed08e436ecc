"""Train seed network k of the seed-baseline control: the dense network with another seed.

Inputs: ``arrays`` (prepared dataset).
Outputs: ``model``, ``rewind``, ``metrics`` (as train_dense's; metrics say network ``seed``,
run k).
Params: ``model``, ``width``, ``train``, ``rewind_epoch``, ``prune_output_layer`` (the dense
network's settings), ``seed`` (base seed), ``resume``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job
from prunesim.seeds import derive_seed


def main(log):
    from prunesim.imp import train_dense_network
    from prunesim.settings import TrainSettings

    experiment, k = snakemake.wildcards.experiment, int(snakemake.wildcards.seed_network)
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
        # the reference dense network's seed is derive_seed(seed, experiment, "dense")
        seed=derive_seed(snakemake.params.seed, experiment, "seed", k),
        threads=snakemake.threads,
        resume_path=snakemake.params.resume,
        prune_output_layer=snakemake.params.prune_output_layer,
        seed_network=k,
    )


run_job(snakemake, main, resume=snakemake.params.resume)
