"""Optuna define-by-run functions: ``trial -> None``, recording the params on the trial.

Ray's ``OptunaSearch(space=define_by_run(space))`` takes the function as is. The
stage count is asked first, so TPE sees the per-stage dimensions as conditional on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from search_spaces.catalog import FAMILIES, family_indices, param_name
from search_spaces.spec import SearchSpace


def define_by_run(space: SearchSpace) -> Callable[[Any], None]:
    def define(trial: Any) -> None:
        n = None
        if space.searches_stages:
            d = space.dims["n_stages"]
            n = int(d.suggest(trial, "n_stages")) if d.searched else int(d.value)
        for name, d in space.dims.items():
            if not d.searched or name == "n_stages":
                continue
            if name in FAMILIES:
                for k in family_indices(name, n or 0):
                    d.suggest(trial, param_name(name, k))
            else:
                d.suggest(trial, name)
        return None

    return define
