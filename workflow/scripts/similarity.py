"""Similarity of pruned layers with their dense counterparts under one metric.

Never imports torch: these jobs run tens of thousands of times.
Inputs: ``pruned``, ``dense`` (activation HDF5 files), ``impl`` (the metric's module,
declared so that editing it reruns this metric only).
Outputs: one JSON file: a record (value in [0, 1], or null with a note explaining the gap)
for a single layer pair, or ``{"records": [...]}`` when the job covers a whole network.
Params: ``metric`` (the config's name), ``base_metric`` (the built-in it computes: itself,
or a variant's ``metric``), ``settings`` (that metric's config block only), ``pairs``
([pruned layer, dense layer] pairs).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job


def main(log):
    from prunesim.atomic import write_json
    from prunesim.metrics import similarity_from_hdf5

    wc, metric, base = snakemake.wildcards, snakemake.params.metric, snakemake.params.base_metric
    settings = dict(snakemake.params.settings)
    records = []
    for layer_a, layer_b in snakemake.params.pairs:
        result = similarity_from_hdf5(
            base, snakemake.input.pruned, layer_a, snakemake.input.dense, layer_b, settings
        )
        records.append(
            {
                "experiment": wc.experiment,
                "run": int(wc.run),
                "iteration": int(wc.iteration),
                "metric": metric,
                "base_metric": base,
                "layer_a": layer_a,
                "layer_b": layer_b,
                "settings": settings,
                **result,
            }
        )
        log.info("%s(%s, %s) = %s", metric, layer_a, layer_b, result["value"])
    single = "layer_a" in wc.keys()  # noqa: SIM118 (Namedlist: keys are the names)
    write_json(snakemake.output[0], records[0] if single else {"records": records})


run_job(snakemake, main)
