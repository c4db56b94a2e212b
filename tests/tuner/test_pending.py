"""Ray Tune may start as many trials at once as the cluster holds (not one at a time, its default for TPE)."""

from __future__ import annotations

import os

import pytest

from tuner.search.pending import PENDING_ENV, pending_trials, trials_at_once


@pytest.mark.parametrize(
    ("per_trial", "node", "n"),
    [
        ({"cpu": 0.1, "gpu": 0}, {"CPU": 2.0}, 20),
        ({"cpu": 1, "gpu": 0.25}, {"CPU": 16.0, "GPU": 1.0}, 4),  # the GPU binds
        ({"cpu": 1, "gpu": 0.25}, {"CPU": 16.0, "GPU": 8.0}, 16),  # the CPUs bind
        ({"cpu": 1, "gpu": 0, "gpu_like": 1}, {"CPU": 8.0, "gpu_like": 2.0}, 2),  # a custom resource
        ({"cpu": 1, "gpu": 1}, {"CPU": 4.0}, 1),  # no GPU yet (an autoscaler adds them): one at a time
        ({"cpu": 0, "gpu": 0}, {"CPU": 4.0}, 1),  # asks for nothing: one at a time
    ],
)
def test_trials_at_once_on_one_node(per_trial, node, n):
    assert trials_at_once(per_trial, [node]) == n


@pytest.mark.parametrize(
    ("per_trial", "nodes", "n"),
    [
        # 18 CPUs hold 4 trials of 4, but each node's 6 holds one: 2 CPUs idle on every node.
        ({"cpu": 4, "gpu": 0}, [{"CPU": 6.0}] * 3, 3),
        # 6 GPUs hold 3 trials of 2, but a node's 3 hold one.
        ({"cpu": 1, "gpu": 2}, [{"CPU": 16.0, "GPU": 3.0}] * 2, 2),
        # 3 GPUs hold 7 trials of 0.4 (7.5), a node's 1 GPU two.
        ({"cpu": 1, "gpu": 0.4}, [{"CPU": 8.0, "GPU": 1.0}] * 3, 6),
        # A custom resource: 6 hold 3 trials of 2, a node's 3 one.
        ({"cpu": 1, "gpu": 0, "gpu_like": 2}, [{"CPU": 8.0, "gpu_like": 3.0}] * 2, 2),
        # Different kinds bind on different nodes: 2 (GPU-bound) + 2 (CPU-bound), not min(18, 10).
        ({"cpu": 1, "gpu": 0.5}, [{"CPU": 16.0, "GPU": 1.0}, {"CPU": 2.0, "GPU": 4.0}], 4),
        # A node without the resource holds none; the others still count.
        ({"cpu": 1, "gpu": 1}, [{"CPU": 32.0}, {"CPU": 4.0, "GPU": 2.0}], 2),
        ({"cpu": 2, "gpu": 0}, [], 1),  # no node yet: one at a time
        ({"cpu": 8, "gpu": 0}, [{"CPU": 6.0}] * 3, 1),  # fits on no node: one at a time
    ],
)
def test_trials_at_once_count_per_node(per_trial, nodes, n):
    assert trials_at_once(per_trial, nodes) == n


def test_pending_trials_are_set_while_tune_runs_and_the_users_setting_wins(monkeypatch):
    import ray

    monkeypatch.delenv(PENDING_ENV, raising=False)
    nodes = [
        {"NodeID": "a", "Alive": True, "Resources": {"CPU": 2.0, "memory": 1e9, "node:10.0.0.1": 1.0}},
        {"NodeID": "b", "Alive": True, "Resources": {"CPU": 1.0}},
        {"NodeID": "c", "Alive": False, "Resources": {"CPU": 64.0}},  # gone: holds nothing
    ]
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    with pending_trials({"cpu": 0.5}, max_concurrent=0) as n:
        assert n == 6 and os.environ[PENDING_ENV] == "6"
    assert PENDING_ENV not in os.environ
    with pending_trials({"cpu": 2}, max_concurrent=0) as n:  # fits on node a only, not across a and b
        assert n == 1 and os.environ[PENDING_ENV] == "1"
    assert PENDING_ENV not in os.environ
    with pending_trials({"cpu": 0.5}, max_concurrent=2) as n:  # Tune uses the ConcurrencyLimiter's 2
        assert n is None and PENDING_ENV not in os.environ
    monkeypatch.setenv(PENDING_ENV, "7")
    with pending_trials({"cpu": 0.5}, max_concurrent=0) as n:
        assert n is None and os.environ[PENDING_ENV] == "7"
    assert os.environ[PENDING_ENV] == "7"
