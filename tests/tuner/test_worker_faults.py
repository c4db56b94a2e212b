"""Faults: a trial's worker killed mid-epoch resumes from its checkpoint; one driver per experiment at a time."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, run_cli
from tests.trainer_core.test_cli import assert_one_line_error


def _workers_in(experiment_name: str) -> dict[int, Path]:
    """Trial worker processes (pid -> working directory) of the experiment: Tune runs each in its trial's folder."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd.parent.name == "working_dirs" and cwd.parent.parent.name == experiment_name:
            found[int(entry.name)] = cwd
    return found


def _same_config_twice(tmp_path: Path) -> list[str]:
    """Two trials of the same config and seed (a space that searches nothing), FIFO, no verification."""
    from tuner.search.sweep import smoke_base

    (tmp_path / "base.json").write_text(json.dumps(smoke_base()))
    (tmp_path / "space.json").write_text(json.dumps({"name": "fixed", "params": {"lr": {"value": 0.0005}}}))
    return ["--config", str(tmp_path / "base.json"), "--space", str(tmp_path / "space.json"), "--samples", "2",
            "--max-concurrent", "2", "--scheduler", "fifo", "--no-verify"]  # fmt: skip


def test_a_trial_whose_worker_is_killed_mid_epoch_resumes_from_its_checkpoint(tmp_path):
    name = "faults"
    cmd = [sys.executable, "-m", "tuner.cli", "sweep", *_same_config_twice(tmp_path), "--storage", str(tmp_path),
           "--name", name]  # fmt: skip
    driver = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    try:
        victim = None
        deadline = time.time() + 300
        while victim is None:
            assert driver.poll() is None, driver.communicate()[1][-3000:]
            assert time.time() < deadline, "no trial finished its first epoch in time"
            for pid, cwd in _workers_in(name).items():
                log = cwd / "train.log"
                first = re.search(r"^epoch\s+1/4 .*\| ([\d.]+)s$", log.read_text(), re.M) if log.exists() else None
                if first and pid != driver.pid:
                    victim = pid, cwd.name, float(first.group(1))
                    break
            time.sleep(0.1)
        pid, trial_dir, epoch_s = victim
        time.sleep(0.4 * epoch_s)  # into its second epoch (its first was checkpointed when reported)
        os.kill(pid, signal.SIGKILL)  # the trial's actor process; the driver lives on
        out, err = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 0, err[-3000:]

    exp = tmp_path / name
    trials = pd.read_parquet(exp / "trials.parquet")
    history = pd.read_parquet(exp / "history.parquet")
    assert len(trials) == 2 and (trials["status"] == "COMPLETED").all()
    killed = trials[trials["path"].str.endswith(trial_dir)]
    assert len(killed) == 1
    killed_id = killed["trial_id"].iloc[0]
    twin_id = trials.loc[trials["trial_id"] != killed_id, "trial_id"].iloc[0]
    log = (exp / trial_dir / "train.log").read_text()
    assert re.search(r"resumed from Tune's checkpoint of epoch [123]\b", log), log  # it did restart

    h = history.set_index("trial_id")
    for tid in (killed_id, twin_id):
        assert sorted(h.loc[tid, "epoch"]) == [1, 2, 3, 4]  # each epoch once: none lost, none repeated
    metrics = [c for c in history.columns if "/" in c or c in ("GeoDeg", "RootVelMAE")]
    a = h.loc[killed_id].sort_values("epoch")[metrics].to_numpy(dtype=float)
    b = h.loc[twin_id].sort_values("epoch")[metrics].to_numpy(dtype=float)
    assert a == pytest.approx(b, rel=1e-6, nan_ok=True)  # as if it had never been interrupted
    col = "best/FreeRun/GeoDeg"
    assert killed[col].iloc[0] == pytest.approx(trials.loc[trials["trial_id"] == twin_id, col].iloc[0], rel=1e-6)


def test_a_second_resume_refuses_while_one_runs_and_a_dead_ones_lock_is_taken_over(smoke_sweep, tmp_path):
    exp = tmp_path / "smoke"
    shutil.copytree(smoke_sweep[0], exp)
    first = subprocess.Popen([sys.executable, "-m", "tuner.cli", "resume", str(exp)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 120
        while not (exp / "driver.lock").exists():
            assert first.poll() is None and time.time() < deadline, "the first resume never took the lock"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGSTOP)  # hold it there: it is still resuming
        holder = json.loads((exp / "driver.lock").read_text())
        assert holder["pid"] == first.pid and holder["doing"] == "resume"

        second = run_cli("resume", str(exp))
        assert_one_line_error(second, f"{exp}: another motiontune resume is running on it", f"pid {first.pid}")
        assert json.loads((exp / "driver.lock").read_text())["pid"] == first.pid  # the refusal took nothing
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # a driver that dies without cleaning up
        first.wait()
    assert (exp / "driver.lock").exists()

    third = run_cli("resume", str(exp))  # the dead process's lock does not hold forever
    assert third.returncode == 0, third.stderr[-3000:]
    assert "trials: 8" in third.stdout
    assert not (exp / "driver.lock").exists()  # released at the end


def test_a_lock_from_another_host_is_held_until_its_heartbeat_goes_stale(tmp_path):
    from tuner.experiment.lock import STALE_AFTER_S, holder_alive

    now = time.time()
    other = {"host": "some-other-node", "pid": 1, "since": now - 600, "heartbeat": now - 5}
    assert holder_alive(other, now)
    assert not holder_alive({**other, "heartbeat": now - STALE_AFTER_S - 1}, now)
    reused = {"host": os.uname().nodename, "pid": os.getpid(), "pid_start": "1", "heartbeat": now}
    assert not holder_alive(reused, now)  # this pid now belongs to another process (this one)
