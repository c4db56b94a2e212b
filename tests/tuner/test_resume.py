"""Resume: a sweep killed with SIGKILL mid-way finishes under `motiontune resume`, keeping what was done."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import REPO, run_cli

SAMPLES = 6


def _terminated(exp) -> set[str]:
    """Trial ids the persisted experiment state records as finished."""
    done = set()
    for path in glob.glob(str(exp / "experiment_state-*.json")):
        try:
            state = json.loads(open(path).read())
        except (json.JSONDecodeError, OSError):
            continue  # being rewritten
        for entry in state.get("trial_data", []):
            trial = json.loads(entry[0])
            if trial.get("status") == "TERMINATED":
                done.add(trial["trial_id"])
    return done


@pytest.mark.slow
def test_resume_after_sigkill_finishes_the_sweep_and_keeps_finished_trials(tmp_path):
    exp = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tuner.cli", "sweep", "--smoke-test", "--samples", str(SAMPLES),
           "--max-concurrent", "1", "--storage", str(tmp_path), "--name", "killed"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while len(_terminated(exp)) < 2:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.time() < deadline, "no two trials finished in time"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (exp / "trials.parquet").exists()  # the kill came before the end

    from tuner.experiment.meta import ExperimentMeta
    from tuner.experiment.results import collect_results

    before, _ = collect_results(ExperimentMeta.load(str(exp)))
    finished_before = before[before["status"].isin(["COMPLETED", "STOPPED"])]
    assert len(finished_before) >= 2 and len(before) < SAMPLES + 1

    res = run_cli("resume", str(exp))
    assert res.returncode == 0, res.stderr[-3000:]
    after = pd.read_parquet(exp / "trials.parquet")
    assert len(after) == SAMPLES and after["trial_id"].is_unique
    assert set(after["status"]) <= {"COMPLETED", "STOPPED"}
    kept = after.set_index("trial_id").loc[finished_before["trial_id"]]
    assert list(kept["status"]) == list(finished_before["status"])
    assert kept["best/FreeRun/GeoDeg"].to_numpy() == pytest.approx(finished_before["best/FreeRun/GeoDeg"].to_numpy())
    assert list(kept["epochs"]) == list(finished_before["epochs"])


def test_sigterm_stops_the_sweep_with_every_trial_it_called_done_saved(tmp_path):
    """`ray job stop`, `kill` and Kubernetes send SIGTERM: the driver saves the experiment's state before it ends,
    so `resume` never trains a trial again that a progress line called done (the state is otherwise saved every
    2 s), and it writes no results tables for the half-finished search."""
    exp = tmp_path / "stopped"
    cmd = [sys.executable, "-m", "tuner.cli", "sweep", "--smoke-test", "--samples", "4", "--max-concurrent", "1",
           "--no-verify", "--storage", str(tmp_path), "--name", "stopped"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    done: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := re.search(r"\btrial +\d+/\d+ (\S+) done\b", line):
                done.append(m.group(1))
                proc.send_signal(signal.SIGTERM)  # at once: well inside the 2 s between periodic saves
                break
        stdout_rest, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert done, "no trial finished before the sweep's output ended:\n" + stderr[-3000:]
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        f"motiontune: stopped by SIGTERM; the experiment's state is saved: `motiontune resume {exp}` finishes it"
    )
    assert "Traceback" not in stderr
    assert set(done) <= _terminated(exp)
    assert not (exp / "trials.parquet").exists()
