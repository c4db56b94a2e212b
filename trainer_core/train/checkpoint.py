"""Checkpoints: weights, optimizer, config, epoch, best metric; a JSON sidecar a person can read.

``checkpoint_epoch_N.pt`` after epoch N and ``best_model.pt`` at the best
objective. Everything in them is plain tensors, numbers, strings, lists and
dicts, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from trainer_core.errors import CheckpointError
from trainer_core.io_utils import atomic_write, atomic_write_json

FORMAT = 1
BEST_NAME = "best_model.pt"
_EPOCH_RE = re.compile(r"checkpoint_epoch_(\d+)\.pt$")
REQUIRED = ("format", "model_state_dict", "optimizer_state_dict", "epoch", "config", "arch", "normalizer")


def epoch_path(out: Path, epoch: int) -> Path:
    return Path(out) / f"checkpoint_epoch_{epoch}.pt"


def sidecar(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if not k.endswith("state_dict")}


def save(state: dict[str, Any], path: Path) -> None:
    """Write ``path`` and ``path.json`` (everything but the state dicts) atomically."""
    atomic_write(path, lambda f: torch.save(state, f))
    atomic_write_json(path.with_suffix(".json"), sidecar(state))


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0]})") from None
    missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a motiontune checkpoint (missing {', '.join(missing)})")
    if state["format"] != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state['format']}, but this version reads {FORMAT}")
    return state


def epoch_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every ``checkpoint_epoch_N.pt`` in ``out``, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(out).glob("checkpoint_epoch_*.pt") if (m := _EPOCH_RE.search(p.name))]
    return sorted(found)


def prune(out: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` epoch checkpoints (0 keeps all)."""
    if keep <= 0:
        return
    for _, p in epoch_checkpoints(out)[:-keep]:
        p.unlink(missing_ok=True)
        p.with_suffix(".json").unlink(missing_ok=True)
