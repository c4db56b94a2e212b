"""Metric files, as the seed lays them out.

``metrics/teacher_epXXX.json`` (teacher metrics plus the epoch's training
losses and schedule values), ``metrics/valfree_epXXX.json`` (``FreeRun/*``), and
one history per metric: ``metrics/teacher/<name>.txt`` and
``metrics/valfree/<name>.txt``, a line ``epoch value`` per epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer_core.io_utils import atomic_write_json, atomic_write_text

FREERUN_PREFIX = "FreeRun/"
GROUP_PREFIX = FREERUN_PREFIX + "group/"  # FreeRun/group/<group>/<metric>: one motion group's free run


def history_name(key: str) -> str:
    """File stem of a metric's history: ``FreeRun/GeoDeg`` -> ``GeoDeg``, ``loss_group/core`` -> ``loss_group_core``."""
    return key.removeprefix(FREERUN_PREFIX).replace("/", "_")


class MetricsWriter:
    def __init__(self, out: Path):
        self.root = Path(out) / "metrics"

    def _history(self, mode: str, key: str) -> Path:
        return self.root / mode / f"{history_name(key)}.txt"

    def truncate_after(self, epoch: int) -> None:
        """Drop history lines and epoch files past ``epoch`` (a resumed run rewrites them)."""
        for path in self.root.glob("*/*.txt"):
            lines = [ln for ln in path.read_text().splitlines() if ln and int(ln.split()[0]) <= epoch]
            atomic_write_text(path, "".join(f"{ln}\n" for ln in lines))
        for path in self.root.glob("*_ep*.json"):
            if int(path.stem.rsplit("_ep", 1)[1]) > epoch:
                path.unlink()

    def write_epoch(self, epoch: int, teacher: dict[str, Any], valfree: dict[str, Any]) -> None:
        for mode, values in (("teacher", teacher), ("valfree", valfree)):
            atomic_write_json(self.root / f"{mode}_ep{epoch:03d}.json", {"epoch": epoch, **values})
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    path = self._history(mode, key)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with path.open("a") as f:
                        f.write(f"{epoch} {value:.6g}\n")

    def read_epochs(self, last: int) -> list[dict[str, Any]]:
        """Teacher and free-run metrics of epochs 1..``last`` as written (a resumed run's history)."""
        out = []
        for epoch in range(1, last + 1):
            merged: dict[str, Any] = {}
            for mode in ("teacher", "valfree"):
                path = self.root / f"{mode}_ep{epoch:03d}.json"
                if path.is_file():
                    merged.update(json.loads(path.read_text()))
            if merged:
                out.append(merged)
        return out
