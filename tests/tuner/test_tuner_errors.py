"""Bad input to sweep/resume/export: one clear line, exit code 2; divergence stops only its own trial."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.trainer_core.test_cli import assert_one_line_error
from tests.tuner.conftest import diverging_setup


@pytest.mark.parametrize("command", ["resume", "export"])
def test_missing_experiment_dir(tmp_path, command):
    assert_one_line_error(run_cli(command, str(tmp_path / "nope")), "experiment directory not found")


@pytest.mark.parametrize("command", ["resume", "export"])
def test_a_folder_that_is_not_an_experiment(tmp_path, command):
    (tmp_path / "something.txt").write_text("hi")
    assert_one_line_error(run_cli(command, str(tmp_path)), "not a motiontune experiment")


def test_sweep_with_an_unknown_metric(tmp_path):
    proc = run_cli("sweep", "--smoke-test", "--metric", "FreeRun/GeoDg", "--storage", str(tmp_path))
    assert_one_line_error(proc, "--metric 'FreeRun/GeoDg'", "did you mean `FreeRun/GeoDeg`")
    assert list(tmp_path.iterdir()) == []


def test_export_with_an_unknown_metric(smoke_sweep):
    exp = smoke_sweep[0]
    assert_one_line_error(run_cli("export", str(exp), "--metric", "GeoDegree"), "--metric 'GeoDegree'")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--cpus-per-trial", "0"], "--cpus-per-trial is 0, but must be > 0"),
        (["--cpus-per-trial", "-2"], "--cpus-per-trial is -2, but must be > 0"),
        (["--gpus-per-trial", "-0.5"], "--gpus-per-trial is -0.5, but must be >= 0"),
        (["--samples", "0"], "--samples is 0, but must be >= 1"),
    ],
)
def test_sweep_with_bad_resources(tmp_path, flags, message):
    proc = run_cli("sweep", "--smoke-test", "--storage", str(tmp_path), *flags)
    assert_one_line_error(proc, message)
    assert list(tmp_path.iterdir()) == []


def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    import pandas as pd

    args = diverging_setup(tmp_path, [1.0, 0.0003])
    proc = run_cli("sweep", *args, "--samples", "3", "--scheduler", "fifo", "--searcher", "random",
                   "--storage", str(tmp_path), "--name", "div", "--max-concurrent", "2", "--no-verify")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "div" / "trials.parquet")
    first = trials.sort_values("order").iloc[0]
    assert first["config/lr"] == 1.0 and first["status"] == "DIVERGED"
    assert "training loss is" in first["error"] and "lr=1" in first["error"]
    others = trials[trials["config/lr"] != 1.0]
    assert len(others) >= 1 and (others["status"] == "COMPLETED").all()
    assert "DIVERGED" in proc.stdout


def test_export_with_no_finished_trial(all_diverged_sweep, tmp_path):
    out = tmp_path / "best.json"
    assert_one_line_error(run_cli("export", str(all_diverged_sweep), "--out", str(out)), "no finished trial to export")
    assert not out.exists()
