"""Which config of a multi-objective sweep to export: ``--prefer METRIC`` within ``--within METRIC=5%`` of the base.

A front holds several good configs, each better on one objective and worse on another; the user says which trade
they want. ``--prefer FreeRun/long/FootSkateMS --within FreeRun/GeoDeg=5%`` reads: among the feasible configs whose
``FreeRun/GeoDeg`` is at most 5% worse than the base config's, the one with the lowest foot skate. A bound is
relative to the base config's value (``5%``) or absolute (``=6.6``); "worse" follows each objective's mode. The
values compared are the verified means over the fresh seeds when the sweep has a verification (the base's own
re-training is the reference), else the search's single-seed values (the base's warm-start trial the reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from trainer_core.errors import ConfigError, did_you_mean
from tuner.experiment.files import ExperimentError
from tuner.experiment.objectives import Objective


@dataclass(frozen=True)
class Within:
    metric: str
    amount: float
    relative: bool  # amount is a fraction of the base's value; else an absolute bound

    @classmethod
    def parse(cls, text: str, objectives: list[Objective]) -> Within:
        metric, sep, bound = text.partition("=")
        names = [o.metric for o in objectives]
        if not sep or not metric.strip():
            raise ConfigError(f"--within {text!r}: must be METRIC=PERCENT% or METRIC=VALUE, e.g. FreeRun/GeoDeg=5%")
        metric, bound = metric.strip(), bound.strip()
        if metric not in names:
            raise ConfigError(f"--within {text!r}: {metric!r} is not an objective of this sweep (its objectives: "
                              f"{', '.join(names)}){did_you_mean(metric, names)}")  # fmt: skip
        relative = bound.endswith("%")
        try:
            amount = float(bound[:-1] if relative else bound)
        except ValueError:
            amount = math.nan
        if not math.isfinite(amount) or (relative and amount < 0):
            raise ConfigError(f"--within {text!r}: {bound!r} is not a percentage >= 0 or a number")
        return cls(metric, amount / 100 if relative else amount, relative)

    def limit(self, mode: str, base: float) -> float:
        """The worst value allowed: the base's value moved ``amount`` the wrong way, or the absolute bound."""
        if not self.relative:
            return self.amount
        return base + abs(base) * self.amount if mode == "min" else base - abs(base) * self.amount

    def describe(self, mode: str, base: float) -> str:
        limit = self.limit(mode, base)
        what = f"within {self.amount:.0%} of the base's {base:.4f}" if self.relative else "bound"
        return f"{self.metric} {'<=' if mode == 'min' else '>='} {limit:.4f} ({what})"


def prefer_objective(metric: str, objectives: list[Objective]) -> Objective:
    names = [o.metric for o in objectives]
    if metric not in names:
        raise ConfigError(f"--prefer {metric!r}: not an objective of this sweep (its objectives: {', '.join(names)})"
                          f"{did_you_mean(metric, names)}")  # fmt: skip
    return next(o for o in objectives if o.metric == metric)


def choose(candidates: pd.DataFrame, values: dict[str, str], base: dict[str, float], prefer: Objective,
           within: list[Within], objectives: list[Objective]) -> tuple[int, str]:  # fmt: skip
    """The index (into ``candidates``) of the preferred config, and the rule as a sentence.

    ``values``: each objective's column in ``candidates``; ``base``: the base config's value of each objective.
    ``candidates`` are the feasible configs only (the caller's job). No candidate within every bound is one
    ``ExperimentError`` saying which bound and how close the nearest came.
    """
    modes = {o.metric: o.mode for o in objectives}
    keep = pd.Series(True, index=candidates.index)
    for w in within:
        if w.relative and not math.isfinite(base.get(w.metric, math.nan)):
            raise ExperimentError(f"--within {w.metric}={w.amount:.0%}: the base config has no {w.metric} value to be "
                                  "within (no warm-start trial finished); give an absolute bound, e.g. "
                                  f"--within {w.metric}=VALUE")  # fmt: skip
        limit = w.limit(modes[w.metric], base.get(w.metric, math.nan))
        col = candidates[values[w.metric]].astype(float)
        keep &= col <= limit if modes[w.metric] == "min" else col >= limit
    rule = f"lowest {prefer.metric}" if prefer.mode == "min" else f"highest {prefer.metric}"
    if within:
        rule += " among the feasible configs with " + " and ".join(
            w.describe(modes[w.metric], base.get(w.metric, math.nan)) for w in within)
    pool = candidates[keep & candidates[values[prefer.metric]].notna()]
    if pool.empty:
        raise ExperimentError(f"no config meets the export rule ({rule}); loosen --within")
    col = pool[values[prefer.metric]].astype(float)
    return int(col.idxmin() if prefer.mode == "min" else col.idxmax()), rule
