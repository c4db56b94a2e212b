"""A sweep's objectives and constraints, and the Pareto front they define.

A sweep has one objective (``--metric FreeRun/GeoDeg``) or several (``--metric`` repeated, a ``--mode`` per
metric or none). The first objective is the one ASHA stops on and the trainer keeps ``best_model.pt`` by; with
several, Optuna's multi-objective TPE searches them all, and the results speak of the front: the trials no other
feasible trial dominates (at least as good on every objective and better on one).

A constraint (``--constraint "FreeRun/long/DivergedClips<=0"``) is ``METRIC<=BOUND`` or ``METRIC>=BOUND``. Optuna
sees it as a violation, ``value - bound`` (``bound - value``), feasible when at most 0; a trial whose value is
missing (NaN) counts as infeasible. An infeasible trial is never on the front and never exported.

A trial is scored by its best model (``best_model.pt``, what export points to): its best epoch by the first
objective, and every other objective's value at that epoch (``best_epoch/<metric>`` in ``trials.parquet``), so a
point of the front is one model's. (Optuna is told the trial's last report, as Ray's ``OptunaSearch`` does.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainer_core.errors import ConfigError, did_you_mean

MODES = ("min", "max")
_CONSTRAINT = re.compile(r"^\s*([^<>=\s]+)\s*(<=|>=)\s*([-+0-9.eE]+|[-+]?inf)\s*$")


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str

    def better(self, a: float, b: float) -> bool:
        return a < b if self.mode == "min" else a > b


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # "<=" or ">="
    bound: float

    @classmethod
    def parse(cls, text: str, known: Sequence[str] | None = None) -> Constraint:
        """``METRIC<=BOUND`` / ``METRIC>=BOUND``; anything else, or a metric not in ``known`` (when given), is a
        ``ConfigError``."""
        m = _CONSTRAINT.match(text)
        if m is None:
            raise ConfigError(f"--constraint {text!r}: must be METRIC<=VALUE or METRIC>=VALUE, e.g. "
                              "'FreeRun/long/DivergedClips<=0'")  # fmt: skip
        metric, op, bound = m.group(1), m.group(2), float(m.group(3))
        if known is not None and metric not in known:
            raise ConfigError(f"--constraint {text!r}: {metric!r} is not a metric the trainer reports"
                              f"{did_you_mean(metric, list(known))}")  # fmt: skip
        return cls(metric, op, bound)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"

    def violation(self, value: float) -> float:
        """Optuna's constraint value: at most 0 when satisfied; NaN (no value) is a violation of 1."""
        if value is None or not math.isfinite(float(value)):
            return 1.0
        return float(value) - self.bound if self.op == "<=" else self.bound - float(value)


def objectives_from_options(metrics: Sequence[str], modes: Sequence[str], known: Sequence[str],
                            default_mode: str) -> list[Objective]:  # fmt: skip
    """The objectives of ``--metric`` (repeated) and ``--mode`` (none, or one per metric); one line per problem.

    With no ``--mode``, the first metric takes ``default_mode`` (the base config's objective mode when it is the
    base config's objective) and every other metric is minimised.
    """
    problems = []
    if modes and len(modes) != len(metrics):
        problems.append(f"--mode is given {len(modes)} time(s) for {len(metrics)} --metric(s); give one --mode per "
                        "--metric, in the same order, or none")  # fmt: skip
    for mode in modes:
        if mode not in MODES:
            problems.append(f"--mode is {mode!r}, but must be min or max")
    for metric in metrics:
        if metric not in known:
            problems.append(f"--metric {metric!r}: not a metric the trainer reports{did_you_mean(metric, list(known))}")
    seen = [m for i, m in enumerate(metrics) if m in metrics[:i]]
    if seen:
        problems.append(f"--metric {seen[0]!r} is given twice; each objective once")
    if problems:
        raise ConfigError("; ".join(problems))
    if modes:
        return [Objective(m, mode) for m, mode in zip(metrics, modes)]
    return [Objective(m, default_mode if i == 0 else "min") for i, m in enumerate(metrics)]


def pareto_mask(points: np.ndarray, modes: Sequence[str], feasible: np.ndarray | None = None) -> np.ndarray:
    """Which rows of ``points`` (n trials x k objectives) are non-dominated among the feasible rows with every
    objective finite. Row ``a`` dominates ``b`` when it is at least as good on every objective and better on one;
    equal rows do not dominate each other, so both stay on the front."""
    pts = np.asarray(points, dtype=float).reshape(len(points), len(modes))
    signed = pts * np.array([1.0 if m == "min" else -1.0 for m in modes])  # lower is better on every column
    ok = np.isfinite(signed).all(axis=1)
    if feasible is not None:
        ok &= np.asarray(feasible, dtype=bool)
    mask = np.zeros(len(pts), dtype=bool)
    idx = np.flatnonzero(ok)
    cand = signed[idx]
    for j, i in enumerate(idx):
        dominated = np.all(cand <= cand[j], axis=1) & np.any(cand < cand[j], axis=1)
        mask[i] = not dominated.any()
    return mask


def spread(n_front: int, k: int) -> list[int]:
    """``k`` indices spread evenly over a front of ``n_front`` points sorted by one objective, both ends (0 and
    ``n_front - 1``) included."""
    if k >= n_front:
        return list(range(n_front))
    if k == 1:
        return [0]
    return sorted({round(i * (n_front - 1) / (k - 1)) for i in range(k)})
