# Check each experiment's tables against the paper's results, kept as data in
# workflow/resources/paper_claims.yaml (editing a claim reruns this rule only).


rule compare_paper:
    input:
        similarity=rules.aggregate.output.similarity,
        accuracy=rules.aggregate.output.accuracy,
        claims=paper_claims_file(),
    output:
        comparison=report(
            "results/{experiment}/tables/paper_comparison.csv",
            caption="../report/paper_comparison.rst",
            category="Paper comparison",
            subcategory="tables",
            labels={"experiment": "{experiment}"},
        ),
    log:
        "logs/compare_paper/{experiment}.log",
    benchmark:
        "logs/benchmarks/compare_paper/{experiment}.tsv"
    localrule: True
    conda:
        "../../envs/compare.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        model=config_slice("experiments/{experiment}/model"),
        dataset=config_slice("experiments/{experiment}/dataset"),
    script:
        "../scripts/compare_paper.py"
