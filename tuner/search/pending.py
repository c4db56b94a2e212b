"""How many trials Ray Tune may start at once: as many as the cluster holds, not one.

Ray Tune lets only one trial at a time wait for its resources when the searcher is not its own random or
grid search (``TUNE_MAX_PENDING_TRIALS_PG`` "auto"; with a ConcurrencyLimiter, its limit). With Optuna's TPE
and no ``--max-concurrent``, trials then start one after another: a cluster of N slots fills in N actor
starts, and a trial that ends is replaced only once the one before its replacement runs. On the 100-trial
form of ``benchmarks/sweep_scale.py`` (20 slots on 2 CPUs) that doubled the sweep's wall time against Ray Tune
with its own searcher; with as many pending trials as slots, motiontune's path costs what Ray Tune alone does
(``benchmarks/README.md``).

A trial is one resource bundle, placed on one node, so the slots are counted node by node: three nodes of
6 CPUs hold three trials of 4 CPUs, not the four their 18 CPUs would.

The price: while every slot is busy, up to one slot's worth of trials waits with configs the searcher chose
before the running ones ended, so TPE sees their results one round later.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence

PENDING_ENV = "TUNE_MAX_PENDING_TRIALS_PG"
_RAY_NAMES = {"cpu": "CPU", "gpu": "GPU"}


def trials_at_once(per_trial: Mapping[str, float], nodes: Sequence[Mapping[str, float]]) -> int:
    """How many trials asking ``per_trial`` (motiontune's names: cpu, gpu, custom) fit on ``nodes`` (each
    node's total resources, Ray's names) at once: a trial never straddles nodes, so the sum over nodes of the
    trials each holds in every kind it asks for. At least 1, so a cluster still scaling up starts one at a time."""
    asks = {_RAY_NAMES.get(k, k): v for k, v in per_trial.items() if v}
    if not asks:
        return 1
    held = sum(min(int(node.get(k, 0.0) / v + 1e-9) for k, v in asks.items()) for node in nodes)
    return max(1, held)


def alive_nodes() -> list[dict[str, float]]:
    """The total resources of each alive node of the running Ray cluster (``ray.nodes()``)."""
    import ray

    return [dict(node.get("Resources") or {}) for node in ray.nodes() if node.get("Alive")]


@contextlib.contextmanager
def pending_trials(per_trial: Mapping[str, float], max_concurrent: int | None) -> Iterator[int | None]:
    """While Tune runs: let as many trials wait for resources as the cluster holds (Ray must be started).

    Left alone where Tune already decides well (``--max-concurrent``: its limit) and where the user set
    ``TUNE_MAX_PENDING_TRIALS_PG``. Yields the number set, or None."""
    if max_concurrent or PENDING_ENV in os.environ:
        yield None
        return
    n = trials_at_once(per_trial, alive_nodes())
    os.environ[PENDING_ENV] = str(n)
    try:
        yield n
    finally:
        os.environ.pop(PENDING_ENV, None)
