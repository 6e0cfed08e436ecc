"""Tidy tables from the per-job outputs: similarity, accuracy and mask overlap.

The ``aggregate`` rule calls :func:`build_tables`. Inputs are the similarity jobs' JSON
files and every network's ``metrics.json`` (never a checkpoint: this module is torch-free).
What a file's path encodes (which comparison a control's file makes) is passed in by the
workflow, which knows it; files are never parsed by name.
Columns are those of ``docs/architecture.md`` ("Tables and figures"):

Every table starts with ``experiment, model, dataset``, names layers the compared way
(``conv1``, ``out``: ``prunesim.layers``) and numbers networks by ``run`` and ``iteration``:
the dense network is ``run`` :data:`DENSE_RUN` (0), ``iteration`` 0; IMP runs count from 1.

- ``similarity.csv``: experiment, model, dataset, run, iteration, density,
  density_all_params, layer, layer_index, layer_kind, metric, value, note, layer_b,
  base_metric (+ ci_low, ci_high when any job recorded them). ``metric`` is the config's
  name, ``base_metric`` the built-in it computes (the same, or a variant's ``metric``).
  ``layer`` is the pruned network's layer, ``layer_b`` the dense network's.
  ``comparison`` says which two networks a row compares (``prunesim.controls``):
  ``pruned_vs_dense`` (IMP run ``run``, iteration ``iteration`` vs the dense network; the
  paper's rows), or a control's: ``seed_vs_dense`` (seed network ``run``, iteration 0),
  ``random_vs_dense`` (the random-pruning network at ``iteration``, following IMP run
  ``run``), ``run_vs_run`` (run ``run`` vs run ``run_b`` at ``iteration``; ``layer_b`` is
  then run ``run_b``'s layer). ``run_b`` is the second network's run: :data:`DENSE_RUN`
  when it is the dense network. ``density`` is always the first network's.
  A value the metric could not define (e.g. a layer that is entirely zero) is kept as an
  empty cell with the job's ``note`` saying why: an explained gap, never a dropped row.
- ``accuracy.csv``: experiment, model, dataset, run, iteration, density, density_all_params,
  test_accuracy, network. ``network`` is ``dense``, ``imp`` (IMP run ``run``), or a control
  network: ``seed`` (seed network ``run``, iteration 0) or ``random`` (the random-pruning
  network at ``iteration``, following IMP run ``run``).
- ``masks.csv``: experiment, model, dataset, iteration, density, layer, parameter, run_a,
  run_b, jaccard (overlap computed by ``prunesim.masks``; ``layer`` is the compared layer the
  masked ``parameter`` produces, ``all`` pools every prunable weight).

``density`` is the fraction of prunable weights that are nonzero; ``density_all_params`` the
fraction of all learnable parameters (BN and biases included) that remain, the paper's x-axis
(``prunesim.pruning.density_all_params``).

Rows are sorted, so the same inputs give byte-identical tables.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from prunesim.atomic import atomic_path
from prunesim.controls import COMPARISONS, NETWORK_KINDS, PRUNED_VS_DENSE
from prunesim.errors import CorruptFileError, PrunesimError, rebuild_hint
from prunesim.layers import compared_layers, layer_of_parameter
from prunesim.masks import ALL_LAYERS

#: ``run`` of the dense network in every table: it is every run's parent, and IMP runs are
#: numbered from 1, so 0 names it without an empty cell.
DENSE_RUN = 0

SIMILARITY_COLUMNS = [
    "experiment", "model", "dataset", "run", "iteration", "density", "density_all_params",
    "layer", "layer_index", "layer_kind", "metric", "value", "note", "layer_b", "base_metric",
    "comparison", "run_b",
]  # fmt: skip
OPTIONAL_SIMILARITY_COLUMNS = ["ci_low", "ci_high"]
ACCURACY_COLUMNS = [
    "experiment", "model", "dataset", "run", "iteration", "density", "density_all_params",
    "test_accuracy", "network",
]  # fmt: skip
MASK_COLUMNS = [
    "experiment", "model", "dataset", "iteration", "density", "layer", "parameter", "run_a",
    "run_b", "jaccard",
]  # fmt: skip
INTRINSIC_DIMENSION_COLUMNS = [
    "experiment", "model", "dataset", "run", "iteration", "density", "density_all_params",
    "layer", "layer_index", "layer_kind", "intrinsic_dimension", "fit_r", "n_used", "n_dropped",
    "note",
]  # fmt: skip

_SIMILARITY_KEYS = ("run", "iteration", "metric", "layer_a", "layer_b", "value")
_NETWORK_KEYS = ("iteration", "test_accuracy", "density")


def _read_json(path: str | os.PathLike, required: Iterable[str], what: str) -> dict:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise CorruptFileError(
            f"{what} {path} does not exist; rerun the job that writes it "
            "(snakemake reruns it when the file is missing)."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(
            f"{what} {path} is not valid JSON ({exc}). {rebuild_hint(path)}"
        ) from None
    if not isinstance(record, dict):
        raise CorruptFileError(f"{what} {path} holds {type(record).__name__}, not an object.")
    missing = [key for key in required if key not in record]
    if missing:
        raise CorruptFileError(
            f"{what} {path} lacks the key(s) {', '.join(missing)}; it was written by an "
            f"incompatible version. {rebuild_hint(path)}"
        )
    return record


#: A control's similarity file: ``(comparison, run_b, path)``; ``run_b`` is the second
#: network's run, None for the dense network.
ControlFile = tuple[str, int | None, str | os.PathLike]


def _similarity_files(paths: Iterable[str | os.PathLike], controls: Iterable[ControlFile]):
    """``(comparison, run_b, path)`` of every similarity file: IMP's against the dense
    network, then the controls' as the workflow labelled them."""
    for path in paths:
        yield PRUNED_VS_DENSE, DENSE_RUN, path
    for comparison, run_b, path in controls:
        if comparison not in COMPARISONS[1:]:
            raise PrunesimError(
                f"similarity file {path} is labelled {comparison!r}, not a control "
                f"comparison ({', '.join(COMPARISONS[1:])}); check the aggregate rule's params."
            )
        yield comparison, DENSE_RUN if run_b is None else int(run_b), path


