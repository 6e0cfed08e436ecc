# Config validation, wildcard constraints and input functions shared by all rules.
import json
import os
import shlex
import sys
from pathlib import Path

# The library is imported from the checkout itself, so no PYTHONPATH or install is needed
# (conda envs clear PYTHONPATH; see envs/*.yaml).
LIBRARY_SOURCE = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LIBRARY_SOURCE)

from prunesim.config import (
    check_gpu_requirement,
    cuda_available,
    metric_bases,
    selected_layers,
    validate_config,
)
from prunesim.metrics import METRICS as METRIC_REGISTRY
from prunesim.metrics import uses_stats
from prunesim.controls import (
    CONTROL_COMPARISONS,
    RANDOM_PRUNING_RUN,
    against_network,
    compared_network,
    control_comparisons,
    random_pruning_iterations,
    seed_networks,
)
from snakemake_interface_executor_plugins.settings import DeploymentMethod

validate_config(config)


# The paper's full study (require_gpu) on a machine without CUDA stops here, before any job.
# onstart runs only when jobs are about to execute: dry runs, --lint and --report never get
# here; cluster runs (not local_exec) train on the GPU nodes.
onstart:
    if config["require_gpu"] and workflow.local_exec:
        check_gpu_requirement(config, cuda_available())


EXPERIMENTS = config["experiments"]
# In the registry's order, whatever the config's order (params hold this list).
# Built-in metrics in the registry's order, then the config's variants (`name: {metric:
# base, ...}`) by name, whatever the config's order (params hold this list).
METRIC_BASE = metric_bases(config)
METRICS = [name for name in METRIC_REGISTRY if name in config["metrics"]] + sorted(
    name for name in config["metrics"] if name not in METRIC_REGISTRY
)
# Metrics compared on the output layer only (the registry's Metric.output_only; variants too).
OUTPUT_ONLY = {
    metric: METRIC_REGISTRY[base].output_only for metric, base in METRIC_BASE.items()
}
# One similarity job per layer pair, or per network (all its pairs) for the full study.
SIMILARITY_JOB = (
    "{layer_a}__{layer_b}" if config["similarity_jobs"] == "pair" else "all_layers"
)


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    dataset="|".join(config["datasets"]),
    metric="|".join(METRICS),
    run=r"\d+",
    iteration=r"\d+",
    network=r"dense|run\d+_iter\d+|seed\d+|random_iter\d+",
    seed_network=r"\d+",
    comparison="|".join(CONTROL_COMPARISONS),
    against=r"dense|run\d+",
    layer_a=r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*",
    layer_b=r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*",
    reshape=r"channels|flatten",


def _sorted(value):
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def config_slice(dpath, drop=()):
    """Params: the config below ``dpath`` (may hold wildcards), keys sorted, ``drop`` left out.

    Snakemake compares params by repr, so sorting makes reordering keys in a YAML file
    rerun nothing, while any changed value still reruns exactly the jobs that read it.
    """

    def get(wildcards):
        value = config
        for key in dpath.format(**wildcards).split("/"):
            value = value[key]
        if drop:
            value = {key: item for key, item in value.items() if key not in drop}
        return _sorted(value)

    return get


##### paths: every file is named once, by the output of the rule that writes it #####


def fill(pattern, **wildcards):
    """``pattern`` (a rule's output: ``rules.<name>.output.<key>``) with these wildcards
    filled in and the others kept, so input functions never spell a path out again."""
    (path,) = expand(pattern, allow_missing=True, **wildcards)
    return path


def get_dataset(wildcards):
    """Dataset name of the experiment in the wildcards."""
    return EXPERIMENTS[wildcards.experiment]["dataset"]


def get_arrays(wildcards):
    return fill(rules.prepare_data.output.arrays, dataset=get_dataset(wildcards))


def get_probe(wildcards):
    return fill(rules.prepare_data.output.probe, dataset=get_dataset(wildcards))


