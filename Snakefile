# prunesim: how similar are the representations of pruned and unpruned CNNs?
# prepare_data -> train_dense -> imp_iter (per run, iteration) -> extract_acts
# -> dense_stats/pair_stats (shared, per network) -> similarity_<metric> (per layer pair)
# -> aggregate -> plot.   See README.md.


from snakemake.utils import min_version

min_version("9.11")


##### configuration #####


# config.yaml is the default study; `--configfile X` replaces it instead of being merged
# into it (Snakemake would otherwise add the paper's experiments to every config). `--config
# key=value` alone still loads config.yaml and is applied over it.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


##### rules #####


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/intrinsic_dimension.smk"
include: "workflow/rules/controls.smk"


##### target #####


rule all:
    default_target: True
    input:
        get_final_outputs(),
    localrule: True
