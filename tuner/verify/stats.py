"""The verified ranking: per config, the objective over the shared seeds, and its paired difference to the base.

Every config was re-trained on the same seeds, so config ``c`` and the base on
seed ``s`` differ only in the config: the per-seed difference is paired, and
its mean gets a 95% Student-t interval (``mean ± t(0.975, n-1) · sd / √n``).
Improvements are signed so that positive is better whatever the mode:
``base - config`` when minimising, ``config - base`` when maximising.

Two values per run: ``best`` (the best epoch's objective, what the search
ranks by and what ``best_model.pt`` holds) and ``final`` (the last epoch's).
The verified ranking is by the mean of ``best``; a config with a missing seed
(diverged or failed) ranks after every config with all seeds.
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import numpy as np
import pandas as pd

from tuner.experiment.objectives import Constraint, pareto_mask
from tuner.experiment.results import AT_BEST

CONFIDENCE = 0.95
VALUES = ("best", "final")
# The re-training trials' extra metrics, reported with their last epoch (``tuner.verify.trial``): the run's
# test split (``trainer_core.train.summary.summary_test_metrics``) and, with --verify-data, that folder.
TEST_PREFIX = "test/"
VERIFY_DATA_PREFIX = "verify_data/"
EXTRA_PREFIXES = (TEST_PREFIX, VERIFY_DATA_PREFIX)


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (``p`` in (0.5, 1)) of Student's t with ``df`` degrees of freedom (SciPy's ``t.ppf``)."""
    if not 0.5 < p < 1 or df <= 0:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df > 0, got p={p}, df={df}")
    from scipy import stats  # here, not at the top: importing scipy.stats takes a second or so

    return float(stats.t.ppf(p, df))


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (NaN where there are too few)."""
    v = [x for x in values if math.isfinite(x)]
    mean = statistics.fmean(v) if v else math.nan
    return mean, (statistics.stdev(v) if len(v) > 1 else math.nan)


def t_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of the finite values and its two-sided Student-t interval."""
    v = [x for x in values if math.isfinite(x)]
    mean, sd = mean_sd(v)
    if len(v) < 2:
        return mean, math.nan, math.nan
    if sd == 0:
        return mean, mean, mean
    half = t_quantile(0.5 + confidence / 2, len(v) - 1) * sd / math.sqrt(len(v))
    return mean, mean - half, mean + half


def improvements(values: list[float], base: list[float], mode: str) -> list[float]:
    """Per seed, how much better than the base (positive = better); NaN where either run is missing."""
    sign = 1.0 if mode == "min" else -1.0
    return [sign * (b - v) if math.isfinite(v) and math.isfinite(b) else math.nan for v, b in zip(values, base)]


