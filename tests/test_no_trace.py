"""The test suite leaves no trace: a cluster test run with its own HOME writes nothing there, nor into /tmp.

``tests/conftest.py`` keeps Ray's token in the environment and Ray's and Python's temp dirs in pytest's; it
also fails the session if the suite left anything new in the real home directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, isolate_env

CLUSTER_TEST = "tests/cluster/test_cluster.py::test_multi_node_sweep_with_node_local_storage_fails_early"


def _in_tmp(*prefixes: str) -> set[str]:
    return {p.name for p in Path("/tmp").iterdir() if p.name.startswith(prefixes)}


@pytest.mark.slow
def test_a_cluster_test_writes_nothing_into_home_or_tmp(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in isolate_env(tmp_path)}  # as a fresh shell has it
    env["HOME"] = str(home)
    before = _in_tmp("motiontune-")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", CLUSTER_TEST], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert "1 passed" in out
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []  # no ~/.ray/auth_token, no caches
    assert _in_tmp("motiontune-") <= before  # no motiontune-ckpt-* (other test runs may share this /tmp)
    assert _in_tmp(f"mt-cluster-{proc.pid}-") == set()  # its cluster's node temp dirs went with the cluster


def test_the_session_keeps_ray_and_temp_files_in_pytests_temp_dir(tmp_path):
    import tempfile

    root = Path(os.environ["RAY_TMPDIR"])
    assert tmp_path.is_relative_to(root) and Path(tempfile.gettempdir()).is_relative_to(root)
    assert os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
