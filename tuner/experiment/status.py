"""Where a sweep stands: one status line, persisted in the experiment folder for ``motiontune status``.

The line, as the sweep prints it and as ``motiontune status`` prints it back::

    progress search: 2 running, 5 done, 3 stopped early, 1 diverged, 0 errored of 16 trials | 58 trial-epochs \
of budget 200 | best FreeRun/GeoDeg 6.5123 (trial 8a3c_00003) | elapsed 0:04:10 | left <= 0:07:30

"done" trials ran every epoch; "stopped early" ones were stopped by ASHA (or the budget). "left" divides the
trial-epochs still possible (every unfinished trial run to its last epoch, within the budget) by the rate so
far, so with ASHA stopping trials it is an upper estimate. ``progress.json`` holds the last status of each
phase (``search``, ``verification``) with when and by which process it was written.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tuner.experiment.files import ExperimentError, join, read_bytes, write_bytes
from tuner.experiment.lock import process_alive
from tuner.experiment.meta import ExperimentMeta

PROGRESS_FILE = "progress.json"
PHASES = ("search", "verification")


@dataclass
class Snapshot:
    """The counts behind one status line."""

    phase: str  # "search" or "verification"
    total: int  # trials the phase will run in all
    metric: str
    mode: str
    max_epochs: int  # epochs of a trial that runs to the end
    budget: int | None = None  # trial-epochs the whole sweep may use (--budget)
    running: int = 0
    completed: int = 0
    stopped: int = 0
    diverged: int = 0
    errored: int = 0
    epochs: int = 0  # trial-epochs run so far
    possible: int = 0  # trial-epochs the phase may still run
    best: float | None = None
    best_trial: str = ""
    epochs_before: int = 0  # trial-epochs run before this driver started (a resumed sweep); the rate excludes them
    started: float = 0.0  # epoch seconds, when this driver started the phase
    updated: float = 0.0
    finished: bool = False
    # A multi-objective search: its objectives ([metric, mode] each), and its front as of now (the finished feasible
    # trials' best models, as the trials table scores them): its size and each objective's range along it.
    objectives: list = field(default_factory=list)
    front: int | None = None
    front_ranges: list = field(default_factory=list)  # [low, high] per objective


def clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def render(s: Snapshot) -> str:
    """The status line of ``s`` as of ``s.updated``."""
    elapsed = max(0.0, s.updated - s.started)
    budget = f" of budget {s.budget}" if s.budget else ""
    best = f"{s.best:.4f}" + (f" (trial {s.best_trial})" if s.best_trial else "") if s.best is not None else "-"
    if s.finished:
        left = "finished"
    elif s.epochs > s.epochs_before and elapsed > 0:
        left = f"left <= {clock(s.possible * elapsed / (s.epochs - s.epochs_before))}"
    else:
        left = "left ?"
    front = ""
    if s.front is not None:
        ends = ", ".join(f"{_short(m)} {lo:.4g}..{hi:.4g}" for (m, _), (lo, hi) in zip(s.objectives, s.front_ranges))
        front = f" | front {s.front}" + (f" ({ends})" if ends else "")
    return (
        f"progress {s.phase}: {s.running} running, {s.completed} done, {s.stopped} stopped early, {s.diverged} "
        f"diverged, {s.errored} errored of {s.total} trials | {s.epochs} trial-epochs{budget} | best {s.metric} "
        f"{best}{front} | elapsed {clock(elapsed)} | {left}"
    )


def _short(metric: str) -> str:
    """``FreeRun/long/FootSkateMS`` -> ``long/FootSkateMS``: the status line stays one line."""
    return metric.removeprefix("FreeRun/") if metric.startswith("FreeRun/long/") else metric


def save(experiment: str, snap: Snapshot) -> None:
    """Persist ``snap`` as its phase's entry of ``progress.json`` (one small write; atomic on local disk)."""
    path = join(experiment, PROGRESS_FILE)
    state = _read(path)
    state[snap.phase] = {**asdict(snap), "line": render(snap), "host": socket.gethostname(), "pid": os.getpid()}
    write_bytes(path, (json.dumps(state, indent=1) + "\n").encode())


