"""Config validation with messages that name the key, the problem and the allowed values.

The JSON schema (``workflow/schemas/config.schema.yaml``) is the single source of truth for
keys, types and defaults. ``validate_config`` fills defaults in place (like Snakemake's
``validate``) and turns the first schema violation into a :class:`ConfigError` a person
can act on, then checks what a schema cannot express (cross references between sections).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

from prunesim.errors import ConfigError
from prunesim.layers import compared_layers

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """Read the YAML schema."""
    with open(path) as fh:
        return yaml.safe_load(fh)


@functools.cache
def _cached_schema() -> dict:
    """The schema as read once per process (jobs build their settings from it)."""
    return load_schema()


def _validator_with_defaults(schema: dict):
    """A Draft 2020-12 validator that writes ``default`` values into the instance."""
    from jsonschema import Draft202012Validator, validators

    base_properties = Draft202012Validator.VALIDATORS["properties"]
    root = schema

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                ref = subschema.get("$ref", "")
                if "default" not in subschema and ref.startswith("#/$defs/"):
                    subschema = root["$defs"][ref.rsplit("/", 1)[-1]]
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from base_properties(validator, properties, instance, schema)

    cls = validators.extend(Draft202012Validator, {"properties": set_defaults})
    return cls(schema)


def _key_path(error) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "<top level>"


def _declared_keys(schema: dict, root: dict) -> set[str]:
    """Property names a (sub)schema declares, following allOf/$ref into ``root``'s $defs."""
    keys = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        target = root["$defs"][ref.rsplit("/", 1)[-1]] if ref.startswith("#/$defs/") else part
        keys |= _declared_keys(target, root)
    return keys


def _explain(error, root: dict) -> str:
    """One sentence per schema violation: where, what, and what is allowed."""
    where = _key_path(error)
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key(s) {', '.join(map(repr, extra))} under '{where}'{hint}"
    if kind == "unevaluatedProperties":
        allowed = sorted(_declared_keys(error.schema, root))
        extra = sorted(set(error.instance) - set(allowed))
        return (
            f"unknown key(s) {', '.join(map(repr, extra))} under '{where}'; "
            f"allowed keys: {', '.join(allowed)}"
        )
    if kind == "enum":
        return (
            f"'{where}' is {error.instance!r}; allowed values: "
            f"{', '.join(map(repr, error.validator_value))}"
        )
    if kind == "type":
        return f"'{where}' must be of type {error.validator_value}, got {error.instance!r}"
    if kind == "required":
        return f"'{where}' is missing a required key: {error.message}"
    if kind in {"oneOf", "anyOf"} and error.context:
        best = min(error.context, key=lambda e: len(list(e.absolute_path)))
        return f"'{where}' is invalid: {best.message}"
    return f"'{where}': {error.message}"


def metric_bases(config: dict) -> dict[str, str]:
    """``{metric name: built-in metric it computes}``: itself, or a variant's ``metric``."""
    return {
        name: (block or {}).get("metric", name) if isinstance(block, dict) else name
        for name, block in config["metrics"].items()
    }


def _check_metric_variants(config: dict, schema: dict) -> None:
    """Variants (``name: {metric: base, ...}``): a known base, a free name, base settings.

    The schema only knows that a variant names its base; its other settings are validated
    here against the base metric's block, with that block's defaults filled in.
    """
    builtins = schema["properties"]["metrics"]["properties"]
    for name, block in (config.get("metrics") or {}).items():
        if name not in builtins and not (isinstance(block, dict) and "metric" in block):
            raise ConfigError(
                f"unknown metric {name!r} under 'metrics'; built-in metrics: "
                f"{', '.join(builtins)}. A variant of one of them needs its base: "
                f"`{name}: {{metric: <built-in>, ...}}`"
            )
        if not isinstance(block, dict) or "metric" not in block:
            continue
        base = block["metric"]
        if name in builtins:
            raise ConfigError(
                f"metrics/{name}: {name!r} is a built-in metric and cannot name a variant "
                f"(metric: {base!r}); choose another name, e.g. '{base}_variant'"
            )
        if base not in builtins:
            raise ConfigError(
                f"metrics/{name}/metric is {base!r}; a variant's base must be one of "
                f"{', '.join(builtins)}"
            )
        settings = {key: value for key, value in block.items() if key != "metric"}
        definition = builtins[base]["$ref"].rsplit("/", 1)[-1]
        settings = validate_block(
            settings, definition, f"metric variant metrics/{name} (a {base})", schema
        )
        config["metrics"][name] = {"metric": base, **settings}


