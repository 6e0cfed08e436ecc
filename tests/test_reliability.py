"""Reliability (issue 7): clear errors, atomic and resumable jobs, reproducible tables.

Every test drives the real workflow (``snakemake`` in a subprocess, always under a time
limit) except the checkpoint-loading one, and each fails when its feature is missing:

- bad configs stop ``snakemake -n`` with a message naming the key and the allowed values;
- a missing dataset, an empty class folder or a probe larger than the test set, or a
  truncated checkpoint / array file / activation file, fails its job with a log line that
  names the file and the fix (no bare traceback, no output left); following that fix
  literally rebuilds everything computed from the file, equal to a clean run;
- the paper's config on a machine without CUDA stops before any job, with what to do;
- results get the file mode the umask gives, not mkstemp's 0600;
- ``kill -9`` of a real run mid-training leaves no finished-looking output, and the rerun
  resumes from the last epoch checkpoint, keeps the killed attempt's log lines and ends
  bit-identical to an uninterrupted run;
- the same config and seed give byte-identical tables;
- an all-zero layer gives a defined value or an explained gap, never a crashed workflow;
- checkpoints never execute pickled code;
- long jobs log their progress.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY_CONFIG, snakemake, snakemake_command
from prunesim.joblog import RESUMING_MARK

pytestmark = pytest.mark.workflow

EXPERIMENT = "results/tiny"
DENSE = f"{EXPERIMENT}/networks/dense"
RAW_TRACEBACK = "job failed with an unexpected error"  # prunesim.joblog's non-PrunesimError path


# ----------------------------------------------------------------------------- helpers


def tiny_config() -> dict:
    return yaml.safe_load(TINY_CONFIG.read_text())


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def output_of(proc: subprocess.CompletedProcess) -> str:
    return f"{proc.stdout}\n{proc.stderr}"


def truncate_keeping_mtime(path: Path) -> None:
    """Cut ``path`` to half its size; keep its mtime so Snakemake sees nothing outdated."""
    st = path.stat()
    assert st.st_size > 100, f"{path} is unexpectedly small ({st.st_size} bytes)"
    with open(path, "r+b") as fh:
        fh.truncate(st.st_size // 2)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def assert_clear_failure(log: Path, names: str, *, fix_words=("rerun",)) -> str:
    """The job's log has a PrunesimError line naming ``names`` and the fix, not a raw trace."""
    assert log.exists(), f"the failed job wrote no log at {log}"
    text = log.read_text()
    error_lines = [line for line in text.splitlines() if " ERROR " in line]
    assert error_lines, f"no ERROR line in {log}:\n{text}"
    assert RAW_TRACEBACK not in text, f"raw traceback instead of a clear message in {log}:\n{text}"
    assert "Traceback (most recent call last)" not in text, f"traceback in {log}:\n{text}"
    message = "\n".join(error_lines)
    assert names in message, f"the error does not name {names!r}:\n{message}"
    for word in fix_words:
        assert word in message, f"the error does not say what to do ({word!r}):\n{message}"
    return message


