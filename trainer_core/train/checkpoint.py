"""Checkpoints: weights, optimizer, config, epoch, best metric; a JSON sidecar a person can read.

``checkpoint_epoch_N.pt`` after epoch N and ``best_model.pt`` at the best
objective. Everything in them is plain tensors, numbers, strings, lists and
dicts, so they load with ``torch.load(weights_only=True)``.

``read_file`` is the one reader of every torch file motiontune takes (checkpoints, exported models,
pre-trained encoders): any file it cannot read is one ``CheckpointError`` naming the file and the fix. It
never passes on torch's own message, which advises loading with ``weights_only=False`` (running whatever
code the file holds); motiontune never does that.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from trainer_core.errors import CheckpointError
from trainer_core.io_utils import atomic_write, atomic_write_json

FORMAT = 1
BEST_NAME = "best_model.pt"
_EPOCH_RE = re.compile(r"checkpoint_epoch_(\d+)\.pt$")
EXPORTED_FORMAT = "motiontune-inference"  # the ``format`` of an exported model (``generate.inference``)
UNREADABLE = "not a readable {what}: the file is truncated or not one motiontune wrote; re-train or re-export it"
REQUIRED = ("format", "model_state_dict", "optimizer_state_dict", "epoch", "config", "arch", "normalizer")


def epoch_path(out: Path, epoch: int) -> Path:
    return Path(out) / f"checkpoint_epoch_{epoch}.pt"


def sidecar(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if not k.endswith("state_dict")}


def save(state: dict[str, Any], path: Path) -> None:
    """Write ``path`` and ``path.json`` (everything but the state dicts) atomically."""
    atomic_write(path, lambda f: torch.save(state, f))
    atomic_write_json(path.with_suffix(".json"), sidecar(state))


def read_file(path: Path, what: str = "checkpoint", where: str | None = None,
              map_location: str | torch.device = "cpu") -> Any:  # fmt: skip
    """The contents of the torch file ``path``, loaded with ``weights_only=True``.

    ``what`` names the kind of file in messages; ``where`` starts them (default: the path, e.g. ``--encoder
    PATH``). A missing file, a folder, a truncated or foreign file: one ``CheckpointError``, without torch's
    advice to load it unsafely.
    """
    path = Path(path)
    where = where or str(path)
    if path.is_dir():
        raise CheckpointError(f"{where}: is a folder, but a {what} file is expected")
    if not path.is_file():
        raise CheckpointError(f"{where}: {what} not found; check the path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # a pickled object (a class) the safe load refuses
            raise CheckpointError(
                f"{where}: not a readable {what}: it holds Python objects besides tensors, numbers, strings, lists "
                f"and dicts, which motiontune never loads; pass a {what} motiontune wrote"
            ) from None
        raise CheckpointError(f"{where}: {UNREADABLE.format(what=what)}") from None
    except Exception:  # noqa: BLE001 - truncated, empty or foreign: OSError, RuntimeError, EOFError, zip errors...
        raise CheckpointError(f"{where}: {UNREADABLE.format(what=what)}") from None


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A training checkpoint (``best_model.pt``, ``checkpoint_epoch_N.pt``): ``read_file`` and its keys checked."""
    path = Path(path)
    state = read_file(path, "checkpoint", map_location=map_location)
    if isinstance(state, dict) and state.get("format") == EXPORTED_FORMAT:
        source = state.get("source")
        instead = f"{source}, the one it was exported from" if source else "best_model.pt or checkpoint_epoch_N.pt"
        raise CheckpointError(
            f"{path}: an exported model (`motiontune export-model`), which keeps no training state; pass the "
            f"training checkpoint instead: {instead}"
        )
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


def carry_best(run: Path, out: Path, best_epoch: int | None) -> None:
    """Copy ``run``'s ``best_model.pt`` (and its sidecar) into ``out`` when a run resumed from ``run`` into another
    folder has none and that model is the resumed run's best (``best_epoch``): the best epoch may precede the
    resume point, and the summary's per-group and test metrics are of the best model."""
    src, dst = Path(run) / BEST_NAME, Path(out) / BEST_NAME
    if best_epoch is None or dst.exists() or not src.exists() or src.resolve() == dst.resolve():
        return
    state = load(src)
    if int(state.get("epoch", -1)) == int(best_epoch):
        save(state, dst)
