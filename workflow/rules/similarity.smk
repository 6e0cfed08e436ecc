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

for metric_name in METRICS:

    rule:
        name:
            f"similarity_{metric_name}"
        input:
            pruned="results/{experiment}/activations/run{run}_iter{iteration}.h5",
            dense="results/{experiment}/activations/dense.h5",
            impl=metric_source(metric_name),
        output:
            f"results/{{experiment}}/similarity/{metric_name}/run{{run}}/iter{{iteration}}/{SIMILARITY_JOB}.json",
        log:
            f"logs/similarity/{{experiment}}/{metric_name}/run{{run}}_iter{{iteration}}_{SIMILARITY_JOB}.log",
        benchmark:
            f"benchmarks/similarity/{{experiment}}/{metric_name}/run{{run}}_iter{{iteration}}_{SIMILARITY_JOB}.tsv"
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            job=similarity_job_spec(metric_name),
        shell:
            'PYTHONPATH="$PRUNESIM_SRC" "$PRUNESIM_PYTHON" -m prunesim.similarity_job'
            " --pruned {input.pruned:q} --dense {input.dense:q} --out {output:q}"
            " --log {log:q} --threads {threads} --job {params.job:q}"
