# Intrinsic dimension (TwoNN) of every compared layer, per network: a per-network statistic,
# not a pairwise similarity, so it has its own rules and table (opt-in: `intrinsic_dimension`).


rule intrinsic_dimension:
    input:
        acts=rules.extract_acts.output.acts,
        impl=intrinsic_dimension_source(),
    output:
        "results/{experiment}/intrinsic_dimension/{network}.json",
    log:
        "logs/intrinsic_dimension/{experiment}/{network}.log",
    benchmark:
        "logs/benchmarks/intrinsic_dimension/{experiment}/{network}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        layers=get_compared_layer_names,
        settings=config_slice("intrinsic_dimension"),
        run=get_network_run,
        iteration=get_network_iteration,
        seed=config["seed"],
    script:
        "../scripts/intrinsic_dimension.py"


rule aggregate_intrinsic_dimension:
    input:
        ids=get_intrinsic_dimension_outputs,
        networks=get_network_metrics,
    output:
        table="results/{experiment}/tables/intrinsic_dimension.csv",
    log:
        "logs/aggregate_intrinsic_dimension/{experiment}.log",
    benchmark:
        "logs/benchmarks/aggregate_intrinsic_dimension/{experiment}.tsv"
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        experiment="{experiment}",
        model=config_slice("experiments/{experiment}/model"),
        dataset=config_slice("experiments/{experiment}/dataset"),
    script:
        "../scripts/aggregate_intrinsic_dimension.py"


rule plot_intrinsic_dimension:
    input:
        table=rules.aggregate_intrinsic_dimension.output.table,
    output:
        figure=report(
            "results/{experiment}/figures/intrinsic_dimension.svg",
            caption="../report/intrinsic_dimension.rst",
            category="Intrinsic dimension",
            labels={"experiment": "{experiment}"},
        ),
        png="results/{experiment}/figures/intrinsic_dimension.png",
    log:
        "logs/plot_intrinsic_dimension/{experiment}.log",
    benchmark:
        "logs/benchmarks/plot_intrinsic_dimension/{experiment}.tsv"
    localrule: True
    conda:
        "../../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        figures=config_slice("figures"),
    script:
        "../scripts/plot_intrinsic_dimension.py"
