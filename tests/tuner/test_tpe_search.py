"""The sweep's searcher (``tuner.search.tpe_search``): Optuna's ask/tell behind Tune's ``Searcher``, one
suggestion prepared ahead in long sweeps, and no trial left RUNNING in the study by a prepared suggestion."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import optuna

from tests.conftest import REPO
from tuner.search.sampler import tpe_sampler
from tuner.search.tpe_search import TPESearch


def _space(trial):
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_int("n", 1, 4)


def _objective(params: dict) -> float:
    return (params["x"] - 0.3) ** 2 + 0.1 * params["n"]


def _search(prefetch_until: int, seed: int = 0, warm: dict | None = None) -> TPESearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return TPESearch(_space, metric="loss", mode="min", sampler=tpe_sampler(seed, 40),
                     points_to_evaluate=[warm] if warm else None, prefetch_until=prefetch_until)  # fmt: skip


def _states(search: TPESearch) -> list[str]:
    return [t.state.name for t in search.study.get_trials(deepcopy=False)]


def test_without_prefetch_it_suggests_what_optunas_ask_and_tell_does():
    search = _search(0, warm={"x": 0.5, "n": 2})
    study = optuna.create_study(sampler=tpe_sampler(0, 40))
    study.enqueue_trial({"x": 0.5, "n": 2})
    for i in range(15):
        params = search.suggest(f"t{i}")
        trial = study.ask()
        _space(trial)
        assert params == trial.params, i
        search.on_trial_result(f"t{i}", {"loss": 2 * _objective(params), "training_iteration": 1})
        search.on_trial_complete(f"t{i}", {"loss": _objective(params), "training_iteration": 2})
        study.tell(trial, _objective(params))
    assert _states(search) == ["COMPLETE"] * 15
    assert search.study.trials[0].params == {"x": 0.5, "n": 2}  # the warm start first
    assert search.study.trials[3].intermediate_values == {1: 2 * _objective(search.study.trials[3].params)}


def test_it_prepares_one_suggestion_ahead_and_none_past_the_samples():
    search = _search(5, warm={"x": 0.5, "n": 2})
    assert search.suggest("t0") == {"x": 0.5, "n": 2}
    assert _states(search) == ["RUNNING", "RUNNING"]  # t0 and the prepared one
    prepared = search._ready.result().params
    assert search.suggest("t1") == prepared  # handed out as prepared
    assert search.suggest("t1") == prepared  # asked again for the same trial: the same config
    for i in range(2, 5):
        search.on_trial_complete(f"t{i - 2}", {"loss": 1.0 + i})
        search.suggest(f"t{i}")
    assert len(search.study.trials) == 5  # the fifth suggestion prepared nothing more
    assert search._ready is None


def test_a_prepared_suggestion_is_kept_by_its_driver_and_failed_on_restore(tmp_path):
    """Tune saves the searcher with the experiment; a driver killed before it handed the prepared suggestion out
    leaves it RUNNING in the saved study. Restored (as ``Tuner.restore`` does: the searcher it was created with,
    then ``restore`` from the saved file), that trial is told FAIL and the search goes on with new trials."""
    search = _search(10)
    fresh = pickle.loads(pickle.dumps(search))  # what Tune pickles when the Tuner is made
    for i in range(2):
        search.suggest(f"t{i}")
    search.on_trial_complete("t0", {"loss": 0.5})
    path = tmp_path / "searcher.pkl"
    search.save(str(path))
    assert _states(search) == ["COMPLETE", "RUNNING", "RUNNING"]
    prepared = search.study.trials[2].params
    assert search.suggest("t2") == prepared  # the saving driver still hands it out

    fresh.restore(str(path))
    assert _states(fresh) == ["COMPLETE", "RUNNING", "FAIL"]
    fresh.on_trial_complete("t1", {"loss": 0.25})  # the unfinished trial still completes after the restore
    fresh.suggest("t2")
    assert _states(fresh)[:4] == ["COMPLETE", "COMPLETE", "FAIL", "RUNNING"]
    assert fresh._trials["t2"].number == 3  # a new trial, not the failed one


def test_a_missing_or_nan_objective_is_told_pruned_and_an_error_failed():
    search = _search(0)
    for i, result in enumerate([{"loss": float("nan")}, {}, None, {"loss": 1.0}]):
        search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", result, error=result is None)
    assert _states(search) == ["PRUNED", "PRUNED", "FAIL", "COMPLETE"]
    search.on_trial_complete("t3", {"loss": 0.0})  # a second completion changes nothing
    assert search.study.trials[3].value == 1.0


SCRIPT = r"""
import json, sys, threading
import optuna, ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from tuner.search.sampler import tpe_sampler
from tuner.search.tpe_search import TPESearch

def space(trial):
    trial.suggest_float("x", 0.0, 1.0)

def trainable(config):
    for epoch in range(1, 3):
        tune.report({"loss": (config["x"] - 0.3) ** 2 + 1.0 / epoch})

THREADS = []

class Counted(TPESearch):
    def _ask(self):
        THREADS.append(threading.current_thread().name)
        return super()._ask()

optuna.logging.set_verbosity(optuna.logging.WARNING)
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
search = Counted(space, metric="loss", mode="min", sampler=tpe_sampler(0, 16), prefetch_until=16)
grid = tune.Tuner(tune.with_resources(trainable, {"cpu": 0.5}),
                  tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(search, 4), num_samples=16),
                  run_config=tune.RunConfig(storage_path=sys.argv[1], name="pf", verbose=0)).fit()
trials = search.study.get_trials(deepcopy=False)
print(json.dumps({"states": [t.state.name for t in trials], "told": sorted(round(t.value, 9) for t in trials),
                  "tune": sorted(round(r.metrics["loss"], 9) for r in grid),
                  "configs": sorted(r.config["x"] for r in grid), "study": sorted(t.params["x"] for t in trials),
                  "ahead": sum(name.startswith("tpe-prefetch") for name in THREADS)}))
"""


def test_a_real_tune_sweep_with_prefetch_tells_every_trial_and_leaves_none_running(tmp_path):
    """16 trials through Ray Tune with a suggestion prepared ahead: all but the first were drawn off Tune's loop,
    each trial ran the config the study holds for it, every trial was told its last result, and the study has no
    trial left RUNNING."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["states"] == ["COMPLETE"] * 16
    assert out["ahead"] == 15
    assert out["configs"] == out["study"]
    assert out["told"] == out["tune"]