def network_file(experiment, network, key):
    """File ``key`` (``model``, ``metrics``, ``mask``) of the network named like the {network}
    wildcard (``dense``, ``run1_iter2``, or a control's ``seed1``, ``random_iter2``), from
    the output of the rule that trains it."""
    if network == "dense":
        outputs, wildcards = rules.train_dense.output, {}
    elif network.startswith("seed"):
        outputs = rules.train_seed.output
        wildcards = {"seed_network": network.removeprefix("seed")}
    elif network.startswith("random_iter"):
        outputs = rules.random_prune.output
        wildcards = {"iteration": network.removeprefix("random_iter")}
    else:
        run, iteration = network.removeprefix("run").split("_iter")
        outputs, wildcards = rules.imp_iter.output, {"run": run, "iteration": iteration}
    return fill(outputs[key], experiment=experiment, **wildcards)


def resume_file(wildcards, output):
    """Params of a training rule: its per-epoch resume checkpoint, beside the model."""
    return str(Path(output.model).with_name("resume.pt"))


def previous_network(experiment, run, iteration):
    """IMP iteration k starts from iteration k-1 of the same run; k-1 = 0 is the dense net."""
    previous = int(iteration) - 1
    network = "dense" if previous == 0 else f"run{run}_iter{previous}"
    return network_file(experiment, network, "model")


def get_previous_network(wildcards):
    return previous_network(wildcards.experiment, wildcards.run, wildcards.iteration)


def get_network_checkpoint(wildcards):
    """Checkpoint of the network named by the {network} wildcard."""
    return network_file(wildcards.experiment, wildcards.network, "model")


def activations(experiment, network):
    """Activation file of a network named like the {network} wildcard (rule extract_acts)."""
    return fill(rules.extract_acts.output.acts, experiment=experiment, network=network)


def metric_source(metric):
    """The metric's (or its base's) module: editing it reruns that metric's jobs only."""
    source = f"{METRIC_BASE[metric]}.py"
    return str(Path(workflow.basedir) / "src" / "prunesim" / "metrics" / source)


def paper_claims_file():
    """The paper's results as data, read by compare_paper (editing them reruns it only)."""
    return str(Path(workflow.basedir) / "workflow" / "resources" / "paper_claims.yaml")


def intrinsic_dimension_source():
    """The estimator's module: editing it reruns the intrinsic-dimension jobs only."""
    return str(Path(workflow.basedir) / "src" / "prunesim" / "intrinsic_dimension.py")


def get_compared_layer_names(wildcards):
    """Params: the experiment's compared layers (``layers`` or all of the model's)."""
    return [name for name, _ in selected_layers(EXPERIMENTS[wildcards.experiment])]


def get_network_run(wildcards):
    """Params: the run of the {network} wildcard (None for the dense network)."""
    if wildcards.network == "dense":
        return None
    return int(wildcards.network.removeprefix("run").split("_iter")[0])


def get_network_iteration(wildcards):
    """Params: the IMP iteration of the {network} wildcard (0 for the dense network)."""
    if wildcards.network == "dense":
        return 0
    return int(wildcards.network.split("_iter")[1])


def get_intrinsic_dimension_outputs(wildcards):
    """Every network's intrinsic-dimension file of an experiment, dense first."""
    experiment = wildcards.experiment
    return [
        fill(
            rules.intrinsic_dimension.output[0], experiment=experiment, network=network
        )
        for network in ["dense", *imp_networks(experiment)]
    ]


def runs_and_iterations(experiment):
    """(run, iteration) of every pruned network of an experiment."""
    spec = EXPERIMENTS[experiment]
    return [
        (run, iteration)
        for run in range(1, spec["runs"] + 1)
        for iteration in range(1, spec["prune"]["iterations"] + 1)
    ]


