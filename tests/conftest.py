"""Shared fixtures: the real mocap, tiny configs, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MOCAP_DIR = REPO / "tests" / "data" / "mocap"  # six raw BVH clips shipped with the tests
SHARED_MOCAP_DIR = REPO.parent / "shared" / "data" / "mocap"  # all 24, where the workspace has them


def tiny_overrides(**extra: object) -> dict:
    """A config small enough for a test: a few short epochs of a small model on the real data."""
    return {
        "hidden_dim": 32,
        "num_layers": 1,
        "batch": 4,
        "seq_len": 24,
        "steps_per_epoch": 3,
        "eval_freerun_horizon": 8,
        "freerun_stage_schedule": [],
        "freerun_horizon": 6,
        "freerun_weight": 0.1,
        "epochs": 2,
        "tf_end_epoch": 2,
        "dropout": 0.0,
        **extra,
    }


@pytest.fixture
def tiny_config():
    from trainer_core.config_load import config_from_dict, load_config

    def make(**extra: object):
        base = load_config().to_dict()
        base.update(tiny_overrides(**extra))
        return config_from_dict(base, "tiny test config")

    return make


@pytest.fixture(scope="session")
def bundled():
    from trainer_core.data.datasets import load_dataset

    return load_dataset(None)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``motiontune ARGS`` in a subprocess, as a user runs it."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    return subprocess.run(
        [sys.executable, "-m", "tuner.cli", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def bvh_files() -> list[Path]:
    """Every source clip where the workspace's shared folder is present, else the six shipped ones."""
    return sorted(SHARED_MOCAP_DIR.glob("*.bvh")) or sorted(MOCAP_DIR.glob("*.bvh"))
