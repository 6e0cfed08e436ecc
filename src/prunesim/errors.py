"""Errors that name the problem and the fix, so users never face a bare traceback."""


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
