"""Live progress of a sweep or a verification, and the trial-epoch budget.

``Progress`` is a Ray Tune callback that prints, on the driver's stdout:

* a line per finished trial: ``[  12.3s] trial   3/16 <id> done  epochs 30  FreeRun/GeoDeg 6.9  best so far 6.5``;
* a status line (``tuner.experiment.status.render``) on each trial event (a trial started, finished, failed) and every
  ``status_every`` seconds: one line that updates in place on a terminal, plain lines in a log or under
  ``ray job submit``.

Each status is also persisted (``tuner.experiment.status.save``, at most every ``PERSIST_EVERY_S`` seconds and at the
end) into the experiment folder, where ``motiontune status`` reads it from any machine that sees the storage.

Ray Tune pickles the run config into the experiment state (``tuner.pkl``, and the stopper into
``experiment_state-*.json``), so ``Progress``, ``Snapshot``, ``TrialEpochBudget`` and the verification's label
function are stored by module path: moving or renaming them stops ``Tuner.restore`` and ``ExperimentAnalysis``
from reading experiments written before.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np
from ray import tune

from tuner.experiment.objectives import pareto_mask
from tuner.experiment.status import Snapshot, render, save

DEFAULT_STATUS_EVERY_S = 30.0
PERSIST_EVERY_S = 2.0
TTY_REDRAW_S = 1.0  # a terminal's line also redraws its clock this often (it overwrites itself)
# This driver's Progress per phase, for the restored run of that phase to take its settings (``fresh_callbacks``).
_DRIVER_PROGRESS: dict[str, Progress] = {}


def _trial_id(trial: Any) -> str:
    return trial.trial_id


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Progress(tune.Callback):
    """Event lines and status lines of one Tune run (the search or the verification); see the module docstring."""

    def __init__(self, template: Snapshot, label: Callable[[Any], str] | None = None, word: str = "trial",
                 status_every: float = DEFAULT_STATUS_EVERY_S, experiment: str | None = None,
                 stream: TextIO | None = None):  # fmt: skip
        self.template = template
        self.label = label or _trial_id
        self.word = word
        self.every = status_every
        self.experiment = experiment
        self._stream = stream
        self._restored = False  # unpickled from an experiment's state: see ``setup``
        self.constraints: list[Any] = []  # a multi-objective search's constraints (``progress_callback`` sets them)
        self._reset()

    def _reset(self) -> None:
        self.t0 = time.time()
        self.template.started = self.t0
        self.template.epochs_before = -1  # set by the first status: the trial-epochs a resumed sweep had run
        self.done = 0
        self.best: dict[str, float] = {}  # trial id -> its best finite objective so far
        self.final: dict[str, tuple[str, int]] = {}  # a finished trial's id -> (the count it adds to, its epochs)
        self.dirty = True  # an event since the last status line
        self.last_line = 0.0
        self.last_persist = 0.0
        self.drawn = False  # a terminal's status line is on screen, without its newline
        self.snapshot: Snapshot | None = None
        self.points: dict[str, tuple[float, ...]] = {}  # multi-objective: a finished trial's best model's objectives
        self.at_best: dict[str, dict[str, Any]] = {}  # trial id -> its report of its best epoch so far (scored keys)
        self.front: tuple[int | None, list] = (None, [])  # the front's size and ranges, as of ``points``

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles the run config (and its callbacks) for resume
        return {**self.__dict__, "_stream": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"constraints": [], **state})  # pickled before constraints were kept: none
        self._reset()
        self._restored = True

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    @property
    def tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    # --- the numbers ----------------------------------------------------------------------

    def _better(self, a: float, b: float) -> bool:
        return a < b if self.template.mode == "min" else a > b

    def _note_best(self, trial: Any, value: Any) -> bool:
        """Keep ``value`` if it is the trial's best yet; whether it was."""
        if _finite(value):
            old = self.best.get(trial.trial_id)
            if old is None or self._better(float(value), old):
                self.best[trial.trial_id] = float(value)
                return True
        return False

    def _snapshot(self, trials: list, finished: bool = False) -> Snapshot:
        s = self.template
        snap = Snapshot(**{**s.__dict__, "updated": time.time(), "finished": finished})
        best: tuple[float, Any] | None = None
        for t in trials:
            final = self.final.get(t.trial_id)
            if final is None:  # a trial in flight; Tune's ``last_result`` costs tens of microseconds a call
                if t.trial_id not in self.best:  # a trial restored by resume: what Tune recorded of it
                    self._note_best(t, (t.metric_analysis.get(s.metric) or {}).get(s.mode))
                last = t.last_result or {}
                it = int(last.get("training_iteration", 0) or 0)
                if t.status in ("ERROR", "TERMINATED"):  # its counts no longer change: kept, not read again
                    final = self.final[t.trial_id] = (self._count_of(t.status, last, it), it)
                    self._note_point(t.trial_id, final[0], last)
                else:
                    snap.epochs += it
                    snap.running += t.status == "RUNNING"
                    snap.possible += max(0, s.max_epochs - it)
            if final is not None:
                setattr(snap, final[0], getattr(snap, final[0]) + 1)
                snap.epochs += final[1]
            value = self.best.get(t.trial_id)
            if value is not None and (best is None or self._better(value, best[0])):
                best = (value, t)
        snap.possible += max(0, s.total - len(trials)) * s.max_epochs
        if s.epochs_before < 0:
            s.epochs_before = snap.epochs_before = snap.epochs
        if s.budget:
            snap.possible = min(snap.possible, max(0, s.budget - snap.epochs))
        if best is not None:
            snap.best, snap.best_trial = best[0], self.label(best[1])
        if s.objectives:
            snap.front, snap.front_ranges = self.front
        return snap

    def _scored(self) -> list[str]:
        """The metrics a finished trial's point is read from: the objectives, then the constrained ones."""
        return [m for m, _ in self.template.objectives] + [c.metric for c in self.constraints]

    def _note_point(self, trial_id: str, count: str, last: dict) -> None:
        """A multi-objective search: add a finished trial's point and recompute the front (on each trial's end only:
        it is quadratic in the finished trials). A trial is scored as the trials table scores it
        (``results.with_front``): by its best model, the report of its best epoch by the first objective (its last
        report when this driver did not see that one, after a resume), and only if every constraint holds there."""
        objectives = self.template.objectives
        if not objectives or count not in ("completed", "stopped"):
            return
        report = self.at_best.get(trial_id, last)
        if any(c.violation(report.get(c.metric, math.nan)) > 0 for c in self.constraints):
            return
        self.points[trial_id] = tuple(float(report.get(m, math.nan)) for m, _ in objectives)
        points = np.array(list(self.points.values()), dtype=float)
        on = points[pareto_mask(points, [mode for _, mode in objectives])]
        self.front = (len(on), [[float(on[:, j].min()), float(on[:, j].max())] for j in range(len(objectives))]
                      if len(on) else [])  # fmt: skip

    def _count_of(self, status: str, last: dict, epochs: int) -> str:
        """Which of the snapshot's counts a finished trial adds to."""
        if status == "ERROR":
            return "errored"
        if last.get("diverged") == 1:
            return "diverged"
        return "completed" if epochs >= self.template.max_epochs else "stopped"

    # --- output ---------------------------------------------------------------------------

    def _write(self, text: str, newline: bool = True) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if newline else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _event_line(self, trial: Any, status: str, note: str = "") -> None:
        self.done += 1
        last = trial.last_result or {}
        value = last.get(self.template.metric, math.nan)
        self._note_best(trial, value)
        values = list(self.best.values())
        best = (min(values) if self.template.mode == "min" else max(values)) if values else None
        epochs = last.get("epoch", 0)
        best_text = f"{best:.4f}" if best is not None else "-"
        self._write(
            f"[{time.time() - self.t0:7.1f}s] {self.word} {self.done:>3}/{self.template.total} {self.label(trial)} "
            f"{status:<9} epochs {epochs:>3}  {self.template.metric} {value:.4f}  best so far {best_text}{note}",
            newline=True,
        )
        self.drawn = False
        self.dirty = True

    def _status(self, trials: list, finished: bool = False) -> None:
        self.snapshot = snap = self._snapshot(trials, finished)
        self._write(render(snap), newline=not self.tty or finished)
        self.drawn = self.tty and not finished
        self.last_line = time.time()
        self.dirty = False
        if self.experiment and (finished or self.last_line - self.last_persist >= PERSIST_EVERY_S):
            self.last_persist = self.last_line
            save(self.experiment, snap)

    # --- Tune's hooks ---------------------------------------------------------------------

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:  # fmt: skip
        """Tune calls this on the driver as the run starts. A Progress restored from the experiment's state (the
        first driver's, pickled) takes the settings of this driver's Progress of its phase (``fresh_callbacks``)."""
        fresh = _DRIVER_PROGRESS.pop(self.template.phase, None)
        if self._restored and fresh is not None and fresh is not self:
            self.__dict__.update(fresh.__dict__)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        since = time.time() - self.last_line
        if self.dirty or since >= self.every or (self.tty and since >= TTY_REDRAW_S):
            self._status(trials)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.dirty = True

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self._note_best(trial, result.get(self.template.metric)) and self.template.objectives:
            self.at_best[trial.trial_id] = {m: result[m] for m in self._scored() if result.get(m) is not None}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        if last.get("diverged") == 1:
            self._event_line(trial, "DIVERGED", f"  ({last.get('diverged_reason', '')})")
        else:
            self._event_line(trial, "done")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.dirty = True  # failed, to be retried from its last checkpoint: counted as running or pending

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._event_line(trial, "ERROR", "  (failed after its retries; see its error.txt)")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._status(trials, finished=True)


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


