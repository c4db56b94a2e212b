"""Live progress: the status lines a sweep prints (parsed), `motiontune status`, and a terminal's one updating line."""

from __future__ import annotations

import io
import json
import math
import re
import shutil

import pytest

from tests.conftest import run_cli
from tests.trainer_core.test_cli import assert_one_line_error
from tests.tuner.conftest import SMOKE_STATUS_EVERY

LINE = re.compile(
    r"^progress (?P<phase>\w+): (?P<running>\d+) running, (?P<done>\d+) done, (?P<stopped>\d+) stopped early, "
    r"(?P<diverged>\d+) diverged, (?P<errored>\d+) errored of (?P<total>\d+) trials \| (?P<epochs>\d+) "
    r"trial-epochs(?: of budget (?P<budget>\d+))? \| best (?P<metric>\S+) (?:(?P<best>[\d.]+) \(trial "
    r"(?P<trial>\w+)\)|-) \| elapsed (?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d) \| (?P<left>left <= [\d:]+|left \?|finished)$"
)
# Lines come from the driver's loop, which wakes every 0.1 s; the clock prints whole seconds and a loaded
# 2-core machine delays a wake-up now and then: this much beyond the interval is allowed, no more.
SLACK_S = 3


def parse(stdout: str) -> list[dict]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("progress ")]
    parsed = []
    for ln in lines:
        m = LINE.match(ln)
        assert m, f"unparsable progress line: {ln!r}"
        d = m.groupdict()
        d["elapsed"] = int(d["h"]) * 3600 + int(d["m"]) * 60 + int(d["s"])
        d["line"] = ln
        parsed.append(d)
    return parsed


def test_the_sweep_prints_a_progress_line_within_the_interval_and_on_each_trial_event(smoke_sweep):
    exp, trials, history, stdout = smoke_sweep
    lines = parse(stdout)
    assert lines and {d["phase"] for d in lines} == {"search"}
    elapsed = [d["elapsed"] for d in lines]
    assert elapsed[0] <= SMOKE_STATUS_EVERY + SLACK_S  # the first comes at once, not when a trial ends
    assert elapsed == sorted(elapsed)
    gaps = [b - a for a, b in zip(elapsed, elapsed[1:], strict=False)]
    assert max(gaps) <= SMOKE_STATUS_EVERY + SLACK_S, gaps
    epochs = [int(d["epochs"]) for d in lines]
    assert epochs == sorted(epochs) and all(int(d["total"]) == 8 for d in lines)
    assert any(int(d["running"]) == 2 for d in lines) and all(int(d["running"]) <= 2 for d in lines)

    # Each finished trial's line is followed by a status line that counts it.
    out = stdout.splitlines()
    events = [i for i, ln in enumerate(out) if re.match(r"^\[\s*[\d.]+s\] trial\s+\d+/8 ", ln)]
    assert len(events) == 8
    for k, i in enumerate(events, start=1):
        # the next progress line (Tune may print a blank line of its own at the end of the run first)
        after = next((m for m in map(LINE.match, out[i + 1 : i + 3]) if m), None)
        assert after, out[i + 1 : i + 3]
        assert int(after["done"]) + int(after["stopped"]) >= k

    last = lines[-1]
    assert last["left"] == "finished" and last["running"] == "0"
    assert int(last["done"]) == (trials["status"] == "COMPLETED").sum()
    assert int(last["stopped"]) == (trials["status"] == "STOPPED").sum()
    assert int(last["epochs"]) == len(history) == trials["epochs"].sum()
    best = trials.loc[trials["best/FreeRun/GeoDeg"].idxmin()]
    assert last["metric"] == "FreeRun/GeoDeg" and float(last["best"]) == pytest.approx(best["best/FreeRun/GeoDeg"],
                                                                                         abs=5e-5)  # fmt: skip
    assert last["trial"] == best["trial_id"]

    # Before a trial has finished, the estimate of the time left is there once epochs have run.
    assert any(d["left"].startswith("left <= ") for d in lines)


def test_status_prints_the_persisted_line(smoke_sweep):
    exp, _, _, stdout = smoke_sweep
    proc = run_cli("status", str(exp))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == f"experiment: {exp}"
    assert out[1] == parse(stdout)[-1]["line"]  # the same line the sweep printed last
    assert "search finished" in out[2]


