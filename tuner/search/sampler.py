"""The sweep's Optuna sampler: multivariate, grouped TPE, over a window of the study once it grows large.

TPE's cost per suggestion grows with the study: every ``ask`` rebuilds its Parzen estimators from every
finished trial, and the grouped search space walks them all again. Measured on the default space
(``benchmarks/sweep_scale.py``): about 25 ms per suggestion over the first 100 trials, about 165 ms over
trials 900-1000. Past ``WINDOW_RECENT + WINDOW_BEST`` finished trials, ``WindowedTPESampler`` shows TPE the
``WINDOW_RECENT`` most recent finished trials and the ``WINDOW_BEST`` best of the others, so a suggestion
costs what it does at that size however long the sweep runs, while the best region found early stays in
the model. Smaller studies see every trial: the sampler is then Optuna's ``TPESampler`` unchanged.

The window is a view of the study that answers ``_get_trials`` (what TPE and its grouped search space call)
with the windowed list; everything else goes to the study itself. ``_get_trials`` is private to Optuna, and no
public API gives TPE a subset of the study. A throwaway study holding the window (``create_study`` +
``add_trials``) is no like-for-like replacement: TPE (constant liar, this Optuna's default) writes the trial's
relative params into the study it is handed, where they would be lost, and the copy adds to every suggestion
(about 12 ms for 250 trials of two params, three times TPE's own suggestion at that size). So pyproject.toml caps
optuna below the next minor release, and ``tests/tuner/test_sampler.py`` checks that the windowed TPE suggests
what TPE does on the window alone.
"""

from __future__ import annotations

import math
from collections.abc import Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

WINDOW_RECENT = 200
WINDOW_BEST = 50


class _StudyWindow:
    """A study whose finished trials are the most recent ``recent`` and the ``best`` best of the rest."""

    def __init__(self, study: optuna.Study, recent: int, best: int):
        self._study, self._recent, self._best = study, recent, best

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:  # fmt: skip
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        if len(finished) <= self._recent + self._best:
            return trials
        finished.sort(key=lambda t: t.number)
        recent, older = finished[-self._recent :], finished[: -self._recent]
        sign = 1.0 if self._study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0

        def key(t: FrozenTrial) -> float:
            v = t.value if t.state == TrialState.COMPLETE and t.value is not None else math.nan
            return sign * v if math.isfinite(v) else math.inf

        keep = {t.number for t in recent} | {t.number for t in sorted(older, key=key)[: self._best]}
        return [t for t in trials if t.number in keep or t.state not in (TrialState.COMPLETE, TrialState.PRUNED)]

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)


class WindowedTPESampler(optuna.samplers.TPESampler):
    """``TPESampler`` that models a window of the study (see the module docstring)."""

    def __init__(self, *args: Any, recent: int = WINDOW_RECENT, best: int = WINDOW_BEST, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.recent, self.best = recent, best

    def _window(self, study: optuna.Study) -> Any:
        return _StudyWindow(study, self.recent, self.best)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return super().infer_relative_search_space(self._window(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return super().sample_relative(self._window(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:  # fmt: skip
        return super().sample_independent(self._window(study), trial, param_name, param_distribution)


def tpe_sampler(seed: int, samples: int) -> optuna.samplers.BaseSampler:
    """The sweep's TPE: multivariate and grouped (the per-stage dimensions with the stage count they hang on),
    a quarter of the budget (3 to 10 trials) random start-up; windowed when the sweep outgrows the window."""
    import warnings

    kwargs = {"seed": seed, "multivariate": True, "group": True, "n_startup_trials": max(3, min(10, samples // 4))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if samples > WINDOW_RECENT + WINDOW_BEST:
            return WindowedTPESampler(**kwargs)
        return optuna.samplers.TPESampler(**kwargs)
