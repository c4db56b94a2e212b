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
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class _StudyWindow:
    """A study whose finished trials are the most recent ``recent`` and the ``best`` best of the rest.

    ``cache`` (the sampler's, kept across its suggestions) holds the window's trial numbers as of the study's count
    of finished trials: TPE reads the trials four to five times per suggestion, and ranking the older ones on each
    read cost about an eighth of a suggestion at 1,000 trials. Finished trials only ever join a study, so while their
    count is the same, so is the window (the suggestions are the same as without the cache).
    """

    def __init__(self, study: optuna.Study, recent: int, best: int, cache: dict[Any, frozenset[int]] | None = None):
        self._study, self._recent, self._best = study, recent, best
        self._cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:  # fmt: skip
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        finished = [t for t in trials if t.state in _FINISHED]
        if len(finished) <= self._recent + self._best:
            return trials
        # The window depends on which finished states are read, not on the unfinished ones read with them.
        read = frozenset(_FINISHED) if states is None else frozenset(states) & frozenset(_FINISHED)
        key = (self._study.study_name, read, len(finished))
        keep = self._cache.get(key) if self._cache is not None else None
        if keep is None:
            keep = self._keep(finished)
            if self._cache is not None:
                for stale in [k for k in self._cache if k[2] != key[2]]:  # only the newest count is asked again
                    del self._cache[stale]
                self._cache[key] = keep
        return [t for t in trials if t.number in keep or t.state not in _FINISHED]

    def _keep(self, finished: list[FrozenTrial]) -> frozenset[int]:
        """The numbers of the window's finished trials."""
        finished.sort(key=lambda t: t.number)
        recent, older = finished[-self._recent :], finished[: -self._recent]
        sign = 1.0 if self._study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0

        def key(t: FrozenTrial) -> float:
            v = t.value if t.state == TrialState.COMPLETE and t.value is not None else math.nan
            return sign * v if math.isfinite(v) else math.inf

        return frozenset(t.number for t in recent) | {t.number for t in sorted(older, key=key)[: self._best]}

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)


class WindowedTPESampler(optuna.samplers.TPESampler):
    """``TPESampler`` that models a window of the study (see the module docstring)."""

    def __init__(self, *args: Any, recent: int = WINDOW_RECENT, best: int = WINDOW_BEST, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.recent, self.best = recent, best
        self._kept: dict[Any, frozenset[int]] = {}  # the window as of the last count of finished trials

    def _window(self, study: optuna.Study) -> Any:
        kept = self.__dict__.setdefault("_kept", {})  # a sampler pickled before there was a cache has none
        return _StudyWindow(study, self.recent, self.best, kept)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return super().infer_relative_search_space(self._window(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return super().sample_relative(self._window(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:  # fmt: skip
        return super().sample_independent(self._window(study), trial, param_name, param_distribution)


def tpe_sampler(seed: int, samples: int, windowed: bool = True, **extra: Any) -> optuna.samplers.BaseSampler:
    """The sweep's TPE: multivariate and grouped (the per-stage dimensions with the stage count they hang on),
    a quarter of the budget (3 to 10 trials) random start-up; windowed when the sweep outgrows the window (and
    ``windowed``: a multi-objective study has no single value to window by). ``extra``: more ``TPESampler``
    arguments (``constraints_func``, ``tuner.search.multi``)."""
    import warnings

    kwargs = {"seed": seed, "multivariate": True, "group": True, "n_startup_trials": max(3, min(10, samples // 4)),
              **extra}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if windowed and samples > WINDOW_RECENT + WINDOW_BEST:
            return WindowedTPESampler(**kwargs)
        return optuna.samplers.TPESampler(**kwargs)
