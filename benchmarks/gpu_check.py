"""GPU check (issue 17): is the CUDA path correct, and how fast is it for the paper's grid?

    python benchmarks/gpu_check.py --out DIR        # writes DIR/gpu_check.json, prints a table

Correctness (any failure makes the exit status 1):
  - ``training_amp``: VGG16_BN width 1/8, 2 epochs, fp32 against AMP (``train.amp``): both
    learn, and their per-epoch training losses agree within a stated tolerance;
  - ``masks``: pruned weights stay exactly zero after every step (a forward pre-hook counts
    nonzero pruned weights before every forward, i.e. after every optimizer step and its mask
    re-application; the final state is checked after training), SGD (VGG16_BN, ResNet_fast)
    and LARS (ResNet_fast), under AMP;
  - ``metrics``: all six metrics on float32 device tensors against the float64 numpy engine on
    the CPU, within 1e-8, on a realistic pair (5000 x 4096 for CKA, NBS, cosine; 80,000 x 256
    for the CCA family) and a quickstart-sized one;
  - ``activations``: ``extract_activations`` on the device against the CPU, per layer, with
    TF32 off (float32 tolerance) and, for information, with torch's default TF32 flags;
  - ``augmentation``: the same drawn augmentation parameters applied on the CPU and on the
    device (see ``prunesim.augment``), and a seed reproducing its batches on the device.
Data pipeline (``data_pipeline``): host-to-device copies per training step, from a CUDA
profile of two trainings that differ only in their number of steps.
Speed (bounded; skipped items are recorded): training images/s for ResNet_fast (batch 512),
VGG16_BN (batch 128) and VGG_SVHN (batch 50) at full width, fp32/AMP x NCHW/channels_last and
``torch.compile`` (in a child process, so a failure or a hang costs only its time slot);
similarity pairs/s on the device against the CPU engine; ``paper_grid``: GPU-hours of
config.yaml's study implied by those figures.

Data: the shared CIFAR-10 JPEGs (``--data-root``, default ../shared/data/cifar10-jpeg), decoded
once by ``prunesim.data.prepare_dataset`` into ``--cache``; where they are absent, generated
images of CIFAR-10's size (50,000 + 10,000). Speed items start only while the elapsed time is
under ``--budget-s`` (default 420 s); the rest are recorded as skipped.

Without CUDA (or with ``--tiny``) the same checks run on the CPU at tiny sizes (one thread) in
well under a minute and the JSON says ``"cuda": false``. The JSON is rewritten after every
section, so a run killed by a time limit still leaves what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib.util
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("prunesim") is None:  # not installed: run from the checkout
    sys.path.insert(0, str(REPO / "src"))

import h5py  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from prunesim import augment as augment_module  # noqa: E402
from prunesim import training as training_module  # noqa: E402
from prunesim.activations import extract_activations  # noqa: E402
from prunesim.augment import (  # noqa: E402
    apply_augment_params,
    augment_batch,
    draw_augment_params,
    normalize_augment_settings,
)
from prunesim.checkpoint import save_checkpoint  # noqa: E402
from prunesim.data import load_arrays, prepare_dataset  # noqa: E402
from prunesim.evaluation import evaluate  # noqa: E402
from prunesim.metrics import similarity  # noqa: E402
from prunesim.models import build_model  # noqa: E402
from prunesim.pruning import prunable_parameters  # noqa: E402
from prunesim.seeds import derive_seed  # noqa: E402
from prunesim.settings import TrainSettings  # noqa: E402
from prunesim.training import PAPER_TRAIN_SETTINGS, train  # noqa: E402

CIFAR_JPEG = REPO.parent / "shared" / "data" / "cifar10-jpeg"
METRIC_NAMES = ("mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine")
CCA_FAMILY = ("mean_cca", "svcca", "pwcca")
DATASET_SIZES = {"cifar10": (50_000, 10_000), "svhn": (73_257, 26_032)}  # train, test images
CHILD_TAG = "GPU_CHECK_CHILD "

# Tolerances, stated in the JSON next to each result.
LOSS_REL_TOL = 0.10  # |loss_amp - loss_fp32| <= 10 % of loss_fp32 per epoch (bf16/fp16 rounding)
LOSS_ABS_TOL = 0.05  # ... + 0.05: an easy dataset drives both losses near 0, where bf16's
#                      drift over hundreds of steps is large relative to the loss itself
CHANCE_MARGIN = 0.10  # "learns": train or test accuracy > 1/classes + margin, and the loss falls
LOSS_DROP = 0.05  # ... by at least 5 % from the first epoch to the last
METRIC_ABS_TOL = 1e-8
ACT_REL_TOL = 1e-4  # max |device - cpu| / max |cpu| per layer, float32 (TF32 off)
ROUNDING_ABS_TOL = 2e-6  # same pixels, float32 rounding of the normalised values
OTHER_PIXEL = 1e-4  # a larger difference means a different source pixel was sampled
AFFINE_NEAREST_MISMATCH_TOL = 1e-3  # fraction of values; half-pixel ties may round apart
AFFINE_BILINEAR_ABS_TOL = 1e-4

# Sizes: full = on a GPU (about 4-6 minutes on one H100/H200), tiny = CPU mode.
SIZES = {
    "full": {
        "n_train": 50_000,
        "n_test": 10_000,
        "amp_batch": 128,
        "amp_epochs": 2,
        "amp_lr": None,  # the paper's 0.1
        "mask_images": 10_240,
        "mask_batch": {"vgg16_bn": 128, "resnet_fast": 512},
        "check_width": 0.125,
        "act_width": 1.0,
        "act_probe": 200,
        "bn_images": 256,
        "aug_images": 512,
        "speed_width": 1.0,
        "speed_steps": 30,
        "speed_eval_images": 10_000,
        "speed_batch": {"resnet_fast": 512, "vgg16_bn": 128, "vgg_svhn": 50},
        "profile_steps": (10, 30),
        "sim_repeats": 3,
        "sim_sizes": {
            "quickstart": ((350, 2048), (22_400, 32)),
            "realistic": ((5000, 4096), (80_000, 256)),
        },
    },
    "tiny": {
        "n_train": 384,
        "n_test": 128,
        "amp_batch": 16,
        "amp_epochs": 2,
        "amp_lr": 0.02,  # 48 steps at the paper's 0.1 do not learn reliably
        "mask_images": 64,
        "mask_batch": {"vgg16_bn": 16, "resnet_fast": 32},
        "check_width": 0.125,
        "act_width": 0.125,
        "act_probe": 16,
        "bn_images": 32,
        "aug_images": 32,
        "speed_width": 0.125,
        "speed_steps": 1,
        "speed_eval_images": 64,
        "speed_batch": {"resnet_fast": 8, "vgg16_bn": 8, "vgg_svhn": 8},
        "profile_steps": (2, 4),
        "sim_repeats": 1,
        "sim_sizes": {
            "quickstart": ((100, 128), (1000, 16)),
            "realistic": ((200, 256), (2000, 16)),
        },
    },
}

# (name, amp, channels_last); amp + channels_last is what config.yaml trains with (defaults).
VARIANTS = (
    ("fp32", False, False),
    ("fp32_channels_last", False, True),
    ("amp", True, False),
    ("amp_channels_last", True, True),
)


# ----------------------------------------------------------------------------- plumbing


class Report:
    """The JSON document, rewritten atomically after every section."""

    def __init__(self, out_dir: Path, budget_s: float):
        self.path = out_dir / "gpu_check.json"
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.doc: dict = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def over_budget(self, reserve_s: float = 0.0) -> bool:
        return self.elapsed() + reserve_s > self.budget_s

    def write(self) -> None:
        self.doc["elapsed_s"] = round(self.elapsed(), 1)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.doc, indent=2, default=_jsonable) + "\n")
        os.replace(tmp, self.path)

    def run(self, where: dict, key: str, fn, *args) -> dict:
        """Run one section into ``where[key]``; an exception is recorded, never raised."""
        t = time.perf_counter()
        previous = where.get(key)
        try:
            result = fn(*args)
        except Exception as exc:  # one section's failure must not lose the others
            result = previous if isinstance(previous, dict) else {}  # keep partial results
            result.update(
                status="error",
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc()[-3000:],
            )
        seconds = time.perf_counter() - t
        if result is previous:  # a section filled in two passes (training speed + compile)
            seconds += result.get("seconds", 0.0)
        result["seconds"] = round(seconds, 2)
        where[key] = result
        free_memory()
        self.write()
        return result


def _jsonable(x):
    return x.item() if isinstance(x, np.generic) else str(x)


def free_memory() -> None:
    """Return cached GPU memory between sections (a no-op on the CPU, where gc costs time)."""
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def limit_cpu_threads() -> None:
    """One thread for torch and BLAS: on a small shared CPU, 2 threads collapse under load."""
    torch.set_num_threads(1)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def tf32(enabled: bool):
    """Set both TF32 switches (cuDNN convolutions, cuBLAS matmuls); restore them after."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@contextlib.contextmanager