def _similarity_records(paths: Iterable[str | os.PathLike], controls: Iterable[ControlFile]):
    """(comparison, run_b, path, record) of every similarity result.

    A file holds one record (one job per layer pair) or ``{"records": [...]}`` (one job per
    network, the scale-out mode ``similarity_jobs: network``).
    """
    for comparison, run_b, path in _similarity_files(paths, controls):
        record = _read_json(path, (), "similarity file")
        for rec in record.get("records", [record]):
            missing = [key for key in _SIMILARITY_KEYS if key not in rec]
            if missing:
                raise CorruptFileError(
                    f"similarity file {path} lacks the key(s) {', '.join(missing)}; it was "
                    f"written by an incompatible version. {rebuild_hint(path)}"
                )
            yield comparison, run_b, path, rec


def _finite_or_none(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _network_kind(record: Mapping) -> str:
    """``network`` of a ``metrics.json``: written since the controls exist; before, iteration 0
    was the dense network and every other one IMP's."""
    kind = record.get("network") or ("dense" if int(record["iteration"]) == 0 else "imp")
    if kind not in NETWORK_KINDS:
        raise PrunesimError(f"unknown network kind {kind!r}; known: {', '.join(NETWORK_KINDS)}")
    return kind


def _network_key(run, iteration, kind: str = "imp") -> tuple[str, int, int]:
    """``(kind, run, iteration)``; the dense network (every run's parent) is
    ``("dense", DENSE_RUN, 0)`` whatever run its file names (``metrics.json`` says null)."""
    iteration = int(iteration)
    if kind == "dense" or (kind == "imp" and iteration == 0):
        return ("dense", DENSE_RUN, 0)
    return (kind, DENSE_RUN if run is None else int(run), iteration)


def _record_key(record: Mapping) -> tuple[str, int, int]:
    return _network_key(record.get("run"), record["iteration"], _network_kind(record))


#: The network kind of a comparison's first network.
_FIRST_NETWORK = {"pruned_vs_dense": "imp", "seed_vs_dense": "seed",
                  "random_vs_dense": "random", "run_vs_run": "imp"}  # fmt: skip


def _layer_places(model: str) -> dict[str, tuple[int, str]]:
    """``{compared layer: (forward index, kind)}`` of a model."""
    return {name: (index, kind) for index, (name, kind) in enumerate(compared_layers(model))}


def _densities(network_metrics: Iterable[Mapping]) -> dict:
    """``{(run, iteration): (density, density_all_params)}`` of every network."""
    return {
        _record_key(rec): (
            _finite_or_none(rec["density"]),
            _finite_or_none(rec.get("density_all_params")),
        )
        for rec in network_metrics
    }


def read_network_metrics(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Load every ``metrics.json``; refuse two files that describe the same network."""
    records, seen = [], {}
    for path in paths:
        record = _read_json(path, _NETWORK_KEYS, "network metrics file")
        key = _record_key(record)
        if key in seen:
            raise PrunesimError(
                f"{path} and {seen[key]} both describe the {key[0]} network of run {key[1]} "
                f"iteration {key[2]}; "
                "the aggregate rule must list each network once."
            )
        seen[key] = path
        records.append(record)
    return records


def accuracy_table(
    network_metrics: Iterable[Mapping], experiment: str, model: str, dataset: str
) -> pd.DataFrame:
    """One row per network: dense first (run 0, iteration 0), then IMP's by run and
    iteration, then the control networks (seed, random)."""
    rows = [
        {
            "experiment": experiment,
            "model": model,
            "dataset": dataset,
            "run": _record_key(rec)[1],
            "iteration": int(rec["iteration"]),
            "density": _finite_or_none(rec["density"]),
            "density_all_params": _finite_or_none(rec.get("density_all_params")),
            "test_accuracy": _finite_or_none(rec["test_accuracy"]),
            "network": _record_key(rec)[0],
        }
        for rec in network_metrics
    ]
    table = pd.DataFrame(rows, columns=ACCURACY_COLUMNS)
    table["run"] = table["run"].astype("int64")
    table["iteration"] = table["iteration"].astype("int64")
    table["density"] = table["density"].astype("float64")
    table["density_all_params"] = table["density_all_params"].astype("float64")
    table["test_accuracy"] = table["test_accuracy"].astype("float64")
    table["network"] = table["network"].astype("object")
    # dense first (run 0), then run by run in IMP order, then the controls' networks
    table["_kind"] = table["network"].map({kind: i for i, kind in enumerate(NETWORK_KINDS)})
    table = table.sort_values(["_kind", "run", "iteration"]).drop(columns="_kind")
    return table.reset_index(drop=True)


def similarity_table(
    similarity_paths: Iterable[str | os.PathLike],
    network_metrics: Iterable[Mapping],
    experiment: str,
    model: str,
    dataset: str,
    controls: Iterable[ControlFile] = (),
) -> pd.DataFrame:
    """One row per similarity job, with the pruned network's density and the layer's place.

    ``similarity_paths`` compare IMP networks with the dense one; ``controls`` are the
    control comparisons' files (:data:`ControlFile`). ``value`` is kept as recorded; a null
    or non-finite value becomes an empty cell whose ``note`` says why (the job's own note, or
    "value is not finite").
    """
    layers = _layer_places(model)
    densities = _densities(network_metrics)
    rows, seen = [], {}
    for comparison, run_b, path, rec in _similarity_records(similarity_paths, controls):
        _check_record(path, rec, experiment, model, layers)
        key = (rec["metric"], comparison, int(rec["run"]), int(rec["iteration"]), run_b,
               rec["layer_a"], rec["layer_b"])  # fmt: skip
        if key in seen:
            raise PrunesimError(
                f"{path} and {seen[key]} both hold {key[0]} ({comparison}) for run {key[2]} "
                f"iteration {key[3]}, {key[5]} vs {key[6]}; list each job's output once."
            )
        seen[key] = path
        identity = {"experiment": experiment, "model": model, "dataset": dataset}
        rows.append(_similarity_row(rec, comparison, run_b, identity, layers, densities))
    return _similarity_frame(rows)


def _check_record(path, rec: Mapping, experiment: str, model: str, layers: Mapping) -> None:
    """Refuse a similarity file of another experiment, or of layers this model lacks."""
    if rec.get("experiment") not in (None, experiment):
        raise PrunesimError(
            f"similarity file {path} belongs to experiment {rec['experiment']!r}, not "
            f"{experiment!r}; check the aggregate rule's inputs."
        )
    for side in ("layer_a", "layer_b"):
        if rec[side] not in layers:
            raise PrunesimError(
                f"similarity file {path}: {side} {rec[side]!r} is not a compared layer "
                f"of {model} ({', '.join(layers)}); it belongs to another model or an "
                f"outdated layer table. {rebuild_hint(path)}"
            )


def _similarity_row(
    rec: Mapping, comparison: str, run_b: int, identity: Mapping, layers: Mapping, densities
) -> dict:
    """One job's row: its value (empty with a note when undefined) and its network's density."""
    run, iteration = int(rec["run"]), int(rec["iteration"])
    notes = [rec["note"]] if rec.get("note") else []
    value = rec["value"]
    if value is not None and not math.isfinite(float(value)):
        notes.append(f"value is not finite ({value})")
    network = _network_key(run, iteration, _FIRST_NETWORK[comparison])
    if network not in densities:
        notes.append(
            f"no metrics.json for the {network[0]} network of run {run} iteration "
            f"{iteration}: density unknown"
        )
    density, density_all = densities.get(network, (None, None))
    index, kind = layers[rec["layer_a"]]
    row = {
        **identity,
        "run": run,
        "iteration": iteration,
        "density": density,
        "density_all_params": density_all,
        "layer": rec["layer_a"],
        "layer_index": index,
        "layer_kind": kind,
        "metric": rec["metric"],
        "value": _finite_or_none(value),
        "note": "; ".join(notes) or None,
        "layer_b": rec["layer_b"],
        "base_metric": rec.get("base_metric", rec["metric"]),
        "comparison": comparison,
        "run_b": run_b,
        "_layer_b_index": layers[rec["layer_b"]][0],
        "_comparison": COMPARISONS.index(comparison),
        "_has_ci": any(rec.get(col) is not None for col in OPTIONAL_SIMILARITY_COLUMNS),
    }
    for col in OPTIONAL_SIMILARITY_COLUMNS:
        row[col] = _finite_or_none(rec.get(col))
    return row


_SIMILARITY_TEXT_COLUMNS = ("experiment", "model", "dataset", "layer", "layer_kind", "metric",
                            "note", "layer_b", "base_metric", "comparison")  # fmt: skip


def _similarity_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows in the table's order and dtypes; the optional columns only when some job
    recorded them (a table without confidence intervals keeps its published shape)."""
    has_ci = any(row["_has_ci"] for row in rows)
    columns = SIMILARITY_COLUMNS + (OPTIONAL_SIMILARITY_COLUMNS if has_ci else [])
    hidden = ["_layer_b_index", "_comparison", "_has_ci"]
    table = pd.DataFrame(rows, columns=[*SIMILARITY_COLUMNS, *hidden, *OPTIONAL_SIMILARITY_COLUMNS])
    order = ["metric", "_comparison", "run", "iteration", "run_b", "layer_index", "_layer_b_index"]
    table = table.sort_values(order)[columns].reset_index(drop=True)
    for col in ("run", "iteration", "layer_index", "run_b"):
        table[col] = table[col].astype("int64")
    floats = ("density", "density_all_params", "value")
    for col in (*floats, *(OPTIONAL_SIMILARITY_COLUMNS if has_ci else [])):
        table[col] = table[col].astype("float64")
    for col in _SIMILARITY_TEXT_COLUMNS:
        table[col] = table[col].astype("object")
    return table


def mask_table(mask_overlap: pd.DataFrame | None, model: str, dataset: str) -> pd.DataFrame:
    """The mask-overlap table of ``prunesim.masks`` with the tables' identifiers: model,
    dataset and the compared ``layer`` of each masked parameter; None gives no rows."""
    if mask_overlap is None:
        return pd.DataFrame(columns=MASK_COLUMNS)
    needed = [col for col in MASK_COLUMNS if col not in ("model", "dataset", "layer")]
    missing = [col for col in needed if col not in mask_overlap.columns]
    if missing:
        raise PrunesimError(
            f"mask-overlap table lacks column(s) {', '.join(missing)}; expected "
            f"{', '.join(needed)}."
        )
    names = list(dict.fromkeys(mask_overlap["parameter"]))
    layers = {name: layer_of_parameter(model, name) for name in names if name != ALL_LAYERS}
    layers[ALL_LAYERS] = ALL_LAYERS
    # keep the order the overlap table gives (forward order), with "all" last
    order = {name: i for i, name in enumerate(n for n in names if n != ALL_LAYERS)}
    order[ALL_LAYERS] = len(order)
    table = mask_overlap.assign(
        model=model, dataset=dataset, layer=mask_overlap["parameter"].map(layers)
    )
    table["_order"] = table["parameter"].map(order)
    table = table.sort_values(["iteration", "_order", "run_a", "run_b"], kind="stable")
    return table[MASK_COLUMNS].reset_index(drop=True)


def intrinsic_dimension_table(
    id_paths: Iterable[str | os.PathLike],
    network_metrics: Iterable[Mapping],
    experiment: str,
    model: str,
    dataset: str,
) -> pd.DataFrame:
    """One row per (network, layer): the TwoNN ID of the layer's probe-set representation.

    ``id_paths`` are the ``intrinsic_dimension`` jobs' JSON files (``{"run", "iteration",
    "records": [...]}``, dense = iteration 0 with run null, run 0 in the table). An
    undefined ID is an empty cell with the job's note, as in ``similarity.csv``.
    """
    layers = _layer_places(model)
    densities = _densities(network_metrics)
    rows = []
    for path in id_paths:
        job = _read_json(path, ("iteration", "records"), "intrinsic-dimension file")
        network = _network_key(job.get("run"), job["iteration"])
        density, density_all = densities.get(network, (None, None))
        for rec in job["records"]:
            if rec["layer"] not in layers:
                raise PrunesimError(
                    f"intrinsic-dimension file {path}: layer {rec['layer']!r} is not a "
                    f"compared layer of {model}. {rebuild_hint(path)}"
                )
            index, kind = layers[rec["layer"]]
            rows.append(
                {
                    "experiment": experiment, "model": model, "dataset": dataset,
                    "run": network[1], "iteration": network[2], "density": density,
                    "density_all_params": density_all, "layer": rec["layer"],
                    "layer_index": index, "layer_kind": kind,
                    "intrinsic_dimension": _finite_or_none(rec.get("id")),
                    "fit_r": _finite_or_none(rec.get("r")), "n_used": int(rec.get("n_used", 0)),
                    "n_dropped": int(rec.get("n_dropped", 0)), "note": rec.get("note"),
                }
            )  # fmt: skip
    table = pd.DataFrame(rows, columns=INTRINSIC_DIMENSION_COLUMNS)
    for col in ("run", "iteration", "layer_index", "n_used", "n_dropped"):
        table[col] = table[col].astype("int64")
    for col in ("density", "density_all_params", "intrinsic_dimension", "fit_r"):
        table[col] = table[col].astype("float64")
    table = table.sort_values(["run", "iteration", "layer_index"])
    return table.reset_index(drop=True)


def comparison_rows(similarity: pd.DataFrame, comparison: str) -> pd.DataFrame:
    """The rows of a similarity table that make one comparison; a table from before the
    ``comparison`` column holds only the paper's (``pruned_vs_dense``)."""
    if "comparison" not in similarity:
        return similarity if comparison == PRUNED_VS_DENSE else similarity.iloc[0:0]
    return similarity[similarity["comparison"] == comparison]


def network_rows(accuracy: pd.DataFrame, *kinds: str) -> pd.DataFrame:
    """The rows of an accuracy table of these network kinds (``dense``, ``imp``, ``seed``,
    ``random``); a table from before the ``network`` column holds only dense and IMP."""
    if "network" in accuracy:
        kind = accuracy["network"]
    else:
        kind = accuracy["iteration"].map(lambda k: "dense" if k == 0 else "imp")
    return accuracy[kind.isin(kinds)]


def write_csv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` atomically; missing values are empty cells, floats round-trip exactly."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, na_rep="", lineterminator="\n")


def build_tables(
    experiment: str,
    model: str,
    dataset: str,
    similarity_paths: Iterable[str | os.PathLike],
    network_metrics_paths: Iterable[str | os.PathLike],
    mask_overlap: pd.DataFrame | None,
    out_similarity: str | os.PathLike,
    out_accuracy: str | os.PathLike,
    out_masks: str | os.PathLike | None = None,
    control_similarity: Iterable[ControlFile] = (),
) -> dict[str, pd.DataFrame]:
    """Build and write ``similarity.csv``, ``accuracy.csv`` (and ``masks.csv``).

    ``similarity_paths`` compare IMP networks with the dense one, ``control_similarity`` are
    the controls' files (:data:`ControlFile`).

    Returns the three tables keyed ``similarity``, ``accuracy``, ``masks``. ``experiment``
    only checks that the inputs belong to it: a file that names another experiment stops
    the job (it would silently mix two studies).
    """
    networks = read_network_metrics(network_metrics_paths)
    for rec in networks:
        if rec.get("experiment") not in (None, experiment):
            raise PrunesimError(
                f"a network metrics file of experiment {rec['experiment']!r} was passed to "
                f"the aggregate job of {experiment!r}; check the aggregate rule's inputs."
            )
    similarity = similarity_table(
        similarity_paths, networks, experiment, model, dataset, control_similarity
    )
    accuracy = accuracy_table(networks, experiment, model, dataset)
    masks = mask_table(mask_overlap, model, dataset)
    write_csv(similarity, out_similarity)
    write_csv(accuracy, out_accuracy)
    if out_masks is not None:
        write_csv(masks, out_masks)
    return {"similarity": similarity, "accuracy": accuracy, "masks": masks}
