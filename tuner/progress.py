"""One line per finished trial (instead of Tune's per-result tables), and a trial-epoch budget."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

from ray import tune


def _trial_id(trial: Any) -> str:
    return trial.trial_id


class TrialLines(tune.Callback):
    """``[  12.3s] trial   3/16 <label> done  epochs 30  FreeRun/GeoDeg 6.9  best so far 6.5``, per finished trial."""

    def __init__(self, metric: str, mode: str, samples: int, label: Callable[[Any], str] | None = None,
                 word: str = "trial"):  # fmt: skip
        self.metric, self.mode, self.samples = metric, mode, samples
        self.label = label or _trial_id
        self.word = word
        self.done = 0
        self.best: float | None = None
        self.t0 = time.time()

    def _line(self, trial: Any, status: str, note: str = "") -> None:
        self.done += 1
        last = trial.last_result or {}
        value = last.get(self.metric, math.nan)
        if isinstance(value, (int, float)) and math.isfinite(value):
            if self.best is None or (value < self.best if self.mode == "min" else value > self.best):
                self.best = value
        epochs = last.get("epoch", 0)
        best = f"{self.best:.4f}" if self.best is not None else "-"
        print(
            f"[{time.time() - self.t0:7.1f}s] {self.word} {self.done:>3}/{self.samples} {self.label(trial)} "
            f"{status:<9} "
            f"epochs {epochs:>3}  {self.metric} {value:.4f}  best so far {best}{note}",
            file=sys.stdout,
            flush=True,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        if last.get("diverged") == 1:
            self._line(trial, "DIVERGED", f"  ({last.get('diverged_reason', '')})")
        else:
            self._line(trial, "done")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "ERROR", "  (see its error.txt; retried per --max-failures)")


class TrialEpochBudget(tune.Stopper):
    """Ends the sweep once its trials have run ``budget`` epochs in all (trials in flight finish their epoch)."""

    def __init__(self, budget: int):
        self.budget = budget
        self.used = 0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.used += 1
        return self.used >= self.budget

    def stop_all(self) -> bool:
        return self.used >= self.budget