def cudnn_benchmark():
    """cudnn.benchmark for the speed runs only (the correctness runs keep torch's default)."""
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def paper_settings(model: str, **changes) -> dict:
    return {**copy.deepcopy(PAPER_TRAIN_SETTINGS[model]), **changes}


def subset(arrays: dict, n_train: int, n_test: int | None = None) -> dict:
    out = dict(arrays)
    out["x_train"], out["y_train"] = arrays["x_train"][:n_train], arrays["y_train"][:n_train]
    if n_test is not None:
        out["x_test"], out["y_test"] = arrays["x_test"][:n_test], arrays["y_test"][:n_test]
    return out


def fresh_model(name: str, width: float, num_classes: int = 10, seed: int = 0):
    torch.manual_seed(derive_seed(seed, "init"))
    return build_model(name, width=width, num_classes=num_classes)


# ----------------------------------------------------------------------------- data


def synthetic_arrays(n_train: int, n_test: int, seed: int = 0, classes: int = 10) -> dict:
    """Learnable CIFAR-sized images: per class a colour and a 4 x 4 block pattern, plus noise."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(-1, 1, (classes, 1, 1, 3)).astype(np.float32)
    blocks = rng.standard_normal((classes, 4, 4, 3), dtype=np.float32)
    templates = 90 * colours + 40 * blocks.repeat(8, axis=1).repeat(8, axis=2)  # 32 x 32 x 3

    def split(n):
        y = rng.integers(0, classes, n).astype(np.int64)
        x = 128 + templates[y] + 20 * rng.standard_normal((n, 32, 32, 3), dtype=np.float32)
        return np.clip(x, 0, 255).astype(np.uint8), y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    pixels = x_train.reshape(-1, 3).astype(np.float64) / 255
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "mean": pixels.mean(0).astype(np.float32),
        "std": pixels.std(0).astype(np.float32),
        "classes": np.asarray([str(c) for c in range(classes)]),
    }


def write_arrays(arrays: dict, path: Path) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_data(args, sizes: dict, work: Path) -> tuple[dict, Path, dict]:
    """CIFAR-10 JPEGs decoded by prepare_dataset (cached), else generated data of that size."""
    root = Path(args.data_root)
    why = "tiny mode" if args.tiny else f"{root} not found"
    if not args.tiny and (root / "train").is_dir():
        cache = Path(args.cache)
        arrays_path = cache / "arrays.npz"
        t = time.perf_counter()
        cached = arrays_path.exists()
        try:
            if not cached:
                cache.mkdir(parents=True, exist_ok=True)
                spec = {"source": "imagefolder", "root": str(root)}
                prepare_dataset(spec, arrays_path, cache / "probe.npy", probe_size=10, seed=0)
            arrays = load_arrays(arrays_path)
            info = {
                "source": "cifar10-jpeg",
                "root": str(root),
                "cache": str(arrays_path),
                "decoded_now": not cached,
                "seconds": round(time.perf_counter() - t, 1),
            }
            info.update(n_train=len(arrays["y_train"]), n_test=len(arrays["y_test"]))
            return arrays, arrays_path, info
        except Exception as exc:  # a broken copy must not stop the check: use generated data
            why = f"decoding {root} failed: {type(exc).__name__}: {exc}"
    arrays = synthetic_arrays(sizes["n_train"], sizes["n_test"])
    arrays_path = work / "arrays.npz"
    write_arrays(arrays, arrays_path)
    info = {
        "source": "generated",
        "why": why,
        "generator": "per class a colour and a 4x4 block pattern, plus Gaussian noise",
        "n_train": len(arrays["y_train"]),
        "n_test": len(arrays["y_test"]),
    }
    return arrays, arrays_path, info


def realistic_pair(n: int, p: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two related ReLU layers (n x p, float32): shared latent factors with a decaying spectrum."""
    rng = np.random.default_rng(seed)
    r = min(p, 512)
    z = rng.standard_normal((n, r), dtype=np.float32)
    z *= np.arange(1, r + 1, dtype=np.float32) ** -0.5
    a = rng.standard_normal((r, p), dtype=np.float32) / np.float32(math.sqrt(r))
    b = 0.8 * a + 0.6 * rng.standard_normal((r, p), dtype=np.float32) / np.float32(math.sqrt(r))
    noise = np.float32(0.3 / math.sqrt(r))
    x = np.maximum(z @ a + noise * rng.standard_normal((n, p), dtype=np.float32), 0)
    y = np.maximum(z @ b + noise * rng.standard_normal((n, p), dtype=np.float32), 0)
    return x, y