def _read(path: str) -> dict[str, Any]:
    data = read_bytes(path)
    try:
        state = json.loads(data) if data else {}
    except json.JSONDecodeError:
        return {}
    return state if isinstance(state, dict) else {}


def freshness(entry: dict[str, Any], now: float | None = None) -> str:
    """How current a persisted status is, in words."""
    now = time.time() if now is None else now
    age = clock(now - float(entry.get("updated", now)))
    if entry.get("finished"):
        return f"({entry['phase']} finished {age} ago)"
    alive = process_alive(str(entry.get("host", "")), int(entry.get("pid", 0)))  # None: written on another host
    who = f"pid {entry.get('pid')} on {entry.get('host')}"
    if alive is False:
        return (f"(as of {age} ago; its driver, {who}, is gone: `motiontune resume` continues it)")  # fmt: skip
    return f"(as of {age} ago, written by {who})"


def snapshot_from_results(meta: ExperimentMeta) -> Snapshot:
    """The search's status rebuilt from Ray Tune's own experiment state (a sweep with no ``progress.json``)."""
    from tuner.experiment.results import collect_results

    trials, history = collect_results(meta)
    max_epochs = meta.epochs
    snap = Snapshot("search", meta.samples, meta.metric, meta.mode, max_epochs, meta.budget)
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    snap.running, snap.completed, snap.stopped = (counts.get(k, 0) for k in ("RUNNING", "COMPLETED", "STOPPED"))
    snap.diverged, snap.errored = counts.get("DIVERGED", 0), counts.get("ERROR", 0)
    snap.epochs = int(trials["epochs"].sum()) if len(trials) else 0
    col = f"best/{meta.metric}"
    unfinished = trials[trials["status"].isin(["RUNNING", "PENDING", "PAUSED"])] if len(trials) else trials
    snap.possible = int((max_epochs - unfinished["epochs"]).clip(lower=0).sum()) if len(unfinished) else 0
    snap.possible += max(0, meta.samples - len(trials)) * max_epochs
    if len(trials) and trials[col].notna().any():
        i = trials[col].idxmin() if meta.mode == "min" else trials[col].idxmax()
        snap.best, snap.best_trial = float(trials.loc[i, col]), str(trials.loc[i, "trial_id"])
    if len(trials):
        snap.started = float(trials["start_time"].min())
        snap.updated = float(trials["end_time"].max())
    snap.finished = len(trials) == meta.samples and not len(unfinished)
    if meta.multi_objective and "pareto" in trials:
        from tuner.experiment.results import point_column

        front = trials[trials["pareto"].astype(bool)]
        snap.objectives = [[o.metric, o.mode] for o in meta.objectives]
        snap.front = len(front)
        cols = [front[point_column(o.metric, meta.metric)] for o in meta.objectives]
        snap.front_ranges = [[float(c.min()), float(c.max())] for c in cols] if len(front) else []
    return snap


def status_lines(experiment_dir: str) -> list[str]:
    """What ``motiontune status`` prints: the experiment, then each phase's last status line and how fresh it is."""
    meta = ExperimentMeta.load(experiment_dir)
    state = _read(join(meta.path, PROGRESS_FILE))
    lines = [f"experiment: {meta.path}"]
    for phase in PHASES:
        entry = state.get(phase)
        if isinstance(entry, dict):
            snap = Snapshot(**{f.name: entry[f.name] for f in fields(Snapshot) if f.name in entry})
            lines += [render(snap), "  " + freshness(entry)]
    if len(lines) == 1:
        try:
            snap = snapshot_from_results(meta)
        except ExperimentError:
            return lines + ["progress search: not started yet (no trial has reported)"]
        lines += [render(snap), "  (rebuilt from Ray Tune's experiment state: this sweep wrote no progress.json)"]
    return lines
