"""Logging for workflow jobs: everything a job says goes to its rule's ``log:`` file.

Snakemake keeps the log of a failed job, so a job that fails with a
:class:`~prunesim.errors.PrunesimError` writes one clear line (what went wrong, what to do)
there and on stderr instead of a bare traceback.

Snakemake deletes a job's log before it runs the job again, so a resumable (training) job
also keeps its lines next to its resume checkpoint (``resume.pt`` -> ``resume.log``): a job
that resumes copies the interrupted attempts' lines into its new log first, below them a
``RESUMING_MARK`` line, and the side file goes when the job succeeds.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prunesim.errors import PrunesimError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RESUMING_MARK = "---- resuming: the lines above are from the interrupted attempt(s) ----"


def attempts_log(resume_path: str | os.PathLike) -> Path:
    """The side file that keeps a resumable job's log lines until the job succeeds."""
    return Path(resume_path).with_suffix(".log")


def start_job(
    snakemake: Any, name: str = "prunesim", resume: str | os.PathLike | None = None
) -> logging.Logger:
    """Send logging and stderr to the job's log file; set numeric thread counts from ``threads``.

    ``resume``: the job's resume checkpoint. If it exists, the lines of the attempts it
    resumes (``attempts_log``) are copied into the log first; this attempt's lines are kept
    there too, for the next resume.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    earlier = ""
    if resume is not None:
        side = attempts_log(resume)
        if Path(resume).exists() and side.exists():
            earlier = side.read_text()
        else:
            side.unlink(missing_ok=True)  # left by a finished or abandoned attempt
        side.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(side, mode="a"))
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        with open(log_path, "a") as fh:
            fh.write(f"{earlier}{RESUMING_MARK}\n" if earlier else "")
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)
    threads = str(getattr(snakemake, "threads", 1))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    return logging.getLogger(name)


def run_job(
    snakemake: Any,
    main: Callable[[logging.Logger], None],
    resume: str | os.PathLike | None = None,
) -> None:
    """Run ``main(log)``; a PrunesimError ends the job with its message, not a traceback.

    ``resume``: the resume checkpoint of a resumable job (see :func:`start_job`).
    """
    log = start_job(snakemake, resume=resume)
    try:
        main(log)
        if resume is not None:
            attempts_log(resume).unlink(missing_ok=True)  # the job is done: nothing to resume
    except PrunesimError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        log.debug("".join(traceback.format_exc()))
        sys.exit(1)
    except Exception:
        log.exception("job failed with an unexpected error")
        raise