def metric_settings() -> dict:
    """The paper config's metric blocks (config.yaml), defaults for any metric it omits."""
    metrics = yaml.safe_load((REPO / "config.yaml").read_text()).get("metrics") or {}
    return {name: dict(metrics.get(name) or {}) for name in METRIC_NAMES}


# ----------------------------------------------------------------------------- correctness


def check_training_amp(ctx) -> dict:
    sizes, device = ctx["sizes"], ctx["device"]
    arrays = ctx["arrays"]
    settings = paper_settings("vgg16_bn", epochs=sizes["amp_epochs"], batch_size=sizes["amp_batch"])
    if sizes["amp_lr"] is not None:
        settings["lr"] = sizes["amp_lr"]
    classes = len(arrays["classes"])
    runs = {}
    for name, amp in (("fp32", False), ("amp", True)):
        if amp and device.type != "cuda":  # train() uses amp on CUDA only: the same run again
            runs[name] = {**runs["fp32"], "note": "not rerun: amp is off on the CPU"}
            continue
        model = fresh_model("vgg16_bn", sizes["check_width"], classes)
        built = TrainSettings.from_config({**settings, "amp": amp})
        result = train(model, arrays, built, seed=0, device=device)
        runs[name] = {
            "train_loss": [h["train_loss"] for h in result["history"]],
            "train_accuracy": [h["train_accuracy"] for h in result["history"]],
            "test_accuracy": result["test_accuracy"],
            "images_per_second": result["images_per_second"],
        }
        del model
        free_memory()
    chance = 1 / classes
    for run in runs.values():
        losses = run["train_loss"]
        accuracy = max(run["train_accuracy"][-1], run["test_accuracy"])
        run["learned"] = bool(
            losses[-1] < (1 - LOSS_DROP) * losses[0] and accuracy > chance + CHANCE_MARGIN
        )
    pairs = list(zip(runs["amp"]["train_loss"], runs["fp32"]["train_loss"], strict=True))
    rel = [abs(a - f) / max(f, 1e-12) for a, f in pairs]
    agree = all(abs(a - f) <= LOSS_REL_TOL * f + LOSS_ABS_TOL for a, f in pairs)
    amp_dtype = None
    if device.type == "cuda":
        amp_dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16 + GradScaler"
    return {
        "status": "passed" if agree and all(r["learned"] for r in runs.values()) else "failed",
        "model": "vgg16_bn",
        "width": sizes["check_width"],
        "epochs": sizes["amp_epochs"],
        "batch_size": sizes["amp_batch"],
        "lr": settings["lr"],
        "amp_effective": device.type == "cuda",
        "amp_dtype": amp_dtype,
        "runs": runs,
        "loss_rel_diff_per_epoch": rel,
        "tolerance": {
            "train_loss_rel": LOSS_REL_TOL,
            "train_loss_abs": LOSS_ABS_TOL,
            "agree": "|loss_amp - loss_fp32| <= train_loss_rel x loss_fp32 + train_loss_abs",
            "learned": (
                f"last-epoch train loss < (1 - {LOSS_DROP}) x first-epoch's, and last-epoch "
                f"train accuracy or test accuracy > 1/classes + {CHANCE_MARGIN}"
            ),
        },
        "note": (
            "same seed, data order and augmentation in both runs; fp32 = amp off (cuDNN may "
            "still use TF32, see environment.tf32); on the CPU train() ignores amp, so the "
            "amp run is the fp32 run and is not repeated"
        ),
    }


def random_masks(model, density: float, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        name: torch.rand(p.shape, generator=g) < density
        for name, p in prunable_parameters(model).items()
    }


#: (case, model, optimizer or None for the model's config.yaml optimizer) of the mask check:
#: each optimizer update path (SGD, and LARS's per-layer scaling) must keep pruned weights 0.
MASK_CASES = (
    ("vgg16_bn (sgd)", "vgg16_bn", None),
    ("resnet_fast (sgd)", "resnet_fast", None),
    ("resnet_fast (lars)", "resnet_fast", "lars"),
)


def check_masks(ctx) -> dict:
    sizes, device, arrays = ctx["sizes"], ctx["device"], ctx["arrays"]
    data = subset(arrays, sizes["mask_images"], min(1000, len(arrays["y_test"])))
    cases = {}
    for case, model_name, optimizer in MASK_CASES:
        bs = sizes["mask_batch"][model_name]
        changes = {"optimizer": optimizer} if optimizer else {}
        settings = paper_settings(model_name, batch_size=bs, amp=True, **changes)
        model = fresh_model(model_name, sizes["check_width"], len(arrays["classes"]))
        masks = random_masks(model, density=0.2, seed=1)
        model.to(device)  # the hook holds these parameters; train() keeps them (in place)
        params = dict(model.named_parameters())
        before = {n: params[n].detach().clone() for n in masks}
        pruned = [(params[n], (~m).to(device)) for n, m in masks.items()]
        bad = torch.zeros((), dtype=torch.int64, device=device)
        calls = [0]

        def hook(module, inputs, pruned=pruned, bad=bad, calls=calls):
            with torch.no_grad():
                for p, off in pruned:  # no host sync: the count stays on the device
                    bad.add_(((p != 0) & off).sum())
            calls[0] += 1

        handle = model.register_forward_pre_hook(hook)
        try:
            result = train(
                model, data, TrainSettings.from_config(settings), seed=0, device=device,
                masks=masks, end_epoch=1,
            )  # fmt: skip
        finally:
            handle.remove()
        final_bad = sum(int(((p != 0) & off).sum()) for p, off in pruned)
        alive_changed = sum(
            int(((params[n].detach() != before[n]) & masks[n].to(device)).sum()) for n in masks
        )
        steps = math.ceil(len(data["y_train"]) / bs)
        ok = int(bad) == 0 and final_bad == 0 and calls[0] >= steps and alive_changed > 0
        cases[case] = {
            "passed": ok,
            "optimizer": settings["optimizer"],
            "batch_size": bs,
            "steps": steps,
            "forward_calls_checked": calls[0],
            "nonzero_pruned_seen_before_forwards": int(bad),
            "nonzero_pruned_after_training": final_bad,
            "alive_weights_changed": alive_changed,
            "density": 0.2,
            "train_loss": result["train_loss"],
        }
        del model, pruned, before, params
        free_memory()
    return {
        "status": "passed" if all(c["passed"] for c in cases.values()) else "failed",
        "width": sizes["check_width"],
        "amp": device.type == "cuda",
        "cases": cases,
        "method": "prunesim.training.train(masks=...) with random 20 % masks; a forward "
        "pre-hook counts nonzero pruned weights before every forward (= after every "
        "optimizer step and mask re-application, and before evaluation); the state "
        "after the last step is checked after training",
        "tolerance": "exactly zero",
    }


