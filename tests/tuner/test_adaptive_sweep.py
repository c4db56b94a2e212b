"""A real smoke sweep over the ``wide`` space, whose trials draw the adaptive loss method."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_a_smoke_sweep_of_the_wide_space_completes_with_adaptive_methods(tmp_path):
    proc = run_cli("sweep", "--smoke-test", "--space", "wide", "--samples", "6", "--max-concurrent", "2",
                   "--storage", str(tmp_path), "--name", "wide", "--no-verify", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    trials = pd.read_parquet(tmp_path / "wide" / "trials.parquet")
    assert len(trials) == 6 and set(trials["status"]) <= {"COMPLETED", "STOPPED"}
    methods = trials["config/adaptive_loss_method"]
    assert set(methods) <= {"none", "gradnorm", "uncertainty", "dwa"} and methods.nunique() >= 2
    history = pd.read_parquet(tmp_path / "wide" / "history.parquet")
    adaptive = [c for c in history.columns if c.startswith("adaptive_loss/") and c.endswith("/weight")]
    weights = history[adaptive].to_numpy().ravel()
    weights = weights[~np.isnan(weights)]  # trials of method none have no adaptive columns
    assert len(weights) > 0 and (weights > 0).all() and np.isfinite(weights).all()
