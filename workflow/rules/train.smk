# Train one dense network per experiment; also keep its early-epoch weights for rewinding.


rule train_dense:
    input:
        arrays=get_arrays,
    output:
        model="results/{experiment}/networks/dense/model.pt",
        rewind="results/{experiment}/networks/dense/rewind.pt",
        metrics="results/{experiment}/networks/dense/metrics.json",
    log:
        "logs/train_dense/{experiment}.log",
    benchmark:
        "logs/benchmarks/train_dense/{experiment}.tsv"
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
