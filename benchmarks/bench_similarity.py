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
import resource
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


def new_job_command(pruned, dense, out, metric, layer, stats=None) -> list[str]:
    """What the similarity rule's shell: runs (PYTHONPATH is set by run_child).

    ``stats``: (pair statistics file, dense layer statistics file) the job reads, if any.
    """
    spec = json.dumps(job_spec(metric, layer))
    cmd = [sys.executable, "-m", "prunesim.similarity_job", "--pruned", pruned, "--dense",
           dense, "--out", str(out), "--log", f"{out}.log", "--job", spec]  # fmt: skip
    return cmd + (["--stats", stats[0], "--dense-stats", stats[1]] if stats else [])


def stats_commands(folder: Path, pruned, dense, layers, reshape) -> tuple[list, list, tuple]:
    """The dense_stats and pair_stats jobs of one reshape: (dense cmd, pair cmd, files)."""
    dense_out, pair_out = folder / reshape / "dense.npz", folder / reshape / "run1_iter1.npz"
    base = [sys.executable, "-m", "prunesim.similarity_stats"]
    common = ["--reshape", reshape, "--log", f"{pair_out}.log"]
    dense_cmd = [*base, "dense", "--acts", dense, "--layers", json.dumps(layers),
                 "--out", str(dense_out), *common]  # fmt: skip
    pairs = json.dumps([[layer, layer] for layer in layers])
    pair_cmd = [*base, "pair", "--pruned", pruned, "--dense", dense, "--pairs", pairs,
                "--dense-stats", str(dense_out), "--out", str(pair_out), *common]  # fmt: skip
    return dense_cmd, pair_cmd, (str(pair_out), str(dense_out))


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