def state_dict_of(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_identical_weights(a: Path, b: Path) -> None:
    import torch

    sa, sb = state_dict_of(a), state_dict_of(b)
    assert list(sa) == list(sb), f"{a} and {b} hold different tensors"
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, f"{a} and {b} differ in {differ}"


# ----------------------------------------------------------------------------- 1. config errors


def _set(path: str, value):
    def mutate(config):
        *parents, last = path.split("/")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


CONFIG_ERRORS = {
    # id: (mutation, words the message must contain: the key, the bad value, allowed values)
    "unknown_top_level_key": (_set("sed", 1), ["'sed'", "allowed keys", "seed", "probe_size"]),
    "unknown_train_key": (
        _set("experiments/tiny/train/epoch", 3),
        ["'epoch'", "experiments/tiny/train", "allowed keys", "epochs", "batch_size"],
    ),
    "wrong_type": (
        _set("experiments/tiny/train/epochs", "three"),
        ["experiments/tiny/train/epochs", "integer", "three"],
    ),
    "unknown_model": (
        _set("experiments/tiny/model", "vgg19"),
        ["experiments/tiny/model", "vgg19", "vgg16_bn", "vgg_svhn", "resnet_fast"],
    ),
    "undefined_dataset": (
        _set("experiments/tiny/dataset", "mnist"),
        ["experiments/tiny/dataset", "mnist", "digits"],
    ),
    "unknown_dataset_source": (
        _set("datasets/digits/source", "mnist"),
        ["datasets/digits/source", "mnist", "cifar10", "svhn", "imagefolder", "digits"],
    ),
    "unknown_metric": (
        _set("metrics/cca", {}),
        ["'cca'", "metrics", "built-in metrics", "mean_cca", "svcca", "pwcca", "cka", "nbs"],
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_bad_config_stops_dry_run_with_key_and_allowed_values(case, tmp_path):
    mutate, words = CONFIG_ERRORS[case]
    config = tiny_config()
    mutate(config)
    bad = write_config(tmp_path / "bad.yaml", config)
    proc = snakemake(tmp_path / "wd", "-n", config=bad, timeout=180, check=False)
    out = output_of(proc)
    assert proc.returncode != 0, f"snakemake -n accepted the bad config ({case}):\n{out[-3000:]}"
    assert "ConfigError" in out, f"no ConfigError message:\n{out[-3000:]}"
    missing = [w for w in words if w not in out]
    assert not missing, f"the message lacks {missing}:\n{out[-3000:]}"
    # The message itself is printed, not only a Python traceback of where it was raised.
    assert "Traceback (most recent call last)" not in out, out[-3000:]
    assert not (tmp_path / "wd" / "results").exists(), "a job ran despite the bad config"


# ----------------------------------------------------------------------------- 2. missing data


DATA_FAILURES = ("nofolder", "emptycifar", "emptyclass", "digits")


def make_image_folder(root: Path, classes: list[str], per_class: int) -> None:
    from PIL import Image

    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (32, 32), (i, 0, 0)).save(root / split / name / f"{i}.png")


def test_missing_dataset_fails_prepare_data_with_path_and_fix(tmp_path):
    missing_root = tmp_path / "no" / "such" / "folder"
    empty_root = tmp_path / "empty_cifar"
    empty_root.mkdir()
    class_root = tmp_path / "empty_class"
    make_image_folder(class_root, ["cat", "dog"], per_class=2)
    for image in (class_root / "test" / "dog").iterdir():
        image.unlink()
    config = tiny_config()
    config["datasets"]["nofolder"] = {"source": "imagefolder", "root": str(missing_root)}
    config["datasets"]["emptycifar"] = {
        "source": "cifar10",
        "root": str(empty_root),
        "download": False,
    }
    config["datasets"]["emptyclass"] = {"source": "imagefolder", "root": str(class_root)}
    config["probe_size"] = 300  # > the digits test subset (200): refused, not clamped
    cfg = write_config(tmp_path / "missing.yaml", config)
    workdir = tmp_path / "wd"
    proc = snakemake(
        workdir,
        "--keep-going",
        *(f"results/data/{name}/arrays.npz" for name in DATA_FAILURES),
        config=cfg,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0, "prepare_data succeeded without a dataset"

    folder_msg = assert_clear_failure(
        workdir / "logs/prepare_data/nofolder.log", str(missing_root), fix_words=()
    )
    assert "DatasetError" in folder_msg
    assert "train/<class>" in folder_msg, f"no hint at the expected layout:\n{folder_msg}"

    cifar_msg = assert_clear_failure(
        workdir / "logs/prepare_data/emptycifar.log", str(empty_root), fix_words=()
    )
    assert "DatasetError" in cifar_msg
    assert "download: true" in cifar_msg, f"no hint how to get the data:\n{cifar_msg}"

    class_msg = assert_clear_failure(
        workdir / "logs/prepare_data/emptyclass.log", "class 'dog' of the test split", fix_words=()
    )
    assert "DatasetError" in class_msg
    assert "add its images, or remove the 'dog' folder" in class_msg, class_msg

    probe_msg = assert_clear_failure(
        workdir / "logs/prepare_data/digits.log", "probe_size is 300", fix_words=()
    )
    assert "DatasetError" in probe_msg
    assert "only 200 images" in probe_msg, probe_msg
    assert "set probe_size to at most 200" in probe_msg, probe_msg

    for name in DATA_FAILURES:
        data_dir = workdir / "results" / "data" / name
        left = sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []
        assert left == [], f"a failed prepare_data left files behind in {data_dir}: {left}"


# ----------------------------------------------------------------------------- 3. corrupt files


CORRUPT_CASES = {
    # id: (truncated file, forced target, that job's log, what the message must name,
    #      whether to follow the message and check the rebuild: `arrays` would retrain all)
    "checkpoint": (
        f"{EXPERIMENT}/networks/run1/iter2/model.pt",
        f"{EXPERIMENT}/activations/run1_iter2.h5",
        "logs/extract_acts/tiny/run1_iter2.log",
        "checkpoint",
        True,
    ),
    "arrays": (
        "results/data/digits/arrays.npz",
        f"{EXPERIMENT}/activations/dense.h5",
        "logs/extract_acts/tiny/dense.log",
        "array file",
        False,
    ),
    # the activations' first reader: the shared statistics of the pruned network (issue #13)
    "activations": (
        f"{EXPERIMENT}/activations/run1_iter1.h5",
        f"{EXPERIMENT}/similarity_stats/flatten/run1_iter1.npz",
        "logs/pair_stats/tiny/flatten/run1_iter1.log",
        "activation file",
        True,
    ),
}
TABLES = ("similarity.csv", "accuracy.csv", "masks.csv")


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("case", list(CORRUPT_CASES))
def test_truncated_file_fails_its_consumer_and_its_fix_rebuilds_everything(
    case, tiny_copy, tiny_workflow
):
    broken, target, log, what, rebuild = CORRUPT_CASES[case]
    truncate_keeping_mtime(tiny_copy / broken)
    proc = snakemake(tiny_copy, "--force", target, timeout=300, check=False)
    out = output_of(proc)
    assert proc.returncode != 0, f"the job consumed a truncated {broken}:\n{out[-3000:]}"
    message = assert_clear_failure(tiny_copy / log, broken, fix_words=("rerun", "--forcerun"))
    assert "CorruptFileError" in message, message
    assert what in message, message
    assert not (tiny_copy / target).exists(), f"{target} exists after its job failed"
    partial = [p.name for p in (tiny_copy / target).parent.iterdir() if ".partial" in p.name]
    assert not partial, f"the failed job left temporaries: {partial}"
    if not rebuild:
        return

    # Follow the message literally: the same command with `--forcerun <file>` at the end.
    fix = re.search(r"with `(--forcerun [^`]+)` added at the end", message)
    assert fix, f"the message names no command to run:\n{message}"
    assert fix.group(1) == f"--forcerun {broken}"
    if case == "checkpoint":
        # What the old advice said; deleting alone rebuilds nothing while the tables exist.
        (tiny_copy / broken).unlink()
        assert "Nothing to be done" in snakemake(tiny_copy, "--dry-run").stdout
    tables = tiny_copy / EXPERIMENT / "tables"
    before = {name: (tables / name).stat().st_mtime_ns for name in TABLES}
    snakemake(tiny_copy, *shlex.split(fix.group(1)), timeout=900)

    assert files_under(tiny_copy / "results") == files_under(tiny_workflow / "results")
    for name in TABLES:
        assert (tables / name).stat().st_mtime_ns > before[name], f"{name} was not rebuilt"
        clean = (tiny_workflow / EXPERIMENT / "tables" / name).read_bytes()
        assert (tables / name).read_bytes() == clean, f"{name} differs from a clean run's"
    assert "Nothing to be done" in snakemake(tiny_copy, "--dry-run").stdout


# ----------------------------------------------------------------------------- 3b. no GPU


def test_paper_config_without_cuda_stops_before_any_job(tmp_path):
    """`snakemake --cores 2` with no --configfile plans the paper's grid: stop, say what to do."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the paper's config may run here")
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "config.yaml").symlink_to(REPO / "config.yaml")  # the default config
    command = snakemake_command(workdir, config=REPO / "config.yaml")
    at = command.index("--configfile")
    del command[at : at + 2]  # as a user would type it: no --configfile
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def run(*args):
        proc = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=600, env=env
        )
        return proc, output_of(proc)

    proc, out = run()
    assert proc.returncode != 0, f"the paper's study started on a CPU:\n{out[-3000:]}"
    for words in ("ConfigError", "no CUDA GPU", "CPU-hours", "Nothing was run",
                  "--configfile config/quickstart.yaml", "--config allow_cpu=True"):  # fmt: skip
        assert words in out, f"the message lacks {words!r}:\n{out[-3000:]}"
    assert "Traceback (most recent call last)" not in out, out[-3000:]
    assert not (workdir / "results").exists(), "a job ran"
    assert not (workdir / "logs").exists(), "a job ran"

    # A dry run is not stopped; `--config` alone is applied over config.yaml, not instead.
    proc, out = run("--dry-run", "--config", "allow_cpu=True")
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"^imp_iter\s+600$", out, re.M), out[-3000:]


def test_require_gpu_is_overridden_by_allow_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: require_gpu never stops a run here")
    config = tiny_config()
    config["require_gpu"] = True
    cfg = write_config(tmp_path / "gpu.yaml", config)
    target = "results/data/digits/arrays.npz"
    proc = snakemake(tmp_path / "wd", target, config=cfg, timeout=300, check=False)
    assert proc.returncode != 0
    assert "require_gpu: true" in output_of(proc), output_of(proc)[-3000:]
    assert not (tmp_path / "wd" / target).exists()
    snakemake(tmp_path / "wd", target, "--config", "allow_cpu=True", config=cfg, timeout=300)
    assert (tmp_path / "wd" / target).exists()


# ----------------------------------------------------------------------------- 3c. file modes


def test_results_get_the_mode_the_umask_gives(tmp_path, tiny_workflow):
    """Not mkstemp's owner-only 0600: a normally created file's 0666 & ~umask."""
    before = os.umask(0o027)
    try:
        snakemake(tmp_path, "results/data/digits/arrays.npz", timeout=300)
    finally:
        os.umask(before)
    for name in ("arrays.npz", "probe.npy"):
        mode = (tmp_path / "results/data/digits" / name).stat().st_mode & 0o777
        assert mode == 0o640, f"{name} has mode {mode:o} under umask 027"
    # Every result of the full tiny run (checkpoints, HDF5, JSON, CSV, figures).
    expected = 0o666 & ~before
    wrong = {
        name: oct(mode)
        for name in files_under(tiny_workflow / "results")
        if (mode := (tiny_workflow / "results" / name).stat().st_mode & 0o777) != expected
    }
    assert not wrong, f"not mode {expected:o}: {wrong}"


# ----------------------------------------------------------------------------- 4. kill -9


KILL_EPOCHS = 6


@pytest.fixture
def long_dense_config(tmp_path) -> Path:
    """Tiny, but the dense net trains long enough (6 epochs, 600 images) to be killed."""
    config = tiny_config()
    config["datasets"]["digits"]["train_subset"] = 600
    train = config["experiments"]["tiny"]["train"]
    train["epochs"] = KILL_EPOCHS
    train["schedule"] = {"kind": "step", "milestones": [4], "gamma": 0.1}
    return write_config(tmp_path / "long_dense.yaml", config)


def kill_during_training(workdir: Path, config: Path, deadline_s: float = 600) -> str:
    """Start snakemake, SIGKILL its whole process group once an epoch checkpoint exists
    and the job's log shows a finished epoch."""
    import psutil

    resume = workdir / DENSE / "resume.pt"
    log = workdir / "logs/train_dense/tiny.log"

    def epoch_done() -> bool:
        return resume.exists() and log.exists() and f"/{KILL_EPOCHS} loss " in log.read_text()

    console = workdir.parent / f"{workdir.name}.console.txt"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with open(console, "w") as out:
        proc = subprocess.Popen(
            snakemake_command(workdir, f"{DENSE}/model.pt", config=config),
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    family: list = []

    def kill_all() -> None:
        nonlocal family
        with contextlib.suppress(psutil.NoSuchProcess):
            family = psutil.Process(proc.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: its pgid is its pid

    deadline = time.monotonic() + deadline_s
    try:
        while not epoch_done():
            if proc.poll() is not None:
                pytest.fail(
                    f"snakemake ended (rc {proc.returncode}) before the first epoch "
                    f"checkpoint {resume} appeared:\n{console.read_text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no epoch checkpoint {resume} within {deadline_s:.0f} s")
            time.sleep(0.02)
    finally:
        kill_all()  # also after a failure above: never leave the run behind
        proc.wait(timeout=60)
        # Anything that left the process group (nothing should) is killed by its pid.
        for child in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        _, alive = psutil.wait_procs(family, timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"snakemake was not killed: rc {proc.returncode}"
    assert not alive, f"job processes survived the kill: {alive}"
    return console.read_text()


def test_kill_9_mid_training_leaves_nothing_finished_and_resumes_identically(
    long_dense_config, tmp_path
):
    import torch

    target = f"{DENSE}/model.pt"
    killed = tmp_path / "killed"
    console = kill_during_training(killed, long_dense_config)

    # Nothing that looks finished: none of train_dense's outputs, only the resume state
    # (and its rewind snapshot) plus temporaries that do not carry a final name.
    dense = killed / DENSE
    finals = {"model.pt", "rewind.pt", "metrics.json"}
    present = sorted(p.name for p in dense.iterdir())
    assert not finals & set(present), (
        f"the killed run left finished-looking outputs {sorted(finals & set(present))} "
        f"(kill came too late or outputs are not atomic); files: {present}\n{console[-3000:]}"
    )
    allowed = {"resume.pt", "resume.log"}  # the resume state and its attempts' log lines
    strays = [
        name
        for name in present
        if name not in allowed
        and not name.startswith("resume.pt.rewind")
        and ".partial" not in name
    ]
    assert not strays, f"unexpected files after the kill: {strays}"
    state = torch.load(dense / "resume.pt", map_location="cpu", weights_only=True)
    killed_at = state["epoch"]
    assert 1 <= killed_at < KILL_EPOCHS, f"resume checkpoint at epoch {killed_at}"

    # Rerun as a user would after a crash: unlock, then rerun the incomplete job.
    snakemake(killed, "--unlock", config=long_dense_config, timeout=180)
    snakemake(killed, target, "--rerun-incomplete", config=long_dense_config, timeout=900)
    log = (killed / "logs/train_dense/tiny.log").read_text()
    # The killed attempt's lines are kept (Snakemake deletes a job's log before a rerun).
    assert log.count(RESUMING_MARK) == 1, log
    earlier, resumed = log.split(RESUMING_MARK)
    assert f"tiny dense epoch 1/{KILL_EPOCHS} loss " in earlier, f"earlier epochs lost:\n{log}"
    assert f"resumed from {DENSE}/resume.pt at epoch {killed_at}" in resumed, log
    assert f"epoch {killed_at + 1}/{KILL_EPOCHS} " in resumed, log
    assert f"epoch {killed_at}/{KILL_EPOCHS} " not in resumed, f"retrained an epoch:\n{log}"
    assert not (dense / "resume.pt").exists(), "the resume checkpoint outlived a finished job"
    assert not (dense / "resume.log").exists(), "the attempts' log outlived a finished job"

    # Uninterrupted run of the same config elsewhere: identical weights, bit for bit.
    reference = tmp_path / "reference"
    snakemake(reference, target, config=long_dense_config, timeout=900)
    for name in ("model.pt", "rewind.pt"):
        assert_identical_weights(dense / name, reference / DENSE / name)
    resumed = json.loads((dense / "metrics.json").read_text())
    uninterrupted = json.loads((reference / DENSE / "metrics.json").read_text())
    assert resumed == uninterrupted


# ----------------------------------------------------------------------------- 5. determinism


def test_same_config_and_seed_give_identical_tables(tiny_workflow, tmp_path):
    """A second run from scratch gives byte-identical tables. Only the `tiny` experiment's
    tables are rebuilt: the other experiment and the figures run the same code paths and
    would only add minutes to the suite."""
    again = tmp_path / "again"
    tables = ("similarity.csv", "accuracy.csv", "masks.csv")
    snakemake(again, *(f"{EXPERIMENT}/tables/{table}" for table in tables), timeout=900)
    for table in tables:
        first = (tiny_workflow / EXPERIMENT / "tables" / table).read_bytes()
        second = (again / EXPERIMENT / "tables" / table).read_bytes()
        assert first == second, f"{table} differs between two runs of the same config"


# ----------------------------------------------------------------------------- 6. degenerate


def test_all_zero_layer_gives_value_or_explained_gap(tiny_copy):
    import h5py

    layer, run, iteration = "conv1", 1, 2
    acts = tiny_copy / EXPERIMENT / "activations" / f"run{run}_iter{iteration}.h5"
    with h5py.File(acts, "r+") as h5:
        h5[layer][...] = 0.0
    snakemake(tiny_copy, timeout=900)  # the edited file is newer: its similarity jobs rerun

    table = pd.read_csv(tiny_copy / EXPERIMENT / "tables" / "similarity.csv")
    # Every row whose first network's layer is the zeroed one: against the dense network
    # (same-layer and cross-layer pairs) and, as run a, against the other runs (run_vs_run).
    affected = table[(table.run == run) & (table.iteration == iteration) & (table.layer == layer)]
    against_dense = affected[affected.comparison == "pruned_vs_dense"]
    same = against_dense[against_dense.layer_b == layer]
    metrics = sorted(set(tiny_config()["metrics"]) - {"cosine"})  # cosine: output layer only
    assert sorted(same.metric) == metrics, same
    assert "note" in table.columns, "similarity.csv has no note column for gaps"
    for _, row in affected.iterrows():
        value = row["value"]
        if isinstance(value, float) and math.isnan(value):
            note = row["note"]
            assert isinstance(note, str), f"unexplained gap for {row.metric}"
            assert note.strip(), f"empty note for the gap of {row.metric}"
        else:
            assert 0.0 <= float(value) <= 1.0, f"{row.metric} = {value} on a zero layer"
    for metric in metrics:
        record = json.loads(
            (
                tiny_copy / EXPERIMENT / "similarity" / metric / f"run{run}"
                / f"iter{iteration}" / f"{layer}__{layer}.json"
            ).read_text()
        )  # fmt: skip
        assert record["value"] is not None or record["note"], record
    assert same["value"].isna().any(), "a constant layer got a value from every metric"
    # The rest of the table is untouched by the degenerate layer.
    others = table.drop(affected.index)
    assert others["value"].notna().all(), others[others["value"].isna()]
    for name in ("similarity_cka", "accuracy"):
        assert (tiny_copy / EXPERIMENT / "figures" / f"{name}.svg").exists()


# ----------------------------------------------------------------------------- 7. weights_only


def _touch_marker(path: str) -> None:
    Path(path).write_text("code from a data file ran")


class Payload:
    """Unpickling this object runs ``_touch_marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch_marker, (self.marker,))


def test_checkpoint_with_pickled_code_is_rejected_without_running_it(tmp_path):
    import torch

    from prunesim.checkpoint import load_checkpoint
    from prunesim.errors import CorruptFileError

    marker = tmp_path / "marker.txt"
    path = tmp_path / "model.pt"
    payload = {"state_dict": {"w": torch.zeros(2)}, "masks": {}, "meta": {"x": Payload(marker)}}
    torch.save(payload, path)

    # Premise: a full unpickler would run the object's code.
    torch.load(shutil.copy(path, tmp_path / "probe.pt"), weights_only=False)
    assert marker.exists(), "the test payload does not execute code; the test proves nothing"
    marker.unlink()

    with pytest.raises(CorruptFileError) as err:
        load_checkpoint(path)
    assert not marker.exists(), "load_checkpoint executed code from the checkpoint"
    assert str(path) in str(err.value)
    assert "weights_only=False" not in str(err.value), "the message suggests unsafe loading"


# ----------------------------------------------------------------------------- 8. progress


def test_long_jobs_log_their_progress(tiny_workflow):
    import re

    config = tiny_config()
    epochs = config["experiments"]["tiny"]["train"]["epochs"]
    logs = tiny_workflow / "logs"

    device = r"training on (cpu \(\d+ threads\)|cuda:\d+ \(.+\))"
    dense = (logs / "train_dense" / "tiny.log").read_text()
    assert re.search(rf"tiny dense: {device}", dense), f"no device line:\n{dense}"
    for epoch in range(1, epochs + 1):
        pattern = (
            rf"tiny dense epoch {epoch}/{epochs} loss \d+\.\d+ train_acc \d\.\d+ "
            rf"test_acc (\d\.\d+|-) .*img/s \d+"
        )
        assert re.search(pattern, dense), f"no progress line for epoch {epoch}:\n{dense}"

    imp = (logs / "imp_iter" / "tiny" / "run1_iter2.log").read_text()
    assert re.search(rf"tiny run 1 iter 2: {device}", imp), f"no device line:\n{imp}"
    assert re.search(r"run 1 iter 2\b.*density \d\.\d+", imp), imp
    assert re.search(rf"tiny run 1 iter 2 epoch {epochs}/{epochs} loss ", imp), imp

    extract = (logs / "extract_acts" / "tiny" / "dense.log").read_text()
    for layer in config["experiments"]["tiny"]["layers"]:
        assert layer in extract, f"extract_acts log never mentions layer {layer}:\n{extract}"
    assert re.search(r"extracted \d+/\d+ probe images", extract), extract
