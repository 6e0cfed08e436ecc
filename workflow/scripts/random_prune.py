"""Random-pruning control at IMP iteration k: IMP's parent, IMP's per-layer counts, at random.

Inputs: ``previous`` (iteration k-1 of the run it follows, or the dense net), ``imp_mask``
(IMP's mask at iteration k of that run: the per-layer counts), ``rewind``, ``arrays``.
Outputs: ``model``, ``metrics`` (network ``random``), ``mask``.
Params: ``train``, ``prune`` (the experiment's), ``run`` (the IMP run it follows), ``seed``,
``resume``.
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
    run, iteration = int(snakemake.params.run), int(wc.iteration)
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
        # IMP's own job seed: the same data order as the IMP network it is compared with
        seed=derive_seed(snakemake.params.seed, wc.experiment, run, iteration),
        threads=snakemake.threads,
        resume_path=snakemake.params.resume,
        random_target=snakemake.input.imp_mask,
        random_seed=derive_seed(snakemake.params.seed, wc.experiment, "random", run, iteration),
    )


run_job(snakemake, main, resume=snakemake.params.resume)
