"""Memory kills: trials killed by Ray's memory monitor are retried from their checkpoints and the driver finishes.

A worker that Ray's memory monitor kills fails its task with ``OutOfMemoryError``, which Ray Tune (2.60) raises
out of ``tuner.fit()`` as ``RuntimeError: Caught unexpected exception: N worker(s) were killed due to the node
running low on memory`` instead of retrying the trial; ``tuner.search.stop.fit`` continues the run from its saved
state. The tests with a real Ray provoke real kills: their Ray is started with its memory threshold
(``RAY_memory_usage_threshold``, checked every 100 ms) a few GiB above what the node uses as the test starts, and a
process beside it (``Hog``; not a Ray worker, so never killed) holds the node's use a little below that line, then
pushes it over while trials train until the raylet logs a kill, and exits. On a shared machine other programs'
memory moves the node's use too: the hog gives way to them, and a kill more is handled like any; a program that
takes more than the hog holds, at once, can still make kills enough to fail a test (trials errored after their
retries, or the run ended after its restarts in a row).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

GIB = 1 << 30
KILL_LINE = re.compile(r"Killing \d+ worker\(s\)")  # the raylet's log line for each kill by its memory monitor
WARNING = "Ray's memory monitor killed trial workers"  # tuner.search.stop's line on each restart

# The memory beside Ray. Until SIGUSR1 it keeps the node's use at argv[2] bytes below argv[1] (Ray's threshold),
# taking or freeing memory as other programs free or take theirs; after SIGUSR1 it takes memory until it holds
# argv[3] bytes, then waits to be killed. Every page is written, so the node counts it at once.
HOG = r"""
import signal, sys, time
import numpy as np

threshold, below, cap = (int(a) for a in sys.argv[1:4])
chunk, held, go = 64 << 20, [], []
signal.signal(signal.SIGUSR1, lambda *_: go.append(1))


def used():
    info = dict(line.split(":", 1) for line in open("/proc/meminfo"))
    return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) * 1024


while not go:
    gap = threshold - below - used()
    if gap > chunk:
        held.append(np.ones(chunk, dtype=np.uint8))
    elif gap < 0 and held:
        held.pop()
    else:
        time.sleep(0.05)
while len(held) * chunk < cap:
    held.append(np.ones(chunk, dtype=np.uint8))
time.sleep(3600)
"""


def node_memory() -> tuple[int, int]:
    """(used, total) bytes of this node as Ray's memory monitor counts them: MemTotal - MemAvailable, MemTotal."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        info[key] = int(rest.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"], info["MemTotal"]


def memory_env(margin: int) -> tuple[dict[str, str], int]:
    """Ray's memory monitor set to kill above the node's memory use now plus ``margin`` bytes, checked every 100 ms:
    the environment for the driver that starts Ray, and the threshold in bytes."""
    used, total = node_memory()
    fraction = min(0.9, (used + margin) / total)
    env = {"RAY_memory_usage_threshold": f"{fraction:.4f}", "RAY_memory_monitor_refresh_ms": "100"}
    return env, int(fraction * total)


