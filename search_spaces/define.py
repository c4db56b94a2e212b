"""Optuna define-by-run functions: ``trial -> None``, recording the params on the trial.

The sweep's searcher runs it on each trial it asks Optuna for. It is a
picklable object, not a closure, because Tune saves the searcher with the
experiment state. The stage count is asked first, so TPE sees the per-stage
dimensions as conditional on it; a parameter with a ``when`` condition
(``adaptive_loss_alpha`` for ``gradnorm``) is asked last, only when it holds.
"""

from __future__ import annotations

from typing import Any

from search_spaces.catalog import CATALOG, FAMILIES, condition_holds, family_indices, param_name
from search_spaces.spec import SearchSpace


class DefineByRun:
    def __init__(self, space: SearchSpace):
        self.space = space

    def __call__(self, trial: Any) -> None:
        space = self.space
        n = None
        if space.searches_stages:
            d = space.dims["n_stages"]
            n = int(d.suggest(trial, "n_stages")) if d.searched else int(d.value)
        values = {name: d.value for name, d in space.dims.items() if not d.searched}
        conditional = [name for name in space.dims if CATALOG[name].when is not None]
        for name, d in space.dims.items():
            if not d.searched or name == "n_stages" or name in conditional:
                continue
            if name in FAMILIES:
                for k in family_indices(name, n or 0):
                    d.suggest(trial, param_name(name, k))
            else:
                values[name] = d.suggest(trial, name)
        for name in conditional:
            if space.dims[name].searched and condition_holds(name, values):
                space.dims[name].suggest(trial, name)
        return None


def define_by_run(space: SearchSpace) -> DefineByRun:
    return DefineByRun(space)
