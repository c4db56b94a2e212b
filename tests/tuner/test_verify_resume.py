"""A sweep killed with SIGKILL during its verification finishes under `motiontune resume`, keeping finished seeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, run_cli
from tests.tuner.test_resume import _terminated

SEEDS = 3
CONFIGS = 2  # one finalist and the base config


def _result_file(checkpoint: str) -> Path:
    """The trial's Tune result log (one JSON line per reported epoch), from its best_model.pt path."""
    return Path(checkpoint).parent.parent / "result.json"


@pytest.mark.slow
def test_resume_after_sigkill_during_verification_keeps_finished_seeds(tmp_path):
    exp = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tuner.cli", "sweep", "--smoke-test", "--samples", "2", "--scheduler", "fifo",
           "--max-concurrent", "1", "--verify-top", "1", "--verify-seeds", str(SEEDS), "--storage", str(tmp_path),
           "--name", "killed"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 600
        while len(_terminated(exp / "verification")) < 2:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.time() < deadline, "no two verification trials finished in time"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (exp / "trials.parquet").exists()  # the search had finished
    assert not (exp / "verification.parquet").exists()  # the kill came during the verification

    from tuner.experiment.meta import ExperimentMeta
    from tuner.verify.plan import VerifyPlan, verification_runs

    meta = ExperimentMeta.load(str(exp))
    plan = VerifyPlan.load(meta)
    before = verification_runs(meta, plan)
    done = before[before["ok"]]
    assert 2 <= len(done) < SEEDS * CONFIGS
    logs = {t: _result_file(c).read_bytes() for t, c in zip(done["trial_id"], done["checkpoint"])}

    res = run_cli("resume", str(exp))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "verified on 3 fresh seeds" in res.stdout
    after = verification_runs(meta, plan)
    assert len(after) == SEEDS * CONFIGS and after["trial_id"].is_unique and after["ok"].all()
    kept = after.set_index("trial_id").loc[done["trial_id"]]
    assert kept["best"].to_numpy() == pytest.approx(done["best"].to_numpy())
    assert list(kept["seed"]) == list(done["seed"]) and list(kept["finalist"]) == list(done["finalist"])
    for trial_id, checkpoint in zip(done["trial_id"], done["checkpoint"]):
        assert _result_file(checkpoint).read_bytes() == logs[trial_id], f"{trial_id} ran again"
    table = pd.read_parquet(exp / "verification.parquet")
    assert len(table) == CONFIGS and (table["n_ok"] == SEEDS).all()
    for _, run in done.iterrows():
        row = table[table["label"] == run["finalist"]].iloc[0]
        assert row["best_values"][list(row["seeds"]).index(run["seed"])] == pytest.approx(run["best"])