class Hog:
    """The process that takes memory beside Ray (``HOG``): from its start it holds the node's use ``below`` bytes
    under ``threshold``; ``kill_a_worker`` pushes it over until the memory monitor kills a worker, then ends it.

    What it holds until then is the slack for other programs: the more the threshold's margin exceeds what the
    test's own Ray and trials take (about 1 GiB for a small Tune run, 2 for a sweep), the more memory another program
    may take at once without a kill nobody asked for (the hog frees as much)."""

    def __init__(self, threshold: int, below: int = GIB, cap: int = 8 * GIB):
        self.threshold, self.below, self.cap = threshold, below, cap
        self.proc = subprocess.Popen([sys.executable, "-c", HOG, str(threshold), str(below), str(cap)], cwd=REPO)

    def kill_a_worker(self, session: Path, driver: Driver, timeout: float = 240) -> float:
        """Push the node over the threshold until the memory monitor of ``session`` kills a worker; then free the
        memory at once (this ends the hog). Returns the seconds it took. Fails if the driver ends first, or no kill
        came in ``timeout`` seconds."""
        before, t0 = kills(session), time.time()
        self.proc.send_signal(signal.SIGUSR1)
        try:
            while kills(session) == before:
                driver.check_running("the memory monitor killed a worker")
                assert self.proc.poll() is None, f"the memory hog ended with code {self.proc.returncode}"
                assert time.time() - t0 < timeout, f"no kill by the memory monitor in {timeout:.0f} s"
                time.sleep(0.05)
        finally:
            self.stop()
        return time.time() - t0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def ray_sessions() -> set[Path]:
    """Ray's session folders where a Ray started by a child of this process puts them (Ray's own lookup)."""
    root = Path(os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp") / "ray"
    return set(root.glob("session_2*"))


def kills(session: Path) -> int:
    """Kills by the memory monitor so far in a Ray session (its raylet's log)."""
    log = session / "logs" / "raylet.out"
    return len(KILL_LINE.findall(log.read_text(errors="replace"))) if log.exists() else 0


class Driver:
    """The process that starts Ray and runs Tune, its output in files (``driver.out``, ``driver.err`` in ``folder``)
    so that nothing blocks on a full pipe and a failure shows what it printed."""

    def __init__(self, cmd: list[str], env: dict[str, str], folder: Path):
        self.out_path, self.err_path = folder / "driver.out", folder / "driver.err"
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True)

    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def check_running(self, what: str) -> None:
        code = self.proc.poll()
        assert code is None, f"the driver ended (exit code {code}) before {what}; its stderr:\n{self.err()[-3000:]}"

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def new_session(before: set[Path], driver: Driver, timeout: float = 180) -> Path:
    """The Ray session ``driver`` started (the one session folder not in ``before``)."""
    deadline = time.time() + timeout
    while True:
        new = ray_sessions() - before
        if len(new) == 1:
            return new.pop()
        assert len(new) < 2, f"several new Ray sessions: {sorted(new)}"
        driver.check_running("it started Ray")
        assert time.time() < deadline, "the driver started no Ray in time"
        time.sleep(0.2)


def wait_for(check, driver: Driver, what: str, timeout: float = 600) -> None:  # noqa: ANN001
    deadline = time.time() + timeout
    while not check():
        driver.check_running(what)
        assert time.time() < deadline, f"{what}: not in time"
        time.sleep(0.1)


# --- the restart logic, on a stand-in Tuner whose run ends the way Tune ends it --------------------------------------


# The start of the error Ray 2.60 raises for a worker its memory monitor killed; the report that follows is long.
KILLED = ("2 worker(s) were killed due to the node running low on memory. Memory on the node (IP: 10.0.0.1, ID: abc) "
          "was 3.80GB used / 4.00GB limit (0.95)\nOOM kill reason: ...")  # fmt: skip


class _Run:
    """A Tuner stand-in: ``fit`` fails as Ray Tune 2.60 does when the memory monitor kills a trial worker, or
    returns ``result``."""

    def __init__(self, result: object = None):
        self.result = result

    def fit(self) -> object:
        from ray.exceptions import OutOfMemoryError

        if self.result is not None:
            return self.result
        try:
            raise OutOfMemoryError(KILLED)
        except OutOfMemoryError as e:  # as ray.air.execution._internal.actor_manager raises it
            raise RuntimeError(f"Caught unexpected exception: {e}") from e


def test_a_run_ended_by_the_memory_monitor_continues_from_its_saved_state():
    from tuner.search.stop import MEMORY_RESTARTS, fit

    restored = [_Run(), _Run("done")]  # killed again once, then finishes
    with pytest.warns(UserWarning, match=WARNING) as caught:
        assert fit(_Run(), "exp", restart=lambda: restored.pop(0)) == "done"
    assert not restored
    lines = [str(w.message) for w in caught if WARNING in str(w.message)]
    assert len(lines) == 2 and f"restart 2 of {MEMORY_RESTARTS}" in lines[1]
    assert "3.80GB used / 4.00GB limit" in lines[0] and "OOM kill reason" not in lines[0]


def test_a_run_the_memory_monitor_keeps_killing_ends_with_one_line_saying_its_state_is_saved():
    from tuner.experiment.files import ExperimentError
    from tuner.search.stop import MEMORY_RESTARTS, fit

    with pytest.warns(UserWarning, match=WARNING), pytest.raises(ExperimentError) as e:
        fit(_Run(), "exp", restart=_Run)
    assert f"after {MEMORY_RESTARTS} restarts in a row" in str(e.value) and "`motiontune resume exp`" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ExperimentError, match="Ray's memory monitor killed trial workers .*motiontune resume exp"):
        fit(_Run(), "exp")  # no restart: the same line at once


