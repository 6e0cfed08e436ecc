"""The paper's checkable results against an experiment's tables (torch-free).

``workflow/resources/paper_claims.yaml`` holds the paper's results as data, one claim per
entry (its header documents the schema and where each number comes from).
:func:`load_claims` reads and checks it; :func:`compare_with_paper` evaluates every claim on
one experiment's ``similarity.csv`` and ``accuracy.csv`` (columns: ``prunesim.tables``) and
returns one row per claim:

- ``claim``, ``figure``, ``description``: from the claims file;
- ``scope``: the data the claim was decided on (metric, layers, the IMP iterations actually
  evaluated and, where they are fewer, the paper's);
- ``paper_value``: what the paper says, as a condition;
- ``measured_value``: the same quantity in this experiment;
- ``status``: ``holds``, ``differs`` or ``skipped``;
- ``reason``: why it was skipped (the experiment lacks the network, metric, layers or
  iterations the claim needs) or what differs, and, when the experiment covers only part of
  the iterations the claim is about, which part was evaluated.

Every measured value is computed from **means over runs**: for each IMP iteration and layer,
the mean of the runs' values (undefined values, empty cells in the table, left out), then the
claim's check on those means. Similarity claims use same-layer pairs only (``layer ==
layer_b``).

Iterations are the paper's (20 at 20 %: iteration k keeps 0.8^k of the weights). A reduced
study is compared where it overlaps the paper (:func:`_evaluated`): ``all`` and explicit lists
take the claim's iterations the experiment has, ``last`` the paper's last iteration or, when
the experiment stops earlier, the experiment's last one; accuracy claims add the dense network
(iteration 0). A claim is skipped only when that leaves no pruned iteration, the dense network
is missing for an accuracy claim, or an evaluated iteration's density is not the paper's
(another pruning schedule). A partial coverage still gives holds / differs, and its reason
says what was evaluated against what the claim covers. ``peak_accuracy_near_density`` is
skipped when the peak of the evaluated range is at the lowest density reached and the claim
goes further: accuracy may still rise below it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from prunesim.controls import PRUNED_VS_DENSE
from prunesim.errors import PrunesimError
from prunesim.layers import MODEL_NAMES, compared_layers
from prunesim.tables import comparison_rows, network_rows, write_csv

COMPARISON_COLUMNS = [
    "claim", "figure", "description", "scope", "paper_value", "measured_value", "status",
    "reason",
]  # fmt: skip
STATUSES = ("holds", "differs", "skipped")

_CLAIM_KEYS = {
    "id", "description", "figure", "source", "note", "applies_to", "metric", "layers",
    "iterations", "check",
}  # fmt: skip
_REQUIRED_KEYS = ("id", "description", "figure", "source", "applies_to", "iterations", "check")
_ID = re.compile(r"[a-z0-9_]+")


class ClaimsError(PrunesimError):
    """The claims file is unreadable or an entry is malformed."""


@dataclass(frozen=True)
class Claim:
    id: str
    description: str
    figure: str
    source: str
    applies_to: tuple[tuple[str, tuple[str, ...]], ...]  # (model, dataset names)
    iterations: str | tuple[int, ...]  # "all" | "last" | the paper's iteration numbers
    check: Mapping
    metric: str | None = None
    layers: str | tuple[str, ...] | None = None  # "all" | layer names
    note: str = ""

    @property
    def kind(self) -> str:
        return self.check["kind"]

    @property
    def on_accuracy(self) -> bool:
        return KINDS[self.kind].table == "accuracy"


@dataclass(frozen=True)
class PaperClaims:
    iterations: int  # the paper's IMP iterations
    rate: float  # fraction of the remaining weights pruned per iteration
    density_tolerance: float  # relative gap allowed between an experiment's and the paper's
    claims: tuple[Claim, ...]

    def density(self, iteration: int) -> float:
        """Fraction of prunable weights the paper's IMP keeps after ``iteration`` steps."""
        return (1.0 - self.rate) ** iteration