def imp_networks(experiment):
    """Names (the {network} wildcard) of every pruned network of an experiment."""
    return [f"run{run}_iter{it}" for run, it in runs_and_iterations(experiment)]


def cross_layer_metrics(experiment):
    return (EXPERIMENTS[experiment]["cross_layer"] or {}).get("metrics", [])


def layer_pairs(experiment, metric, iteration):
    """(pruned layer, dense layer) pairs a metric compares at an IMP iteration.

    The same layer on both sides (an output-only metric such as cosine: output layers only);
    every pair of layers where the experiment asks for a cross-layer heatmap.
    """
    spec = EXPERIMENTS[experiment]
    names = [
        name
        for name, kind in selected_layers(spec)
        if not OUTPUT_ONLY[metric] or kind == "out"
    ]
    cross = spec["cross_layer"]
    if cross and metric in cross["metrics"] and iteration in cross["iterations"]:
        return [(a, b) for a in names for b in names]
    return [(name, name) for name in names]


def get_cross_layer_iteration(wildcards):
    """The last IMP iteration with cross-layer pairs: the heatmap shows it."""
    return max(EXPERIMENTS[wildcards.experiment]["cross_layer"]["iterations"])


def _job_python():
    """Interpreter of `shell:` jobs: the env's under --use-conda, else Snakemake's own.

    Snakemake's `script:` makes the same choice; a bare `python` could be another
    interpreter when snakemake runs as `.venv/bin/snakemake` without activating the venv.
    """
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return sys.executable


def job_environment():
    """Tell `shell:` jobs where the library and interpreter are, through the environment.

    Set in every Snakemake process, the cluster's job processes included (they read this
    file again). Not params: a moved checkout or --use-conda must not rerun finished jobs.
    """
    # set, not read: the workflow defines them, so `envvars:` (which asserts them) does not fit
    os.environ.update(PRUNESIM_SRC=LIBRARY_SOURCE, PRUNESIM_PYTHON=_job_python())


job_environment()


def similarity_job_spec(metric, pairs=None):
    """Params: one similarity job as the JSON that `python -m prunesim.similarity_job` reads.

    Only this metric's config slice goes in (sorted keys), so its changes rerun its jobs only.
    ``pairs`` (a params function) defaults to the IMP jobs' layer pairs; the controls pass
    their own (each layer with itself).
    """
    settings = config_slice(f"metrics/{metric}", drop=("metric",))
    pairs = pairs or get_layer_pairs(metric)

    def spec(wildcards):
        job = {
            "experiment": wildcards.experiment,
            "run": int(wildcards.run),
            "iteration": int(wildcards.iteration),
            "metric": metric,
            "base_metric": METRIC_BASE[metric],
            "settings": settings(wildcards),
            "pairs": pairs(wildcards),
            "single": "layer_a" in wildcards.keys(),
        }
        return json.dumps(job, sort_keys=True)

    return spec


def metric_stats_reshape(metric):
    """The reshape whose shared statistics a metric reads, or None (it reads activations)."""
    base = METRIC_BASE[metric]
    # validate_config filled the block with the metric's defaults (prunesim.config)
    settings = {k: v for k, v in config["metrics"][metric].items() if k != "metric"}
    return settings["reshape"] if uses_stats(base, settings) else None


def stats_output(path):
    """Shared statistics are as big as activations: kept exactly when those are."""
    return path if config["keep_activations"] else temp(path)


def stats_pairs(experiment, reshape, iteration):
    """Every pair some metric reads from this reshape's statistics, in first-seen order."""
    pairs = []
    for metric in METRICS:
        if metric_stats_reshape(metric) == reshape:
            pairs += [
                p for p in layer_pairs(experiment, metric, iteration) if p not in pairs
            ]
    return pairs


def get_stats_pairs(wildcards):
    """Params of pair_stats: the network's pairs (JSON), one job and file per network."""
    iteration = int(wildcards.iteration)
    pairs = stats_pairs(wildcards.experiment, wildcards.reshape, iteration)
    return json.dumps([list(p) for p in pairs])


