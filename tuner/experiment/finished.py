"""The finished-trial record: each finished trial's result, written the moment the trial ends.

Why. Ray Tune saves an experiment's state (each trial's status and last result, the searcher, the scheduler) every
``TUNE_GLOBAL_CHECKPOINT_S`` seconds (its own "auto": every 10 s at least, or 19 times what a save takes) and
when a trial has checkpointed ``CheckpointConfig(num_to_keep)`` times since the last save. Each trial's
``result.json`` reaches storage with those saves. A driver killed outright (SIGKILL, a lost head node) loses what
happened since the last save: a trial that finished in that window is restored as running, trains again from its
last checkpoint, and the epochs it reported since are missing from its ``result.json``. The sweep used to save the
state every 2 s to keep that window small, and every sweep paid for it all the time: at 1,000 one-second trials
the whole state, searcher included, pickled every 2 s made motiontune's per-trial overhead 2.6 times Ray Tune's own
(``benchmarks/README.md``). Now the search keeps Tune's own period, and:

* ``tuner.search.recorder.TrialRecorder``, a Tune callback on the driver, adds an entry per finished trial
  (``FinishedTrial``: its final result and the results it reported under this driver) to ``finished_trials.jsonl``
  in the experiment folder as the trial ends (``append_record``). The line is written before Tune goes on, so a
  killed driver has it; a background thread fsyncs it within milliseconds (an fsync in Tune's loop would cost it
  several ms a trial). Object stores cannot append: there each trial is one object, ``finished_trials/<id>.json``,
  put before Tune goes on.
* ``motiontune resume`` (and a restart after a memory kill) hands the trainable the ids of the recorded trials
  (``tuner.search.sweep.restored_search``). A trial that Tune restores as unfinished but the record holds does not
  train: it reports its recorded final result once, marked ``replayed``, and returns
  (``tuner.search.recorder.replay_finished``). Tune ends the trial with that result as its last, and the scheduler
  and the searcher are told it as when the trial first ended (TPE learns its value).
* ``collect_results`` reads a recorded trial as finished, with the record's final result, and takes its epochs from
  the record where Tune's ``result.json`` lacks them (``reconcile``); a replayed row is never part of a history.

A trial that ended with an error is not recorded: Tune retries it on resume, as before. A trial that Tune had not
saved at all when the driver died (suggested, run and finished within one state period) is unknown to the restored
experiment; its folder stays, and the searcher suggests another trial in its place. The verification, a few long
trials without a record, keeps the short state period (``short_state_period``).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from tuner.experiment.files import filesystem, is_uri, join, write_bytes

RECORD_FILE = "finished_trials.jsonl"  # local (and network-mounted) storage: one line per finished trial
RECORD_DIR = "finished_trials"  # object stores: one object per finished trial
REPLAYED = "replayed"  # set to 1 in the result a resumed trial reports from the record
FORMAT = 1
STATE_PERIOD_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
SHORT_STATE_PERIOD_S = "2"  # for a Tune run without a record (``short_state_period``)
_UNFINISHED = ("RUNNING", "PENDING", "PAUSED")


@dataclass
class FinishedTrial:
    """One line of the record: a trial's final result (``last``) and the results it reported under the driver that
    saw it end (``results``, in the order Tune logged them; all of them unless the trial was resumed)."""

    trial_id: str
    last: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    ended: float = 0.0

    def to_line(self) -> bytes:
        entry = {"format": FORMAT, "trial_id": self.trial_id, "ended": self.ended, "last": self.last,
                 "results": self.results}  # fmt: skip
        return (json.dumps(entry, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_line(cls, line: str | bytes) -> FinishedTrial | None:
        """None for a line that is not a whole entry (the last one, cut by a machine that went down mid-write)."""
        try:
            entry = json.loads(line)
            return cls(str(entry["trial_id"]), dict(entry["last"]), list(entry.get("results") or []),
                       float(entry.get("ended", 0.0)))  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def scalars(result: Mapping[str, Any]) -> dict[str, Any]:
    """A result's top-level numbers and strings (Tune's results also hold the trial's config, a dict)."""
    return {k: v for k, v in result.items() if v is None or isinstance(v, (bool, int, float, str))}


# --- reading --------------------------------------------------------------------------------------------------


def read_record(experiment: str, fs: pafs.FileSystem | None = None) -> dict[str, FinishedTrial]:
    """The finished trials an experiment's record holds, by trial id (the first line of a trial wins).

    ``experiment``: the experiment folder, a local path or a URI; with ``fs``, a path on that pyarrow filesystem.
    """
    if fs is None:
        fs, path = filesystem(experiment)
    else:
        path = experiment
    found: dict[str, FinishedTrial] = {}
    for line in _record_lines(fs, path):
        entry = FinishedTrial.from_line(line)
        if entry is not None:
            found.setdefault(entry.trial_id, entry)
    return found


