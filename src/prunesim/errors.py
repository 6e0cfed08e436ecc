"""Errors that name the problem and the fix, so users never face a bare traceback."""

import os


class PrunesimError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class ConfigError(PrunesimError):
    """A config value is missing, misspelt or of the wrong type."""


class DatasetError(PrunesimError):
    """A dataset is missing, unreadable or malformed."""


class CorruptFileError(PrunesimError):
    """A checkpoint, array or HDF5 file cannot be read (truncated, wrong format)."""


class DegenerateRepresentationError(PrunesimError):
    """Activations carry no information (e.g. a layer that is entirely zero)."""


def rebuild_hint(path: str | os.PathLike) -> str:
    """The fix for an unusable workflow file: rebuild it and everything computed from it.

    Deleting the file is not enough: while the files made from it (tables, figures) exist,
    Snakemake sees nothing to do. ``--forcerun FILE`` reruns the job that writes the file and
    every job downstream of it.
    """
    return (
        f"To rebuild it and everything computed from it, rerun your snakemake command (same "
        f"--configfile) with `--forcerun {path}` added at the end; deleting the file alone is "
        f"not enough (Snakemake would find nothing to do)."
    )