@dataclass(frozen=True)
class Outcome:
    status: str
    measured: str = ""
    reason: str = ""
    scope: str = ""  # set by evaluate_claim: the data the claim was decided on


@dataclass(frozen=True)
class Coverage:
    """The IMP iterations a claim is about and those of the experiment it is decided on."""

    claimed: tuple[int, ...]  # the paper's iterations the claim is about (0 = dense)
    evaluated: tuple[int, ...]  # those the claim is decided on (the experiment has them)
    densities: Mapping[int, float]  # the experiment's mean density at each evaluated one
    last_instead: bool = False  # `last`: the experiment's last iteration, not the paper's

    @property
    def partial(self) -> bool:
        return self.evaluated != self.claimed


# ----------------------------------------------------------------------------- loading


def _fail(where: str, message: str):
    raise ClaimsError(f"{where}: {message}")


def _number(
    where: str, block: Mapping, key: str, low=-math.inf, high=math.inf, prefix="check."
) -> float:
    value = block.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(where, f"{prefix}{key} must be a number, got {value!r}")
    if not low <= value <= high:
        _fail(where, f"{prefix}{key} = {value} is outside [{low}, {high}]")
    return float(value)


def _validate_threshold(where, check, _applies_to):
    _number(where, check, "threshold", 0.0, 1.0)


def _validate_range(where, check, _applies_to):
    low = _number(where, check, "low", 0.0, 1.0)
    high = _number(where, check, "high", 0.0, 1.0)
    if low > high:
        _fail(where, f"check.low = {low} is above check.high = {high}")


def _validate_argmin(where, check, applies_to):
    layers = check.get("layers")
    if not isinstance(layers, list) or not layers or not all(isinstance(x, str) for x in layers):
        _fail(where, f"check.layers must be a non-empty list of layer names, got {layers!r}")
    for model, _ in applies_to:
        _known_layers(where, "check.layers", layers, model)


def _validate_peak(where, check, _applies_to):
    _number(where, check, "density", 0.0, 1.0)
    _number(where, check, "factor", 1.0)


def _validate_kept(where, check, _applies_to):
    _number(where, check, "density", 0.0, 1.0)
    _number(where, check, "tolerance", 0.0, 1.0)


def _known_layers(where: str, key: str, layers: Iterable[str], model: str) -> None:
    names = [name for name, _ in compared_layers(model)]
    unknown = [name for name in layers if name not in names]
    if unknown:
        _fail(
            where,
            f"{key} names {', '.join(unknown)}, not compared layers of {model} "
            f"({', '.join(names)})",
        )


def _applies_to(where: str, entries) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(entries, list) or not entries:
        _fail(where, "applies_to must be a non-empty list of {model, dataset}")
    pairs = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"model", "dataset"}:
            _fail(where, f"applies_to entry {entry!r} must have exactly the keys model, dataset")
        if entry["model"] not in MODEL_NAMES:
            _fail(
                where,
                f"applies_to model {entry['model']!r} is unknown; choose one of "
                f"{', '.join(MODEL_NAMES)}",
            )
        datasets = entry["dataset"]
        datasets = [datasets] if isinstance(datasets, str) else datasets
        if not isinstance(datasets, list) or not datasets:
            _fail(where, f"applies_to dataset must be a name or a list of names: {entry!r}")
        pairs.append((entry["model"], tuple(str(d) for d in datasets)))
    return tuple(pairs)


