"""Cost of the similarity jobs, as ratios measured in one run (issue #13).

Usage:
    python benchmarks/bench_similarity.py job [--repeats 7]
    python benchmarks/bench_similarity.py stage [--width 0.25] [--probe 5000] [--layers N]

``job``: the wall time of one per-pair similarity job on quickstart-sized layers (VGG16_BN at
width 1/8, probe 350), each a fresh process as Snakemake starts it: the new ``shell:`` job
(``python -m prunesim.similarity_job``) against ``python -c "import numpy, h5py"`` (target:
within 1.5x) and against the ``script:`` job it replaces (``OLD_SCRIPT``, run behind
Snakemake's real preamble: a pickled ``snakemake.iocontainers.Snakemake`` object).

``stage``: the whole similarity stage of one pruned network against its dense parent (all six
metrics, every layer, one job per metric per pair), the old ``script:`` jobs against the new
jobs, each a fresh process. Activations are synthetic (correlated ReLU data, float32) in the
layer shapes of ``prunesim.models`` (building the model needs torch, the jobs never import it).
Timings are medians (``job``) or one pass (``stage``); the machine may be shared, so compare
the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
sys.path.insert(0, str(SRC))

from prunesim.metrics import DEFAULT_SETTINGS  # noqa: E402

ALL_SIX = ["mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine"]

# workflow/scripts/similarity.py as of commit 06dbb4e (before issue #13): the baseline.
OLD_SCRIPT = """
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
    single = "layer_a" in wc.keys()
    write_json(snakemake.output[0], records[0] if single else {"records": records})


run_job(snakemake, main)
"""


def layer_shapes(model: str, width: float) -> dict[str, tuple[int, ...]]:
    """Per-image shape of every compared layer, from one forward pass of the real model."""
    import torch

    from prunesim.models import build_model

    net = build_model(model, width=width, num_classes=10).eval()
    with torch.no_grad():
        feats = net.forward_features(torch.zeros(2, 3, 32, 32))
    return {name: tuple(t.shape[1:]) for name, t in feats.items()}


def write_networks(folder: Path, shapes: dict, n: int, seed: int = 0) -> tuple[str, str]:
    """pruned.h5 and dense.h5: correlated ReLU activations, float32, like extract_acts."""
    rng = np.random.default_rng(seed)
    paths = folder / "pruned.h5", folder / "dense.h5"
    with h5py.File(paths[0], "w") as fp, h5py.File(paths[1], "w") as fd:
        for name, shape in shapes.items():
            chunk = (min(n, 256), *shape)
            dp = fp.create_dataset(name, (n, *shape), dtype="float32", chunks=chunk)
            dd = fd.create_dataset(name, (n, *shape), dtype="float32", chunks=chunk)
            for i in range(0, n, 256):
                m = min(256, n - i)
                base = rng.standard_normal((m, *shape), dtype=np.float32)
                dd[i : i + m] = np.maximum(base + 0.3, 0)
                noise = rng.standard_normal((m, *shape), dtype=np.float32)
                dp[i : i + m] = np.maximum(0.8 * base + 0.5 * noise + 0.3, 0)
    return str(paths[0]), str(paths[1])


def job_spec(metric: str, layer: str) -> dict:
    return {
        "experiment": "bench", "run": 1, "iteration": 1, "metric": metric,
        "base_metric": metric, "settings": dict(DEFAULT_SETTINGS[metric]),
        "pairs": [[layer, layer]], "single": True,
    }  # fmt: skip


def new_job_command(pruned, dense, out, metric, layer) -> list[str]:
    """What the similarity rule's shell: runs (PYTHONPATH is set by run_child)."""
    spec = json.dumps(job_spec(metric, layer))
    return [sys.executable, "-m", "prunesim.similarity_job", "--pruned", pruned, "--dense",
            dense, "--out", str(out), "--log", f"{out}.log", "--job", spec]  # fmt: skip