def _fill_metric_defaults(config: dict) -> None:
    """Each metric block with its metric's defaults filled in, in place.

    The schema gives a metric's keys, types and allowed values; the defaults belong to the
    metric's module (``prunesim.metrics.DEFAULT_SETTINGS``), the one place a library call
    reads them too, so an omitted key means the same in the workflow and in a direct call.
    A variant gets its base metric's defaults.
    """
    from prunesim.metrics import DEFAULT_SETTINGS

    for name, base in metric_bases(config).items():
        block = dict(config["metrics"][name] or {})
        variant = {"metric": block.pop("metric")} if "metric" in block else {}
        config["metrics"][name] = {**variant, **copy.deepcopy(DEFAULT_SETTINGS[base]), **block}


def validate_block(block, definition: str, where: str, schema: dict | None = None) -> dict:
    """A copy of one settings block, validated against ``$defs/<definition>``, defaults filled.

    How a job builds its typed settings (``prunesim.settings``) from a config slice or from a
    partial dict a caller wrote, so the schema is the one owner of every key, type and default.
    ``where`` names the block in the error (e.g. ``train``).
    """
    schema = _cached_schema() if schema is None else schema
    settings = copy.deepcopy(dict(block or {}))
    sub = {"$defs": schema["$defs"], **schema["$defs"][definition]}
    errors = sorted(_validator_with_defaults(sub).iter_errors(settings), key=str)
    if errors:
        raise ConfigError(
            f"invalid settings for {where}: " + "; ".join(_explain(e, schema) for e in errors[:5])
        )
    return settings


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` in place (defaults filled) and return it, or raise ConfigError."""
    schema = load_schema() if schema is None else schema
    _check_metric_variants(config, schema)
    validator = _validator_with_defaults(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = "\n  - ".join(_explain(e, schema) for e in errors[:10])
        raise ConfigError(
            f"invalid configuration:\n  - {lines}\n"
            f"Fix these keys in your config file (schema: workflow/schemas/config.schema.yaml)."
        )
    _fill_metric_defaults(config)
    _check_cross_references(config)
    return config


def _check_cross_references(config: dict[str, Any]) -> None:
    datasets = config["datasets"]
    for name, experiment in config["experiments"].items():
        if experiment["dataset"] not in datasets:
            raise ConfigError(
                f"experiments/{name}/dataset is {experiment['dataset']!r}, which is not defined "
                f"under 'datasets'; defined datasets: {', '.join(sorted(datasets))}"
            )
        known = [layer for layer, _ in compared_layers(experiment["model"])]
        unknown = sorted(set(experiment.get("layers") or []) - set(known))
        if unknown:
            raise ConfigError(
                f"experiments/{name}/layers names unknown layer(s) {unknown} for model "
                f"{experiment['model']!r}; its layers are: {', '.join(known)}"
            )
        schedule = experiment["train"]["schedule"]
        if schedule["kind"] == "piecewise_linear" and len(schedule["epochs"]) != len(
            schedule["values"]
        ):
            raise ConfigError(
                f"experiments/{name}/train/schedule: 'epochs' and 'values' must have the same "
                f"length (got {len(schedule['epochs'])} and {len(schedule['values'])})"
            )
        prune = experiment["prune"]
        cross = experiment.get("cross_layer") or {"metrics": [], "iterations": []}
        missing = sorted(set(cross["metrics"]) - set(config["metrics"]))
        late = sorted(i for i in cross["iterations"] if i > prune["iterations"])
        if missing or late:
            raise ConfigError(
                f"experiments/{name}/cross_layer: metrics {missing} are not under 'metrics' "
                f"and/or iterations {late} exceed prune/iterations ({prune['iterations']})"
            )
        if prune["retrain"] == "wr" and prune["rewind_epoch"] >= experiment["train"]["epochs"]:
            raise ConfigError(
                f"experiments/{name}/prune/rewind_epoch ({prune['rewind_epoch']}) must be below "
                f"train/epochs ({experiment['train']['epochs']}) for weight rewinding"
            )
        _check_controls(name, experiment)
    for source, dataset in datasets.items():
        if dataset["source"] == "imagefolder" and not dataset.get("root"):
            raise ConfigError(
                f"datasets/{source}: source 'imagefolder' needs 'root' (a directory holding "
                f"train/<class>/* and test/<class>/*)"
            )


def _check_controls(name: str, experiment: dict) -> None:
    """What the schema cannot say about ``controls``: they must fit the experiment's IMP grid.

    (A negative ``seed_baseline`` is the schema's: its message names the key.) A
    random-pruning iteration copies IMP's per-layer removal counts at that iteration, so it
    must exist; run against run needs two runs; random pruning copies single-weight counts,
    so it needs single-weight IMP (``prune.method: magnitude``).
    """
    controls = experiment["controls"]
    where = f"experiments/{name}/controls"
    iterations = experiment["prune"]["iterations"]
    late = sorted(k for k in controls["random_pruning"] if k > iterations)
    if late:
        raise ConfigError(
            f"{where}/random_pruning names IMP iteration(s) {late} beyond "
            f"experiments/{name}/prune/iterations ({iterations}); random pruning copies IMP's "
            f"per-layer counts at an iteration that exists (1..{iterations})"
        )
    if controls["random_pruning"] and experiment["prune"]["method"] != "magnitude":
        raise ConfigError(
            f"{where}/random_pruning needs experiments/{name}/prune/method: magnitude (it "
            f"removes single weights); the experiment prunes by {experiment['prune']['method']}"
        )
    if controls["run_vs_run"] is not None and experiment["runs"] < 2:
        raise ConfigError(
            f"{where}/run_vs_run compares different IMP runs, but experiments/{name}/runs is "
            f"{experiment['runs']}; set runs >= 2 or run_vs_run: null"
        )


# README "What the full study needs": one full-width VGG16_BN epoch takes ~6.4 min on a
# 2-core AMD EPYC, so config.yaml's VGG16_BN grid (401 trainings x 160 epochs) is ~6,800 h.
PAPER_CPU_HOURS = 6800
QUICKSTART_COMMAND = ".venv/bin/snakemake --cores 2 --configfile config/quickstart.yaml"


def cuda_available() -> bool:
    """Whether training jobs started here would find a CUDA GPU.

    Asks torch when this interpreter has it (what the jobs use), else ``nvidia-smi -L``
    (Snakemake itself may run without torch, e.g. with ``--use-conda``).
    """
    try:
        import torch
    except ImportError:
        import shutil
        import subprocess

        smi = shutil.which("nvidia-smi")
        if smi is None:
            return False
        try:
            proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return proc.returncode == 0 and "GPU" in proc.stdout
    return torch.cuda.is_available()


def check_gpu_requirement(config: dict, has_cuda: bool) -> None:
    """Refuse to run a ``require_gpu`` config (the paper's full study) on a machine without CUDA.

    ``allow_cpu: true`` overrides. Called when Snakemake is about to execute jobs locally, not
    for dry runs, ``--lint`` or cluster submissions (whose jobs run on GPU nodes).
    """
    if not config.get("require_gpu") or config.get("allow_cpu") or has_cuda:
        return
    raise ConfigError(
        "this machine has no CUDA GPU and the config sets require_gpu: true, as config.yaml "
        f"(the paper's full study, 603 networks: ~{PAPER_CPU_HOURS:,} CPU-hours for VGG16_BN "
        "alone on a 2-core CPU) does. Nothing was run. To try the workflow on a CPU, run the "
        f"quickstart (10-20 minutes on 2 cores): {QUICKSTART_COMMAND}. To run this config on "
        "the CPU anyway, add `--config allow_cpu=True`; on a SLURM cluster, submit it with "
        "`--workflow-profile profiles/slurm`."
    )


def selected_layers(experiment: dict) -> list[tuple[str, str]]:
    """The (layer, kind) pairs an experiment compares, in forward order."""
    layers = compared_layers(experiment["model"])
    wanted = experiment.get("layers")
    return [lk for lk in layers if wanted is None or lk[0] in wanted]