def get_stats_layers(wildcards):
    """Params of dense_stats: every compared layer of the experiment (JSON)."""
    return json.dumps(get_compared_layer_names(wildcards))


def similarity_stats_inputs(metric):
    """Input of a metric rule: its network's shared statistics (none if it reads activations)."""
    reshape = metric_stats_reshape(metric)

    def inputs(wildcards):
        if reshape is None:
            return {}
        network = {"experiment": wildcards.experiment, "reshape": reshape}
        return {
            "stats": fill(
                rules.pair_stats.output[0],
                **network,
                run=wildcards.run,
                iteration=wildcards.iteration,
            ),
            "dense_stats": fill(rules.dense_stats.output[0], **network),
        }

    return inputs


def similarity_stats_args(metric):
    """Params: the metric job's `--stats ... --dense-stats ...` arguments, or "".

    A params function, not a choice inside `shell:`: a rule's shell command is formatted when
    the job runs, after the loop that defines the rules has moved on to another metric.
    """
    inputs = similarity_stats_inputs(metric)

    def args(wildcards):
        files = inputs(wildcards)
        if not files:
            return ""
        stats, dense = (shlex.quote(files[key]) for key in ("stats", "dense_stats"))
        return f"--stats {stats} --dense-stats {dense}"

    return args


def get_layer_pairs(metric):
    """Params function: the [pruned layer, dense layer] pairs one similarity job computes."""

    def pairs(wildcards):
        if "layer_a" in wildcards.keys():
            return [[wildcards.layer_a, wildcards.layer_b]]
        iteration = int(wildcards.iteration)
        return [list(p) for p in layer_pairs(wildcards.experiment, metric, iteration)]

    return pairs


def similarity_outputs(experiment, metric):
    """Every file of rule similarity_<metric> of an experiment (`all_layers` or per pair)."""
    pattern = getattr(rules, f"similarity_{metric}").output[0]
    return [
        path
        for run, it in runs_and_iterations(experiment)
        for path in similarity_job_files(
            pattern,
            layer_pairs(experiment, metric, it),
            experiment=experiment,
            run=run,
            iteration=it,
        )
    ]


def similarity_job_files(pattern, pairs, **wildcards):
    """A similarity rule's files for these wildcards: one per layer pair, or one for all of
    them (`similarity_jobs: network`, SIMILARITY_JOB)."""
    if config["similarity_jobs"] == "network":
        return [fill(pattern, **wildcards)]
    return [fill(pattern, **wildcards, layer_a=a, layer_b=b) for a, b in pairs]


def get_similarity_outputs(wildcards):
    return [
        path
        for metric in METRICS
        for path in similarity_outputs(wildcards.experiment, metric)
    ]


def get_network_metrics(wildcards):
    experiment = wildcards.experiment
    return [
        network_file(experiment, network, "metrics")
        for network in ["dense", *imp_networks(experiment)]
    ]


def get_masks(wildcards):
    experiment = wildcards.experiment
    return [network_file(experiment, n, "mask") for n in imp_networks(experiment)]


def get_mask_networks(wildcards):
    """Params of aggregate: [run, iteration] of each of get_masks' files, in its order."""
    return [list(network) for network in runs_and_iterations(wildcards.experiment)]


# Output-layer-only metrics (cosine) are drawn in the output-layer figure, never layer by
# layer (prunesim.plotting.OUTPUT_ONLY_METRICS).
LAYERWISE_METRICS = [metric for metric in METRICS if not OUTPUT_ONLY[metric]]


