# Collect per-job results into tidy tables, then draw the paper's figures.


rule aggregate:
    input:
        similarity=get_similarity_outputs,
        networks=get_network_metrics,
        masks=get_masks,
        # the controls' similarity files and networks (empty unless experiments.<e>.controls)
        controls=get_control_similarity_outputs,
        control_networks=get_control_network_metrics,
    output:
        similarity="results/{experiment}/tables/similarity.csv",
        accuracy=report(
            "results/{experiment}/tables/accuracy.csv",
            caption="../report/accuracy_table.rst",
            category="Accuracy",
            subcategory="tables",
        ),
        masks="results/{experiment}/tables/masks.csv",
    log:
        "logs/aggregate/{experiment}.log",
    benchmark:
        "logs/benchmarks/aggregate/{experiment}.tsv"
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        experiment="{experiment}",
        model=config_slice("experiments/{experiment}/model"),
        dataset=config_slice("experiments/{experiment}/dataset"),
        # what the input files are, from the functions that list them (never parsed from paths)
        masks=get_mask_networks,
        controls=get_control_similarity_labels,
    script:
        "../scripts/aggregate.py"


rule plot:
    input:
        similarity=rules.aggregate.output.similarity,
        accuracy=rules.aggregate.output.accuracy,
        masks=rules.aggregate.output.masks,
    output:
        **{
            f"similarity_{metric}": report(
                f"results/{{experiment}}/figures/similarity_{metric}.svg",
                caption="../report/similarity.rst",
                category="Similarity",
                subcategory=metric,
                labels={"experiment": "{experiment}", "metric": metric},
            )
            for metric in LAYERWISE_METRICS
        },
        **{
            f"similarity_{metric}_png": f"results/{{experiment}}/figures/similarity_{metric}.png"
            for metric in LAYERWISE_METRICS
        },
        accuracy=report(
            "results/{experiment}/figures/accuracy.svg",
            caption="../report/accuracy.rst",
            category="Accuracy",
            subcategory="{experiment}",
        ),
        accuracy_png="results/{experiment}/figures/accuracy.png",
        layerwise=report(
            "results/{experiment}/figures/layerwise.svg",
            caption="../report/layerwise.rst",
            category="Similarity",
            subcategory="layerwise, four metrics",
            labels={"experiment": "{experiment}", "metrics": "SVCCA, PWCCA, CKA, NBS"},
        ),
        layerwise_png="results/{experiment}/figures/layerwise.png",
        output_similarity=report(
            "results/{experiment}/figures/output_similarity.svg",
            caption="../report/output_similarity.rst",
            category="Similarity",
            subcategory="output layer",
        ),
        output_similarity_png="results/{experiment}/figures/output_similarity.png",
        mask_overlap=report(
            "results/{experiment}/figures/mask_overlap.svg",
            caption="../report/mask_overlap.rst",
            category="Masks",
            subcategory="{experiment}",
        ),
        mask_overlap_png="results/{experiment}/figures/mask_overlap.png",
    log:
        "logs/plot/{experiment}.log",
    benchmark:
        "logs/benchmarks/plot/{experiment}.tsv"
    localrule: True
    conda:
        "../../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        experiment="{experiment}",
        metrics=METRICS,
        figures=config_slice("figures"),
    script:
        "../scripts/plot.py"


rule plot_accuracy_all:
    input:
        accuracy=expand(rules.aggregate.output.accuracy, experiment=list(EXPERIMENTS)),
    output:
        figure=report(
            "results/figures/accuracy_all.svg",
            caption="../report/accuracy_all.rst",
            category="Accuracy",
            subcategory="all experiments",
        ),
        png="results/figures/accuracy_all.png",
    log:
        "logs/plot_accuracy_all/all.log",
    benchmark:
        "logs/benchmarks/plot_accuracy_all/all.tsv"
    localrule: True
    conda:
        "../../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        experiments=list(EXPERIMENTS),
        density_axis=config_slice("figures/density_axis"),
    script:
        "../scripts/plot_accuracy_all.py"


rule plot_cross_layer:
    input:
        similarity=rules.aggregate.output.similarity,
    output:
        heatmap=report(
            "results/{experiment}/figures/cross_layer_{metric}.svg",
            caption="../report/cross_layer.rst",
            category="Similarity",
            subcategory="cross-layer",
            labels={"experiment": "{experiment}", "metric": "{metric}"},
        ),
        png="results/{experiment}/figures/cross_layer_{metric}.png",
    log:
        "logs/plot_cross_layer/{experiment}_{metric}.log",
    benchmark:
        "logs/benchmarks/plot_cross_layer/{experiment}_{metric}.tsv"
    localrule: True
    conda:
        "../../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        iteration=get_cross_layer_iteration,
        density_axis=config_slice("figures/density_axis"),
    script:
        "../scripts/plot_cross_layer.py"
