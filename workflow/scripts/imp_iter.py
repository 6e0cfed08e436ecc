"""One Iterative Magnitude Pruning iteration: prune iteration k-1, retrain, save.

Inputs: ``previous`` (iteration k-1 of this run, or the dense net), ``rewind`` (dense
weights at the rewind epoch, used by weight rewinding), ``arrays``.
Outputs: ``model`` (checkpoint with masks), ``metrics`` (accuracy, density), ``mask``
(packed masks for the torch-free mask-overlap table).
Params: ``train``, ``prune`` (this experiment's settings), ``seed``, ``resume``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job
from prunesim.seeds import derive_seed


def main(log):
    from prunesim.imp import run_imp_iteration
    from prunesim.settings import PruneSettings, TrainSettings

    wc = snakemake.wildcards
    run, iteration = int(wc.run), int(wc.iteration)
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
        seed=derive_seed(snakemake.params.seed, wc.experiment, run, iteration),
        threads=snakemake.threads,
        resume_path=snakemake.params.resume,
    )


run_job(snakemake, main, resume=snakemake.params.resume)
