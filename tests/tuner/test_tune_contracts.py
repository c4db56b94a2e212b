"""What motiontune relies on in Ray Tune, checked on a real (tiny) Tune run: they fail loudly when Ray changes.

* SIGUSR1 stops a run gracefully, its trials left to resume (``tuner.search.stop`` passes SIGTERM/SIGINT on as
  SIGUSR1; Ray's docs: "Ray Tune also accepts the SIGUSR1 signal to interrupt training gracefully").
* A restored run calls ``setup`` on its restored callbacks on the driver, in the process that fits it
  (``tuner.search.progress.fresh_callbacks`` hands this driver's progress settings over there).
* A trial that reports one result with its own ``training_iteration`` and returns ends with that result as its
  last, with that iteration, and the searcher is told it (``tuner.search.recorder.replay_finished``).

One Ray session in a child process (about 20 s on 2 cores), so this test's Ray leaves the others' alone.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = r"""
import io, json, os, signal, sys
import ray
from ray import tune

from tuner.experiment.status import Snapshot
from tuner.search.progress import Progress, fresh_callbacks
from tuner.search.stop import Stopped, fit

EPOCHS = 3
# The first run's callback sends SIGTERM, the restored one must not. In the environment, not a global: the
# callback is pickled by value (cloudpickle) into the experiment's state, with the globals it reads.
os.environ["SEND_SIGTERM"] = "1"


def trainable(config):
    import time
    for epoch in range(1, EPOCHS + 1):
        time.sleep(0.3)
        tune.report({"loss": 1.0 / epoch, "epoch": epoch})


class Term(tune.Callback):
    # On the driver, as `ray job stop` or `kill` would: SIGTERM while the Tune loop runs.
    def on_trial_result(self, iteration, trials, trial, result, **info):
        if os.environ.get("SEND_SIGTERM") == "1":
            out["sigusr1_handler_during_fit"] = callable(signal.getsignal(signal.SIGUSR1))
            signal.raise_signal(signal.SIGTERM)


def progress(every, stream):
    return Progress(Snapshot("search", 1, "loss", "min", EPOCHS, None), status_every=every, stream=stream)


out = {}
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
root = sys.argv[1]
path = os.path.join(root, "run")
first = io.StringIO()
tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}), tune_config=tune.TuneConfig(num_samples=1),
                   run_config=tune.RunConfig(name="run", storage_path=root, verbose=0,
                                             callbacks=[progress(111.0, first), Term()]))
try:
    fit(tuner, path)
    out["stopped"] = None
except Stopped as e:
    out["stopped"] = e.signum
out["can_restore"] = tune.Tuner.can_restore(path)

os.environ["SEND_SIGTERM"] = "0"
second = io.StringIO()
tuner = tune.Tuner.restore(path, trainable=tune.with_resources(trainable, {"cpu": 1}), resume_unfinished=True)
fresh = progress(222.0, second)
fresh_callbacks(tuner, [fresh])
grid = fit(tuner, path)
out["epochs"] = [r.metrics.get("training_iteration") for r in grid]
out["errors"] = grid.num_errors
out["second_stream"] = second.getvalue()
ray.shutdown()
print("json " + json.dumps(out))
"""


def test_sigusr1_stops_tune_resumably_and_a_restored_run_takes_this_drivers_progress(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("json ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:] + proc.stdout[-3000:]
    out = json.loads(lines[-1][5:])
    assert out["sigusr1_handler_during_fit"], "Ray Tune no longer installs a SIGUSR1 handler while it runs"
    assert out["stopped"] == 15, "SIGTERM (passed on as SIGUSR1) did not stop the Tune run gracefully"
    assert out["can_restore"], "the run stopped by SIGUSR1 saved no state to resume from"
    # The trial was left to resume, not ended: the restored run trains it to its last epoch.
    assert out["epochs"] == [3] and out["errors"] == 0, out
    # Restored, the run's Progress took this driver's settings (its stream) through Tune's `setup` hook.
    assert "trial   1/1" in out["second_stream"] and "finished" in out["second_stream"], (
        "the restored run's progress lines did not go to this driver's Progress: Tune no longer calls `setup` "
        f"on the restored callbacks (got {out['second_stream']!r})"
    )


REPLAY_SCRIPT = r"""
import json, sys
import ray
from ray import tune
from ray.tune.search import Searcher

told = []


class Once(Searcher):
    # One trial; records what Tune tells the searcher when it ends (public Searcher API).
    def __init__(self):
        super().__init__(metric="loss", mode="min")
        self.n = 0

    def suggest(self, trial_id):
        if self.n:
            return Searcher.FINISHED
        self.n += 1
        return {"x": 1}

    def on_trial_complete(self, trial_id, result=None, error=False):
        told.append({k: result.get(k) for k in ("loss", "epoch", "training_iteration", "replayed")})


def replaying(config):  # a restored trial that the record holds: its final result once, then return
    tune.report({"loss": 0.25, "epoch": 7, "training_iteration": 7, "replayed": 1})


ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
tuner = tune.Tuner(tune.with_resources(replaying, {"cpu": 1}),
                   tune_config=tune.TuneConfig(search_alg=Once(), num_samples=1),
                   run_config=tune.RunConfig(name="replay", storage_path=sys.argv[1], verbose=0))
[result] = list(tuner.fit())
rows = [json.loads(line) for line in open(result.path + "/result.json")]
ray.shutdown()
print("json " + json.dumps({"told": told, "last": result.metrics["training_iteration"],
                            "rows": [r["training_iteration"] for r in rows]}))
"""


def test_a_trial_that_reports_its_recorded_result_ends_with_it_and_the_searcher_is_told(tmp_path):
    proc = subprocess.run([sys.executable, "-c", REPLAY_SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("json ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:] + proc.stdout[-3000:]
    out = json.loads(lines[-1][5:])
    assert out["told"] == [{"loss": 0.25, "epoch": 7, "training_iteration": 7, "replayed": 1}], out
    assert out["last"] == 7 and out["rows"] == [7], "Tune no longer keeps a reported training_iteration"
