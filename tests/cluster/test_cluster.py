"""Sweeps on a real multi-node Ray cluster started on localhost with `ray start`, and the cluster files."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, run_cli
from tests.trainer_core.test_cli import assert_one_line_error
from tuner.cluster import LocalCluster, _pids_naming


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head (1 CPU) + 2 workers (1 CPU and 1 `gpu_like` each); stopped at the end, also when a test fails."""
    c = LocalCluster(tmp_path_factory.mktemp("cluster"), workers=2, cpus_per_node=1,
                     worker_resources={"gpu_like": 1})  # fmt: skip
    c.start()
    try:
        yield c
    finally:
        temp_dirs = [n.temp_dir for n in c.nodes]
        c.stop()
        assert _pids_naming(temp_dirs) == [], "cluster processes outlived stop()"


def _sweep(cluster, storage: Path, name: str, *extra: str):
    return run_cli("sweep", "--smoke-test", "--address", cluster.address, "--storage", str(storage),
                   "--shared-storage", "--name", name, *extra, cwd=storage)  # fmt: skip


@pytest.mark.slow
def test_trials_spread_over_the_nodes(cluster, tmp_path):
    proc = _sweep(cluster, tmp_path, "spread", "--samples", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "spread" / "trials.parquet")
    assert len(trials) == 6 and set(trials["status"]) <= {"COMPLETED", "STOPPED"}
    assert trials["node"].nunique() >= 2


def _max_overlap(trials: pd.DataFrame) -> int:
    events = sorted([(t, 1) for t in trials["start_time"]] + [(t, -1) for t in trials["end_time"]],
                    key=lambda e: (e[0], e[1]))  # ends before starts at the same instant  # fmt: skip
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


@pytest.mark.slow
def test_custom_resource_requests_bound_concurrency(cluster, tmp_path):
    """3 CPUs would allow 3 trials at once; 2 units of gpu_like allow 2, and only on the workers."""
    proc = _sweep(cluster, tmp_path, "packed", "--samples", "6", "--scheduler", "fifo", "--resource", "gpu_like=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "packed" / "trials.parquet")
    assert len(trials) == 6 and (trials["status"] == "COMPLETED").all()
    # The bound, never 3 at once though the CPUs would allow it; whether 2 ever overlap is up to the timing.
    assert _max_overlap(trials) <= 2
    assert set(trials["node"]) <= _worker_node_ids(cluster)  # the head declares no gpu_like: no trial ran there


def _worker_node_ids(cluster) -> set[str]:
    """Ids of the cluster's alive nodes that declare `gpu_like`, as Ray reports them."""
    import json
    import subprocess
    import sys

    from tuner.cluster import ray_env

    code = ("import json, ray; ray.init(address=%r, log_to_driver=False, configure_logging=False); "
            "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive'] and n['Resources'].get('gpu_like')]))")
    proc = subprocess.run([sys.executable, "-c", code % cluster.address], env=ray_env(), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    ids = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert len(ids) == 2
    return ids


def test_multi_node_sweep_with_node_local_storage_fails_early(cluster, tmp_path):
    storage = tmp_path / "local_only"
    proc = run_cli("sweep", "--smoke-test", "--address", cluster.address, "--storage", str(storage), cwd=tmp_path)
    assert_one_line_error(proc, f"--storage {storage} is on this node's local disk", "the Ray cluster has 3 nodes")
    assert not storage.exists()


def test_autoscaler_config_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((REPO / "cluster" / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(raw)))
    types = raw["available_node_types"]
    assert types[raw["head_node_type"]]["resources"]["CPU"] == 0  # no trials on the head
    gpu_groups = [t for t in types.values() if t.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu_groups and any("motiontune" in c for c in raw["setup_commands"])


def test_kuberay_manifest_names_a_gpu_worker_group():
    doc = yaml.safe_load((REPO / "cluster" / "kuberay-raycluster.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    groups = doc["spec"]["workerGroupSpecs"]
    gpu = [
        g for g in groups
        if any(c["resources"]["limits"].get("nvidia.com/gpu") for c in g["template"]["spec"]["containers"])
    ]  # fmt: skip
    assert gpu and gpu[0]["groupName"] == "gpu-workers"
    import ray

    assert doc["spec"]["rayVersion"] == ray.__version__