def check_metrics(ctx) -> dict:
    sizes, device = ctx["sizes"], ctx["device"]
    settings = metric_settings()
    ctx["metric_pairs"] = {}  # reused by the similarity speed section
    results = {name: {} for name in METRIC_NAMES}
    for label, (flat_shape, chan_shape) in sizes["sim_sizes"].items():
        pairs = {
            "flatten": realistic_pair(*flat_shape, seed=1),
            "channels": realistic_pair(*chan_shape, seed=2),
        }
        ctx["metric_pairs"][label] = pairs
        for kind, (x, y) in pairs.items():
            xd, yd = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            x64, y64 = x.astype(np.float64), y.astype(np.float64)
            for name in CCA_FAMILY if kind == "channels" else ("cka", "nbs", "cosine"):
                t = time.perf_counter()
                ref = similarity(name, x64, y64, **settings[name])
                cpu_s = time.perf_counter() - t
                sync(device)
                t = time.perf_counter()
                got = similarity(name, xd, yd, **settings[name])
                sync(device)
                results[name][label] = {
                    "shape": list(x.shape),
                    "cpu_float64": ref,
                    "device": got,
                    "abs_diff": abs(got - ref),
                    "passed": abs(got - ref) <= METRIC_ABS_TOL,
                    "cpu_seconds": round(cpu_s, 4),
                    "device_seconds_first_call": round(time.perf_counter() - t, 4),
                }
            del xd, yd, x64, y64
            free_memory()
    passed = all(r["passed"] for by_size in results.values() for r in by_size.values())
    return {
        "status": "passed" if passed else "failed",
        "tolerance_abs": METRIC_ABS_TOL,
        "device_input": f"float32 tensors on {device}",
        "reference": "numpy float64 engine on the CPU, same float32 values",
        "data": "two related ReLU layers from shared Gaussian latents (decaying spectrum)",
        "settings": settings,
        "metrics": results,
    }


