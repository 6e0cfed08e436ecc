"""Network checkpoints: one format for dense and pruned networks, loaded without pickle code.

A checkpoint is a plain dict saved with ``torch.save`` and read with
``torch.load(weights_only=True)``, so nothing in a data file can execute code:

- ``state_dict``: the model's state dict (pruned weights are exact zeros),
- ``masks``: ``{parameter name: bool tensor}`` of alive prunable weights (empty for a dense net),
- ``meta``: plain Python values (str/int/float/bool/list/dict) -- model name, width,
  num_classes, experiment, run, iteration, test_accuracy, density, prune_output_layer, ...

Training also writes two short-lived files here: *snapshots* (the same format, meta = the
model's spec + epoch + seed; the dense run's rewind point) and the per-epoch *resume file*
(:func:`save_resume`), which holds what a killed job needs to continue bit-identically and a
fingerprint of the call that wrote it, so a resume file from other settings is never used.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from prunesim.atomic import atomic_path
from prunesim.errors import CorruptFileError, rebuild_hint

logger = logging.getLogger(__name__)


def save_checkpoint(
    path: str | os.PathLike, model, masks: dict | None, meta: dict[str, Any]
) -> None:
    """Save ``model``'s weights, its masks and metadata atomically."""
    import torch

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "state_dict": state,
        "masks": {k: v.detach().cpu().bool() for k, v in (masks or {}).items()},
        "meta": dict(meta),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; raise a clear error if it is unusable."""
    import torch

    path = Path(path)
    if not path.exists():
        raise CorruptFileError(f"checkpoint {path} does not exist. {rebuild_hint(path)}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, wrong format...
        # torch's own message suggests weights_only=False, which we never want: keep its gist.
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise CorruptFileError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {reason}). It is "
            f"truncated or not a prunesim checkpoint. {rebuild_hint(path)}"
        ) from exc
    missing = {"state_dict", "masks", "meta"} - set(payload if isinstance(payload, dict) else ())
    if missing:
        raise CorruptFileError(
            f"checkpoint {path} lacks {sorted(missing)}; it was not written by prunesim. "
            f"{rebuild_hint(path)}"
        )
    return payload


def load_state(model, payload: dict[str, Any], path: str | os.PathLike) -> None:
    """Load a checkpoint's weights into ``model``; a mismatch names the file and the fix."""
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        meta = payload.get("meta", {})
        raise CorruptFileError(
            f"checkpoint {path} does not match model {meta.get('model')!r} (width "
            f"{meta.get('width')}): {exc}. {rebuild_hint(path)}"
        ) from exc


def load_network(path: str | os.PathLike, device: str = "cpu"):
    """Rebuild the model stored in a checkpoint. Returns ``(model, masks, meta)``."""
    from prunesim.models import build_model

    payload = load_checkpoint(path)
    meta = payload["meta"]
    model = build_model(meta["model"], width=meta["width"], num_classes=meta["num_classes"])
    load_state(model, payload, path)
    model.to(device)
    masks = {k: v.to(device) for k, v in payload["masks"].items()}
    return model, masks, meta


def save_snapshot(path: str | os.PathLike, model, masks, epoch: int, seed: int) -> None:
    """A checkpoint of the state at the start of ``epoch`` of a training call (WR's rewind)."""
    meta = {**getattr(model, "spec", {}), "epoch": epoch, "seed": seed, "snapshot": True}
    save_checkpoint(path, model, masks, meta)


def resume_fingerprint(settings: dict, masks: dict | None, **call: Any) -> str:
    """Who wrote a resume file: the training settings, the call's arguments and its masks.

    ``masks`` are recorded as alive counts. A set of masks that removes nothing (the dense
    network, IMP level 0) is recorded as no masks, as before the dense network had masks, so
    a dense job killed under an older version still resumes.
    """
    counts = {k: int(v.sum()) for k, v in (masks or {}).items()}
    if all(counts[k] == v.numel() for k, v in (masks or {}).items()):
        counts = {}
    return json.dumps({"settings": settings, **call, "masks": counts}, sort_keys=True)


def save_resume(path: str | os.PathLike, fingerprint: str, state: dict[str, Any]) -> None:
    """Write a training call's resume ``state`` (model, optimizer, RNG, ...) atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save({"fingerprint": fingerprint, **state}, tmp)


def load_resume(path: str | os.PathLike, fingerprint: str) -> dict[str, Any] | None:
    """The state :func:`save_resume` wrote with this ``fingerprint``; None (with a warning)
    when the file is unreadable or was written by another call or settings."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # atomic writes make this unlikely; never fatal
        logger.warning("ignoring unreadable resume checkpoint %s (%s)", path, exc)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        logger.warning(
            "ignoring resume checkpoint %s: written by a different call or settings", path
        )
        return None
    return state
