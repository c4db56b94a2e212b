"""Storage: a trial keeps what resume, export and report need, and nothing that grows with its epochs.

One real sweep (6 epochs, Tune keeping 2 checkpoints, a verification after the
search) is killed with SIGKILL mid-trial, resumed, and then read on its storage
path: model files per trial, resume from what was kept, export and report.
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

from tests.conftest import REPO, run_cli
from tuner.search.trainable import TUNE_CHECKPOINTS_KEPT

EPOCHS = 6  # more than the Tune checkpoints kept, so anything kept per epoch would show
SAMPLES = 3
VERIFIED = 3  # --verify-top 2: two finalists and the base config, one fresh seed each
TUNE_CKPT_RE = re.compile(r"checkpoint_(\d{6})$")


def trial_dirs(exp: Path) -> list[Path]:
    """Every trial folder on storage (search and verification): Tune writes params.json into each."""
    return sorted(p.parent for p in exp.rglob("params.json"))


def tune_checkpoints(trial: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in trial.iterdir() if p.is_dir() and (m := TUNE_CKPT_RE.match(p.name)))


def assert_storage_bounded(exp: Path) -> None:
    """Per trial: at most TUNE_CHECKPOINTS_KEPT Tune checkpoints + run/best_model.pt, and the metrics."""
    trials = trial_dirs(exp)
    assert trials
    for trial in trials:
        models = sorted(str(p.relative_to(trial)) for p in trial.rglob("*.pt"))
        assert len(models) <= TUNE_CHECKPOINTS_KEPT + 1, f"{trial.name}: {models}"
        assert "run/best_model.pt" in models, f"{trial.name}: {models}"
        assert not list(trial.rglob("checkpoint_epoch_*")), trial.name
        assert len(tune_checkpoints(trial)) <= TUNE_CHECKPOINTS_KEPT
        assert (trial / "run" / "summary.json").is_file() and (trial / "run" / "metrics" / "valfree").is_dir()


def _running_with_pruned_checkpoints(exp: Path) -> Path | None:
    """A trial still running whose first Tune checkpoint was already pruned (so it resumes from a later one)."""
    for trial in trial_dirs(exp):
        done = (trial / "run" / "summary.json").exists()
        kept = tune_checkpoints(trial)
        if not done and kept and kept[0] >= 1 and len(kept) == TUNE_CHECKPOINTS_KEPT:
            return trial
    return None


@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory):
    """A FIFO smoke sweep of 6-epoch trials, SIGKILLed mid-trial, then `motiontune resume`d to the end."""
    root = tmp_path_factory.mktemp("storage")
    exp = root / "kept"
    cmd = [sys.executable, "-m", "tuner.cli", "sweep", "--smoke-test", "--epochs", str(EPOCHS),
           "--samples", str(SAMPLES), "--max-concurrent", "1", "--scheduler", "fifo",
           "--verify-top", "2", "--verify-seeds", "1", "--storage", str(root), "--name", "kept"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while (interrupted := _running_with_pruned_checkpoints(exp)) is None:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.time() < deadline, "no trial got past its first pruned checkpoint in time"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (exp / "trials.parquet").exists()  # the kill came before the end
    res = run_cli("resume", str(exp))
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    return exp, interrupted.name, res.stdout


@pytest.mark.slow
def test_every_trial_keeps_a_bounded_number_of_model_files(resumed_sweep):
    exp, _, _ = resumed_sweep
    trials = pd.read_parquet(exp / "trials.parquet")
    assert len(trials) == SAMPLES and (trials["epochs"] == EPOCHS).all()
    assert len(trial_dirs(exp / "verification")) == VERIFIED
    assert_storage_bounded(exp)  # search and verification trials alike


@pytest.mark.slow
def test_resume_continues_the_killed_trial_from_a_kept_checkpoint(resumed_sweep):
    exp, interrupted, _ = resumed_sweep
    trials = pd.read_parquet(exp / "trials.parquet")
    history = pd.read_parquet(exp / "history.parquet")
    row = trials[trials["path"].map(lambda p: Path(p).name) == interrupted]
    assert len(row) == 1 and row["status"].iloc[0] == "COMPLETED"
    epochs = history[history["trial_id"] == row["trial_id"].iloc[0]]["epoch"].tolist()
    # Resumed, not restarted: epoch 1 ran once, and the epochs after the kept checkpoint ran to the end.
    assert epochs.count(1) == 1 and set(epochs) == set(range(1, EPOCHS + 1)), epochs
    state = json.loads((exp / interrupted / "run" / "summary.json").read_text())
    assert state["status"] == "finished" and state["last_epoch"] == EPOCHS
    # The resumed run started in a fresh working directory: its files of the epochs before came back from storage,
    # so the histories it uploaded hold every epoch once, and its log goes on from the first run's.
    lines = (exp / interrupted / "run" / "metrics" / "valfree" / "GeoDeg.txt").read_text().split("\n")
    assert [int(ln.split()[0]) for ln in lines if ln] == list(range(1, EPOCHS + 1))
    log = (exp / interrupted / "train.log").read_text()
    assert f"epoch   1/{EPOCHS}" in log and "resumed from Tune's checkpoint of epoch" in log
    assert "files fetched from the trial's storage" in log


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--metric", "GeoDeg"]], ids=["verified", "search-ranking"])
def test_export_top_3_reads_only_kept_checkpoints(resumed_sweep, tmp_path, extra):
    from trainer_core.train import checkpoint as ckpt

    exp, _, _ = resumed_sweep
    proc = run_cli("export", str(exp), "--out", str(tmp_path / "c.json"), "--top", "3", *extra)
    assert proc.returncode == 0, proc.stderr
    for k in (1, 2, 3):
        prov = json.loads((tmp_path / f"c.top{k}.provenance.json").read_text())
        assert prov["verified"] == (not extra)
        assert json.loads((tmp_path / f"c.top{k}.json").read_text())["epochs"] == EPOCHS
        path = Path(prov["best_checkpoint"])  # Tune's kept checkpoint of the best epoch, or run/best_model.pt
        path = path / "checkpoint.pt" if path.is_dir() else path
        assert path.is_relative_to(exp) and path.is_file()
        assert 1 <= ckpt.load(path)["epoch"] <= EPOCHS


@pytest.mark.slow
def test_summary_and_report_print_the_size_on_storage(resumed_sweep, tmp_path):
    from tuner.experiment.usage import storage_usage

    exp, _, stdout = resumed_sweep
    files = [p for p in exp.rglob("*") if p.is_file()]
    usage = storage_usage(str(exp))
    assert usage.bytes == sum(p.stat().st_size for p in files) and usage.files == len(files)
    assert usage.model_files == len(list(exp.rglob("*.pt")))
    assert usage.trials == SAMPLES + VERIFIED and max(usage.models_per_trial.values()) <= TUNE_CHECKPOINTS_KEPT + 1
    line = next(ln for ln in stdout.splitlines() if ln.startswith("size on storage: "))
    assert re.search(rf"\d+\.\d [kMG]B in \d+ files; \d+ model files in {SAMPLES + VERIFIED} trials", line), line
    rep = run_cli("report", str(exp), "--out", str(tmp_path / "r"))
    assert rep.returncode == 0, rep.stderr
    assert f"model files in {SAMPLES + VERIFIED} trials" in rep.stdout


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (11_700_000, "11.7 MB"), (3.3e9, "3.3 GB")]
)
def test_format_bytes(n, text):
    from tuner.experiment.usage import format_bytes

    assert format_bytes(int(n)) == text