def test_status_without_progress_file_rebuilds_from_tunes_state(smoke_sweep, tmp_path):
    exp, trials, history, stdout = smoke_sweep
    copy = tmp_path / "smoke"
    shutil.copytree(exp, copy)
    (copy / "progress.json").unlink()
    proc = run_cli("status", str(copy))
    assert proc.returncode == 0, proc.stderr
    rebuilt = parse(proc.stdout)
    assert len(rebuilt) == 1 and "rebuilt from Ray Tune's experiment state" in proc.stdout
    printed = parse(stdout)[-1]
    for key in ("running", "done", "stopped", "diverged", "errored", "total", "epochs", "best", "trial", "left"):
        assert rebuilt[0][key] == printed[key], key


def test_status_of_a_missing_experiment_and_a_bad_interval(tmp_path):
    assert_one_line_error(run_cli("status", str(tmp_path / "nope")), "experiment directory not found")
    proc = run_cli("sweep", "--smoke-test", "--status-every", "0", "--storage", str(tmp_path / "s"))
    assert_one_line_error(proc, "--status-every is 0, but must be > 0 seconds")
    assert not (tmp_path / "s").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _trial(trial_id: str, status: str, epochs: int, value: float, diverged: int = 0):
    from ray.tune.experiment import Trial

    t = Trial("train_trial", config={}, trial_id=trial_id, stub=True)
    for it in range(1, epochs + 1):
        t.update_last_result({"training_iteration": it, "epoch": it, "FreeRun/GeoDeg": value + epochs - it,
                              "diverged": diverged if it == epochs else 0})  # fmt: skip
    t.set_status(status)
    return t


def test_a_terminal_gets_one_updating_line_and_the_counts_follow_the_trials(tmp_path):
    from ray.tune.experiment import Trial

    from tuner.experiment.status import Snapshot
    from tuner.search.progress import Progress

    term = _Terminal()
    template = Snapshot("search", total=6, metric="FreeRun/GeoDeg", mode="min", max_epochs=4, budget=30)
    progress = Progress(template, status_every=30, experiment=str(tmp_path), stream=term)
    trials = [
        _trial("t1", Trial.TERMINATED, 4, 5.0),  # ran every epoch: done
        _trial("t2", Trial.TERMINATED, 2, 4.0),  # stopped early by ASHA
        _trial("t3", Trial.TERMINATED, 3, 9.0, diverged=1),
        _trial("t4", Trial.ERROR, 1, 8.0),
        _trial("t5", Trial.RUNNING, 1, 7.0),
    ]
    progress.on_step_end(iteration=1, trials=trials)
    progress.on_trial_complete(iteration=2, trials=trials, trial=trials[0])
    progress.on_step_end(iteration=2, trials=trials)
    progress.on_experiment_end(trials=trials)
    text = term.getvalue()
    parts = text.split("\r\x1b[K")[1:]  # every write first returns to the line's start and clears it
    assert len(parts) == 4
    assert not parts[0].endswith("\n") and LINE.match(parts[0])  # the status line stays open, to be overwritten
    assert parts[1].endswith("\n") and "trial   1/6 t1 done" in parts[1]  # event lines scroll up
    assert parts[3].endswith("finished\n")
    d = LINE.match(parts[3].rstrip("\n")).groupdict()
    assert (d["running"], d["done"], d["stopped"], d["diverged"], d["errored"]) == ("1", "1", "1", "1", "1")
    assert d["epochs"] == str(4 + 2 + 3 + 1 + 1) and d["budget"] == "30"
    assert (d["best"], d["trial"]) == ("4.0000", "t2")
    saved = json.loads((tmp_path / "progress.json").read_text())["search"]
    assert saved["finished"] and saved["line"] == parts[3].rstrip("\n")
    # Still possible: t5's 3 epochs and one trial not yet started (4), within what is left of the budget.
    assert saved["possible"] == 7