def run_child(cmd: list[str], pycache: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process, started as a Snakemake job starts.

    CPU time (user + system of the child) is what a loaded machine distorts least: on a
    shared 2-core machine the wall time also counts the other processes' turns.

    Bytecode is cached (in ``pycache``, not in the checkout) as in a normal installation:
    with PYTHONDONTWRITEBYTECODE every job would compile the library again (~70 ms).
    """
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPYCACHEPREFIX": str(pycache)}  # fmt: skip
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


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
            for i, kind in enumerate(("wall", "CPU")):
                rows.append(
                    (metric, kind, *(statistics.median(t[i] for t in times[k]) for k in cmds))
                )
        print(f"{'metric':10s} {'time':5s} {'import numpy,h5py':>18s} {'new job':>9s} "
              f"{'old job':>9s} {'new/import':>11s} {'old/new':>8s}")  # fmt: skip
        for metric, kind, imp, new, old in rows:
            print(f"{metric:10s} {kind:5s} {imp:17.3f}s {new:8.3f}s {old:8.3f}s "
                  f"{new / imp:11.2f} {old / new:8.2f}")  # fmt: skip
        for kind in ("wall", "CPU"):
            ratios = [new / imp for _, k, imp, new, _ in rows if k == kind]
            print(
                f"RATIO new job / import numpy,h5py ({kind}): "
                f"median {statistics.median(ratios):.2f}, "
                f"worst {max(ratios):.2f} (target <= 1.5)"
            )


def stage_jobs(folder: Path, pruned, dense, layers: list[str]):
    """(old jobs, dense-side jobs, new per-network jobs): one per metric per pair, as in the
    quickstart's config (defaults: CCA family on channels, CKA/NBS flattened, cosine on out)."""
    old, dense_side, new = [], [], []
    pairs = [(m, layer) for m in ALL_SIX for layer in layers if m != "cosine" or layer == "out"]
    stats = {}
    for reshape in ("channels", "flatten"):
        dense_cmd, pair_cmd, stats[reshape] = stats_commands(folder, pruned, dense, layers, reshape)
        dense_side.append(dense_cmd)
        new.append(pair_cmd)
    for metric, layer in pairs:
        out = folder / f"{metric}_{layer}.json"
        old.append(old_job_script(folder, pruned, dense, out, metric, layer))
        reshape = DEFAULT_SETTINGS[metric]["reshape"]
        new_out = folder / f"new_{metric}_{layer}.json"
        new.append(new_job_command(pruned, dense, new_out, metric, layer, stats.get(reshape)))
    return old, dense_side, new, pairs


def stage_values(folder: Path, pairs, prefix: str) -> np.ndarray:
    return np.array([json.loads((folder / f"{prefix}{m}_{layer}.json").read_text())["value"]
                     for m, layer in pairs], dtype=float)  # fmt: skip


def model_flops(shapes: dict, n: int) -> tuple[float, float]:
    """(old, new) arithmetic of one network's stage by a flop model (for the extrapolation).

    Old: every metric reads its pair again (moments n(p1 + p2)^2, Grams 2 n^2 p, NBS's
    cross block 2 n p^2); new: one pass per pair and reshape without the dense side
    (moments n(p^2 + p^2) for X^T X and X^T Y, Gram n^2 p).
    """
    old = new = 0.0
    for shape in shapes.values():
        c, hw = shape[0], int(np.prod(shape[1:])) if len(shape) > 1 else 1
        rows_ch, p_flat = n * hw, c * hw
        old += 3 * rows_ch * (2 * c) ** 2  # mean CCA, SVCCA, PWCCA on channels
        new += rows_ch * 2 * c * c
        if n < 2 * p_flat:  # CKA and NBS flattened: Gram route
            old += 2 * (2 * n * n * p_flat)
            new += n * n * p_flat
        else:  # moments (CKA) and the cross block (NBS)
            old += n * (2 * p_flat) ** 2 + 2 * n * p_flat**2
            new += 2 * n * p_flat**2
    return old, new


def run_all(cmds: list, pycache: Path) -> np.ndarray:
    """[wall, CPU] seconds of each job, run one after another (shape (jobs, 2))."""
    return np.array([run_child(cmd, pycache) for cmd in cmds]).reshape(-1, 2)


def print_nbs_bound(pairs, t_old: np.ndarray, t_new: np.ndarray) -> None:
    """What sharing can gain at most, measured: the NBS jobs' own time.

    Flatten-reshaped NBS on a layer wider than the probe (Gram route) factors both centred
    Grams, multiplies the factors and takes the eigenvalues of an r × r matrix (r ~ probe size)
    per pair: the same arithmetic in an old and a new job, which no shared artifact removes
    (only the dense side's factor could be shared, ~10 % of it). So old / (new NBS jobs) bounds
    old / new from above, whatever else gets cheaper.
    """
    nbs = [i for i, (metric, _) in enumerate(pairs) if metric == "nbs"]
    old_nbs = t_old[nbs].sum(axis=0)
    new_nbs = t_new[-len(pairs) :][nbs].sum(axis=0)  # metric jobs follow the 2 stats jobs
    total_old = t_old.sum(axis=0)
    for i, kind in enumerate(("wall", "CPU")):
        print(
            f"NBS jobs alone ({kind}): old {old_nbs[i]:.1f} s, new {new_nbs[i]:.1f} s, "
            f"{new_nbs[i] / t_new.sum(axis=0)[i]:.0%} of new; BOUND old/new if all else were "
            f"free: {total_old[i] / new_nbs[i]:.2f}"
        )


def bench_stage(args) -> None:
    shapes = layer_shapes("vgg16_bn", args.width)
    layers = list(shapes)[: args.layers] if args.layers else list(shapes)
    if "out" not in layers:
        layers.append("out")
    shapes = {k: shapes[k] for k in layers}
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        folder, pycache = Path(tmp), Path(tmp) / "pycache"
        start = time.perf_counter()
        pruned, dense = write_networks(folder, shapes, args.probe)
        print(
            f"VGG16_BN width {args.width}, probe {args.probe}, {len(layers)} layers, six "
            f"metrics; synthetic activations written in {time.perf_counter() - start:.0f} s"
        )
        old, dense_side, new, pairs = stage_jobs(folder, pruned, dense, layers)
        run_child([sys.executable, "-c", "import numpy, h5py"], pycache)  # warm bytecode
        per_old = run_all(old, pycache)
        t_dense = run_all(dense_side, pycache).sum(axis=0)
        per_new = run_all(new, pycache)
        t_old, t_new = per_old.sum(axis=0), per_new.sum(axis=0)
        diff = np.nanmax(
            np.abs(stage_values(folder, pairs, "") - stage_values(folder, pairs, "new_"))
        )
        print(f"\n{'':44s} {'jobs':>5s} {'wall s':>8s} {'CPU s':>8s}")
        for label, cmds, t in (
            ("old: one script: job per metric per pair", old, t_old),
            ("new: dense side (once per experiment)", dense_side, t_dense),
            ("new: pair statistics + metric jobs", new, t_new),
        ):
            print(f"{label:44s} {len(cmds):5d} {t[0]:8.1f} {t[1]:8.1f}")
        print(f"largest |old - new| over {len(pairs)} values: {diff:.2e}\n")
        for i, kind in enumerate(("wall", "CPU")):
            print(
                f"RATIO old/new per pruned network, dense side shared ({kind}): "
                f"{t_old[i] / t_new[i]:.2f} (target >= 3); dense side counted in full: "
                f"{t_old[i] / (t_new[i] + t_dense[i]):.2f}"
            )
        print_nbs_bound(pairs, per_old, per_new)
        full = layer_shapes("vgg16_bn", 1.0)
        old_f, new_f = model_flops(full, args.probe)
        old_q, new_q = model_flops(shapes, args.probe)
        old_full, new_full = t_old[1] * old_f / old_q, t_new[1] * new_f / new_q
        print(
            f"EXTRAPOLATED (CPU s scaled by a flop model, not measured) width 1, probe "
            f"{args.probe}: old {old_full / 60:.0f} min, new {new_full / 60:.0f} min of CPU "
            f"per pruned network, ratio {old_full / new_full:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    job = sub.add_parser("job", help="per-pair job start-up on quickstart-sized layers")
    job.add_argument("--repeats", type=int, default=7)
    job.add_argument("--probe", type=int, default=350)
    job.add_argument("--layer", default="conv5")
    job.add_argument("--metrics", nargs="+", default=ALL_SIX, choices=ALL_SIX)
    stage = sub.add_parser("stage", help="one network's whole similarity stage")
    stage.add_argument("--width", type=float, default=0.25)
    stage.add_argument("--probe", type=int, default=5000)
    stage.add_argument("--layers", type=int, default=0, help="first N layers (0 = all)")
    stage.add_argument("--tmpdir", default=None, help="where the activations go (~2 x 1.5 GB)")
    args = parser.parse_args()
    if args.command == "job":
        bench_job(args)
    else:
        bench_stage(args)


if __name__ == "__main__":
    main()