def _warm_bn(model, arrays: dict, images: int, batch: int = 64) -> None:
    """Realistic BatchNorm running statistics: a cumulative average over a few batches."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    mean, std = torch.as_tensor(arrays["mean"]), torch.as_tensor(arrays["std"])
    model.train()
    with torch.no_grad():
        for i in range(0, images, batch):
            x = torch.as_tensor(arrays["x_train"][i : i + batch])
            model(augment_module.to_float(x, mean, std, False))
    for m in bns:
        m.momentum = 0.1
    model.eval()


def _compare_h5(path_a: Path, path_b: Path) -> dict:
    out = {}
    with h5py.File(path_a, "r") as a, h5py.File(path_b, "r") as b:
        for name in a.attrs["layers"]:
            ref, got = a[name][...], b[name][...]
            scale = float(np.abs(ref).max()) or 1.0
            out[name] = float(np.abs(got - ref).max()) / scale
        out_acc = (float(a.attrs["probe_accuracy"]), float(b.attrs["probe_accuracy"]))
    return {
        "max_rel_err_per_layer": out,
        "max_rel_err": max(out.values()),
        "probe_accuracy": out_acc,
    }


def check_activations(ctx) -> dict:
    sizes, device, arrays = ctx["sizes"], ctx["device"], ctx["arrays"]
    work = ctx["work"] / "activations"
    work.mkdir(exist_ok=True)
    probe_path = work / "probe.npy"
    np.save(probe_path, np.arange(min(sizes["act_probe"], len(arrays["y_test"])), dtype=np.int64))
    models = {}
    for model_name in ("vgg16_bn", "resnet_fast"):
        model = fresh_model(model_name, sizes["act_width"], len(arrays["classes"]))
        _warm_bn(model, arrays, images=sizes["bn_images"])
        ckpt = work / f"{model_name}.pt"
        meta = {
            **model.spec,
            "experiment": "gpu_check",
            "run": None,
            "iteration": 0,
            "density": 1.0,
        }
        save_checkpoint(ckpt, model, {}, meta)
        del model
        ref = work / f"{model_name}_cpu.h5"
        extract_activations(ckpt, ctx["arrays_path"], probe_path, ref, device="cpu")
        entry = {"width": sizes["act_width"], "probe_images": sizes["act_probe"]}
        runs = {"fp32": False} if device.type != "cuda" else {"fp32": False, "tf32_default": None}
        for label, allow in runs.items():
            out = work / f"{model_name}_{label}.h5"
            flags = tf32(allow) if allow is not None else contextlib.nullcontext()
            with flags:
                entry[f"tf32_flags_{label}"] = {
                    "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                    "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                }
                extract_activations(ckpt, ctx["arrays_path"], probe_path, out, device=str(device))
            entry[label] = _compare_h5(ref, out)
            out.unlink()
        ref.unlink()
        entry["passed"] = entry["fp32"]["max_rel_err"] <= ACT_REL_TOL
        models[model_name] = entry
        free_memory()
    return {
        "status": "passed" if all(m["passed"] for m in models.values()) else "failed",
        "tolerance": f"max |device - cpu| / max |cpu| <= {ACT_REL_TOL} per layer with TF32 off; "
        "tf32_default (torch's defaults, what the workflow uses) is reported only",
        "models": models,
    }


def check_augmentation(ctx) -> dict:
    device, arrays, n = ctx["device"], ctx["arrays"], ctx["sizes"]["aug_images"]
    x_cpu = torch.as_tensor(arrays["x_train"][:n])
    mean_cpu, std_cpu = torch.as_tensor(arrays["mean"]), torch.as_tensor(arrays["std"])
    x_dev, mean_dev, std_dev = x_cpu.to(device), mean_cpu.to(device), std_cpu.to(device)
    vgg = normalize_augment_settings(PAPER_TRAIN_SETTINGS["vgg16_bn"]["augment"])
    cases = {
        "resnet_fast (reflect crop, flip, cutout)": (
            normalize_augment_settings(PAPER_TRAIN_SETTINGS["resnet_fast"]["augment"]),
            "rounding",
        ),
        "vgg16_bn without affine": ({**vgg, "affine": None}, "rounding"),
        "vgg16_bn (affine nearest)": (vgg, "nearest"),
        "vgg16_bn (affine bilinear)": (
            {**vgg, "affine": {**vgg["affine"], "interpolation": "bilinear"}},
            "bilinear",
        ),
    }
    out = {}
    for label, (settings, kind) in cases.items():
        params = draw_augment_params(n, 32, 32, settings, torch.Generator().manual_seed(7))
        a = apply_augment_params(x_cpu, mean_cpu, std_cpu, settings, params)
        b = apply_augment_params(x_dev, mean_dev, std_dev, settings, params).cpu()
        diff = (a - b).abs()
        other_pixel = float((diff > OTHER_PIXEL).float().mean())  # a different pixel was taken
        max_abs = float(diff.max())
        ok = {
            "rounding": max_abs <= ROUNDING_ABS_TOL,
            "nearest": other_pixel <= AFFINE_NEAREST_MISMATCH_TOL,
            "bilinear": max_abs <= AFFINE_BILINEAR_ABS_TOL,
        }[kind]
        out[label] = {
            "expected": kind,
            "bit_identical": torch.equal(a, b),
            "max_abs_diff": max_abs,
            "other_pixel_fraction": other_pixel,
            "passed": ok,
        }

    # Training's own generator on the device: same seed, same batches; CPU draws differ on CUDA.
    def batch(dev, x, mean, std):
        gen = torch.Generator(device=dev).manual_seed(derive_seed(0, "augment", 0))
        return augment_batch(x, mean, std, vgg, gen).cpu()

    first, second = batch(device, x_dev, mean_dev, std_dev), batch(device, x_dev, mean_dev, std_dev)
    cpu_batch = batch(torch.device("cpu"), x_cpu, mean_cpu, std_cpu)
    reproducible = torch.equal(first, second)
    return {
        "status": "passed" if reproducible and all(c["passed"] for c in out.values()) else "failed",
        "same_params_cpu_vs_device": out,
        "same_seed_twice_on_device_identical": reproducible,
        "same_seed_cpu_vs_device_identical": torch.equal(first, cpu_batch),
        "note": (
            "CPU (Mersenne Twister) and CUDA (Philox) generators are different streams: the "
            "same seed draws different crops/flips/angles/shifts/cutouts on each. Given the same "
            "draws, crop/flip/cutout take the same pixels and agree to float32 rounding (CUDA's "
            "x / 255 is x * (1/255)); the affine grid may round differently "
            "(prunesim.augment docstring)"
        ),
        "tolerance": {
            "rounding_abs": ROUNDING_ABS_TOL,
            "other_pixel": f"|diff| > {OTHER_PIXEL}",
            "affine_nearest_other_pixel_fraction": AFFINE_NEAREST_MISMATCH_TOL,
            "affine_bilinear_abs": AFFINE_BILINEAR_ABS_TOL,
        },
        "images": n,
    }


# ----------------------------------------------------------------------------- data pipeline


def _memcpy_counts(fn) -> dict[str, int]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    counts: dict[str, int] = {}
    for event in prof.events():
        if "memcpy" in event.name.lower():
            counts[event.name] = counts.get(event.name, 0) + 1
    return counts


def check_data_pipeline(ctx) -> dict:
    static = {
        f"{module.__name__}_uses_DataLoader": any(
            token in inspect.getsource(module) for token in ("DataLoader(", "torch.utils.data")
        )
        for module in (training_module, augment_module)
    }
    if ctx["device"].type != "cuda":
        return {
            "status": "skipped",
            "reason": "no CUDA: host-to-device copies do not exist",
            "static": static,
        }
    device, arrays, sizes = ctx["device"], ctx["arrays"], ctx["sizes"]
    bs = 128
    settings = paper_settings("vgg16_bn", batch_size=bs, eval_every=0)

    def run(steps):
        data = {
            k: torch.as_tensor(v).to(device)
            for k, v in subset(arrays, steps * bs, 1000).items()
            if k != "classes"
        }
        model = fresh_model("vgg16_bn", sizes["check_width"], len(arrays["classes"]))
        train(model, data, TrainSettings.from_config(settings), seed=0, device=device, end_epoch=1)

    few, many = sizes["profile_steps"]
    run(few)  # warm-up: cuDNN/cuBLAS handles, allocator
    counts = {steps: _memcpy_counts(lambda s=steps: run(s)) for steps in (few, many)}

    def total(c, token):
        return sum(v for k, v in c.items() if token in k)

    h2d = {s: total(c, "HtoD") for s, c in counts.items()}
    d2h = {s: total(c, "DtoH") for s, c in counts.items()}
    per_step_h2d = (h2d[many] - h2d[few]) / (many - few)
    per_step_d2h = (d2h[many] - d2h[few]) / (many - few)
    if not h2d[few]:  # the model's weights at least are copied: the event names changed
        raise RuntimeError(f"no 'HtoD' memcpy events in the profile; saw {counts}")
    ok = per_step_h2d == 0 and not any(static.values())
    return {
        "status": "passed" if ok else "failed",
        "h2d_copies_per_step": per_step_h2d,
        "d2h_copies_per_step": per_step_d2h,
        "h2d_copies_per_run": {str(s): v for s, v in h2d.items()},
        "d2h_copies_per_run": {str(s): v for s, v in d2h.items()},
        "memcpy_events": {str(s): c for s, c in counts.items()},
        "per_batch_host_to_device_copy": per_step_h2d > 0,
        "static": static,
        "method": f"torch.profiler (CUDA activity) of train() for one epoch of {few} and of "
        f"{many} steps (VGG16_BN width {sizes['check_width']}, batch {bs}; the data "
        "already on the device, so the two runs copy the same things once); per-step "
        "copies = difference of 'Memcpy HtoD/DtoH' device events / difference of steps",
    }


# ----------------------------------------------------------------------------- speed


def time_training(model, settings: dict, arrays: dict, steps: int, device) -> dict:
    """Images/s of train() over epoch 2 of 3 equal epochs of ``steps`` steps (epoch 1 warms up).

    Epoch ends are taken from train()'s per-epoch log line, which follows a host sync (the
    epoch's loss ``.item()``); epoch 3 also evaluates, so it is not timed.
    """
    bs = settings["batch_size"]
    data = subset(arrays, steps * bs, 1000)
    marks: list[float] = []

    def log(message: str) -> None:
        if "resumed from" not in message:  # one line per epoch, after a host sync
            sync(device)
            marks.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    built = TrainSettings.from_config({**settings, "eval_every": 0})
    result = train(model, data, built, seed=0, device=device, end_epoch=3, log=log)
    if len(marks) >= 2:
        seconds, clock = marks[1] - marks[0], "synchronised log marks"
    else:  # the log format changed: train()'s own epoch time (not synchronised)
        seconds, clock = result["history"][1]["seconds"], "train() history (unsynchronised)"
    out = {
        "images_per_second": round(steps * bs / seconds, 1),
        "timed_steps": steps,
        "batch_size": bs,
        "timed_seconds": round(seconds, 4),
        "warmup_seconds": round(marks[0] - t0, 2) if marks else None,
        "clock": clock,
    }
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def time_evaluation(model, arrays: dict, images: int, device, amp: bool) -> float:
    x, y = arrays["x_test"][:images], arrays["y_test"][:images]
    x_d, y_d = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
    evaluate(model, x_d[:1000], y_d[:1000], arrays["mean"], arrays["std"], device, 1000, amp)
    sync(device)
    t = time.perf_counter()
    evaluate(model, x_d, y_d, arrays["mean"], arrays["std"], device, 1000, amp)
    sync(device)
    return round(len(y) / (time.perf_counter() - t), 1)


def speed_models() -> dict:
    variants_all = [v[0] for v in VARIANTS]
    return {
        "resnet_fast": {"dataset": "cifar10", "variants": variants_all},
        "vgg16_bn": {"dataset": "cifar10", "variants": variants_all},
        # VGG_SVHN is small and batch 50: only the configured variant and fp32.
        "vgg_svhn": {"dataset": "svhn", "variants": ["fp32", "amp_channels_last"]},
    }


def speed_training(ctx, report: Report, section: dict) -> None:
    sizes, device, arrays = ctx["sizes"], ctx["device"], ctx["arrays"]
    section.update(
        status="measured",
        width=sizes["speed_width"],
        data=ctx["data"]["source"],
        timing="images/s over the 2nd of 3 epochs of `timed_steps` steps each (the 1st warms "
        "up cuDNN autotuning; the 3rd evaluates), synchronised; epoch_seconds = "
        "n_train / images/s + n_test / eval images/s, extrapolated, not a full epoch",
        vgg_svhn_data="CIFAR-sized images (32x32x3) stand in for SVHN: throughput does not "
        "depend on pixel values; its epoch uses SVHN's 73,257 / 26,032 images",
        models={},
    )
    variants = {name: (amp, cl) for name, amp, cl in VARIANTS}
    for model_name, spec in speed_models().items():
        entry = section["models"].setdefault(model_name, {"variants": {}})
        n_train, n_test = DATASET_SIZES[spec["dataset"]]
        entry.update(
            dataset=spec["dataset"],
            n_train=n_train,
            n_test=n_test,
            batch_size=sizes["speed_batch"][model_name],
        )
        for variant in spec["variants"]:
            if report.over_budget(reserve_s=ctx["reserve_s"]):
                entry["variants"][variant] = {"status": "skipped", "reason": "time budget"}
                continue
            amp, cl = variants[variant]
            settings = paper_settings(
                model_name,
                batch_size=sizes["speed_batch"][model_name],
                amp=amp,
                channels_last=cl,
            )
            t = time.perf_counter()
            try:
                with cudnn_benchmark():
                    model = fresh_model(model_name, sizes["speed_width"], len(arrays["classes"]))
                    result = time_training(model, settings, arrays, sizes["speed_steps"], device)
                    result["eval_images_per_second"] = time_evaluation(
                        model, arrays, sizes["speed_eval_images"], device, amp
                    )
                result["status"] = "measured"
                result["epoch_seconds"] = round(
                    n_train / result["images_per_second"]
                    + n_test / result["eval_images_per_second"],
                    2,
                )
            except Exception as exc:
                result = {
                    "status": "error",
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()[-2000:],
                }
            result["seconds"] = round(time.perf_counter() - t, 2)
            entry["variants"][variant] = result
            model = None
            free_memory()
            report.write()


def compile_child(args) -> None:
    """Child process: one torch.compile'd training measurement, printed as one JSON line."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = SIZES["tiny" if args.tiny else "full"]
    model_name = args.child_compile
    bs = sizes["speed_batch"][model_name]
    steps = sizes["speed_steps"]
    arrays = synthetic_arrays(steps * bs, sizes["speed_eval_images"])
    settings = paper_settings(model_name, batch_size=bs, amp=True, channels_last=True)
    model = fresh_model(model_name, sizes["speed_width"])
    model.to(device).to(memory_format=torch.channels_last)
    model.compile()
    with cudnn_benchmark():
        result = time_training(model, settings, arrays, steps, device)
        result["eval_images_per_second"] = time_evaluation(
            model, arrays, sizes["speed_eval_images"], device, True
        )
    print(CHILD_TAG + json.dumps(result), flush=True)


