"""One Iterative Magnitude Pruning iteration: prune iteration k-1, retrain, save (rule
imp_iter); or the random-pruning control at iteration k (rule random_prune): IMP's parent and
IMP's per-layer counts, pruned at random.

Inputs: ``previous`` (iteration k-1 of this run, or the dense net), ``rewind`` (dense
weights at the rewind epoch, used by weight rewinding), ``arrays``; random_prune also
``imp_mask`` (IMP's mask at iteration k of the run it follows: the per-layer counts).
Outputs: ``model`` (checkpoint with masks), ``metrics`` (accuracy, density; network
``random`` for the control), ``mask`` (packed masks for the torch-free mask-overlap table).
Params: ``train``, ``prune`` (this experiment's settings), ``seed``, ``resume``;
random_prune also ``run`` (the IMP run it follows; imp_iter's is its wildcard).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job
from prunesim.seeds import derive_seed


def random_pruning(experiment: str, run: int, iteration: int) -> dict:
    """random_prune's extra arguments (none for IMP): the counts to match and its own seed."""
    imp_mask = snakemake.input.get("imp_mask")
    if imp_mask is None:
        return {}
    seed = derive_seed(snakemake.params.seed, experiment, "random", run, iteration)
    return {"random_target": imp_mask, "random_seed": seed}


def main(log):
    from prunesim.imp import run_imp_iteration
    from prunesim.settings import PruneSettings, TrainSettings

    wc = snakemake.wildcards
    run, iteration = int(snakemake.params.get("run", wc.get("run"))), int(wc.iteration)
    run_imp_iteration(
        snakemake.input.previous,
        snakemake.input.rewind,
        snakemake.input.arrays,
        experiment=wc.experiment,
        run=run,
        iteration=iteration,
        train_settings=TrainSettings.from_config(snakemake.params.train),
        prune_settings=PruneSettings.from_config(snakemake.params.prune),
        out_model=snakemake.output.model,
        out_metrics=snakemake.output.metrics,
        out_mask=snakemake.output.mask,
        # the control uses IMP's own job seed: the same data order as the IMP network it
        # is compared with
        seed=derive_seed(snakemake.params.seed, wc.experiment, run, iteration),
        threads=snakemake.threads,
        resume_path=snakemake.params.resume,
        **random_pruning(wc.experiment, run, iteration),
    )


run_job(snakemake, main, resume=snakemake.params.resume)
