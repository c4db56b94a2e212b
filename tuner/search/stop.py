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
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
JOB_STOP_WAIT_S = "30"  # RAY_JOB_STOP_WAIT_TIME_S on the clusters motiontune starts


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


def fit(tuner: Any, experiment: str) -> Any:
    """``tuner.fit()``, ending on SIGINT/SIGTERM with the run's state saved and ``Stopped`` raised."""
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
