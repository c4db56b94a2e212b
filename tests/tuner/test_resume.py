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
    so `resume` never trains a trial again that a progress line called done (the state is otherwise saved at Tune's
    own period), and it writes no results tables for the half-finished search."""
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
                proc.send_signal(signal.SIGTERM)  # at once: well inside the 10 s or more between periodic saves
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


def _saved_statuses(exp) -> dict[str, str]:
    """Trial id -> status in the newest persisted experiment state."""
    paths = sorted(glob.glob(str(exp / "experiment_state-*.json")))
    if not paths:
        return {}
    state = json.loads(open(paths[-1]).read())
    return {t["trial_id"]: t["status"] for t in (json.loads(entry[0]) for entry in state.get("trial_data", []))}


@pytest.mark.slow
def test_a_trial_that_finished_after_the_last_state_save_is_not_trained_again(tmp_path):
    """The driver is SIGKILLed right after a trial ended and before Tune saved the experiment's state again: the
    state period is an hour, and a 3-epoch trial ends one checkpoint after the save its second checkpoint forced
    (``CheckpointConfig(num_to_keep=2)``). Tune restores the trial as running, from its epoch-2 checkpoint; the
    record of finished trials (``tuner.experiment.finished``) makes `motiontune resume` end it with its recorded
    result, without training it again, and its history holds each epoch once."""
    from tuner.experiment.finished import RECORD_FILE, read_record

    exp = tmp_path / "late"
    cmd = [sys.executable, "-m", "tuner.cli", "sweep", "--smoke-test", "--epochs", "3", "--samples", "3",
           "--max-concurrent", "1", "--scheduler", "fifo", "--no-verify", "--storage", str(tmp_path),
           "--name", "late"]  # fmt: skip
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "3600"}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while not (exp / RECORD_FILE).exists() or not read_record(str(exp)):
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    entry = next(iter(read_record(str(exp)).values()))
    saved = _saved_statuses(exp)
    assert saved.get(entry.trial_id) in ("RUNNING", "PENDING"), f"not the case under test: saved state {saved}"
    assert entry.last["epoch"] == 3 and [r["epoch"] for r in entry.results] == [1, 2, 3]
    [trial_dir] = [p.parent for p in exp.glob("*/params.json") if entry.trial_id in p.parent.name]
    log = (trial_dir / "train.log").read_text()
    assert log.count("trial on node") == 1

    res = run_cli("resume", str(exp))
    assert res.returncode == 0, res.stderr[-3000:]
    trials = pd.read_parquet(exp / "trials.parquet").set_index("trial_id")
    assert len(trials) == 3 and set(trials["status"]) == {"COMPLETED"}
    assert trials.loc[entry.trial_id, "epochs"] == 3
    best = pd.Series([r.get("FreeRun/GeoDeg") for r in entry.results], dtype=float).min()
    assert trials.loc[entry.trial_id, "best/FreeRun/GeoDeg"] == pytest.approx(best)
    history = pd.read_parquet(exp / "history.parquet")
    assert history[history["trial_id"] == entry.trial_id]["epoch"].tolist() == [1, 2, 3]
    assert (trial_dir / "train.log").read_text() == log  # its trainable did not start training again
    # Tune ended it with its recorded result: that is the result the scheduler and TPE were told.
    value = entry.last["FreeRun/GeoDeg"]
    assert re.search(rf"\b{entry.trial_id} done +epochs +3 +FreeRun/GeoDeg {value:.4f}\b", res.stdout), res.stdout