def test_other_errors_are_not_taken_for_memory_kills():
    from tuner.search.stop import fit, memory_kill

    class Broken:
        def fit(self) -> None:
            raise RuntimeError("Caught unexpected exception: something else")

    with pytest.raises(RuntimeError, match="something else"):
        fit(Broken(), "exp", restart=_Run)
    assert memory_kill(ValueError("x")) is None


def test_each_epoch_is_kept_once_the_latest_report_of_it():
    from tuner.experiment.results import each_epoch_once

    # a trial restarted from its checkpoint of epoch 1 after reporting epoch 3
    rows = pd.DataFrame({"epoch": [1, 2, 3, 2, 3, 4], "loss": [9, 8, 7, 6, 5, 4]})
    kept = each_epoch_once(rows)
    assert list(kept["epoch"]) == [1, 2, 3, 4] and list(kept["loss"]) == [9, 6, 5, 4]
    assert each_epoch_once(pd.DataFrame()).empty


# --- real kills by the memory monitor -------------------------------------------------------------------------------

SCRIPT = r"""
import json, os, sys, tempfile, time, warnings
from pathlib import Path

import ray
from ray import tune

from tuner.experiment.results import each_epoch_once
from tuner.search.stop import fit

EPOCHS = 40
MARKS = Path(sys.argv[2])  # each trial's last epoch reported, for the test to know when trials train


def trainable(config):
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = json.loads((Path(d) / "state.json").read_text())["epoch"]
    for epoch in range(start + 1, EPOCHS + 1):
        time.sleep(0.5)
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "state.json").write_text(json.dumps({"epoch": epoch}))
            tune.report({"epoch": epoch, "start": start}, checkpoint=tune.Checkpoint.from_directory(d))
        (MARKS / tune.get_context().get_trial_id()).write_text(str(epoch))


ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
root = sys.argv[1]
path = os.path.join(root, "run")
run = tune.with_resources(trainable, {"cpu": 1})
# As the sweeps do: Tune keeps a trial's newest checkpoints (here 1) and then saves the experiment's state, so a
# restored trial continues from its last checkpoint.
config = tune.RunConfig(name="run", storage_path=root, verbose=0, failure_config=tune.FailureConfig(max_failures=2),
                        checkpoint_config=tune.CheckpointConfig(num_to_keep=1))
tuner = tune.Tuner(run, param_space={"x": tune.grid_search([1, 2])}, run_config=config)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    grid = fit(tuner, path, restart=lambda: tune.Tuner.restore(path, trainable=run, resume_unfinished=True))
frames = tune.ExperimentAnalysis(path).trial_dataframes
ray.shutdown()
print("json " + json.dumps({
    "errors": grid.num_errors,
    "restarts": [str(w.message) for w in caught if "memory monitor" in str(w.message)],
    "epochs": {t: [int(e) for e in each_epoch_once(df)["epoch"]] for t, df in frames.items()},
    "resumed": {t: int(df["start"].max()) for t, df in frames.items()},
}))
"""


def test_a_tune_run_whose_trial_the_memory_monitor_kills_mid_epoch_finishes(tmp_path):
    """Ray's side of it on a small Tune run (no torch): the kill of a training worker ends ``tuner.fit()`` (the
    reason for the restart), and ``fit`` continues the run, the trials from their checkpoints, each epoch once."""
    marks = tmp_path / "marks"
    marks.mkdir()
    before = ray_sessions()
    ray_env, threshold = memory_env(margin=5 * GIB)
    hog = Hog(threshold)
    driver = Driver([sys.executable, "-c", SCRIPT, str(tmp_path), str(marks)], {**os.environ, **ray_env}, tmp_path)
    try:
        session = new_session(before, driver)
        wait_for(lambda: any(int(p.read_text() or 0) >= 2 for p in marks.iterdir()), driver, "a trial's second epoch")
        hog.kill_a_worker(session, driver)
        code = driver.wait(timeout=300)
    finally:
        hog.stop()
        driver.kill()
    lines = [ln for ln in driver.out().splitlines() if ln.startswith("json ")]
    assert code == 0 and lines, driver.err()[-3000:] + driver.out()[-3000:]
    result = json.loads(lines[-1][5:])
    assert result["restarts"], f"no restart: the kill did not end tuner.fit() ({result})"
    assert result["errors"] == 0
    assert len(result["epochs"]) == 2
    for epochs in result["epochs"].values():
        assert epochs == list(range(1, 41))  # each epoch once: none lost, none repeated
    assert max(result["resumed"].values()) >= 1  # a trial continued from a checkpoint, not from the start


