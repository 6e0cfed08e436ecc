# Controls (opt-in, `experiments.<e>.controls`; README "Controls"): the seed baseline (dense
# networks trained again with other seeds), random pruning at IMP's per-layer counts, and run
# against run. Each is built from ordinary rules: training jobs that write networks under
# results/{experiment}/networks/ (extracted by extract_acts like any network), one similarity
# rule per metric for every control comparison, and a figure rule per control. Their params
# hold only the settings the IMP rules already read, so turning a control on or changing it
# adds or removes only its own jobs (plus the tables and figures that collect them).


rule train_seed:
    input:
        arrays=get_arrays,
    output:
        model="results/{experiment}/networks/seed{seed_network}/model.pt",
        rewind="results/{experiment}/networks/seed{seed_network}/rewind.pt",
        metrics="results/{experiment}/networks/seed{seed_network}/metrics.json",
    log:
        "logs/train_seed/{experiment}/seed{seed_network}.log",
    benchmark:
        "logs/benchmarks/train_seed/{experiment}/seed{seed_network}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1,
    params:
        model=config_slice("experiments/{experiment}/model"),
        width=config_slice("experiments/{experiment}/width"),
        train=config_slice("experiments/{experiment}/train"),
        rewind_epoch=config_slice("experiments/{experiment}/prune/rewind_epoch"),
        prune_output_layer=config_slice(
            "experiments/{experiment}/prune/prune_output_layer"
        ),
        seed=config["seed"],
        resume=resume_file,
    script:
        "../scripts/train_dense.py"


rule random_prune:
    input:
        previous=get_random_parent,
        imp_mask=fill(rules.imp_iter.output.mask, run=RANDOM_PRUNING_RUN),
        rewind=rules.train_dense.output.rewind,
        arrays=get_arrays,
    output:
        model="results/{experiment}/networks/random_iter{iteration}/model.pt",
        metrics="results/{experiment}/networks/random_iter{iteration}/metrics.json",
        mask="results/{experiment}/networks/random_iter{iteration}/mask.npz",
    log:
        "logs/random_prune/{experiment}/random_iter{iteration}.log",
    benchmark:
        "logs/benchmarks/random_prune/{experiment}/random_iter{iteration}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1,
    params:
        train=config_slice("experiments/{experiment}/train"),
        prune=config_slice("experiments/{experiment}/prune", drop=["iterations"]),
        run=RANDOM_PRUNING_RUN,
        seed=config["seed"],
        resume=resume_file,
    script:
        "../scripts/imp_iter.py"


CONTROL_SIMILARITY_GROUP = (
    "ctl_{experiment}_{comparison}_run{run}_iter{iteration}_{against}"
)


# One rule per metric, like similarity_<metric>: the same job (command and params), between
# the two networks of a control comparison: `pruned` is the first network, `dense` the
# second (the dense network, or run b at the same iteration). It reads the activations, not
# the shared statistics of pair_stats/dense_stats: those are made per IMP network against
# the dense one (run against run has no dense side), and the controls add few jobs.
for metric_name in METRICS:

    rule:
        name:
            f"control_similarity_{metric_name}"
        input:
            pruned=get_control_activations("a"),
            dense=get_control_activations("b"),
            impl=metric_source(metric_name),
        output:
            f"results/{{experiment}}/similarity/{metric_name}/{{comparison}}/run{{run}}/iter{{iteration}}/{{against}}/{SIMILARITY_JOB}.json",
        log:
            f"logs/control_similarity/{{experiment}}/{metric_name}/{{comparison}}_run{{run}}_iter{{iteration}}_{{against}}_{SIMILARITY_JOB}.log",
        benchmark:
            f"logs/benchmarks/control_similarity/{{experiment}}/{metric_name}/{{comparison}}_run{{run}}_iter{{iteration}}_{{against}}_{SIMILARITY_JOB}.tsv"
        # on a cluster, one submission per control comparison holds all its similarity
        # jobs (profiles/slurm allows the components); in the rule, as for similarity_<metric>,
        # so that a variant's rule is grouped too. Ignored by local runs.
        group:
            CONTROL_SIMILARITY_GROUP
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            job=similarity_job_spec(metric_name, get_control_pairs(metric_name)),
            stats="",  # SIMILARITY_SHELL's --stats arguments: none, it reads activations
        shell:
            SIMILARITY_SHELL


rule plot_random_pruning:
    input:
        similarity=rules.aggregate.output.similarity,
        accuracy=rules.aggregate.output.accuracy,
    output:
        figure=report(
            "results/{experiment}/figures/random_pruning.svg",
            caption="../report/random_pruning.rst",
            category="Controls",
            subcategory="random pruning",
            labels={"experiment": "{experiment}", "figure": "random vs IMP"},
        ),
        png="results/{experiment}/figures/random_pruning.png",
    log:
        "logs/plot_random_pruning/{experiment}.log",
    benchmark:
        "logs/benchmarks/plot_random_pruning/{experiment}.tsv"
    localrule: True
    conda:
        "../../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        figure="random_pruning",
        # only the settings these figures use: similarity_bands redraws none of them
        density_axis=config_slice("figures/density_axis"),
        ylim=config_slice("figures/similarity_ylim"),
    script:
        "../scripts/plot_control.py"


rule plot_run_vs_run:
    input:
        similarity=rules.aggregate.output.similarity,
    output:
        figure=report(
            "results/{experiment}/figures/run_vs_run.svg",
            caption="../report/run_vs_run.rst",
            category="Controls",
            subcategory="run against run",
            labels={"experiment": "{experiment}", "figure": "run vs run"},
        ),
        png="results/{experiment}/figures/run_vs_run.png",
    log:
        "logs/plot_run_vs_run/{experiment}.log",
    benchmark:
        "logs/benchmarks/plot_run_vs_run/{experiment}.tsv"
    localrule: True
    conda:
        "../../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        figure="run_vs_run",
        # only the settings these figures use: similarity_bands redraws none of them
        density_axis=config_slice("figures/density_axis"),
        ylim=config_slice("figures/similarity_ylim"),
    script:
        "../scripts/plot_control.py"
