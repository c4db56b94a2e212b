"""Several objectives and constraints for the sweep's TPE.

Given lists of metrics and modes, ``tuner.search.tpe_search.TPESearch`` tells Optuna every objective of a trial's
last result; Optuna's TPE is multi-objective then (its MOTPE). Constraints reach TPE through the sampler's
``constraints_func`` (``FeasibilityFromResult``): Optuna calls it while ``study.tell`` records a finished trial, and
the searcher hands it the trial's last result for the length of that call. ``constraints_func`` is ``TPESampler``'s
public argument (deprecated in Optuna 5.0 in favour of ``Trial.set_constraint``; scheduled for removal in 7.0, and
optuna is capped below 5.2 in pyproject.toml). ``tests/tuner/test_multi_objective.py`` checks that a constraint
still reaches TPE.

Multi-objective TPE models every finished trial (the window of ``tuner.search.sampler`` ranks trials by one
value, which several objectives do not have); its cost per suggestion therefore grows with the study.

``ConstrainedOptunaSearch`` is the searcher experiments saved before ``TPESearch`` were pickled with (Ray's
``OptunaSearch``, telling a trial without every objective as PRUNED, with the feasibility hand-over): it stays
so that they restore.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from tuner.experiment.objectives import Constraint
from tuner.search.tpe_search import finite


class FeasibilityFromResult:
    """``constraints_func`` for Optuna: the violations of the completing trial's result (``result``, set by
    ``ConstrainedOptunaSearch`` around each ``tell``). A class, not a closure, so the searcher pickles."""

    def __init__(self, constraints: Sequence[Constraint]):
        self.constraints = list(constraints)
        self.result: dict[str, Any] | None = None

    def __call__(self, trial: optuna.trial.FrozenTrial) -> list[float]:
        result = self.result or {}
        return [c.violation(result.get(c.metric)) for c in self.constraints]


class ConstrainedOptunaSearch(OptunaSearch):
    """``OptunaSearch`` for several objectives or constraints, as experiments saved before ``TPESearch`` hold it:
    lets its sampler's ``FeasibilityFromResult`` (if any) see the result being told, and tells a trial missing an
    objective's value as PRUNED."""

    def __init__(self, *args: Any, feasibility: FeasibilityFromResult | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.feasibility = feasibility

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        told = result if result and all(finite(result.get(m)) for m in metrics) else None
        if self.feasibility is not None:
            self.feasibility.result = result
        try:
            super().on_trial_complete(trial_id, told, error)
        finally:
            if self.feasibility is not None:
                self.feasibility.result = None


def tpe_with_constraints(seed: int, samples: int, feasibility: FeasibilityFromResult | None,
                         windowed: bool) -> optuna.samplers.BaseSampler:  # fmt: skip
    """The sweep's TPE (``tuner.search.sampler.tpe_sampler``), with ``feasibility`` as its constraints and, for
    several objectives (``windowed`` False), over the whole study."""
    from tuner.search.sampler import tpe_sampler

    extra: dict[str, Any] = {"constraints_func": feasibility} if feasibility is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # constraints_func's deprecation (see the module docstring)
        return tpe_sampler(seed, samples, windowed=windowed, **extra)