def _record_lines(fs: pafs.FileSystem, path: str) -> list[bytes]:
    lines: list[bytes] = []
    try:
        with fs.open_input_stream(posixpath.join(path, RECORD_FILE)) as f:
            lines.extend(f.read().splitlines())
    except (FileNotFoundError, OSError):
        pass
    infos = fs.get_file_info(pafs.FileSelector(posixpath.join(path, RECORD_DIR), allow_not_found=True))
    for info in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
        try:
            with fs.open_input_stream(info.path) as f:
                lines.append(f.read())
        except (FileNotFoundError, OSError):
            continue
    return lines


# --- writing --------------------------------------------------------------------------------------------------

_SYNC: queue.Queue[int] = queue.Queue()
_SYNC_LOCK = threading.Lock()
_syncer: threading.Thread | None = None


def _fsync_forever() -> None:
    while True:
        fd = _SYNC.get()
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
            _SYNC.task_done()


def _fsync_later(fd: int) -> None:
    """Hand ``fd`` to the background thread that fsyncs and closes it."""
    global _syncer
    with _SYNC_LOCK:
        if _syncer is None or not _syncer.is_alive():
            _syncer = threading.Thread(target=_fsync_forever, name="motiontune-record-fsync", daemon=True)
            _syncer.start()
    _SYNC.put(fd)


def wait_synced() -> None:
    """Block until every line this process wrote to a local record is fsynced."""
    if _syncer is not None and _syncer.is_alive():
        _SYNC.join()


def append_record(experiment: str, entry: FinishedTrial) -> None:
    """Add ``entry`` to the experiment's record: appended and flushed to the local file before this returns (the
    fsync follows in the background), or one object put on an object store."""
    data = entry.to_line()
    if is_uri(experiment):
        write_bytes(join(experiment, RECORD_DIR, f"{entry.trial_id}.json"), data)
        return
    fd = os.open(join(experiment, RECORD_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # one write() in practice; O_APPEND keeps the line whole at the end of the file
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    _fsync_later(fd)


# --- the results tables ---------------------------------------------------------------------------------------


def reconcile(trial: Any, df: pd.DataFrame, entry: FinishedTrial | None) -> tuple[pd.DataFrame, dict[str, Any], str]:
    """A trial as ``collect_results`` reads it: ``(history frame, last result, Tune status)``.

    ``trial`` is Tune's (``ExperimentAnalysis``), ``df`` its ``result.json`` as a frame, ``entry`` its record line or
    None. A recorded trial is finished (TERMINATED) whatever the saved state says, its last result is the recorded
    one, and where its ``result.json`` lacks epochs the record has, its rows before the record's first are kept and
    the record's follow. A replayed row is dropped in any case.
    """
    if REPLAYED in df.columns:
        df = df[df[REPLAYED] != 1].drop(columns=[REPLAYED]).reset_index(drop=True)
    last = {k: v for k, v in (trial.last_result or {}).items() if k != REPLAYED}
    if entry is None:
        return df, last, str(trial.status)
    status = "TERMINATED" if trial.status in _UNFINISHED else str(trial.status)
    rows = [r for r in entry.results if r.get("training_iteration") is not None]
    if not rows:
        return df, {**last, **entry.last}, status
    iterations = {int(r["training_iteration"]) for r in rows}
    have = set(df["training_iteration"].dropna().astype(int)) if "training_iteration" in df else set()
    if not iterations <= have:
        first = int(rows[0]["training_iteration"])
        before = df[df["training_iteration"] < first] if "training_iteration" in df else df.iloc[0:0]
        config = {"config": dict(trial.config or {})}
        recorded = pd.json_normalize([{**r, **config} for r in rows], sep="/")
        df = pd.concat([before, recorded], ignore_index=True) if len(before) else recorded
    return df, {**last, **entry.last}, status


@contextlib.contextmanager
def short_state_period() -> Iterator[None]:
    """While in it, Tune saves the state of the runs it starts every 2 s, unless the user set
    ``TUNE_GLOBAL_CHECKPOINT_S``: for a run without a record of its finished trials, so that a killed driver loses
    at most 2 s of them (the verification: a dozen trials, whose state costs little to save)."""
    if STATE_PERIOD_ENV in os.environ:
        yield
        return
    os.environ[STATE_PERIOD_ENV] = SHORT_STATE_PERIOD_S
    try:
        yield
    finally:
        os.environ.pop(STATE_PERIOD_ENV, None)
