"""The sweep's searcher: an Optuna study behind Tune's public ``Searcher`` API, suggesting one trial ahead.

What it does is what Ray's ``OptunaSearch`` did for the sweep, with Optuna's public ask/tell only:
``suggest`` asks the study for a trial and runs the define-by-run space on it (``search_spaces.define``);
``on_trial_result`` reports a single objective per epoch; ``on_trial_complete`` tells the trial's last result
(every objective, and the constraints through the sampler's ``FeasibilityFromResult``, ``tuner.search.multi``).
A trial without a finite value for some objective (ASHA stopped it before a long validation, or it reported NaN)
is told PRUNED: Optuna refuses such a ``tell``, and the trial would stay RUNNING in the study for good.

**Suggesting ahead.** TPE's suggestion costs 20-40 ms of CPU at 1,000 trials (``benchmarks/sweep_scale.py``), and
Tune asks for it inside its driver loop, where every trial's start, report and end waits behind it. With
``prefetch_until`` set, the searcher prepares the next suggestion on a thread as soon as it has handed one out, so
Tune's call takes the prepared one: TPE then runs while the driver waits on Ray, off the loop. The cost is
staleness: a prepared suggestion has not seen the trials that ended while it waited, which for a sweep of
hundreds of trials with several running at once (TPE already suggests without the running trials' results)
changes nothing that matters. Only ``prefetch_until`` suggestions are prepared (the sweep's sample count), so
a finished sweep leaves none behind. A prepared suggestion that was saved with the experiment but never handed
out (the driver stopped between the two) is told FAIL when the searcher is restored: TPE ignores failed trials,
and no trial stays RUNNING. Optuna's in-memory storage is locked per call, so asking on one thread while Tune
tells on another is safe, as Optuna's own ``n_jobs`` threads do; with an RDB storage there is no prefetch.
"""

from __future__ import annotations

import math
import pickle
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

# The sweeps that suggest ahead: from this many samples on (a suggestion's staleness is nothing against them).
PREFETCH_MIN_SAMPLES = 200


class TPESearch(Searcher):
    """Tune ``Searcher`` over an Optuna study (see the module docstring).

    ``space``: a define-by-run function ``trial -> None`` (``search_spaces.define.define_by_run``); ``metric`` and
    ``mode``: one objective, or lists of them; ``points_to_evaluate``: configs asked first (the warm start);
    ``feasibility``: the sampler's ``constraints_func`` when it is a ``FeasibilityFromResult``, which gets each
    completing trial's result for the length of its ``tell``; ``prefetch_until``: prepare the next suggestion
    ahead while fewer than this many were handed out (0: never).
    """

    def __init__(self, space: Any, metric: str | list[str], mode: str | list[str], sampler: optuna.samplers.BaseSampler,
                 points_to_evaluate: list[dict[str, Any]] | None = None, storage: Any = None,
                 study_name: str | None = None, feasibility: Any = None, prefetch_until: int = 0):  # fmt: skip
        super().__init__(metric=metric, mode=mode)
        modes = mode if isinstance(mode, list) else [mode]
        directions = ["minimize" if m == "min" else "maximize" for m in modes]
        self._space = space
        self._study = optuna.create_study(sampler=sampler, storage=storage, study_name=study_name,
                                          directions=directions, load_if_exists=True)  # fmt: skip
        for point in points_to_evaluate or []:
            self._study.enqueue_trial(point)
        self.feasibility = feasibility
        self.prefetch_until = prefetch_until if storage is None else 0
        self._trials: dict[str, optuna.trial.Trial] = {}  # Tune's trial id -> the study's trial
        self._completed: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._ready: Future | None = None  # the next suggestion, being prepared

    # -- suggesting -----------------------------------------------------------------------------------------
    def _ask(self) -> optuna.trial.Trial:
        """A new trial of the study, its params drawn (TPE runs here)."""
        trial = self._study.ask()
        self._space(trial)
        return trial

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if trial_id not in self._trials:
            self._trials[trial_id] = self._take_ready() or self._ask()
            if len(self._trials) < self.prefetch_until:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpe-prefetch")
                self._ready = self._pool.submit(self._ask)
        return dict(self._trials[trial_id].params)

    def _take_ready(self) -> optuna.trial.Trial | None:
        """The prepared suggestion (waiting for it if it is still being drawn); None without one."""
        ready, self._ready = self._ready, None
        return ready.result() if ready is not None else None

    # -- results --------------------------------------------------------------------------------------------
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if isinstance(self.metric, list) or trial_id in self._completed or trial_id not in self._trials:
            return  # Optuna takes no intermediate values for several objectives
        value, step = result.get(self.metric), result.get("training_iteration")
        if finite(value) and step is not None:
            self._trials[trial_id].report(float(value), int(step))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed or trial_id not in self._trials:
            return
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        values = [result.get(m) for m in metrics] if result else None
        if values is not None and all(finite(v) for v in values):
            told, state = [float(v) for v in values], TrialState.COMPLETE
        else:
            told, state = None, TrialState.FAIL if error else TrialState.PRUNED
        if self.feasibility is not None:
            self.feasibility.result = result
        try:
            self._study.tell(self._trials[trial_id], told if told is None or len(told) > 1 else told[0], state=state)
        finally:
            if self.feasibility is not None:
                self.feasibility.result = None
        self._completed.add(trial_id)

    # -- state ----------------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """The state to pickle: the prepared suggestion (waited for) is kept by its number only."""
        ready = self._ready.result() if self._ready is not None else None  # drawn; kept for this driver's next suggest
        state = {k: v for k, v in self.__dict__.items() if k not in ("_pool", "_ready")}
        state["_prepared_number"] = ready.number if ready is not None else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        prepared = state.pop("_prepared_number", None)
        self.__dict__.update(state)
        self._pool, self._ready = None, None
        if prepared is not None:  # prepared by a driver that is gone, never handed out
            self._study.tell(prepared, state=TrialState.FAIL)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f).__dict__)

    @property
    def study(self) -> optuna.Study:
        return self._study


def finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (an objective Optuna can be told)."""
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
