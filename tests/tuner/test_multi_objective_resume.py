"""A multi-objective sweep killed with SIGKILL in its search, and again in its verification, finishes under
`motiontune resume` with the same objectives, constraint and front as a sweep that was never killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import REPO, run_cli
from tests.tuner.test_resume import _terminated
from tuner.experiment.objectives import pareto_mask
from tuner.experiment.results import AT_BEST

GEO, FOOT, DIVERGED = "FreeRun/GeoDeg", "FreeRun/long/FootSkateMS", "FreeRun/long/DivergedClips"
SAMPLES, SEEDS = 4, 2


def _kill_when(proc: subprocess.Popen, done, what: str, timeout: float = 600) -> None:
    try:
        deadline = time.time() + timeout
        while not done():
            assert proc.poll() is None, f"the run ended before it could be killed ({what})"
            assert time.time() < deadline, f"not in time: {what}"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tuner.cli", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


@pytest.mark.slow
def test_resume_of_a_multi_objective_sweep_and_of_its_verification(tmp_path):
    exp = tmp_path / "mo"
    sweep = _start(["sweep", "--smoke-test", "--samples", str(SAMPLES), "--max-concurrent", "1", "--epochs", "3",
                    "--metric", GEO, "--metric", FOOT, "--constraint", f"{DIVERGED}<=0", "--verify-top", "1",
                    "--verify-seeds", str(SEEDS), "--storage", str(tmp_path), "--name", "mo"])  # fmt: skip
    _kill_when(sweep, lambda: len(_terminated(exp)) >= 2, "two search trials")
    assert not (exp / "trials.parquet").exists()

    resumed = _start(["resume", str(exp)])  # the search's rest, then the verification: killed in it this time
    _kill_when(resumed, lambda: len(_terminated(exp / "verification")) >= 1, "one verification trial")
    assert (exp / "trials.parquet").exists() and not (exp / "verification.parquet").exists()

    res = run_cli("resume", str(exp))
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((exp / "motiontune.json").read_text())
    assert meta["extra_objectives"] == {FOOT: "min"} and meta["constraints"] == [f"{DIVERGED}<=0"]
    trials = pd.read_parquet(exp / "trials.parquet")
    assert len(trials) == SAMPLES and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"COMPLETED", "STOPPED"}
    points = trials[[f"best/{GEO}", f"{AT_BEST}{FOOT}"]].to_numpy(dtype=float)
    assert trials["pareto"].tolist() == pareto_mask(points, ["min", "min"], trials["feasible"].to_numpy()).tolist()
    plan = json.loads((exp / "verification_plan.json").read_text())
    front = set(trials.loc[trials["pareto"], "trial_id"])
    assert all(f["trial_id"] in front for f in plan["finalists"] if f["label"] != "base")
    table = pd.read_parquet(exp / "verification.parquet")
    assert (table["n_ok"] == SEEDS).all() and "pareto" in table and f"{AT_BEST}{FOOT}/mean" in table
    out = run_cli("export", str(exp), "--prefer", FOOT, "--within", f"{GEO}=10%", "--out", str(tmp_path / "b.json"))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "b.provenance.json").read_text())["verified"]
