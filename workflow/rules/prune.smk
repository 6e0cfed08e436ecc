# One IMP iteration: prune iteration k-1 of the same run, retrain, save weights and masks.


rule imp_iter:
    input:
        previous=get_previous_network,
        rewind=rules.train_dense.output.rewind,
        arrays=get_arrays,
    output:
        model="results/{experiment}/networks/run{run}/iter{iteration}/model.pt",
        metrics="results/{experiment}/networks/run{run}/iter{iteration}/metrics.json",
        mask="results/{experiment}/networks/run{run}/iter{iteration}/mask.npz",
    log:
        "logs/imp_iter/{experiment}/run{run}_iter{iteration}.log",
    benchmark:
        "logs/benchmarks/imp_iter/{experiment}/run{run}_iter{iteration}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1,
    params:
        train=config_slice("experiments/{experiment}/train"),
        # the number of iterations is left out: raising it adds iterations, reruns none
        prune=config_slice("experiments/{experiment}/prune", drop=["iterations"]),
        seed=config["seed"],
        resume=resume_file,
    script:
        "../scripts/imp_iter.py"
