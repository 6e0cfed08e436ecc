# Decode a dataset once into a compact uint8 array file, plus the fixed probe subset.


rule prepare_data:
    output:
        arrays="results/data/{dataset}/arrays.npz",
        probe="results/data/{dataset}/probe.npy",
    log:
        "logs/prepare_data/{dataset}.log",
    benchmark:
        "logs/benchmarks/prepare_data/{dataset}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=config_slice("datasets/{dataset}"),
        probe_size=config["probe_size"],
        seed=config["seed"],
    script:
        "../scripts/prepare_data.py"
