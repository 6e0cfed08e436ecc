# One rule per metric, generated from the config's metric list: a job compares one layer of
# a pruned network with its dense counterpart. Each rule sees only its own metric's settings,
# and declares its implementation module as input, so editing one metric reruns only it.

for metric_name in METRICS:

    rule:
        name:
            f"similarity_{metric_name}"
        input:
            pruned="results/{experiment}/activations/run{run}_iter{iteration}.h5",
            dense="results/{experiment}/activations/dense.h5",
            impl=metric_source(metric_name),
        output:
            f"results/{{experiment}}/similarity/{metric_name}/run{{run}}/iter{{iteration}}/{{layer_a}}__{{layer_b}}.json",
        log:
            f"logs/similarity/{{experiment}}/{metric_name}/run{{run}}_iter{{iteration}}_{{layer_a}}__{{layer_b}}.log",
        benchmark:
            f"benchmarks/similarity/{{experiment}}/{metric_name}/run{{run}}_iter{{iteration}}_{{layer_a}}__{{layer_b}}.tsv"
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            metric=metric_name,
            settings=lookup(dpath=f"metrics/{metric_name}", within=config),
        script:
            "../scripts/similarity.py"
