"""The search's side of the finished-trial record (``tuner.experiment.finished``, which says why it exists).

``TrialRecorder`` is the Tune callback that writes the record on the driver as each trial ends;
``replay_finished`` is what a restored trial that the record holds runs instead of training.

``TrialRecorder`` is pickled into the experiment's state (the run config), so it is stored by module path: moving
or renaming it stops ``Tuner.restore`` from reading the experiments written before.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Collection
from typing import Any

from ray import tune

from tuner.experiment.finished import REPLAYED, FinishedTrial, append_record, read_record, scalars, wait_synced

# What Tune fills in itself for every result (``ray.tune.result.AUTO_RESULT_KEYS`` and the bookkeeping it adds);
# a replayed result leaves them to Tune, except ``training_iteration``, kept as recorded (Tune keeps a reported one).
_TUNE_KEYS = frozenset({
    "time_total_s", "time_this_iter_s", "timestamp", "date", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "timesteps_total", "episodes_total", "timesteps_since_restore", "config",
    "checkpoint_dir_name", "done", "trial_id", "experiment_tag", "should_checkpoint",
})  # fmt: skip
# This driver's TrialRecorder per phase, for the restored one of that phase to take its settings (``register``).
_DRIVER_RECORDERS: dict[str, TrialRecorder] = {}


class TrialRecorder(tune.Callback):
    """Adds each trial of one Tune run (the search) to the experiment's record as the trial ends.

    It keeps the results of the trials in flight (their scalars, a few KB a trial) until they end; a trial that
    errors is not recorded (Tune retries it on resume). A restored recorder records no trial twice.
    """

    def __init__(self, experiment: str, phase: str = "search"):
        self.experiment = experiment
        self.phase = phase
        self._restored = False  # unpickled from an experiment's state: see ``setup``
        self._reset()

    def _reset(self) -> None:
        self._results: dict[str, list[dict[str, Any]]] = {}  # trial id -> its results under this driver, till it ends
        self._recorded: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles the run config (and its callbacks) for resume
        return {**self.__dict__, "_results": {}, "_recorded": set()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()
        self._restored = True

    def register(self) -> None:
        """Let the restored recorder of this phase take this one's experiment path (``progress.fresh_callbacks``):
        the experiment may have moved since the first driver pickled it."""
        _DRIVER_RECORDERS[self.phase] = self

    def setup(self, **info: Any) -> None:
        """Tune calls this on the driver as the run starts (public ``tune.Callback`` API)."""
        fresh = _DRIVER_RECORDERS.pop(self.phase, None)
        if self._restored and fresh is not None and fresh is not self:
            self.experiment = fresh.experiment
        self._recorded = set(read_record(self.experiment)) if self._restored else set()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._results.setdefault(trial.trial_id, []).append(scalars(result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        results = self._results.pop(trial.trial_id, [])
        if trial.trial_id in self._recorded:
            return  # a recorded trial, ended again from the record by this restored run
        entry = FinishedTrial(trial.trial_id, scalars(trial.last_result or {}), results, time.time())
        try:
            append_record(self.experiment, entry)
        except OSError as e:  # the sweep goes on; only a driver killed before the next state save would miss it
            warnings.warn(f"{self.experiment}: could not record finished trial {trial.trial_id} ({e})", stacklevel=2)
            return
        self._recorded.add(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._results.pop(trial.trial_id, None)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        wait_synced()


def trial_recorder(meta: Any, phase: str = "search") -> TrialRecorder:
    """The ``TrialRecorder`` of an experiment's run; ``meta`` is its ``ExperimentMeta``."""
    return TrialRecorder(meta.path, phase)


def replay_finished(finished: Collection[str]) -> bool:
    """In a Tune trial: if the record holds this trial (its id is in ``finished``), report its recorded final result
    once, without training, and return True: the trainable then returns. Else False (at once when ``finished`` is
    empty, as in every trial of a search that was not restored).

    The result keeps the recorded ``training_iteration``, so the scheduler sees the epoch the trial ended at, and
    carries ``replayed`` 1, so ``tuner.experiment.finished.reconcile`` leaves the row out of the trial's history.
    The record is read from the trial's storage (Ray's DeveloperAPI ``get_storage``, as the trainable's restore
    of its files does), so this works on any node; only the few trials restored this way read it.
    """
    if not finished:
        return False
    context = tune.get_context()
    trial_id = context.get_trial_id()
    if trial_id not in finished:
        return False
    storage = context.get_storage()
    entry = read_record(storage.experiment_fs_path, storage.storage_filesystem).get(trial_id)
    if entry is None:
        return False
    tune.report({**{k: v for k, v in entry.last.items() if k not in _TUNE_KEYS}, REPLAYED: 1})
    return True