def _claim(raw, index: int, source: str) -> Claim:
    where = f"{source}: claim #{index + 1}"
    if not isinstance(raw, dict):
        _fail(where, f"must be a mapping, got {type(raw).__name__}")
    if isinstance(raw.get("id"), str):
        where = f"{source}: claim {raw['id']!r}"
    unknown = sorted(set(raw) - _CLAIM_KEYS)
    if unknown:
        _fail(
            where, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_CLAIM_KEYS))}"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in raw]
    if missing:
        _fail(where, f"lacks the key(s) {', '.join(missing)}")
    if not isinstance(raw["id"], str) or not _ID.fullmatch(raw["id"]):
        _fail(where, f"id {raw['id']!r} must be lower-case letters, digits and _")
    for key in ("description", "figure", "source"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            _fail(where, f"{key} must be a non-empty text")
    applies_to = _applies_to(where, raw["applies_to"])

    check = raw["check"]
    if not isinstance(check, dict) or "kind" not in check:
        _fail(where, "check must be a mapping with a kind")
    kind = KINDS.get(check["kind"])
    if kind is None:
        _fail(where, f"check.kind {check['kind']!r} is not known; choose one of {', '.join(KINDS)}")
    unknown = sorted(set(check) - {"kind", *kind.params})
    if unknown:
        _fail(
            where,
            f"check of kind {check['kind']} takes {', '.join(kind.params)}, not "
            f"{', '.join(unknown)}",
        )
    kind.validate(where, check, applies_to)

    iterations = raw["iterations"]
    if isinstance(iterations, list):
        if not iterations or not all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in iterations
        ):
            _fail(
                where,
                f"iterations must be all, last or a list of iteration numbers: {iterations!r}",
            )
        iterations = tuple(sorted(set(iterations)))
    elif iterations not in ("all", "last"):
        _fail(where, f"iterations must be all, last or a list of iteration numbers: {iterations!r}")

    metric, layers = raw.get("metric"), raw.get("layers")
    if kind.table == "accuracy":
        extra = [key for key in ("metric", "layers") if key in raw]
        if extra:
            _fail(where, f"an accuracy claim ({check['kind']}) takes no {', '.join(extra)}")
    else:
        if not isinstance(metric, str) or not metric:
            _fail(where, f"a similarity claim ({check['kind']}) needs a metric")
        if layers != "all":
            if not isinstance(layers, list) or not layers:
                _fail(where, f"layers must be all or a non-empty list of names: {layers!r}")
            for model, _ in applies_to:
                _known_layers(where, "layers", layers, model)
            layers = tuple(layers)
    note = raw.get("note") or ""
    return Claim(
        id=raw["id"],
        description=" ".join(raw["description"].split()),
        figure=raw["figure"],
        source=raw["source"],
        applies_to=applies_to,
        iterations=iterations,
        check=dict(check),
        metric=metric,
        layers=layers,
        note=note,
    )


def parse_claims(document, source: str = "claims") -> PaperClaims:
    """Check a parsed claims document (see the claims file's header) and return its claims."""
    if not isinstance(document, dict) or set(document) != {"imp", "claims"}:
        _fail(source, "must be a mapping with exactly the keys imp and claims")
    imp = document["imp"]
    if not isinstance(imp, dict) or set(imp) != {"iterations", "rate", "density_tolerance"}:
        _fail(source, "imp must have exactly the keys iterations, rate, density_tolerance")
    iterations = imp["iterations"]
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        _fail(source, f"imp.iterations must be a positive integer, got {iterations!r}")
    rate = _number(source, imp, "rate", 0.0, 1.0, prefix="imp.")
    tolerance = _number(source, imp, "density_tolerance", 0.0, 1.0, prefix="imp.")
    raw_claims = document["claims"]
    if not isinstance(raw_claims, list) or not raw_claims:
        _fail(source, "claims must be a non-empty list")
    claims = tuple(_claim(raw, i, source) for i, raw in enumerate(raw_claims))
    seen = set()
    for claim in claims:
        if claim.id in seen:
            _fail(source, f"claim id {claim.id!r} is used twice")
        seen.add(claim.id)
    return PaperClaims(iterations, rate, tolerance, claims)


