"""Entry point of the shared-statistics jobs: ``python -m prunesim.similarity_stats``.

Two commands (rules ``dense_stats`` and ``pair_stats``; formats in
``prunesim.metrics._stats``)::

    dense --acts dense.h5 --layers '[l1, l2, ...]' --reshape R --out dense.npz
    pair  --pruned P.h5 --dense dense.h5 --reshape R --pairs '[[a, b], ...]'
          --dense-stats dense.npz --out P.npz

Lean imports for the same reason as ``prunesim.similarity_job``: these jobs are many and
short, so they start at the cost of the interpreter plus numpy and h5py.
"""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace


def parse_layers(text: str) -> list[str]:
    """``--layers`` JSON: a non-empty list of layer names."""
    try:
        layers = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--layers is not valid JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(layers, list) or not layers or not all(isinstance(x, str) for x in layers):
        raise ValueError(f"--layers must be a non-empty JSON list of names, got {text[:200]!r}")
    return layers


def parse_pairs(text: str) -> list[list[str]]:
    """``--pairs`` JSON: a non-empty list of [pruned layer, dense layer]."""
    try:
        pairs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--pairs is not valid JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(pairs, list) or not pairs:
        raise ValueError(f"--pairs must be a non-empty JSON list, got {text[:200]!r}")
    if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ValueError(f"--pairs must hold [layer_a, layer_b] lists, got {pairs}")
    return pairs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prunesim.similarity_stats", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    dense = sub.add_parser("dense", help="the dense network's side of its layers")
    dense.add_argument("--acts", required=True, help="the dense network's activations (.h5)")
    dense.add_argument("--layers", required=True, help="JSON [layer, ...]")
    pair = sub.add_parser("pair", help="the statistics of a pruned network's layer pairs")
    pair.add_argument("--pruned", required=True, help="activations of the pruned network")
    pair.add_argument("--dense", required=True, help="activations of the dense network")
    pair.add_argument("--pairs", required=True, help="JSON [[pruned layer, dense layer], ...]")
    pair.add_argument("--dense-stats", required=True, help="the dense network's .npz")
    for command in (dense, pair):
        command.add_argument("--reshape", required=True, choices=("channels", "flatten"))
        command.add_argument("--out", required=True, help=".npz file to write")
        command.add_argument("--log", default=None, help="log file (the rule's log:)")
        command.add_argument("--threads", type=int, default=1, help="BLAS threads")
    return parser


def _run(args, log) -> None:
    from prunesim.metrics import _stats

    if args.command == "dense":
        kinds = _stats.dense_stats(args.acts, parse_layers(args.layers), args.reshape, args.out)
        log.info("dense statistics (%s): %s", args.reshape, kinds)
        return
    pairs = parse_pairs(args.pairs)
    _stats.pair_stats(args.pruned, args.dense, pairs, args.reshape, args.dense_stats, args.out)
    log.info("%d pair(s) (%s) written to %s", len(pairs), args.reshape, args.out)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from prunesim.joblog import run_job

    # run_job reads only .log and .threads of Snakemake's job object
    context = SimpleNamespace(log=[args.log] if args.log else [], threads=args.threads)
    run_job(context, lambda log: _run(args, log))


if __name__ == "__main__":
    main()
