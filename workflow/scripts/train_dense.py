"""Train a dense network: the experiment's reference (rule train_dense) or seed network k of
the seed-baseline control (rule train_seed: the same settings, another seed).

Inputs: ``arrays`` (prepared dataset).
Outputs: ``model`` (checkpoint), ``rewind`` (weights at ``rewind_epoch``, for weight
rewinding), ``metrics`` (test accuracy, density; a seed network's say network ``seed``,
run k).
Params: ``model``, ``width``, ``train`` (training settings), ``rewind_epoch``,
``prune_output_layer``, ``seed`` (base seed), ``resume`` (per-epoch checkpoint that survives
a kill). Wildcard ``seed_network`` (train_seed only): k.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job
from prunesim.seeds import derive_seed


def network_seed(experiment: str, seed_network: int | None) -> int:
    """The reference network's seed, or seed network k's: both derived from the base seed."""
    if seed_network is None:
        return derive_seed(snakemake.params.seed, experiment, "dense")
    return derive_seed(snakemake.params.seed, experiment, "seed", seed_network)


def main(log):
    from prunesim.imp import train_dense_network
    from prunesim.settings import TrainSettings

    experiment = snakemake.wildcards.experiment
    k = snakemake.wildcards.get("seed_network")
    seed_network = None if k is None else int(k)
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
        seed=network_seed(experiment, seed_network),
        threads=snakemake.threads,
        resume_path=snakemake.params.resume,
        prune_output_layer=snakemake.params.prune_output_layer,
        seed_network=seed_network,
    )


run_job(snakemake, main, resume=snakemake.params.resume)
