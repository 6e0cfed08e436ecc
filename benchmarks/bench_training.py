"""Training throughput: the full training step against a bare forward/backward loop.

Two modes:

``throughput`` (default) -- in one process, interleaved, best of ``--repeats``:
  A. forward + backward on one fixed, already normalised batch (the compute floor),
  B. A + optimizer step + mask re-application (the same model and batch),
  C. ``prunesim.training.train`` for one epoch of the same number of steps: batch gather,
     uint8 -> float, augmentation, normalisation, A, B; masks on.
  The data-pipeline overhead is C against B (target < 10 %); C against A is printed too.

``cifar`` -- a width-1/4 VGG16_BN trained for ``--epochs`` on the shared CIFAR-10 JPEGs
  (decoded once to ``--cache``), printing test accuracy and wall time. A benchmark, not a test.

    python benchmarks/bench_training.py throughput --model resnet_fast --width 0.25
    python benchmarks/bench_training.py cifar --epochs 4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from prunesim.augment import to_float
from prunesim.models import build_model
from prunesim.pruning import prunable_parameters
from prunesim.settings import TrainSettings
from prunesim.training import train

REPO = Path(__file__).resolve().parents[1]
CIFAR_JPEG = REPO.parent / "shared" / "data" / "cifar10-jpeg"


def _masks(model, density=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return {
        n: torch.rand(params[n].shape, generator=g) < density for n in prunable_parameters(model)
    }


def _loop(clock, model, x, y, steps, optimizer=None, masks=()):
    """Images/s of ``steps`` forward/backward passes (plus step and masks if given)."""
    t0 = clock()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            with torch.no_grad():
                for p, m in masks:
                    p.mul_(m)
    return steps * len(y) / (clock() - t0)


def throughput(args):
    torch.set_num_threads(args.threads)
    # CPU time of this process is robust to other jobs on a shared machine (with 1 thread);
    # wall time is what a user waits for. Both include the same work.
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    block = {
        "epochs": 1,
        "batch_size": args.batch_size,
        "eval_every": 0,
        "schedule": {"kind": "constant"},
    }
    if args.augment != "full":  # full: the schema's default augmentation (VGG16_BN's)
        block["augment"] = {"crop": 4, "pad_mode": "reflect", "flip": True, "affine": False,
                            "cutout": 8}  # fmt: skip
    settings = TrainSettings.from_config(block)
    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    arrays = {
        "x_train": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n).astype(np.int64),
        "x_test": rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 10).astype(np.int64),
        "mean": np.full(3, 0.5, np.float32),
        "std": np.full(3, 0.25, np.float32),
    }
    torch.manual_seed(0)
    model = build_model(args.model, args.width).to(memory_format=torch.channels_last)
    masks = _masks(model)
    params = dict(model.named_parameters())
    masked = [(params[k], v.float()) for k, v in masks.items()]
    x = to_float(
        torch.from_numpy(arrays["x_train"][: args.batch_size]),
        torch.from_numpy(arrays["mean"]), torch.from_numpy(arrays["std"]), channels_last=True,
    )  # fmt: skip
    y = torch.from_numpy(arrays["y_train"][: args.batch_size])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    model.train()
    _loop(clock, model, x, y, 3, opt, masked)  # warm-up: allocator, oneDNN primitives
    best = {"A": 0.0, "B": 0.0, "C": 0.0}
    for r in range(args.repeats):
        a = _loop(clock, model, x, y, args.steps)
        b = _loop(clock, model, x, y, args.steps, opt, masked)
        t0 = clock()  # includes train()'s setup and its final 10-image evaluation
        train(model, arrays, settings, seed=r, device="cpu", masks=masks)
        c = n / (clock() - t0)
        print(
            f"repeat {r}: A fwd/bwd {a:8.0f}  B +step+mask {b:8.0f}  C full train() {c:8.0f} img/s"
        )
        best = {"A": max(best["A"], a), "B": max(best["B"], b), "C": max(best["C"], c)}
    print(
        f"\n{args.model} width {args.width} batch {args.batch_size}, {args.threads} threads, "
        f"augment={args.augment}, {args.clock} clock, best of {args.repeats} x {args.steps} steps"
    )
    print(f"A forward/backward only          : {best['A']:8.0f} img/s")
    print(f"B + optimizer step + masks       : {best['B']:8.0f} img/s")
    print(f"C full training step (train())   : {best['C']:8.0f} img/s")
    overhead = 100 * (best["B"] / best["C"] - 1)
    print(f"data-pipeline overhead (C vs B)  : {overhead:6.1f} %  (target < 10 %)")
    print(f"everything but fwd/bwd (C vs A)  : {100 * (best['A'] / best['C'] - 1):6.1f} %")


def cifar(args):
    from prunesim.data import load_arrays, prepare_dataset

    torch.set_num_threads(args.threads)
    arrays_path = Path(args.cache) / "arrays.npz"
    if not arrays_path.exists():
        t0 = time.perf_counter()
        prepare_dataset(
            {"source": "imagefolder", "root": str(args.root)}, arrays_path,
            arrays_path.with_name("probe.npy"), 5000, 0,
        )  # fmt: skip
        print(f"decoded {args.root} in {time.perf_counter() - t0:.1f}s -> {arrays_path}")
    arrays = load_arrays(arrays_path)
    block = {
        "epochs": args.epochs,
        # a compressed version of the 160-epoch step schedule: x0.1 for the last epoch
        "schedule": {"kind": "step", "milestones": [args.epochs - 1], "gamma": 0.1},
    }
    if args.augment == "crop-flip":
        block["augment"] = {"crop": 4, "flip": True, "affine": False, "cutout": 0}
    settings = TrainSettings.from_config(block)
    torch.manual_seed(0)
    model = build_model("vgg16_bn", args.width)
    t0 = time.perf_counter()
    result = train(model, arrays, settings, seed=0, device="cpu", log=print)
    wall = time.perf_counter() - t0
    print(
        f"\nvgg16_bn width {args.width}, augment {args.augment}: {args.epochs} epochs on "
        f"{len(arrays['y_train'])} images, "
        f"{args.threads} threads: test accuracy {result['test_accuracy']:.4f}, wall {wall:.0f}s "
        f"({wall / args.epochs:.0f}s/epoch incl. test pass), "
        f"train {result['images_per_second']:.0f} img/s"
    )


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="mode")
    t = sub.add_parser("throughput")
    t.add_argument("--model", default="resnet_fast")
    t.add_argument("--width", type=float, default=0.25)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--augment", choices=["full", "no-affine"], default="full")
    t.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    c = sub.add_parser("cifar")
    c.add_argument("--epochs", type=int, default=4)
    c.add_argument("--width", type=float, default=0.25)
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--root", default=str(CIFAR_JPEG))
    c.add_argument("--cache", default="/tmp/prunesim-bench/cifar10_jpeg")
    c.add_argument("--augment", choices=["full", "crop-flip"], default="full")
    args = p.parse_args()
    if args.mode == "cifar":
        cifar(args)
    else:
        if args.mode is None:
            args = t.parse_args([])
        throughput(args)


if __name__ == "__main__":
    main()
