"""Similarity of one pruned layer with its dense counterpart under one metric.

Never imports torch: these jobs run tens of thousands of times.
Inputs: ``pruned``, ``dense`` (activation HDF5 files), ``impl`` (the metric's module,
declared so that editing it reruns this metric only).
Outputs: one JSON file (value in [0, 1], or null with a note explaining the gap).
Params: ``metric`` (name), ``settings`` (that metric's config block only).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from prunesim.joblog import run_job


def main(log):
    import h5py

    from prunesim.atomic import write_json
    from prunesim.metrics import similarity_from_hdf5

    wc = snakemake.wildcards
    result = similarity_from_hdf5(
        snakemake.params.metric,
        snakemake.input.pruned,
        wc.layer_a,
        snakemake.input.dense,
        wc.layer_b,
        dict(snakemake.params.settings),
    )
    with h5py.File(snakemake.input.pruned, "r") as h5:
        model = str(h5.attrs.get("model", ""))
    record = {
        "experiment": wc.experiment,
        "model": model,
        "run": int(wc.run),
        "iteration": int(wc.iteration),
        "metric": snakemake.params.metric,
        "layer_a": wc.layer_a,
        "layer_b": wc.layer_b,
        "settings": dict(snakemake.params.settings),
        **result,
    }
    log.info("%s(%s, %s) = %s", record["metric"], wc.layer_a, wc.layer_b, record["value"])
    write_json(snakemake.output[0], record)


run_job(snakemake, main)
