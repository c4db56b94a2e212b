"""The sweep side of issue 26: a sweep (or verification) in which no trial finished exits non-zero saying why,
``export`` on it names that (not a ``--metric`` nobody gave), a malformed ``motiontune.json`` is one line, and
``sweep --smoke-test --epochs 2``, whose rescale leaves fewer stages than the space builds, finishes its trials.

Each failed before its fix: the sweep exited 0 with ``best: none``, export said "--metric 'FreeRun/GeoDeg': not
in this experiment's results", and both smoke trials errored with "the base config has 3 stages, not 3".
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from search_spaces.mapping import params_to_config
from search_spaces.spec import load_space
from tests.conftest import run_cli
from tests.trainer_core.test_bad_inputs import assert_refused
from trainer_core.config_load import smoke_config
from tuner.cli.common import EXIT_NO_TRIAL_FINISHED


@pytest.fixture(scope="module")
def errored_sweep(tmp_path_factory):
    """A one-trial smoke sweep whose only trial errors: its space fixes seq_len 2, shorter than every stage's
    free-run horizon, so each sample is an invalid config (found only when the trial builds it)."""
    root = tmp_path_factory.mktemp("errored")
    space = root / "seq2.json"
    space.write_text(json.dumps({"name": "seq2", "params": {"seq_len": {"choices": [2]}}}))
    proc = run_cli("sweep", "--smoke-test", "--space", str(space), "--samples", "1", "--scheduler", "fifo",
                   "--no-verify", "--storage", str(root), "--name", "e", cwd=root)  # fmt: skip
    return root / "e", proc


def test_a_sweep_in_which_no_trial_finished_exits_non_zero_with_the_first_error(errored_sweep):
    _, proc = errored_sweep
    assert proc.returncode == EXIT_NO_TRIAL_FINISHED == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr.splitlines()[-1]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("motiontune: error: no trial finished (1 in all: 1 error); the first, trial "), last
    assert "ConfigError" in last and "seq_len=2" in last, last
    assert "best: none (no trial finished)" in proc.stdout


def test_export_of_a_sweep_in_which_no_trial_finished_says_so(errored_sweep, tmp_path):
    exp, _ = errored_sweep
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("export", str(exp), "--out", str(out / "best.json"))
    assert_refused(proc, "no finished trial to export (1 in all: 1 error)", "errored", "seq_len=2")
    assert "--metric" not in proc.stderr
    assert list(out.iterdir()) == []


def test_no_verification_trial_finished_is_exit_1_and_one_line(capsys):
    from tuner.cli.sweep_cmds import _exit_code

    reason = "no verification trial finished (2 in all: 2 error); the first, verification trial t1, errored: boom"
    assert _exit_code({"experiment": "e", "verification": pd.DataFrame(), "verification_failed": reason}) == 1
    assert capsys.readouterr().err == f"motiontune: error: {reason}\n"
    assert _exit_code({"experiment": "e", "verification": pd.DataFrame(), "verification_failed": None}) == 0


@pytest.mark.parametrize("command", ["export", "status", "resume", "verify", "report"])
def test_an_empty_motiontune_json_is_one_line(tmp_path, command):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "motiontune.json").write_text("{}\n")
    proc = run_cli(command, str(exp))
    assert_refused(proc, str(exp / "motiontune.json"), "missing name, storage, base_config")
    assert sorted(p.name for p in exp.iterdir()) == ["motiontune.json"]


def test_params_apply_to_the_base_stages_then_rescale_as_train_does():
    """2 epochs of the 4-epoch smoke base keep one of its 3 stages; the space `small` builds all 3 from the base's
    own, then the config is rescaled exactly as `train --epochs 2` rescales a config file."""
    space, base = load_space("small"), smoke_config()
    params = {"lr": 0.001, "core_first": 0.05, "freerun_rise2": 0.5, "freerun_rise3": 0.5, "horizon_first": 6}
    full = params_to_config(space, params, base)
    assert len(full.stages) == 3 and full.optim.epochs == base.optim.epochs
    two = params_to_config(space, params, base, epochs=2)
    assert two.to_dict() == full.with_epochs(2).to_dict() and two.optim.epochs == 2


def test_a_smoke_sweep_of_two_epochs_finishes_both_trials(tmp_path):
    """FIFO: which trial ASHA would stop at epoch 1 depends on the data, not on the rescaling under test."""
    proc = run_cli("sweep", "--smoke-test", "--samples", "2", "--epochs", "2", "--max-concurrent", "1",
                   "--scheduler", "fifo", "--no-verify", "--storage", str(tmp_path), "--name", "s",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning" not in proc.stderr  # the base is a point of the space again: a warm start, no fallback
    trials = pd.read_parquet(tmp_path / "s" / "trials.parquet")
    assert list(trials["status"]) == ["COMPLETED", "COMPLETED"] and list(trials["epochs"]) == [2, 2]
    assert trials["warm_start"].sum() == 1
    proc = run_cli("export", str(tmp_path / "s"), "--out", str(tmp_path / "best.json"))
    assert proc.returncode == 0, proc.stderr
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["epochs"] == 2 and best["freerun_stage_schedule"][-1]["range"][1] == 2