def progress_callback(meta: Any, phase: str, total: int, max_epochs: int, label: Callable[[Any], str] | None = None,
                      word: str = "trial") -> Progress:  # fmt: skip
    """The ``Progress`` of an experiment's search or verification; ``meta`` is its ``ExperimentMeta``."""
    budget = meta.budget if phase == "search" else None
    template = Snapshot(phase, total, meta.metric, meta.mode, max_epochs, budget)
    if phase == "search" and meta.multi_objective:
        template.objectives = [[o.metric, o.mode] for o in meta.objectives]
    every = float(meta.status_every or DEFAULT_STATUS_EVERY_S)
    progress = Progress(template, label=label, word=word, status_every=every, experiment=meta.path)
    progress.constraints = list(meta.constraint_list()) if template.objectives else []
    return progress


def fresh_callbacks(tuner: Any, callbacks: list) -> None:
    """Give a restored Tuner this driver's progress lines (its ``--status-every``, its experiment path).

    ``Tuner.restore`` brings back the run config pickled by the first driver, callbacks included, and has no
    argument to replace them. So each ``Progress`` among ``callbacks`` is kept here, by phase, until the restored
    run starts: Tune then calls ``setup`` (public ``tune.Callback`` API) on the driver, on the restored callbacks,
    and the restored ``Progress`` of that phase takes this one's settings. A ``TrialRecorder``
    (``tuner.search.recorder``) takes this driver's experiment path the same way. ``tuner`` is the restored
    Tuner, to be fitted next in this process; nothing is read from it.
    """
    from tuner.search.recorder import TrialRecorder

    for callback in callbacks:
        if isinstance(callback, TrialRecorder):
            callback.register()
            continue
        if not isinstance(callback, Progress):
            warnings.warn(f"{type(callback).__name__}: only Progress callbacks are refreshed on resume; the restored "
                          "run keeps the first driver's", stacklevel=2)  # fmt: skip
            continue
        _DRIVER_PROGRESS[callback.template.phase] = callback
