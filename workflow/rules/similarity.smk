# One rule per metric, generated from the config's metric list: a job compares one layer of
# a pruned network with its dense counterpart (`similarity_jobs: network`: all of a network's
# layer pairs in one job, for the full study's scale). Each rule sees only its own metric's
# settings and declares its implementation module as input, so editing one metric reruns
# only that metric. A variant (`name: {metric: base, ...}`) is a rule of its own.
# A `shell:` rule calling `python -m prunesim.similarity_job`, not a `script:`: a job then
# starts at the interpreter's cost, without Snakemake's preamble (issue #13). Its settings
# reach it as one JSON argument rendered from params (`similarity_job_spec`), so a changed
# setting still reruns exactly that metric's jobs. The interpreter and library path come
# from the environment (`job_environment` in common.smk), outside params and the command's
# text, so a moved checkout or --use-conda reruns nothing.

SIMILARITY_SHELL = (
    'PYTHONPATH="$PRUNESIM_SRC" "$PRUNESIM_PYTHON" -m prunesim.similarity_job'
    " --pruned {input.pruned:q} --dense {input.dense:q} --out {output:q}"
    " --log {log:q} --threads {threads} --job {params.job:q} {params.stats}"
)
SIMILARITY_GROUP = "sim_{experiment}_run{run}_iter{iteration}"

for metric_name in METRICS:

    rule:
        name:
            f"similarity_{metric_name}"
        input:
            unpack(similarity_stats_inputs(metric_name)),
            pruned=fill(
                rules.extract_acts.output.acts, network="run{run}_iter{iteration}"
            ),
            dense=fill(rules.extract_acts.output.acts, network="dense"),
            impl=metric_source(metric_name),
        output:
            f"results/{{experiment}}/similarity/{metric_name}/run{{run}}/iter{{iteration}}/{SIMILARITY_JOB}.json",
        log:
            f"logs/similarity/{{experiment}}/{metric_name}/run{{run}}_iter{{iteration}}_{SIMILARITY_JOB}.log",
        benchmark:
            f"logs/benchmarks/similarity/{{experiment}}/{metric_name}/run{{run}}_iter{{iteration}}_{SIMILARITY_JOB}.tsv"
        # on a cluster, one submission per pruned network holds all its similarity jobs
        # (profiles/slurm); set here, not in the profile, because a variant's rule name is
        # the user's choice. Ignored by local runs.
        group:
            SIMILARITY_GROUP
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            job=similarity_job_spec(metric_name),
            stats=similarity_stats_args(metric_name),
        shell:
            SIMILARITY_SHELL


# The shared statistics (issue #13): per layer pair and reshape one pass over the
# activations that every metric of that reshape reads (moments, or centered Grams when the
# layers are wider than the probe), the dense network's side once per experiment. One job
# and file per network and reshape (few jobs; a metric job reads only its pair's arrays).
# Only the reshape (and the pairs) decide their content, so a metric's other settings
# never rerun them.


rule dense_stats:
    input:
        acts=fill(rules.extract_acts.output.acts, network="dense"),
    output:
        stats_output("results/{experiment}/similarity_stats/{reshape}/dense.npz"),
    log:
        "logs/dense_stats/{experiment}/{reshape}.log",
    benchmark:
        "logs/benchmarks/dense_stats/{experiment}/{reshape}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        layers=get_stats_layers,
    shell:
        'PYTHONPATH="$PRUNESIM_SRC" "$PRUNESIM_PYTHON" -m prunesim.similarity_stats dense'
        " --acts {input.acts:q} --layers {params.layers:q} --reshape {wildcards.reshape}"
        " --out {output:q} --log {log:q} --threads {threads}"


rule pair_stats:
    input:
        pruned=fill(rules.extract_acts.output.acts, network="run{run}_iter{iteration}"),
        dense=fill(rules.extract_acts.output.acts, network="dense"),
        dense_stats=rules.dense_stats.output[0],
    output:
        stats_output(
            "results/{experiment}/similarity_stats/{reshape}/run{run}_iter{iteration}.npz"
        ),
    log:
        "logs/pair_stats/{experiment}/{reshape}/run{run}_iter{iteration}.log",
    benchmark:
        "logs/benchmarks/pair_stats/{experiment}/{reshape}/run{run}_iter{iteration}.tsv"
    # in its network's similarity group, which reads it (profiles/slurm)
    group:
        SIMILARITY_GROUP
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        pairs=get_stats_pairs,
    shell:
        'PYTHONPATH="$PRUNESIM_SRC" "$PRUNESIM_PYTHON" -m prunesim.similarity_stats pair'
        " --pruned {input.pruned:q} --dense {input.dense:q} --pairs {params.pairs:q}"
        " --dense-stats {input.dense_stats:q} --reshape {wildcards.reshape}"
        " --out {output:q} --log {log:q} --threads {threads}"
