"""Sampling configs from a space with Optuna, and a readable table of a space."""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.catalog import CATALOG, FAMILIES
from search_spaces.define import define_by_run
from search_spaces.mapping import params_to_config
from search_spaces.spec import SearchSpace
from trainer_core.config import TrainConfig


def sample_params(space: SearchSpace, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` param sets drawn by Optuna's random sampler (what TPE draws before it has results)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    define = define_by_run(space)
    out = []
    for _ in range(n):
        trial = study.ask()
        define(trial)
        out.append(dict(trial.params))
    return out


def sample_configs(space: SearchSpace, n: int, seed: int, base: TrainConfig) -> list[TrainConfig]:
    return [params_to_config(space, p, base) for p in sample_params(space, n, seed)]


def space_table(space: SearchSpace) -> str:
    """The space as a table: every parameter it names, searched or fixed, with bounds and scale."""
    rows = [("param", "kind", "status", "bounds / value", "scale", "meaning")]
    for name, d in space.dims.items():
        kind = d.kind + (" per stage" if name in FAMILIES else "")
        status = "searched" if d.searched else "fixed"
        scale = ("log" if d.log else "linear") if d.searched and not d.choices else ("choice" if d.choices else "")
        rows.append((name, kind, status, d.describe(), scale, CATALOG[name].help))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"space `{space.name}` ({space.source}): {space.dimension_count()} searched dimensions"]
    if space.description:
        lines.append(space.description)
    lines.append("")
    for i, r in enumerate(rows):
        lines.append("  ".join(r[j].ljust(widths[j]) for j in range(5)) + "  " + r[5])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    rules = space.rules
    lines.append("")
    lines.append(
        f"rules: free-run weight starts <= {rules.freerun_first_max}, rises by at most {rules.freerun_step_max} "
        f"per stage, never falls, ends >= {rules.freerun_final_min}, stays <= {rules.freerun_cap}; "
        "horizons never shrink; TF decays from tf_max to tf_min"
    )
    lines.append("parameters not listed keep the base config's values")
    return "\n".join(lines)