def verification_table(runs: pd.DataFrame, plan: Any) -> pd.DataFrame:
    """One row per config of ``plan`` (a ``tuner.verify.plan.VerifyPlan``), best verified first.

    ``runs``: a row per verification trial with columns ``finalist``, ``seed``, ``ok`` (finished, not
    diverged), ``best``, ``final``, ``best_epoch``, ``trial_id``, ``checkpoint`` and any extra metric
    columns (``test/...``, ``verify_data/...``), which become per-seed lists and means too.
    """
    seeds = list(plan.seeds)
    extra_cols = sorted(c for c in runs.columns if c.startswith(EXTRA_PREFIXES))
    objective_modes = dict(getattr(plan, "objectives", {}) or {})  # the objectives after the first
    constraints = [Constraint.parse(c) for c in getattr(plan, "constraints", []) or []]
    for c in constraints:  # a constrained metric is scored per seed like an objective (its mode unused)
        if c.metric != plan.metric:
            objective_modes.setdefault(c.metric, "min" if c.op == "<=" else "max")
    by_key = {(str(r["finalist"]), int(r["seed"])): r for _, r in runs.iterrows()}

    def per_seed(label: str, col: str) -> list[float]:
        out = []
        for s in seeds:
            r = by_key.get((label, s))
            ok = r is not None and bool(r["ok"]) and col in r and r[col] is not None
            out.append(float(r[col]) if ok and not pd.isna(r[col]) else math.nan)
        return out

    base_label = plan.base_label
    rows = []
    for f in plan.finalists:
        row: dict[str, Any] = {
            "label": f.label,
            "is_base": f.label == base_label,
            "trial_id": f.trial_id or "",
            "search_rank": f.search_rank if f.search_rank is not None else -1,
            "search_value": f.search_value,
            "params": json.dumps(f.params, sort_keys=True) if f.params is not None else "",
            "metric": plan.metric,
            "mode": plan.mode,
            "seeds": seeds,
        }
        runs_of = [by_key.get((f.label, s)) for s in seeds]
        row["verify_trial_ids"] = [str(r["trial_id"]) if r is not None else "" for r in runs_of]
        row["checkpoints"] = [str(r["checkpoint"] or "") if r is not None else "" for r in runs_of]
        row["best_epochs"] = [int(r["best_epoch"]) if r is not None and r["ok"] else 0 for r in runs_of]
        row["n_ok"] = sum(1 for r in runs_of if r is not None and bool(r["ok"]))
        for kind in VALUES:
            vals = per_seed(f.label, kind)
            base_vals = per_seed(base_label, kind)
            gain = improvements(vals, base_vals, plan.mode)
            mean, sd = mean_sd(vals)
            g_mean, g_lo, g_hi = t_interval(gain)
            row |= {
                f"{kind}_values": vals,
                f"{kind}_mean": mean,
                f"{kind}_sd": sd,
                f"{kind}_improvement": gain,
                f"{kind}_improvement_mean": g_mean,
                f"{kind}_improvement_lo": g_lo,
                f"{kind}_improvement_hi": g_hi,
                f"{kind}_excludes_zero": bool(math.isfinite(g_lo) and (g_lo > 0 or g_hi < 0)),
            }
        _, row["best_mean_lo"], row["best_mean_hi"] = t_interval(row["best_values"])
        for col in extra_cols:
            vals = per_seed(f.label, col)
            row[col] = vals
            row[f"{col}/mean"] = mean_sd(vals)[0]
        for metric, mode in objective_modes.items():
            col = AT_BEST + metric
            vals, base_vals = per_seed(f.label, col), per_seed(base_label, col)
            mean, sd = mean_sd(vals)
            g_mean, g_lo, g_hi = t_interval(improvements(vals, base_vals, mode))
            row |= {f"{col}/values": vals, f"{col}/mean": mean, f"{col}/sd": sd,
                    f"{col}/improvement_mean": g_mean, f"{col}/improvement_lo": g_lo, f"{col}/improvement_hi": g_hi}
        rows.append(row)
    table = pd.DataFrame(rows)
    if objective_modes or constraints:
        table = _verified_front(table, plan, len(seeds), objective_modes, constraints)
    complete = table["n_ok"] == len(seeds)
    key = table["best_mean"] if plan.mode == "min" else -table["best_mean"]
    order = sorted(range(len(table)), key=lambda i: (not complete.iloc[i], _nan_last(key.iloc[i])))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    table.insert(1, "winner", table["rank"] == 1)
    return table


def _verified_front(table: pd.DataFrame, plan: Any, n_seeds: int, objective_modes: dict[str, str],
                    constraints: list[Constraint]) -> pd.DataFrame:  # fmt: skip
    """``feasible`` (every seed ran and every constraint holds on the mean over the seeds) and, with several
    objectives, ``pareto``: the verified configs no other feasible one beats on every objective's mean."""
    complete = (table["n_ok"] == n_seeds).to_numpy()
    feasible = complete.copy()
    for c in constraints:
        col = "best_mean" if c.metric == plan.metric else f"{AT_BEST}{c.metric}/mean"
        feasible &= np.array([c.violation(v) <= 0 for v in table[col]], dtype=bool)
    table["feasible"] = feasible
    objectives = dict(getattr(plan, "objectives", {}) or {})
    if objectives:
        cols = ["best_mean", *(f"{AT_BEST}{m}/mean" for m in objectives)]
        table["pareto"] = pareto_mask(table[cols].to_numpy(dtype=float), [plan.mode, *objectives.values()], feasible)
    return table


def _nan_last(x: float) -> float:
    return x if math.isfinite(x) else math.inf