def speed_compile(ctx, report: Report, section: dict) -> None:
    """torch.compile (amp + channels_last), each model in a child process under a timeout.

    VGG16_BN first: its 401 trainings x 160 epochs dominate the paper's GPU-hours.
    """
    for model_name in ("vgg16_bn", "resnet_fast"):
        entry = section["models"].setdefault(model_name, {"variants": {}})
        remaining = report.budget_s - report.elapsed() - ctx["reserve_s"]
        if ctx["tiny"] or ctx["no_compile"] or remaining < 90:
            why = (
                "tiny/CPU mode"
                if ctx["tiny"]
                else "--no-compile"
                if ctx["no_compile"]
                else "time budget"
            )
            entry["variants"]["amp_channels_last_compile"] = {"status": "skipped", "reason": why}
            continue
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--out",
            str(ctx["work"]),
            "--child-compile",
            model_name,
        ]
        timeout = min(remaining, 240)
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            lines = [x for x in proc.stdout.splitlines() if x.startswith(CHILD_TAG)]
            if proc.returncode == 0 and lines:
                result = {"status": "measured", **json.loads(lines[-1][len(CHILD_TAG) :])}
                n_train, n_test = DATASET_SIZES["cifar10"]
                result["epoch_seconds"] = round(
                    n_train / result["images_per_second"]
                    + n_test / result["eval_images_per_second"],
                    2,
                )
                base = entry["variants"].get("amp_channels_last", {})
                if base.get("status") == "measured":
                    result["speedup_vs_amp_channels_last"] = round(
                        result["images_per_second"] / base["images_per_second"], 3
                    )
            else:
                result = {
                    "status": "error",
                    "returncode": proc.returncode,
                    "stderr_tail": proc.stderr[-2500:],
                }
        except subprocess.TimeoutExpired:
            result = {"status": "error", "error": f"timed out after {timeout:.0f} s"}
        except Exception as exc:
            result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.perf_counter() - t, 2)
        result["note"] = "model.compile() (default mode), generated data, child process; the "
        result["note"] += "warm-up epoch includes compilation"
        entry["variants"]["amp_channels_last_compile"] = result
        report.write()