def _reported(experiment: Path, epoch: int) -> bool:
    """A trial of the Tune experiment in ``experiment`` has reported ``epoch`` (saved its checkpoint, trains on):
    its ``result.json`` holds a line per result. Read from storage, so other sweeps on the machine never count."""
    for results in experiment.glob("*/result.json"):
        with results.open() as f:
            if sum(1 for _ in f) >= epoch:
                return True
    return False


def _assert_each_epoch_once(history: pd.DataFrame, trials: pd.DataFrame, epochs: int) -> None:
    assert set(history["trial_id"]) == set(trials["trial_id"])
    for tid, h in history.groupby("trial_id"):
        assert sorted(h["epoch"]) == list(range(1, epochs + 1)), tid  # none lost, none repeated


@pytest.mark.slow
def test_a_sweep_whose_trials_the_memory_monitor_kills_finishes_its_search_and_verification(tmp_path):
    """``motiontune sweep`` with a kill by the memory monitor while search trials train and another while the
    verification's do: it exits 0, every trial completed with each epoch once in its history."""
    from tuner.experiment.meta import ExperimentMeta
    from tuner.experiment.results import collect_results
    from tuner.search.sweep import smoke_base
    from tuner.verify.plan import VERIFY_DIR, VerifyPlan, _sub_meta

    epochs, name = 8, "oom"
    (tmp_path / "base.json").write_text(json.dumps(smoke_base()))
    (tmp_path / "space.json").write_text(json.dumps({"name": "fixed", "params": {"lr": {"value": 0.0005}}}))
    cmd = [sys.executable, "-m", "tuner.cli", "sweep", "--config", str(tmp_path / "base.json"), "--space",
           str(tmp_path / "space.json"), "--samples", "2", "--max-concurrent", "2", "--scheduler", "fifo", "--epochs",
           str(epochs), "--verify-top", "1", "--verify-seeds", "1", "--storage", str(tmp_path), "--name", name,
           "--status-every", "5"]  # fmt: skip
    exp = tmp_path / name
    before = ray_sessions()
    ray_env, threshold = memory_env(margin=6 * GIB)
    env = {**os.environ, **ray_env, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    hogs = [Hog(threshold, below=GIB * 3 // 2)]  # torch workers loading data move the node's use fast
    driver = Driver(cmd, env, tmp_path)
    try:
        session = new_session(before, driver)
        wait_for(lambda: _reported(exp, 2), driver, "a search trial's second epoch")
        hogs[0].kill_a_worker(session, driver)
        hogs.append(Hog(threshold, below=GIB * 3 // 2))
        wait_for(lambda: _reported(exp / VERIFY_DIR, 2), driver, "a verification trial's second epoch")
        hogs[1].kill_a_worker(session, driver)
        code = driver.wait(timeout=900)
    finally:
        for hog in hogs:
            hog.stop()
        driver.kill()
    err = driver.err()
    assert code == 0, err[-3000:]  # an exception out of the driver exits 1
    assert "Caught unexpected exception" not in err, err[-3000:]  # how Tune ended on a memory kill, with a traceback
    assert WARNING in err, err[-3000:]  # a kill ended a Tune run, which went on from its saved state

    trials = pd.read_parquet(exp / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "COMPLETED").all(), trials[["trial_id", "status", "error"]]
    _assert_each_epoch_once(pd.read_parquet(exp / "history.parquet"), trials, epochs)

    meta = ExperimentMeta.load(str(exp))
    v_trials, v_history = collect_results(_sub_meta(meta, VerifyPlan.load(meta)))
    assert len(v_trials) == 2 and (v_trials["status"] == "COMPLETED").all(), v_trials[["trial_id", "status", "error"]]
    _assert_each_epoch_once(v_history, v_trials, epochs)
    verified = pd.read_parquet(exp / "verification.parquet")
    assert int(verified["n_ok"].sum()) == 2

    logs = [p.read_text() for p in [*exp.glob("*/train.log"), *(exp / VERIFY_DIR).glob("*/train.log")]]
    assert any("resumed from Tune's checkpoint of epoch" in log for log in logs)  # killed trials continued