def load_claims(path: str | os.PathLike) -> PaperClaims:
    """Read and check the claims file; a malformed one raises :class:`ClaimsError`."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ClaimsError(f"claims file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ClaimsError(f"claims file {path} is not valid YAML: {exc}") from None
    return parse_claims(document, str(path))


# ----------------------------------------------------------------------------- checks


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _pct(density: float) -> str:
    return f"{100 * density:.3g} %"


def _at(means: pd.DataFrame, which: str) -> tuple[float, str, int]:
    """(value, layer, iteration) of the smallest or largest mean."""
    stacked = means.stack()
    (iteration, layer) = stacked.idxmin() if which == "min" else stacked.idxmax()
    return float(stacked[(iteration, layer)]), layer, int(iteration)


def _where(layer: str, iteration: int) -> str:
    return f"{layer}, iteration {iteration}"


def _check_at_least(claim: Claim, means: pd.DataFrame, _cov: Coverage) -> Outcome:
    threshold = claim.check["threshold"]
    value, layer, iteration = _at(means, "min")
    measured = f"min {_fmt(value)} ({_where(layer, iteration)})"
    if value >= threshold:
        return Outcome("holds", measured)
    below = int((means < threshold).to_numpy().sum())
    return Outcome("differs", measured, f"{below} layer x iteration mean(s) below {threshold:g}")


def _check_min_above(claim: Claim, means: pd.DataFrame, _cov: Coverage) -> Outcome:
    threshold = claim.check["threshold"]
    value, layer, iteration = _at(means, "min")
    measured = f"min {_fmt(value)} ({_where(layer, iteration)})"
    if value > threshold:
        return Outcome("holds", measured)
    return Outcome(
        "differs", measured, f"the minimum is not above {threshold:g} at {_where(layer, iteration)}"
    )


def _check_range(claim: Claim, means: pd.DataFrame, _cov: Coverage) -> Outcome:
    low, high = claim.check["low"], claim.check["high"]
    lo, lo_layer, lo_it = _at(means, "min")
    hi, hi_layer, hi_it = _at(means, "max")
    measured = (
        f"min {_fmt(lo)} ({_where(lo_layer, lo_it)}), max {_fmt(hi)} ({_where(hi_layer, hi_it)})"
    )
    problems = []
    if lo < low:
        problems.append(f"below {low:g} at {_where(lo_layer, lo_it)}")
    if hi > high:
        problems.append(f"above {high:g} at {_where(hi_layer, hi_it)}")
    return Outcome("differs" if problems else "holds", measured, "; ".join(problems))


def _check_argmin(claim: Claim, means: pd.DataFrame, _cov: Coverage) -> Outcome:
    allowed = set(claim.check["layers"])
    argmins = means.idxmin(axis=1)
    measured = "; ".join(
        f"{argmins[k]} ({_fmt(means.loc[k, argmins[k]])}) at iteration {k}" for k in means.index
    )
    outside = [f"{argmins[k]} at iteration {k}" for k in means.index if argmins[k] not in allowed]
    if not outside:
        return Outcome("holds", measured)
    return Outcome(
        "differs", measured, f"least similar layer outside the set: {', '.join(outside)}"
    )


def _check_peak(claim: Claim, acc: pd.DataFrame, cov: Coverage) -> Outcome:
    """Where the evaluated iterations' mean accuracy peaks; undecidable at a truncated end.

    When the experiment stops before the claim's last iteration and its accuracy is highest at
    the lowest density it reaches, the peak may lie further down: skipped, unless that density
    is already below the accepted window (then any later peak is too: differs).
    """
    target, factor = claim.check["density"], claim.check["factor"]
    low, high = target / factor, target * factor
    peak = int(acc["test_accuracy"].idxmax())
    density = acc.loc[peak, "density"]
    measured = (
        f"peak {_fmt(acc.loc[peak, 'test_accuracy'])} at {_pct(density)} (iteration {peak}); "
        f"dense {_fmt(acc.loc[0, 'test_accuracy'])}"
    )
    if peak == max(cov.evaluated) and peak < max(cov.claimed) and density >= low:
        return Outcome(
            "skipped",
            measured,
            f"undecidable: the mean test accuracy is highest at the lowest density the "
            f"experiment reaches ({_pct(density)}, iteration {peak}) and may still rise below "
            "it, so where it peaks cannot be told",
        )
    if low <= density <= high:
        return Outcome("holds", measured)
    return Outcome(
        "differs",
        measured,
        f"the peak is at {_pct(density)}, outside {_pct(low)}-{_pct(high)}",
    )


def _check_kept(claim: Claim, acc: pd.DataFrame, _cov: Coverage) -> Outcome:
    tolerance = claim.check["tolerance"]
    dense = acc.loc[0, "test_accuracy"]
    gap = acc["test_accuracy"].drop(index=0) - dense
    worst = int(gap.idxmin())
    measured = (
        f"lowest accuracy - dense: {gap[worst]:+.4f} at iteration {worst} "
        f"({_pct(acc.loc[worst, 'density'])}); dense {_fmt(dense)}"
    )
    if gap[worst] >= -tolerance:
        return Outcome("holds", measured)
    return Outcome(
        "differs",
        measured,
        f"{int((gap < -tolerance).sum())} iteration(s) more than {tolerance:g} below the dense "
        "accuracy",
    )


@dataclass(frozen=True)
class Kind:
    table: str  # "similarity" or "accuracy"
    params: tuple[str, ...]
    validate: Callable
    evaluate: Callable[[Claim, pd.DataFrame, Coverage], Outcome]
    paper_value: Callable[[Mapping], str]


KINDS: dict[str, Kind] = {
    "all_values_at_least": Kind(
        "similarity",
        ("threshold",),
        _validate_threshold,
        _check_at_least,
        lambda c: f">= {c['threshold']:g} at every layer and iteration",
    ),
    "min_over_layers_above": Kind(
        "similarity",
        ("threshold",),
        _validate_threshold,
        _check_min_above,
        lambda c: f"minimum over layers and iterations > {c['threshold']:g}",
    ),
    "range": Kind(
        "similarity",
        ("low", "high"),
        _validate_range,
        _check_range,
        lambda c: f"in [{c['low']:g}, {c['high']:g}]",
    ),
    "argmin_layer_in": Kind(
        "similarity",
        ("layers",),
        _validate_argmin,
        _check_argmin,
        lambda c: f"least similar layer in {{{', '.join(c['layers'])}}}",
    ),
    "peak_accuracy_near_density": Kind(
        "accuracy",
        ("density", "factor"),
        _validate_peak,
        _check_peak,
        lambda c: (
            f"accuracy peaks near {_pct(c['density'])} of the weights "
            f"(accepted: {_pct(c['density'] / c['factor'])}-{_pct(c['density'] * c['factor'])})"
        ),
    ),
    "accuracy_kept_down_to_density": Kind(
        "accuracy",
        ("density", "tolerance"),
        _validate_kept,
        _check_kept,
        lambda c: (
            f"accuracy >= dense - {c['tolerance']:g} down to {_pct(c['density'])} of the weights"
        ),
    ),
}


# ----------------------------------------------------------------------------- evaluation


def _claim_iterations(claim: Claim, paper: PaperClaims) -> list[int]:
    """The claim's own iterations: ``all`` (0 for accuracy claims), ``last`` or its list."""
    if claim.iterations == "all":
        return list(range(0 if claim.on_accuracy else 1, paper.iterations + 1))
    if claim.iterations == "last":
        return [paper.iterations]
    return list(claim.iterations)