def _time_call(fn, device, repeats: int, max_s: float) -> float:
    """Median seconds of ``fn`` after one untimed call (bounded by ``max_s`` in total)."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
        if sum(times) > max_s:
            break
    return float(np.median(times))


def speed_similarity(ctx, report: Report, section: dict) -> None:
    sizes, device = ctx["sizes"], ctx["device"]
    settings = metric_settings()
    section.update(
        status="measured",
        device_engine=f"torch float64 on {device}",
        cpu_engine=f"numpy float64 on the CPU ({os.cpu_count()} cores)",
        timing="median over repeats after one untimed call; device inputs are float32 tensors "
        "already on the device ('with_copy': from numpy, including the host-to-device "
        "copy); the CPU figure of the realistic pair is the correctness section's call",
        sizes={},
        pairs_per_second={},
    )
    checked = (ctx.get("correctness_metrics") or {}).get("metrics", {})
    for label, (flat_shape, chan_shape) in sizes["sim_sizes"].items():
        section["sizes"][label] = {"cka/nbs/cosine": list(flat_shape), "cca": list(chan_shape)}
        out = section["pairs_per_second"].setdefault(label, {})
        pairs = ctx.get("metric_pairs", {}).get(label) or {
            "flatten": realistic_pair(*flat_shape, seed=1),
            "channels": realistic_pair(*chan_shape, seed=2),
        }
        for kind, (x, y) in pairs.items():
            for name in CCA_FAMILY if kind == "channels" else ("cka", "nbs", "cosine"):
                if report.over_budget(reserve_s=ctx["reserve_s"]):
                    out[name] = {"status": "skipped", "reason": "time budget"}
                    continue
                cpu_s = None  # the realistic pair's CPU call is slow: reuse the check's timing
                if label == "realistic":
                    cpu_s = checked.get(name, {}).get(label, {}).get("cpu_seconds")
                try:
                    out[name] = similarity_rates(
                        name,
                        settings[name],
                        x,
                        y,
                        device,
                        sizes["sim_repeats"],
                        cpu_s,
                        with_copy=label == "realistic" and device.type == "cuda",
                    )
                except Exception as exc:
                    out[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
                free_memory()
                report.write()


def similarity_rates(name, settings, x, y, device, repeats, cpu_s=None, with_copy=False) -> dict:
    """Pairs/s of one metric: device engine (inputs on the device), CPU numpy engine."""
    xd, yd = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    dev_s = _time_call(lambda: similarity(name, xd, yd, **settings), device, repeats, 20.0)
    entry = {"status": "measured", "device": round(1 / dev_s, 3)}
    if with_copy:

        def copied():
            xc, yc = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            return similarity(name, xc, yc, **settings)

        entry["device_with_copy"] = round(1 / _time_call(copied, device, 1, 20.0), 3)
    if cpu_s is None:
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        cpu = torch.device("cpu")
        cpu_s = _time_call(lambda: similarity(name, x64, y64, **settings), cpu, repeats, 20.0)
    entry["cpu"] = round(1 / cpu_s, 3)
    entry["device_over_cpu"] = round(cpu_s / dev_s, 2)
    return entry


def paper_grid(ctx, speed: dict) -> dict:
    """GPU-hours of config.yaml's grid from the measured images/s (training + per-epoch eval)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    models = speed.get("models", {})
    experiments, totals = {}, {"as_configured": 0.0, "best_measured": 0.0}
    complete = True
    for exp, spec in config["experiments"].items():
        cfg = TrainSettings.from_config(spec.get("train")).as_dict()
        dataset = config["datasets"][spec["dataset"]]["source"]
        n_train, n_test = DATASET_SIZES[dataset]
        iterations = (spec.get("prune") or {}).get("iterations", 20)
        networks = 1 + spec["runs"] * iterations
        evals = cfg["epochs"] // cfg["eval_every"] if cfg["eval_every"] else 1
        configured = ("amp" if cfg["amp"] else "fp32") + ("_channels_last" * cfg["channels_last"])
        measured = {
            k: v
            for k, v in models.get(spec["model"], {}).get("variants", {}).items()
            if v.get("status") == "measured"
        }
        row = {
            "model": spec["model"],
            "dataset": dataset,
            "width": spec.get("width", 1.0),
            "networks": networks,
            "epochs": cfg["epochs"],
            "batch_size": cfg["batch_size"],
            "train_images": networks * cfg["epochs"] * n_train,
            "eval_images": networks * evals * n_test,
            "configured_variant": configured,
        }
        for key, variant in (("as_configured", configured), ("best_measured", None)):
            if variant is None and measured:
                variant = max(measured, key=lambda k: measured[k]["images_per_second"])
            m = measured.get(variant) if variant else None
            if m is None:
                row[key] = None
                complete = False
                continue
            seconds = (
                row["train_images"] / m["images_per_second"]
                + row["eval_images"] / m["eval_images_per_second"]
            )
            row[key] = {
                "variant": variant,
                "gpu_hours": round(seconds / 3600, 2),
                "epoch_seconds": m.get("epoch_seconds"),
                "source": "measured",
            }
            totals[key] += seconds / 3600
        experiments[exp] = row
    return {
        "status": "computed" if complete else "partial",
        "experiments": experiments,
        "total_gpu_hours": {k: round(v, 1) for k, v in totals.items()} if complete else None,
        "meaningful": ctx["device"].type == "cuda" and not ctx["tiny"],
        "excludes": "activation extraction, similarity jobs, job start-up and I/O",
        "assumes": "one GPU per training job, full width, measured images/s at the paper's "
        "batch sizes (VGG_SVHN measured too, on CIFAR-sized stand-in images), an "
        "evaluation of the test set every epoch (eval_every 1)",
    }


# ----------------------------------------------------------------------------- main


def environment(device: torch.device) -> dict:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "tf32": {
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        },
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            cuda_runtime=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    return env


