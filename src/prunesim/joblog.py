"""Logging for workflow jobs: everything a job says goes to its rule's ``log:`` file.

Snakemake keeps the log of a failed job, so a job that fails with a
:class:`~prunesim.errors.PrunesimError` writes one clear line (what went wrong, what to do)
there and on stderr instead of a bare traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from prunesim.errors import PrunesimError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def start_job(snakemake: Any, name: str = "prunesim") -> logging.Logger:
    """Send logging and stderr to the job's log file; set numeric thread counts from ``threads``."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)
    threads = str(getattr(snakemake, "threads", 1))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    return logging.getLogger(name)


def run_job(snakemake: Any, main: Callable[[logging.Logger], None]) -> None:
    """Run ``main(log)``; a PrunesimError ends the job with its message, not a traceback."""
    log = start_job(snakemake)
    try:
        main(log)
    except PrunesimError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        log.debug("".join(traceback.format_exc()))
        sys.exit(1)
    except Exception:
        log.exception("job failed with an unexpected error")
        raise
