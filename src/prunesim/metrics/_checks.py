"""Input checks with messages that say what was expected, so a bad call fails at the entry point."""

from __future__ import annotations

import math
from collections.abc import Mapping


def check_matrix(x, what: str) -> None:
    """x must be 2-D (n_samples, n_features) with at least one sample and one feature."""
    if len(x.shape) != 2:
        raise ValueError(
            f"Expected {what} to be a 2-D (n_samples, n_features) matrix, got shape "
            f"{tuple(x.shape)}; pass reshape='channels' or 'flatten' for conv activations"
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"Expected {what} to have samples and features, got shape {tuple(x.shape)}"
        )


def check_pair(x, y) -> None:
    """Both matrices describe the same probe points: equal numbers of rows."""
    check_matrix(x, "x")
    check_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"Expected x and y to have the same number of samples (rows), got "
            f"{x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"Expected at least 2 samples to center, got {x.shape[0]}")


def check_settings(name: str, settings: Mapping, allowed: Mapping) -> dict:
    """Merge settings over the defaults; unknown keys are an error (a typo must not be ignored)."""
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown setting(s) {unknown} for metric {name!r}; expected a subset of "
            f"{sorted(allowed)}"
        )
    return {**allowed, **settings}


def check_fraction(value, what: str, *, allow_none: bool = False, closed: bool = True) -> None:
    """A number in (0, 1] (or (0, 1) when closed is False)."""
    if value is None and allow_none:
        return
    ok = isinstance(value, int | float) and math.isfinite(value) and value > 0
    ok = ok and (value <= 1 if closed else value < 1)
    if not ok:
        bound = "(0, 1]" if closed else "(0, 1)"
        raise ValueError(f"Expected {what} to be a number in {bound}, got {value!r}")


def check_choice(value, what: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"Expected {what} to be one of {list(choices)}, got {value!r}")