def _for_check(claim: Claim, paper: PaperClaims, iterations: Iterable[int]) -> list[int]:
    """The iterations the claim's check reads among ``iterations`` (dense added for accuracy)."""
    iterations = sorted(set(iterations))
    if claim.kind == "accuracy_kept_down_to_density":
        # only the iterations that keep at least `density` of the weights, and the dense net
        floor = claim.check["density"]
        return [0] + [k for k in iterations if k > 0 and paper.density(k) >= floor]
    if claim.on_accuracy and 0 not in iterations:
        return [0, *iterations]
    return iterations


def _claimed(claim: Claim, paper: PaperClaims) -> list[int]:
    """The paper's iterations the claim is about, as its check reads them."""
    return _for_check(claim, paper, _claim_iterations(claim, paper))


def _evaluated(claim: Claim, paper: PaperClaims, present: set[int]) -> tuple[list[int], bool]:
    """The iterations to decide the claim on, given those the experiment has (``present``).

    ``all`` and lists: the claim's iterations the experiment has. ``last``: the paper's last
    iteration if the experiment has it, else the experiment's last one (second value True).
    Accuracy claims also read the dense network (0), present or not (the caller checks).
    """
    if claim.iterations == "last" and paper.iterations not in present:
        pruned = [k for k in present if k > 0]
        return _for_check(claim, paper, [max(pruned)] if pruned else []), True
    wanted = [k for k in _claim_iterations(claim, paper) if k in present]
    return _for_check(claim, paper, wanted), False


