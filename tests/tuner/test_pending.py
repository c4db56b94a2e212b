"""Ray Tune may start as many trials at once as the cluster holds (not one at a time, its default for TPE)."""

from __future__ import annotations

import os

import pytest

from tuner.pending import PENDING_ENV, pending_trials, trials_at_once


@pytest.mark.parametrize(
    ("per_trial", "cluster", "n"),
    [
        ({"cpu": 0.1, "gpu": 0}, {"CPU": 2.0}, 20),
        ({"cpu": 1, "gpu": 0.25}, {"CPU": 16.0, "GPU": 1.0}, 4),  # the GPU binds
        ({"cpu": 1, "gpu": 0.25}, {"CPU": 16.0, "GPU": 8.0}, 16),  # the CPUs bind
        ({"cpu": 1, "gpu": 0, "gpu_like": 1}, {"CPU": 8.0, "gpu_like": 2.0}, 2),  # a custom resource
        ({"cpu": 1, "gpu": 1}, {"CPU": 4.0}, 1),  # no GPU yet (an autoscaler adds them): one at a time
    ],
)
def test_trials_at_once(per_trial, cluster, n):
    assert trials_at_once(per_trial, cluster) == n


def test_pending_trials_are_set_while_tune_runs_and_the_users_setting_wins(monkeypatch):
    import ray

    monkeypatch.delenv(PENDING_ENV, raising=False)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pending_trials({"cpu": 0.5}, max_concurrent=0) as n:
        assert n == 4 and os.environ[PENDING_ENV] == "4"
    assert PENDING_ENV not in os.environ
    with pending_trials({"cpu": 0.5}, max_concurrent=2) as n:  # Tune uses the ConcurrencyLimiter's 2
        assert n is None and PENDING_ENV not in os.environ
    monkeypatch.setenv(PENDING_ENV, "7")
    with pending_trials({"cpu": 0.5}, max_concurrent=0) as n:
        assert n is None and os.environ[PENDING_ENV] == "7"
    assert os.environ[PENDING_ENV] == "7"