def old_job_script(folder: Path, pruned, dense, out, metric, layer) -> list[str]:
    """OLD_SCRIPT behind the preamble Snakemake writes for a `script:` job (9.x)."""
    from snakemake.common import get_snakemake_searchpaths
    from snakemake.iocontainers import (
        InputFiles,
        Log,
        OutputFiles,
        Params,
        ResourceList,
        Snakemake,
        Wildcards,
    )  # fmt: skip

    spec = job_spec(metric, layer)
    wildcards = {"experiment": "bench", "run": "1", "iteration": "1", "layer_a": layer,
                 "layer_b": layer}  # fmt: skip
    params = {k: spec[k] for k in ("metric", "base_metric", "pairs", "settings")}
    job = Snakemake(
        InputFiles(fromdict={"pruned": pruned, "dense": dense}), OutputFiles([str(out)]),
        Params(fromdict=params), Wildcards(fromdict=wildcards), 1,
        ResourceList(fromdict={"_cores": 1, "_nodes": 1}), Log([f"{out}.log"]), {},
        f"similarity_{metric}", None, str(REPO / "workflow" / "scripts"),
    )  # fmt: skip
    preamble = (
        f"import sys; sys.path.extend({get_snakemake_searchpaths()!r}); import pickle; "
        f"snakemake = pickle.loads({pickle.dumps(job, protocol=4)!r}); "
        "from snakemake.logging import logger; from snakemake.iocontainers import Snakemake\n"
    )
    script = folder / f"old_{metric}_{layer}.py"
    script.write_text(preamble + OLD_SCRIPT)
    return [sys.executable, str(script)]


def run_child(cmd: list[str], pycache: Path) -> float:
    """Wall time of one child process, started as a Snakemake job starts (fresh interpreter).

    Bytecode is cached (in ``pycache``, not in the checkout) as in a normal installation:
    with PYTHONDONTWRITEBYTECODE every job would compile the library again (~70 ms).
    """
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPYCACHEPREFIX": str(pycache)}  # fmt: skip
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def bench_job(args) -> None:
    shapes = layer_shapes("vgg16_bn", 0.125)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pruned, dense = write_networks(folder, shapes, args.probe)
        layer = args.layer
        print(f"quickstart-sized pair: VGG16_BN width 1/8, layer {layer} {shapes[layer]}, "
              f"probe {args.probe}; median of {args.repeats} fresh processes\n")  # fmt: skip
        baseline = [sys.executable, "-c", "import numpy, h5py"]
        rows = []
        for metric in args.metrics:
            out = folder / f"{metric}.json"
            cmds = {
                "import": baseline,
                "new": new_job_command(pruned, dense, out, metric, layer),
                "old": old_job_script(folder, pruned, dense, out, metric, layer),
            }
            times = {k: [] for k in cmds}
            for cmd in cmds.values():  # warm-up: bytecode and page cache, as in a long run
                run_child(cmd, folder / "pycache")
            for _ in range(args.repeats):  # interleaved, so load changes hit all three alike
                for key, cmd in cmds.items():
                    times[key].append(run_child(cmd, folder / "pycache"))
            rows.append((metric, *(statistics.median(times[k]) for k in cmds)))
        print(f"{'metric':10s} {'import numpy,h5py':>18s} {'new job':>9s} {'old job':>9s} "
              f"{'new/import':>11s} {'old/new':>8s}")  # fmt: skip
        for metric, imp, new, old in rows:
            print(f"{metric:10s} {imp:17.3f}s {new:8.3f}s {old:8.3f}s {new / imp:11.2f} "
                  f"{old / new:8.2f}")  # fmt: skip
        worst = max(new / imp for _, imp, new, _ in rows)
        print(f"\nRATIO new job / import numpy,h5py: worst {worst:.2f} (target <= 1.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    job = sub.add_parser("job", help="per-pair job start-up on quickstart-sized layers")
    job.add_argument("--repeats", type=int, default=7)
    job.add_argument("--probe", type=int, default=350)
    job.add_argument("--layer", default="conv5")
    job.add_argument("--metrics", nargs="+", default=ALL_SIX, choices=ALL_SIX)
    args = parser.parse_args()
    if args.command == "job":
        bench_job(args)


if __name__ == "__main__":
    main()
