"""Stopping a sweep cleanly: SIGTERM and Ctrl+C save the experiment's state, then end the driver.

``ray job stop``, ``kill``, Kubernetes and systemd end a process with SIGTERM, and Ray Tune saves its
experiment state one last time only on SIGINT (Ctrl+C); on SIGTERM the driver died with up to
``TUNE_GLOBAL_CHECKPOINT_S`` of trial events unsaved, so a trial whose "done" line was printed could be
trained again by ``motiontune resume``. ``fit`` runs a Tuner with both signals meaning "stop": the first
one ends the Tune loop at its next step, Tune writes the state of every trial (``runner.checkpoint(force=True,
wait=True)``) and ``fit`` raises ``Stopped``, so nothing that needs a finished run (the results tables, the
verification) runs on a half-finished one. A second signal aborts at once.

The first signal is passed on as SIGUSR1, the signal Ray Tune documents for stopping a run gracefully ("Ray Tune
also accepts the SIGUSR1 signal to interrupt training gracefully", its guide "How to Define Stopping Criteria").
No API does the same: a ``Stopper``'s ``stop_all`` finishes the searcher and ends every trial as TERMINATED, so
``motiontune resume`` would have nothing left to run. ``tests/tuner/test_tune_contracts.py`` checks that Tune
still takes SIGUSR1 this way.

Under ``ray job stop`` the driver has ``RAY_JOB_STOP_WAIT_TIME_S`` (Ray's default 3 s) before SIGKILL;
``motiontune cluster up`` and the cluster configs give it 30 s.

Memory kills. When a node runs low on memory, Ray's memory monitor kills trial workers. Tune retries a trial whose
worker dies otherwise, or is killed while its actor starts (``FailureConfig``), but a worker killed by the memory
monitor later fails its pending task with ``ray.exceptions.OutOfMemoryError``, which Tune's actor manager (Ray 2.60)
does not route to the trial: it raises ``RuntimeError("Caught unexpected exception: ...")`` out of the Tune loop,
which ends ``tuner.fit()`` with the experiment's state as Tune last saved it (periodically, and after each trial's
``num_to_keep`` checkpoints). With a ``restart`` (the run's Tuner restored from that state), ``fit`` then continues
the run: finished trials stay finished, the killed and the other running ones continue from the last checkpoints
that state holds (an epoch reported after it is reported again; ``tuner.experiment.results.each_epoch_once`` keeps
its latest report), errored ones stay errored. Up to ``MEMORY_RESTARTS`` restarts in a row; a run that trained
``MEMORY_RESTART_RESET_S`` before its kill made progress, and the count starts over. Past that (the node keeps
running out of memory), or without a ``restart``, the run ends with a one-line ``ExperimentError`` that says its
state is saved. ``tests/tuner/test_memory_fault.py`` provokes real kills by the memory monitor.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from tuner.experiment.files import ExperimentError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
JOB_STOP_WAIT_S = "30"  # RAY_JOB_STOP_WAIT_TIME_S on the clusters motiontune starts
MEMORY_RESTARTS = 3  # restarts in a row after kills by Ray's memory monitor before the run gives up
MEMORY_RESTART_RESET_S = 600.0  # a run that lasted this long before its kill made progress: the count starts over


class Stopped(Exception):
    """A Tune run ended early on SIGINT/SIGTERM; its state is saved."""

    def __init__(self, experiment: str, signum: int):
        self.experiment = experiment
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}; the experiment's state is saved: `motiontune resume {experiment}` "
                         "finishes it")  # fmt: skip

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def memory_kill(error: BaseException) -> BaseException | None:
    """The ``OutOfMemoryError`` behind ``error`` (itself, or in its chain of causes), if Ray's memory monitor
    killed a worker; else None."""
    from ray.exceptions import OutOfMemoryError

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        if isinstance(e, OutOfMemoryError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def fit(tuner: Any, experiment: str, restart: Callable[[], Any] | None = None) -> Any:
    """``tuner.fit()``, ending on SIGINT/SIGTERM with the run's state saved and ``Stopped`` raised.

    A run ended by Ray's memory monitor continues from its saved state as ``restart()`` restores it (see the
    module's docstring), or ends with a one-line ``ExperimentError``.
    """
    restarts = 0
    while True:
        started = time.monotonic()
        try:
            return _fit_once(tuner, experiment)
        except RuntimeError as e:
            oom = memory_kill(e)
            if oom is None:
                raise
            what = str(oom).strip().splitlines()[0] if str(oom).strip() else "workers were killed"
            if time.monotonic() - started >= MEMORY_RESTART_RESET_S:
                restarts = 0
            if restart is None or restarts >= MEMORY_RESTARTS:
                tried = f" after {restarts} restarts in a row" if restarts else ""
                raise ExperimentError(
                    f"{experiment}: Ray's memory monitor killed trial workers{tried} ({what}); the experiment's "
                    "state is saved: lower --max-concurrent or give the trials more memory, then `motiontune resume "
                    f"{experiment}` finishes it"
                ) from None
            restarts += 1
        warnings.warn(f"Ray's memory monitor killed trial workers ({what}); the run continues from its saved state, "
                      f"its trials from their last checkpoints (restart {restarts} of {MEMORY_RESTARTS} in a row)",
                      stacklevel=2)  # fmt: skip
        tuner = restart()


def _fit_once(tuner: Any, experiment: str) -> Any:
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return tuner.fit()
    got: list[int] = []

    def on_stop(signum: int, frame: Any) -> None:
        if got:  # the second signal: do not wait for the state
            raise KeyboardInterrupt
        got.append(signum)
        # Tune takes SIGUSR1 while its loop runs (it installs a handler for it): the loop ends at its next step,
        # and the run then writes its state one last time. Raised here, that handler runs before this one returns.
        if not callable(signal.getsignal(signal.SIGUSR1)):  # the Tune loop has not started: nothing to save yet
            raise KeyboardInterrupt
        signal.raise_signal(signal.SIGUSR1)

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # SIGINT is ours too: one behaviour for both signals
    previous = {s: signal.signal(s, on_stop) for s in STOP_SIGNALS}
    # Until this run's Tune loop installs its own, SIGUSR1 may hold the handler of an earlier run in this
    # process (the search, before the verification), whose loop has ended: calling that would stop nothing.
    previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        grid = tuner.fit()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if got:
        raise Stopped(experiment, got[0])
    return grid
