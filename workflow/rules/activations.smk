# Activations of every compared layer on the probe set, one HDF5 dataset per layer.


rule extract_acts:
    input:
        model=get_network_checkpoint,
        arrays=get_arrays,
        probe=get_probe,
    output:
        acts=(
            "results/{experiment}/activations/{network}.h5"
            if config["keep_activations"]
            else temp("results/{experiment}/activations/{network}.h5")
        ),
    log:
        "logs/extract_acts/{experiment}/{network}.log",
    benchmark:
        "logs/benchmarks/extract_acts/{experiment}/{network}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        layers=config_slice("experiments/{experiment}/layers"),
        dtype=config["activation_dtype"],
    script:
        "../scripts/extract_acts.py"