def _span(iterations: Iterable[int]) -> str:
    its = sorted(set(iterations))
    if not its:
        return "none"
    if its == list(range(its[0], its[-1] + 1)) and len(its) > 2:
        return f"{its[0]}-{its[-1]}"
    return ", ".join(map(str, its))


def _iterations(its: list[int]) -> str:
    return f"iteration{'s' if len(its) > 1 else ''} {_span(its)}"


def _scope(
    claim: Claim, evaluated: Iterable[int], claimed: Iterable[int], last_instead: bool = False
) -> str:
    evaluated, claimed = list(evaluated), list(claimed)
    notes = ["0 = dense"] if claim.on_accuracy else []
    if evaluated != claimed:
        last = "the experiment's last; " if last_instead else ""
        notes.append(f"{last}the paper's claim: {_span(claimed)}")
    its = f"IMP iteration(s) {_span(evaluated)}" + (f" ({'; '.join(notes)})" if notes else "")
    if claim.on_accuracy:
        return f"test accuracy; {its}; mean over runs"
    if claim.layers == "all":
        layers = "every compared layer"
    else:
        layers = "layer(s) " + ", ".join(claim.layers)
    return f"{claim.metric}; {layers}; {its}; mean over runs"


def _coverage_note(cov: Coverage, paper: PaperClaims) -> str:
    """What a partial coverage evaluated against what the claim covers; empty if complete."""
    if not cov.partial:
        return ""
    done = [k for k in cov.evaluated if k > 0]
    wanted = [k for k in cov.claimed if k > 0]
    low = min(cov.densities[k] for k in done)
    dense = " and the dense network" if 0 in cov.evaluated else ""
    paper_low = _pct(paper.density(max(wanted)))
    if cov.last_instead:
        return (
            f"evaluated at the experiment's last IMP iteration, {done[-1]} ({_pct(low)} of "
            f"the weights){dense}; the paper's claim is about iteration {wanted[-1]} "
            f"({paper_low})"
        )
    return (
        f"evaluated on IMP {_iterations(done)}{dense} (down to {_pct(low)} of the weights); "
        f"the paper's claim covers {_iterations(wanted)} (down to {paper_low})"
    )


def _density_mismatch(
    densities: pd.Series, needed: Iterable[int], paper: PaperClaims
) -> str | None:
    """Why the experiment's iteration numbers are not the paper's, or None."""
    for k in needed:
        if k == 0 or k not in densities.index or pd.isna(densities[k]):
            continue
        expected = paper.density(k)
        if abs(densities[k] - expected) > paper.density_tolerance * expected:
            return (
                f"iteration {k} keeps {_pct(densities[k])} of the weights, the paper's "
                f"{_pct(expected)} (IMP {paper.iterations} x {paper.rate:g}): another pruning "
                "schedule, so its iterations are not the paper's"
            )
    return None