def test_a_restored_progress_takes_this_drivers_settings_when_tune_sets_it_up(tmp_path):
    """`Tuner.restore` brings back the first driver's Progress (pickled); `fresh_callbacks` hands this driver's over
    through Tune's `setup` hook. A Progress that was not restored keeps its own settings."""
    import pickle

    from tuner.experiment.status import Snapshot
    from tuner.search.progress import Progress, fresh_callbacks

    def progress(every: float, stream: io.StringIO, experiment: str) -> Progress:
        return Progress(Snapshot("search", total=6, metric="FreeRun/GeoDeg", mode="min", max_epochs=4, budget=None),
                        status_every=every, experiment=experiment, stream=stream)  # fmt: skip

    restored = pickle.loads(pickle.dumps(progress(30, io.StringIO(), "/moved/away")))
    here, stream = str(tmp_path), io.StringIO()
    fresh_callbacks(None, [progress(5, stream, here)])
    restored.setup(stop=None, num_samples=6, total_num_samples=6)
    assert (restored.every, restored.experiment, restored.stream) == (5, here, stream)
    restored.on_step_end(iteration=1, trials=[_trial("t1", "RUNNING", 1, 7.0)])
    assert LINE.match(stream.getvalue().rstrip("\n"))

    new = progress(30, io.StringIO(), "/first")
    fresh_callbacks(None, [progress(5, io.StringIO(), here)])
    new.setup(stop=None, num_samples=6, total_num_samples=6)
    assert (new.every, new.experiment) == (30, "/first")  # a new run's Progress is this driver's already
    again = pickle.loads(pickle.dumps(progress(30, io.StringIO(), "/moved/away")))
    again.setup()  # the hand-over was used up by the new run's setup: nothing left to take
    assert (again.every, again.experiment) == (30, "/moved/away")


def test_the_live_front_scores_each_trial_by_its_best_model_as_the_trials_table_does(tmp_path):
    """A trial is on the recorded front by its best epoch's values (and only if its constraints hold there), not by
    its last report: the progress line's front is the same one."""
    import pandas as pd
    from ray.tune.experiment import Trial

    from tuner.experiment.objectives import Constraint, Objective
    from tuner.experiment.results import AT_BEST, with_front
    from tuner.experiment.status import Snapshot
    from tuner.search.progress import Progress

    geo, foot, div = "FreeRun/GeoDeg", "FreeRun/long/FootSkateMS", "FreeRun/long/DivergedClips"
    reports = {  # per epoch: (geo, foot, diverged clips)
        "t1": [(5.0, 1.0, 0), (6.0, 0.1, 0)],  # best model epoch 1; its last report would dominate t2's
        "t2": [(5.5, 0.5, 0), (5.4, 0.6, 0)],
        "t3": [(4.0, 0.2, 1), (4.5, 0.05, 0)],  # best by geo at epoch 1, where a rollout diverged: infeasible
        "t4": [(3.0, None, 0)],  # best of all, but its epoch reported no foot skate: NaN, off the front
    }
    stream = io.StringIO()
    template = Snapshot("search", total=4, metric=geo, mode="min", max_epochs=1, budget=None)
    template.objectives = [[geo, "min"], [foot, "min"]]
    progress = Progress(template, status_every=30, experiment=str(tmp_path), stream=stream)
    progress.constraints = [Constraint(div, "<=", 0)]
    trials, rows = [], []
    for tid, epochs in reports.items():
        t = Trial("train_trial", config={}, trial_id=tid, stub=True)
        trials.append(t)
        for it, (g, f, d) in enumerate(epochs, start=1):
            result = {k: v for k, v in {"training_iteration": it, "epoch": it, geo: g, foot: f, div: d, "diverged": 0}
                      .items() if v is not None}  # fmt: skip
            t.update_last_result(result)
            progress.on_trial_result(iteration=it, trials=trials, trial=t, result=result)
        t.set_status(Trial.TERMINATED)
        g, f, d = min(epochs)
        rows.append({"trial_id": tid, "status": "COMPLETED", f"best/{geo}": g, f"{AT_BEST}{foot}": f or math.nan,
                     f"{AT_BEST}{div}": math.nan if d is None else d})  # fmt: skip
    progress.on_experiment_end(trials=trials)
    table = with_front(pd.DataFrame(rows), [Objective(geo, "min"), Objective(foot, "min")],
                       [Constraint(div, "<=", 0)])  # fmt: skip
    assert list(table["pareto"]) == [True, True, False, False]
    last = stream.getvalue().strip().splitlines()[-1]
    assert "| front 2 (FreeRun/GeoDeg 5..5.4, long/FootSkateMS 0.6..1) |" in last, last