def experiment_outputs(experiment):
    """Every table and figure of one experiment: the outputs of the rules that make them
    (those of the controls and intrinsic dimension when the config asks for them)."""
    controls = EXPERIMENTS[experiment]["controls"]
    per_experiment = [rules.aggregate, rules.compare_paper, rules.plot]
    if controls["random_pruning"]:
        per_experiment.append(rules.plot_random_pruning)
    if controls["run_vs_run"] is not None:
        per_experiment.append(rules.plot_run_vs_run)
    if config["intrinsic_dimension"]:
        per_experiment += [
            rules.aggregate_intrinsic_dimension,
            rules.plot_intrinsic_dimension,
        ]
    outputs = [
        fill(path, experiment=experiment) for r in per_experiment for path in r.output
    ]
    return outputs + [
        fill(path, experiment=experiment, metric=metric)
        for metric in cross_layer_metrics(experiment)
        for path in rules.plot_cross_layer.output
    ]


def get_final_outputs():
    outputs = [path for e in EXPERIMENTS for path in experiment_outputs(e)]
    return outputs + [fill(path) for path in rules.plot_accuracy_all.output]


##### controls (experiments.<e>.controls; rules in controls.smk) #####


def control_pairs(experiment, metric):
    """Layer pairs of a control comparison: each layer with itself (output-only metrics:
    output layers only)."""
    return [
        (name, name)
        for name, kind in selected_layers(EXPERIMENTS[experiment])
        if not OUTPUT_ONLY[metric] or kind == "out"
    ]


def get_control_pairs(metric):
    """Params function: the [layer, layer] pairs one control similarity job computes."""

    def pairs(wildcards):
        if "layer_a" in wildcards.keys():
            return [[wildcards.layer_a, wildcards.layer_b]]
        return [list(p) for p in control_pairs(wildcards.experiment, metric)]

    return pairs


def get_control_activations(which):
    """Input function: activations of a control comparison's first (`a`) or second network."""

    def acts(wildcards):
        iteration = int(wildcards.iteration)
        if which == "a":
            network = compared_network(
                wildcards.comparison, int(wildcards.run), iteration
            )
        else:
            network = against_network(wildcards.against, iteration)
        return activations(wildcards.experiment, network)

    return acts


def against_run(against):
    """Run of a control comparison's second network (its {against} wildcard: ``dense``, or
    ``run<b>``), None for the dense network."""
    return None if against == "dense" else int(against.removeprefix("run"))


def control_similarity_files(experiment):
    """(path, [comparison, run_b]) of every control similarity file of an experiment, all
    metrics: the aggregate rule's input and the labels it passes to the tables."""
    files = []
    for metric in METRICS:
        pattern = getattr(rules, f"control_similarity_{metric}").output[0]
        pairs = control_pairs(experiment, metric)
        for comparison, run, it, against in control_comparisons(
            EXPERIMENTS[experiment]
        ):
            label = [comparison, against_run(against)]
            paths = similarity_job_files(
                pattern,
                pairs,
                experiment=experiment,
                comparison=comparison,
                run=run,
                iteration=it,
                against=against,
            )
            files += [(path, label) for path in paths]
    return files


def get_control_similarity_outputs(wildcards):
    return [path for path, _ in control_similarity_files(wildcards.experiment)]


def get_control_similarity_labels(wildcards):
    """Params of aggregate: [comparison, run_b] of each control similarity file, in the
    order of get_control_similarity_outputs (run_b None: the dense network)."""
    return [label for _, label in control_similarity_files(wildcards.experiment)]


def get_control_network_metrics(wildcards):
    """metrics.json of every control network (seed and random) of an experiment."""
    spec = EXPERIMENTS[wildcards.experiment]
    names = [f"seed{k}" for k in seed_networks(spec)]
    names += [f"random_iter{k}" for k in random_pruning_iterations(spec)]
    return [network_file(wildcards.experiment, n, "metrics") for n in names]


def get_random_parent(wildcards):
    """The network IMP iteration k of run RANDOM_PRUNING_RUN was pruned from."""
    return previous_network(
        wildcards.experiment, RANDOM_PRUNING_RUN, wildcards.iteration
    )