def _coverage(claim: Claim, paper: PaperClaims, densities: pd.Series) -> Coverage | str:
    """The iterations to decide on (``densities``: the experiment's mean density per
    iteration it has), or why the claim must be skipped."""
    present = {int(k) for k in densities.index}
    claimed = _claimed(claim, paper)
    if not any(k > 0 for k in claimed):
        return (
            f"none of the claim's iterations ({_span(_claim_iterations(claim, paper))}) keeps "
            f"at least {_pct(claim.check['density'])} of the weights"
        )
    evaluated, last_instead = _evaluated(claim, paper, present)
    if not any(k > 0 for k in evaluated):
        wanted = [k for k in claimed if k > 0]
        return (
            f"needs at least one of IMP iteration(s) {_span(wanted)}; the experiment's table "
            f"has {_span(present)}"
        )
    if 0 in evaluated and 0 not in present:
        return "needs the dense network (iteration 0), which the experiment's table lacks"
    mismatch = _density_mismatch(densities, evaluated, paper)
    if mismatch:
        return mismatch
    return Coverage(
        claimed=tuple(claimed),
        evaluated=tuple(evaluated),
        densities={k: float(densities[k]) for k in evaluated},
        last_instead=last_instead,
    )


def _similarity_means(
    claim: Claim, paper: PaperClaims, similarity: pd.DataFrame, model: str
) -> tuple[pd.DataFrame, Coverage] | str:
    """Means over runs (rows: iteration, columns: layer) and the iterations they cover, or why
    the claim must be skipped."""
    rows = similarity[similarity["metric"] == claim.metric]
    if "layer_b" in rows:
        rows = rows[rows["layer_b"].isna() | (rows["layer"] == rows["layer_b"])]
    if rows.empty:
        return f"the experiment did not compute {claim.metric} (no same-layer rows)"
    cov = _coverage(claim, paper, rows.groupby("iteration")["density"].mean())
    if isinstance(cov, str):
        return cov
    rows = rows[rows["iteration"].isin(cov.evaluated)]
    layers = [name for name, _ in compared_layers(model)] if claim.layers == "all" else claim.layers
    present = set(rows["layer"])
    absent = [name for name in layers if name not in present]
    if absent:
        return (
            f"needs layer(s) {', '.join(absent)}, which the experiment does not compare "
            "(experiments.<e>.layers)"
        )
    rows = rows[rows["layer"].isin(layers)]
    means = rows.groupby(["iteration", "layer"])["value"].mean().unstack("layer")
    means = means.reindex(index=list(cov.evaluated), columns=list(layers))
    if means.isna().to_numpy().any():
        gaps = [
            f"{layer} at iteration {k}"
            for k in means.index
            for layer in means.columns
            if pd.isna(means.loc[k, layer])
        ]
        return (
            f"no run has a defined {claim.metric} value for {', '.join(gaps[:5])}"
            + (f" and {len(gaps) - 5} more" if len(gaps) > 5 else "")
            + " (see the note column of similarity.csv)"
        )
    return means, cov


def _accuracy_means(
    claim: Claim, paper: PaperClaims, accuracy: pd.DataFrame
) -> tuple[pd.DataFrame, Coverage] | str:
    """Mean test accuracy and density over runs per iteration (index: iteration) and the
    iterations they cover, or why the claim must be skipped."""
    if accuracy.empty:
        return "the accuracy table is empty"
    cov = _coverage(claim, paper, accuracy.groupby("iteration")["density"].mean())
    if isinstance(cov, str):
        return cov
    rows = accuracy[accuracy["iteration"].isin(cov.evaluated)]
    means = rows.groupby("iteration")[["test_accuracy", "density"]].mean()
    means = means.reindex(list(cov.evaluated))
    gaps = [int(k) for k in means.index if pd.isna(means.loc[k, "test_accuracy"])]
    if gaps:
        return f"no test accuracy recorded for iteration(s) {_span(gaps)}"
    return means, cov


