"""Does dense training work on real CIFAR-10? Test accuracy, epochs and wall time per variant.

A benchmark, not a test: it trains real networks on the shared CIFAR-10 JPEGs
(``../shared/data/cifar10-jpeg``, decoded once to ``--cache``) and prints one row per variant,
all measured in one run:

- ``resnet_fast/lars_you2017``  -- layer-wise LARS, eta 1e-3 (You et al. 2017; our former default)
- ``resnet_fast/lars_cifar10_fast`` -- cifar10-fast's ``LARS_update`` exactly (per output row,
  ``lr * ||w_i|| / (||g_i|| + 1e-2)``, no eta)
- ``resnet_fast/sgd_nesterov`` -- plain Nesterov SGD with weight decay (cifar10-fast ``dawn.py``)
- ``vgg16_bn/sgd`` -- the paper's VGG16_BN setup with its 160-epoch step schedule compressed
  to ``--vgg-epochs`` (milestones at the same fractions, 1/2 and 3/4)

Every variant starts from the same initial weights of its model and sees the same data order.
ResNet_fast runs the paper's 24-epoch piecewise-linear schedule at batch 512 with
cifar10-fast's augmentation; all settings other than the optimiser come from
``prunesim.training.PAPER_TRAIN_SETTINGS``. ``--jobs 2`` trains two variants at once with one
thread each (faster in aggregate on 2 cores than one 2-thread job, training.md section 8.1).

    python benchmarks/validate_training.py --width 0.25 --train-subset 20000 --jobs 2
    python benchmarks/validate_training.py --dataset digits --epochs-scale 0.1  # smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIFAR_JPEG = REPO.parent / "shared" / "data" / "cifar10-jpeg"

RESNET_OPTIMISERS = {
    "lars_you2017": {"optimizer": "lars", "lars": {"variant": "you2017", "eta": 1e-3}},
    "lars_cifar10_fast": {"optimizer": "lars", "lars": {"variant": "cifar10_fast"}},
    "sgd_nesterov": {"optimizer": "sgd", "nesterov": True},
}
VARIANTS = [f"resnet_fast/{name}" for name in RESNET_OPTIMISERS] + ["vgg16_bn/sgd"]


def variant_settings(variant: str, vgg_epochs: int, epochs_scale: float) -> dict:
    """The training settings of one variant: the paper's, with the optimiser swapped."""
    from prunesim.training import PAPER_TRAIN_SETTINGS

    model, optimiser = variant.split("/")
    settings = copy.deepcopy(PAPER_TRAIN_SETTINGS[model])
    if model == "resnet_fast":
        settings.update(copy.deepcopy(RESNET_OPTIMISERS[optimiser]))
        epochs = max(2, round(24 * epochs_scale))
        settings["epochs"] = epochs
        settings["schedule"] = {
            "kind": "piecewise_linear",
            "epochs": [0, 5 * epochs / 24, epochs],
            "values": [0.0, 0.4, 0.0],
        }
    else:
        epochs = max(2, round(vgg_epochs * epochs_scale))
        settings["epochs"] = epochs
        settings["schedule"] = {
            "kind": "step",
            "milestones": [epochs // 2, (3 * epochs) // 4],  # 80/160 and 120/160
            "gamma": 0.1,
        }
    settings["eval_every"] = 0
    return settings


def prepare(args) -> Path:
    from prunesim.data import prepare_dataset

    subset = args.train_subset or "all"
    arrays_path = Path(args.cache) / f"{args.dataset}_train{subset}" / "arrays.npz"
    if not arrays_path.exists():
        if args.dataset == "digits":
            spec = {"source": "digits"}
        else:
            spec = {"source": "imagefolder", "root": str(args.root)}
        if args.train_subset:
            spec["train_subset"] = args.train_subset
        t0 = time.perf_counter()
        prepare_dataset(spec, arrays_path, arrays_path.with_name("probe.npy"), 10, 0)
        print(f"decoded {args.dataset} in {time.perf_counter() - t0:.1f}s -> {arrays_path}")
    return arrays_path


def run_variant(variant: str, arrays_path: str, args_dict: dict) -> dict:
    """Train one variant in this process and return its row (runs in a worker process)."""
    import torch

    from prunesim.data import load_arrays
    from prunesim.models import build_model
    from prunesim.seeds import derive_seed
    from prunesim.settings import TrainSettings
    from prunesim.training import train

    torch.set_num_threads(args_dict["threads"])
    arrays = load_arrays(arrays_path)
    settings = variant_settings(variant, args_dict["vgg_epochs"], args_dict["epochs_scale"])
    model_name = variant.split("/")[0]
    torch.manual_seed(derive_seed(0, "init"))
    model = build_model(model_name, width=args_dict["width"], num_classes=len(arrays["classes"]))
    t0 = time.perf_counter()
    result = train(model, arrays, TrainSettings.from_config(settings), seed=0, device="cpu",
                   log=lambda line: print(f"[{variant}] {line}", flush=True))  # fmt: skip
    return {
        "variant": variant,
        "width": args_dict["width"],
        "epochs": result["epochs"],
        "batch_size": settings["batch_size"],
        "n_train": int(len(arrays["y_train"])),
        "n_test": int(len(arrays["y_test"])),
        "test_accuracy": result["test_accuracy"],
        "train_accuracy": result["train_accuracy"],
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "threads": args_dict["threads"],
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--train-subset", type=int, default=None, help="stratified subset size")
    p.add_argument("--vgg-epochs", type=int, default=30, help="compressed 160-epoch schedule")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="< 1 for smoke runs only")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="per job (default 2 // jobs)")
    p.add_argument("--dataset", choices=["cifar10-jpeg", "digits"], default="cifar10-jpeg")
    p.add_argument("--root", default=str(CIFAR_JPEG))
    p.add_argument("--cache", default="/tmp/prunesim-bench")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args()
    args.threads = args.threads or max(1, 2 // args.jobs)
    arrays_path = str(prepare(args))
    shared = {k: getattr(args, k) for k in ("threads", "width", "vgg_epochs", "epochs_scale")}
    t0 = time.perf_counter()
    if args.jobs > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = [pool.submit(run_variant, v, arrays_path, shared) for v in args.variants]
            rows = [f.result() for f in futures]
    else:
        rows = [run_variant(v, arrays_path, shared) for v in args.variants]
    print(f"\nall variants in {time.perf_counter() - t0:.0f}s wall, {args.jobs} job(s) at once")
    header = ("variant", "width", "epochs", "n_train", "test acc", "wall s")
    print("{:<32} {:>5} {:>6} {:>7} {:>8} {:>7}".format(*header))
    for r in rows:
        print(f"{r['variant']:<32} {r['width']:>5} {r['epochs']:>6} {r['n_train']:>7} "
              f"{100 * r['test_accuracy']:>7.2f}% {r['wall_seconds']:>7.0f}")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
