"""Shared fixtures: the real mocap, tiny configs, a CLI runner; and a test session that leaves no trace.

``pytest_configure`` points everything that would write outside a test's temp dirs at this session's pytest
temp dir (``/tmp/pytest-of-USER/pytest-N``, which pytest itself prunes): Ray's temp and lock dirs
(``RAY_TMPDIR``), Python's and the subprocesses' temp files (``TMPDIR``), matplotlib's and other caches, and
Ray's auth token, which goes in the environment (``RAY_AUTH_TOKEN``) so no ``~/.ray/auth_token`` is written.
Every subprocess a test starts inherits it. ``tests/test_no_trace.py`` checks the home directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MOCAP_DIR = REPO / "tests" / "data" / "mocap"  # six raw BVH clips shipped with the tests
SHARED_MOCAP_DIR = REPO.parent / "shared" / "data" / "mocap"  # all 165, where the workspace has them


def isolate_env(root: Path) -> dict[str, str]:
    """The environment variables that keep Ray, Python and the libraries' caches inside ``root``."""
    env = {
        "RAY_TMPDIR": str(root),  # Ray's session dirs and _ray_lockfiles (socket paths stay under 107 bytes)
        "TMPDIR": str(root / "tmp"),
        "MPLCONFIGDIR": str(root / "mpl"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        env["RAY_AUTH_TOKEN"] = uuid.uuid4().hex  # a local Ray with no token would write ~/.ray/auth_token
    return env


_SAVED: dict[str, str | None] = {}
_HOME_BEFORE: set[str] = set()


def home_listing(home: Path | None = None) -> set[str]:
    """The names at the top of the home directory and every path under ``~/.ray``, ``~/.cache/matplotlib``."""
    home = home or Path.home()
    names = {p.name for p in home.iterdir()} if home.is_dir() else set()
    for sub in (".ray", ".cache/matplotlib", ".config/matplotlib"):
        if (home / sub).is_dir():
            names |= {str(p.relative_to(home)) for p in (home / sub).rglob("*")}
    return names


@pytest.hookimpl(trylast=True)  # after pytest's tmpdir plugin has made its factory
def pytest_configure(config: pytest.Config) -> None:
    """Before collection (test modules import matplotlib and Ray): this session's temp dir for everything."""
    factory = getattr(config, "_tmp_path_factory", None)  # pytest's own TempPathFactory
    if factory is None or hasattr(config, "workerinput"):
        return
    _HOME_BEFORE.update(home_listing())
    root = factory.getbasetemp()
    env = isolate_env(root)
    for d in ("tmp", "mpl", "cache", "config"):
        (root / d).mkdir(exist_ok=True)
    _SAVED.update({k: os.environ.get(k) for k in env})
    _SAVED["tempfile.tempdir"] = tempfile.tempdir
    os.environ.update(env)
    tempfile.tempdir = env["TMPDIR"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite fails if it left anything new in the home directory (another program may have, rarely: see which)."""
    if not _HOME_BEFORE:
        return
    new = sorted(home_listing() - _HOME_BEFORE)
    if new:
        print(f"\nthe test session left new files in {Path.home()}: {', '.join(new[:10])}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _SAVED:
        return
    tempfile.tempdir = _SAVED.pop("tempfile.tempdir")
    for k, v in _SAVED.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _SAVED.clear()


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
        "eval_long_every": 0,  # long validation has its own tests (test_long_rollout.py); it adds seconds to each run
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