def _read(table: str | os.PathLike | pd.DataFrame, name: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    try:
        return pd.read_csv(table)
    except FileNotFoundError:
        raise PrunesimError(
            f"{name} table {table} does not exist; run the aggregate rule"
        ) from None
    except pd.errors.EmptyDataError:
        raise PrunesimError(f"{name} table {table} is empty; rerun the aggregate rule") from None


def evaluate_claim(
    claim: Claim,
    paper: PaperClaims,
    similarity: pd.DataFrame,
    accuracy: pd.DataFrame,
    model: str,
    dataset: str,
) -> Outcome:
    """Decide one claim on an experiment of ``model`` trained on ``dataset``.

    The outcome's ``scope`` names the iterations evaluated (the claim's own when skipped);
    a partial coverage adds what was evaluated, against what the claim covers, to ``reason``.
    """
    claimed = _claimed(claim, paper)
    if not any(model == m and dataset in datasets for m, datasets in claim.applies_to):
        about = "; ".join(f"{m} on {' or '.join(ds)}" for m, ds in claim.applies_to)
        return Outcome(
            "skipped",
            reason=f"about {about}; this experiment is {model} on {dataset}",
            scope=_scope(claim, claimed, claimed),
        )
    result = (
        _accuracy_means(claim, paper, accuracy)
        if claim.on_accuracy
        else _similarity_means(claim, paper, similarity, model)
    )
    if isinstance(result, str):
        return Outcome("skipped", reason=result, scope=_scope(claim, claimed, claimed))
    means, cov = result
    outcome = KINDS[claim.kind].evaluate(claim, means, cov)
    return Outcome(
        outcome.status,
        outcome.measured,
        "; ".join(filter(None, [outcome.reason, _coverage_note(cov, paper)])),
        _scope(claim, cov.evaluated, cov.claimed, cov.last_instead),
    )


def compare_with_paper(
    similarity: str | os.PathLike | pd.DataFrame,
    accuracy: str | os.PathLike | pd.DataFrame,
    claims: PaperClaims | str | os.PathLike,
    model: str,
    dataset: str,
) -> pd.DataFrame:
    """One row per claim (columns :data:`COMPARISON_COLUMNS`), in the claims file's order."""
    paper = claims if isinstance(claims, PaperClaims) else load_claims(claims)
    # the paper's claims are about IMP vs dense: the controls' rows are not evidence for them
    similarity = comparison_rows(_read(similarity, "similarity"), PRUNED_VS_DENSE)
    accuracy = network_rows(_read(accuracy, "accuracy"), "dense", "imp")
    rows = []
    for claim in paper.claims:
        outcome = evaluate_claim(claim, paper, similarity, accuracy, model, dataset)
        rows.append(
            {
                "claim": claim.id,
                "figure": claim.figure,
                "description": claim.description,
                "scope": outcome.scope,
                "paper_value": KINDS[claim.kind].paper_value(claim.check),
                "measured_value": outcome.measured,
                "status": outcome.status,
                "reason": outcome.reason,
            }
        )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def write_comparison(
    similarity: str | os.PathLike | pd.DataFrame,
    accuracy: str | os.PathLike | pd.DataFrame,
    claims: PaperClaims | str | os.PathLike,
    model: str,
    dataset: str,
    out: str | os.PathLike,
) -> pd.DataFrame:
    """:func:`compare_with_paper`, written atomically to ``out`` (CSV)."""
    table = compare_with_paper(similarity, accuracy, claims, model, dataset)
    write_csv(table, out)
    return table
