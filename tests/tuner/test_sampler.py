"""The sweep's TPE: plain up to the window's size, windowed past it (recent trials and the best of the rest)."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tuner.search.sampler import WINDOW_BEST, WINDOW_RECENT, WindowedTPESampler, _StudyWindow, tpe_sampler

DIST = {"lr": FloatDistribution(1e-5, 1e-2, log=True), "x": FloatDistribution(0.0, 1.0)}


def _study(n: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(n):  # the value falls then rises: the best trials are the early-middle ones, numbers 95-104
        study.add_trial(create_trial(params={"lr": 1e-3, "x": (i % 97) / 97}, distributions=DIST,
                                     value=abs(i - 100) + 1.0))  # fmt: skip
    return study


def test_small_sweeps_get_optunas_tpe_and_large_ones_the_window():
    small, large = tpe_sampler(0, WINDOW_RECENT + WINDOW_BEST), tpe_sampler(0, 1000)
    assert type(small) is optuna.samplers.TPESampler
    assert isinstance(large, WindowedTPESampler) and (large.recent, large.best) == (WINDOW_RECENT, WINDOW_BEST)


def test_the_window_holds_the_recent_trials_and_the_best_of_the_rest():
    study = _study(600)
    running = study.ask()
    window = _StudyWindow(study, recent=200, best=50)
    trials = window._get_trials(deepcopy=False)
    finished = [t.number for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 250
    assert set(range(400, 600)) <= set(finished)  # the 200 most recent
    assert set(finished) - set(range(400, 600)) == set(range(75, 125))  # the 50 best of the rest (values 1..26)
    assert running.number in [t.number for t in trials]  # unfinished trials are all shown
    assert len(_StudyWindow(study, recent=600, best=50)._get_trials()) == 601  # no window below its size
    assert window.direction == study.direction  # the rest is the study's


def test_a_windowed_tpe_suggests_from_a_large_study():
    study = _study(400)
    study.sampler = WindowedTPESampler(seed=0, multivariate=True, group=True, n_startup_trials=10)
    for _ in range(3):
        trial = study.ask(DIST)
        assert 1e-5 <= trial.params["lr"] <= 1e-2 and 0.0 <= trial.params["x"] <= 1.0
        study.tell(trial, 1.0)


def test_tpe_models_the_window_and_not_the_whole_study():
    """Guards pyproject.toml's cap on optuna: Optuna's TPE reads the trials it models through the private
    ``Study._get_trials``, which ``_StudyWindow`` answers; no public hook gives TPE a subset of the study. So the
    windowed TPE on a large study must suggest what Optuna's TPE suggests on a study of the window's trials alone."""

    def suggest(study: optuna.Study, sampler: optuna.samplers.BaseSampler) -> dict:
        study.sampler = sampler
        return study.ask(DIST).params

    def tpe(cls: type = optuna.samplers.TPESampler, **kwargs: int) -> optuna.samplers.BaseSampler:
        return cls(seed=0, multivariate=True, group=True, n_startup_trials=10, **kwargs)

    study = _study(600)
    keep = set(range(400, 600)) | set(range(75, 125))  # the window (test above)
    alone = optuna.create_study()
    alone.add_trials([t for t in study.get_trials() if t.number in keep])
    windowed = suggest(study, tpe(WindowedTPESampler, recent=200, best=50))
    assert suggest(alone, tpe()) == windowed, (
        f"the windowed TPE did not model the window alone: this Optuna ({optuna.__version__}) no longer reads its "
        "trials through Study._get_trials; tuner/search/sampler.py needs another way to window the study"
    )
    assert suggest(_study(600), tpe()) != windowed  # the whole study suggests otherwise: the check can fail


def test_the_cached_window_suggests_what_the_window_ranked_afresh_does():
    """The window is ranked once per count of finished trials, not on each of TPE's reads: with trials finishing
    and others in flight, the sampler suggests exactly what it does when every read ranks the window anew."""

    class Afresh(WindowedTPESampler):
        def _window(self, study: optuna.Study) -> _StudyWindow:
            return _StudyWindow(study, self.recent, self.best)  # no cache

    def run(sampler: optuna.samplers.BaseSampler) -> list[dict]:
        study = _study(260)
        study.sampler = sampler
        in_flight, asked = [], []
        for i in range(40):
            trial = study.ask(DIST)
            asked.append(trial.params)
            in_flight.append(trial)
            if len(in_flight) > 3:  # trials end out of order, one every ask, some pruned
                done = in_flight.pop(i % 3)
                state = TrialState.PRUNED if i % 7 == 0 else TrialState.COMPLETE
                study.tell(done, None if state == TrialState.PRUNED else abs(done.params["x"] - 0.3), state=state)
        return asked

    kwargs = {"seed": 0, "multivariate": True, "group": True, "n_startup_trials": 10, "recent": 200, "best": 50}
    cached = WindowedTPESampler(**kwargs)
    assert run(cached) == run(Afresh(**kwargs))
    assert len(cached._kept) >= 1  # the cache was used
