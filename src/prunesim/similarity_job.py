"""Entry point of the ``similarity_<metric>`` jobs: ``python -m prunesim.similarity_job``.

Why not a Snakemake ``script:``: a similarity job runs for well under a second on
quickstart-sized layers, while a ``script:`` job also imports the snakemake package (~0.5 s)
to unpickle its job object. A ``shell:`` rule calling this module starts at the cost of the
interpreter plus numpy and h5py (issue #13; ``benchmarks/bench_similarity_job.py``). So the
imports here stay lean: the standard library at the top, the metrics only inside ``main``.

The job description comes as one JSON argument (``--job``), rendered by the rule from its
params, so a changed metric setting still reruns exactly that metric's jobs::

    {"experiment": str, "run": int, "iteration": int, "metric": config name,
     "base_metric": built-in it computes, "settings": that metric's config block,
     "pairs": [[pruned layer, dense layer], ...], "single": true for a per-pair job}

With ``--stats`` (the pruned network's pair statistics, ``prunesim.similarity_stats``) and
``--dense-stats`` (the dense network's) a metric reads those instead of the activations
wherever they serve its route; the value is the same.

Output: one JSON file, a record per pair (``single``) or ``{"records": [...]}``; the record
format is docs/architecture.md's "Similarity job output".
"""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

_JOB_KEYS = ("experiment", "run", "iteration", "metric", "base_metric", "settings", "pairs")


def parse_job(text: str) -> dict:
    """The ``--job`` JSON, checked: every key present, pairs as [pruned, dense] names."""
    try:
        job = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--job is not valid JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(job, dict):
        raise ValueError(f"--job must be a JSON object, got {type(job).__name__}")
    missing = [key for key in _JOB_KEYS if key not in job]
    if missing:
        raise ValueError(f"--job lacks {missing}; expected the keys {list(_JOB_KEYS)}")
    pairs = job["pairs"]
    if not pairs or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ValueError(f"--job pairs must be a non-empty list of [layer_a, layer_b], got {pairs}")
    return job


def _stats_reader(stats: str | None, dense_stats: str | None):
    """(name, settings, layer_a, layer_b) -> result from the shared statistics, or None."""
    if stats is None:
        return lambda *args: None
    if dense_stats is None:
        raise ValueError("--stats needs --dense-stats (the dense network's statistics)")
    from prunesim.metrics._stats import read_pair, similarity_from_stats

    def read(name, settings, layer_a, layer_b):
        view = read_pair(stats, dense_stats, layer_a, layer_b)
        return similarity_from_stats(name, view, settings)

    return read


def similarity_records(
    job: dict, pruned: str, dense: str, log, stats=None, dense_stats=None
) -> list[dict]:
    """One record per [pruned layer, dense layer] pair of the job.

    From the shared statistics where given and they serve the metric, else streamed from HDF5.
    """
    from prunesim.metrics import similarity_from_hdf5

    from_stats = _stats_reader(stats, dense_stats)
    records = []
    for layer_a, layer_b in job["pairs"]:
        base, settings = job["base_metric"], job["settings"]
        result = from_stats(base, settings, layer_a, layer_b)
        if result is None:
            result = similarity_from_hdf5(base, pruned, layer_a, dense, layer_b, settings)
        records.append(
            {
                "experiment": job["experiment"],
                "run": int(job["run"]),
                "iteration": int(job["iteration"]),
                "metric": job["metric"],
                "base_metric": job["base_metric"],
                "layer_a": layer_a,
                "layer_b": layer_b,
                "settings": job["settings"],
                **result,
            }
        )
        log.info("%s(%s, %s) = %s", job["metric"], layer_a, layer_b, result["value"])
    return records


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prunesim.similarity_job", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--pruned", required=True, help="activations of the pruned network (.h5)")
    parser.add_argument("--dense", required=True, help="activations of the dense network (.h5)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--job", required=True, help="the job as JSON (see the module docstring)")
    parser.add_argument("--stats", default=None, help="the network's pair statistics (.npz)")
    parser.add_argument("--dense-stats", default=None, help="the dense network's (.npz)")
    parser.add_argument("--log", default=None, help="log file (the rule's log:)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (the rule's)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, compute every pair, write the JSON atomically."""
    args = _parser().parse_args(argv)
    from prunesim.joblog import run_job

    # run_job reads only .log and .threads of Snakemake's job object
    context = SimpleNamespace(log=[args.log] if args.log else [], threads=args.threads)

    def job_main(log):
        from prunesim.atomic import write_json

        job = parse_job(args.job)
        records = similarity_records(
            job, args.pruned, args.dense, log, args.stats, args.dense_stats
        )
        write_json(args.out, records[0] if job.get("single") else {"records": records})

    run_job(context, job_main)


if __name__ == "__main__":
    main()
