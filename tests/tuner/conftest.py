"""One real smoke sweep (Ray Tune + Optuna + ASHA on the real mocap), shared by the tuner tests."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """`motiontune sweep --smoke-test --samples 8` as a user runs it; returns (experiment dir, trials, history)."""
    root = tmp_path_factory.mktemp("sweeps")
    proc = run_cli("sweep", "--smoke-test", "--samples", "8", "--max-concurrent", "2", "--storage", str(root),
                   "--name", "smoke", cwd=root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    exp = root / "smoke"
    return exp, pd.read_parquet(exp / "trials.parquet"), pd.read_parquet(exp / "history.parquet"), proc.stdout
