"""The controls that give the similarities a reference level (README "Controls").

Torch- and pandas-free: the Snakefile plans the controls' jobs from these functions, and the
tables and figures name comparisons with these constants.

- **seed baseline** (``controls.seed_baseline: K``): networks ``seed1`` .. ``seedK``, the
  dense network trained again with other seeds, each compared with the dense network
  (``seed_vs_dense``, run k, iteration 0). The spread of these values is the noise floor.
- **random pruning** (``controls.random_pruning: [k, ...]``): network ``random_iter{k}``,
  the parent of IMP iteration k of run :data:`RANDOM_PRUNING_RUN` pruned at random to IMP's
  per-layer counts and retrained as IMP retrains, compared with the dense network
  (``random_vs_dense``, run 1, iteration k).
- **run against run** (``controls.run_vs_run: {max_pairs}``): the pruned networks of runs
  a < b at the same IMP iteration k compared with each other (``run_vs_run``, run a,
  iteration k, ``run_b`` b).

The existing rows compare IMP's pruned networks with the dense network: ``pruned_vs_dense``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

PRUNED_VS_DENSE = "pruned_vs_dense"
SEED_VS_DENSE = "seed_vs_dense"
RANDOM_VS_DENSE = "random_vs_dense"
RUN_VS_RUN = "run_vs_run"
#: Every value of the tables' ``comparison`` column, the paper's own first.
COMPARISONS = (PRUNED_VS_DENSE, SEED_VS_DENSE, RANDOM_VS_DENSE, RUN_VS_RUN)
#: The comparisons the controls add (directory names under ``similarity/<metric>/``).
CONTROL_COMPARISONS = COMPARISONS[1:]
#: Every value of ``accuracy.csv``'s ``network`` column (``metrics.json``'s ``network``).
NETWORK_KINDS = ("dense", "imp", "seed", "random")

#: The IMP run the random-pruning control follows: run 1 exists in every experiment, and one
#: run is what a matched comparison needs (the IMP mean over runs is drawn beside it).
RANDOM_PRUNING_RUN = 1


def run_pairs(runs: int, max_pairs: int | None) -> list[tuple[int, int]]:
    """Pairs (a, b), a < b, of runs 1..``runs`` in order (1, 2), (1, 3), ..., (2, 3), ...;
    the first ``max_pairs`` of them (None = all). The order is fixed so that raising
    ``max_pairs`` only adds pairs."""
    pairs = list(itertools.combinations(range(1, runs + 1), 2))
    return pairs if max_pairs is None else pairs[:max_pairs]


def seed_networks(experiment: Mapping) -> list[int]:
    """k of every seed-baseline network of an experiment (1..K)."""
    return list(range(1, experiment["controls"]["seed_baseline"] + 1))


def random_pruning_iterations(experiment: Mapping) -> list[int]:
    """IMP iterations with a random-pruning network, in order."""
    return sorted(experiment["controls"]["random_pruning"])


def control_comparisons(experiment: Mapping) -> list[tuple[str, int, int, str]]:
    """``(comparison, run, iteration, against)`` of every control comparison of an experiment.

    ``run`` and ``iteration`` identify the first network (a seed network: its k and 0; a
    random network: the run it follows and its iteration; run a of run-vs-run), ``against``
    the second: ``dense`` or ``run<b>`` (at the same iteration). They are the path parts of
    the similarity files, ``<comparison>/run<run>/iter<iteration>/<against>/``.
    """
    comparisons = [(SEED_VS_DENSE, k, 0, "dense") for k in seed_networks(experiment)]
    comparisons += [
        (RANDOM_VS_DENSE, RANDOM_PRUNING_RUN, k, "dense")
        for k in random_pruning_iterations(experiment)
    ]
    vs_run = experiment["controls"]["run_vs_run"]
    if vs_run is not None:
        pairs = run_pairs(experiment["runs"], vs_run.get("max_pairs"))
        comparisons += [
            (RUN_VS_RUN, a, k, f"run{b}")
            for k in range(1, experiment["prune"]["iterations"] + 1)
            for a, b in pairs
        ]
    return comparisons


def compared_network(comparison: str, run: int, iteration: int) -> str:
    """Name (the {network} wildcard) of a control comparison's first network."""
    if comparison == SEED_VS_DENSE:
        return f"seed{run}"
    if comparison == RANDOM_VS_DENSE:
        return f"random_iter{iteration}"
    if comparison == RUN_VS_RUN:
        return f"run{run}_iter{iteration}"
    raise ValueError(f"unknown control comparison {comparison!r}; known: {CONTROL_COMPARISONS}")


def against_network(against: str, iteration: int) -> str:
    """Name of a control comparison's second network: the dense one, or run b at the
    same iteration."""
    return "dense" if against == "dense" else f"{against}_iter{iteration}"
