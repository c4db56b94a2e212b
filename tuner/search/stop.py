"""Stopping a sweep cleanly: SIGTERM and Ctrl+C save the experiment's state, then end the driver.

``ray job stop``, ``kill``, Kubernetes and systemd end a process with SIGTERM, and Ray Tune saves its
experiment state one last time only on SIGINT (Ctrl+C); on SIGTERM the driver died with up to
``TUNE_GLOBAL_CHECKPOINT_S`` of trial events unsaved, so a trial whose "done" line was printed could be
trained again by ``motiontune resume``. ``fit`` runs a Tuner with both signals meaning "stop": the first
one ends the Tune loop at its next step, Tune writes the state of every trial (``runner.checkpoint(force=True,
wait=True)``) and ``fit`` raises ``Stopped``, so nothing that needs a finished run (the results tables, the
verification) runs on a half-finished one. A second signal aborts at once.

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
        # Tune's own handler of the run in progress (it always takes SIGUSR1): ends its loop at the next step,
        # and the run then writes its state one last time.
        tune_handler = signal.getsignal(signal.SIGUSR1)
        if not callable(tune_handler):  # the Tune loop has not started: nothing to save yet
            raise KeyboardInterrupt
        tune_handler(signum, frame)

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