def print_table(doc: dict) -> None:
    rows = [("section", "status", "detail")]
    for name, sec in doc.get("correctness", {}).items():
        detail = sec.get("error") or _summary(name, sec)
        rows.append((f"correctness.{name}", sec.get("status", "?"), detail[:60]))
    pipe = doc.get("data_pipeline", {})
    rows.append(
        (
            "data_pipeline",
            pipe.get("status", "?"),
            f"H2D copies/step {pipe.get('h2d_copies_per_step', '-')}",
        )
    )
    for model, entry in doc.get("speed", {}).get("training", {}).get("models", {}).items():
        for variant, v in entry.get("variants", {}).items():
            detail = (
                f"{v['images_per_second']:,.0f} img/s, epoch {v['epoch_seconds']:.1f} s"
                if v.get("status") == "measured"
                else v.get("reason") or v.get("error", "")
            )
            rows.append((f"train {model} {variant}", v.get("status", "?"), str(detail)[:60]))
    for label, metrics in (
        doc.get("speed", {}).get("similarity", {}).get("pairs_per_second", {}).items()
    ):
        for name, v in metrics.items():
            detail = (
                f"{v['device']:.3g} pairs/s on device, {v['cpu']:.3g} on CPU"
                if v.get("status") == "measured"
                else v.get("reason") or v.get("error", "")
            )
            rows.append((f"similarity {label} {name}", v.get("status", "?"), str(detail)[:60]))
    grid = doc.get("paper_grid", {})
    rows.append(("paper_grid", grid.get("status", "?"), f"GPU-hours {grid.get('total_gpu_hours')}"))
    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:<9} {r[2]}")
    print(f"passed: {doc.get('passed')}  cuda: {doc.get('cuda')}  ({doc.get('elapsed_s')} s)")
    print(doc.get("message", ""))


def _summary(name: str, sec: dict) -> str:
    """One line of key figures for a correctness section of the printed table."""
    try:
        if name == "training_amp":
            runs = sec["runs"]
            return (
                f"loss fp32 {runs['fp32']['train_loss'][-1]:.3f} amp "
                f"{runs['amp']['train_loss'][-1]:.3f}, acc {runs['fp32']['test_accuracy']:.2f}/"
                f"{runs['amp']['test_accuracy']:.2f}"
            )
        if name == "masks":
            bad = sum(c["nonzero_pruned_seen_before_forwards"] for c in sec["cases"].values())
            return f"nonzero pruned weights seen: {bad}"
        if name == "metrics":
            diffs = [r["abs_diff"] for by in sec["metrics"].values() for r in by.values()]
            return f"max |device - cpu| {max(diffs):.1e} (tol {sec['tolerance_abs']:.0e})"
        if name == "activations":
            errs = [m["fp32"]["max_rel_err"] for m in sec["models"].values()]
            return f"max rel err {max(errs):.1e} (tol {ACT_REL_TOL:.0e})"
        if name == "augmentation":
            diffs = [c["max_abs_diff"] for c in sec["same_params_cpu_vs_device"].values()]
            return f"same draws, max |cpu - device| {max(diffs):.1e}"
    except (KeyError, TypeError, ValueError):
        pass
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory for gpu_check.json")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (automatic without CUDA)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="skip the remaining speed items after this many seconds",
    )
    parser.add_argument("--data-root", default=str(CIFAR_JPEG), help="CIFAR-10 ImageFolder root")
    parser.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "prunesim_gpu_check"),
        help="where the decoded CIFAR-10 arrays are cached",
    )
    parser.add_argument("--no-compile", action="store_true", help="do not try torch.compile")
    parser.add_argument("--child-compile", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    args.tiny = args.tiny or not cuda
    if not cuda:
        limit_cpu_threads()
    if args.child_compile:
        compile_child(args)
        return 0

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if cuda else "cpu")
    report = Report(out_dir, args.budget_s)
    message = (
        f"CUDA device found: {torch.cuda.get_device_name(0)}"
        if cuda
        else "no GPU found (torch.cuda.is_available() is False): the checks ran on the CPU "
        "at tiny sizes; the speed figures are CPU figures, not GPU ones"
    )
    if cuda and args.tiny:
        message += " (tiny sizes: --tiny)"
    doc = report.doc
    doc.update(
        schema="prunesim.gpu_check/1",
        cuda=cuda,
        message=message,
        mode="tiny" if args.tiny else "full",
        complete=False,
        budget_s=args.budget_s,
        environment=environment(device),
    )
    report.write()

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        sizes = SIZES["tiny" if args.tiny else "full"]
        arrays, arrays_path, data_info = load_data(args, sizes, work)
        ctx = {
            "sizes": sizes,
            "device": device,
            "arrays": arrays,
            "arrays_path": arrays_path,
            "data": data_info,
            "work": work,
            "tiny": args.tiny,
            "no_compile": args.no_compile,
            "reserve_s": 0.0,
        }
        doc["data"] = data_info
        doc["correctness"] = {}
        checks = (
            ("training_amp", check_training_amp),
            ("masks", check_masks),
            ("metrics", check_metrics),
            ("activations", check_activations),
            ("augmentation", check_augmentation),
        )
        for name, fn in checks:
            report.run(doc["correctness"], name, fn, ctx)
        ctx["correctness_metrics"] = doc["correctness"].get("metrics")
        report.run(doc, "data_pipeline", check_data_pipeline, ctx)

        doc["speed"] = {"training": {}, "similarity": {}}
        speed = doc["speed"]
        report.run(speed, "training", lambda: _fill(speed, "training", speed_training, ctx, report))
        report.run(
            speed, "similarity", lambda: _fill(speed, "similarity", speed_similarity, ctx, report)
        )
        report.run(doc, "paper_grid", paper_grid, ctx, speed["training"])
        report.run(speed, "training", lambda: _fill(speed, "training", speed_compile, ctx, report))
        report.run(doc, "paper_grid", paper_grid, ctx, speed["training"])
        ctx.pop("metric_pairs", None)

    failed = [f"correctness.{k}" for k, v in doc["correctness"].items() if v["status"] != "passed"]
    pipeline = doc["data_pipeline"].get("status")
    if pipeline in ("failed", "error") or (device.type == "cuda" and pipeline != "passed"):
        failed.append("data_pipeline")
    doc.update(passed=not failed, failed_checks=failed, complete=True)
    report.write()
    print_table(doc)
    print(f"wrote {report.path}")
    return 0 if not failed else 1


def _fill(parent: dict, key: str, fn, ctx, report) -> dict:
    """Let a speed section write into its own dict as it goes (partial results survive)."""
    section = parent.setdefault(key, {})
    fn(ctx, report, section)
    return section


if __name__ == "__main__":
    sys.exit(main())
