"""One real smoke sweep (Ray Tune + Optuna + ASHA on the real mocap), shared by the tuner tests."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import run_cli

SMOKE_STATUS_EVERY = 2  # seconds between the smoke sweep's progress lines (tests/tuner/test_progress.py)


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """`motiontune sweep --smoke-test --samples 8 --no-verify`: the search alone (tests/tuner/test_verify.py has
    the verification); returns (experiment dir, trials, history, stdout)."""
    root = tmp_path_factory.mktemp("sweeps")
    proc = run_cli("sweep", "--smoke-test", "--samples", "8", "--max-concurrent", "2", "--storage", str(root),
                   "--name", "smoke", "--optuna-storage", f"sqlite:///{root}/study.db", "--no-verify",
                   "--status-every", str(SMOKE_STATUS_EVERY), cwd=root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    exp = root / "smoke"
    return exp, pd.read_parquet(exp / "trials.parquet"), pd.read_parquet(exp / "history.parquet"), proc.stdout


def diverging_setup(tmp_path, lrs):
    """A base config whose lr makes the loss overflow, and a space that offers it first."""
    import json

    from tuner.search.sweep import smoke_base

    base = smoke_base()
    base.update(lr=lrs[0], grad_clip=0.0, weight_decay=0.0, steps_per_epoch=30, epochs=3,
                freerun_stage_schedule=[], freerun_weight=0.0, tf_end_epoch=3)  # fmt: skip
    (tmp_path / "base.json").write_text(json.dumps(base))
    space = {"name": "lr_only", "params": {"lr": {"choices": lrs}}}
    (tmp_path / "space.json").write_text(json.dumps(space))
    return ["--config", str(tmp_path / "base.json"), "--space", str(tmp_path / "space.json")]


@pytest.fixture(scope="session")
def all_diverged_sweep(tmp_path_factory):
    """A finished sweep whose only trial diverged: nothing to export or report; the sweep exits 1 saying so."""
    root = tmp_path_factory.mktemp("diverged")
    args = diverging_setup(root, [1.0])
    proc = run_cli("sweep", *args, "--samples", "1", "--scheduler", "fifo", "--storage", str(root), "--name", "d")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "no trial finished (1 in all: 1 diverged); the first, trial " in proc.stderr.splitlines()[-1]
    return root / "d"
