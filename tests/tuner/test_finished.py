"""The finished-trial record: what is written, what a cut line does, and how a recorded trial reads as a result."""

from __future__ import annotations

import json
import math
import os
from types import SimpleNamespace

import pandas as pd
import pyarrow.fs as pafs

from tuner.experiment.finished import (
    RECORD_DIR,
    RECORD_FILE,
    REPLAYED,
    FinishedTrial,
    append_record,
    read_record,
    reconcile,
    scalars,
    short_state_period,
    wait_synced,
)


def _row(it: int, value: float) -> dict:
    return {"training_iteration": it, "epoch": it, "FreeRun/GeoDeg": value, "report_time": 100.0 + it}


def _entry(trial_id: str, epochs: int, first: int = 1) -> FinishedTrial:
    rows = [_row(i, 10.0 - i) for i in range(first, epochs + 1)]
    return FinishedTrial(trial_id, {**rows[-1], "node": "n1", "time_total_s": 4.5}, rows, 123.0)


def _trial(status: str, last: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(trial_id="a", status=status, last_result=last or {}, config={"lr": 0.001})


def _frame(rows: list[dict]) -> pd.DataFrame:
    """A trial's result.json as ExperimentAnalysis reads it (nested config flattened with /)."""
    return pd.json_normalize([{**r, "config": {"lr": 0.001}} for r in rows], sep="/")


def test_each_line_is_one_finished_trial_and_a_cut_last_line_is_skipped(tmp_path):
    append_record(str(tmp_path), _entry("a", 3))
    append_record(str(tmp_path), _entry("b", 2))
    append_record(str(tmp_path), FinishedTrial("a", {"epoch": 9}))  # a second line for a trial: the first wins
    wait_synced()
    path = tmp_path / RECORD_FILE
    with path.open("ab") as f:
        f.write(_entry("c", 1).to_line()[:-20])  # a machine that went down mid-write
    lines = path.read_bytes().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["trial_id"] == "a"
    record = read_record(str(tmp_path))
    assert sorted(record) == ["a", "b"]
    assert record["a"].last["epoch"] == 3 and [r["epoch"] for r in record["a"].results] == [1, 2, 3]
    assert read_record(str(tmp_path / "missing")) == {}


def test_object_store_record_is_one_object_per_trial(tmp_path):
    """Object stores cannot append: each trial is an object of its own (here a local filesystem stands in)."""
    fs = pafs.LocalFileSystem()
    fs.create_dir(str(tmp_path / RECORD_DIR))
    for trial_id in ("a", "b"):
        with fs.open_output_stream(str(tmp_path / RECORD_DIR / f"{trial_id}.json")) as f:
            f.write(_entry(trial_id, 2).to_line())
    assert sorted(read_record(str(tmp_path), fs)) == ["a", "b"]


def test_scalars_keep_numbers_and_strings_only():
    assert scalars({"a": 1, "b": 2.5, "c": "x", "d": None, "e": True, "config": {"lr": 1}, "f": [1]}) == {
        "a": 1, "b": 2.5, "c": "x", "d": None, "e": True}  # fmt: skip
    line = FinishedTrial("a", {"v": math.nan}).to_line()
    assert math.isnan(FinishedTrial.from_line(line).last["v"])  # a diverged trial's NaN survives


def test_a_trial_unknown_to_the_record_reads_as_tune_has_it():
    df = _frame([_row(1, 9.0), _row(2, 8.0)])
    out, last, status = reconcile(_trial("RUNNING", {"epoch": 2}), df, None)
    assert status == "RUNNING" and last == {"epoch": 2} and out.equals(df)


def test_a_recorded_trial_that_tune_saved_as_running_is_finished_with_the_records_epochs():
    """The driver died after the trial ended but before the state (and result.json) reached storage again."""
    df = _frame([_row(1, 9.0), _row(2, 8.0)])
    out, last, status = reconcile(_trial("RUNNING", {"epoch": 2, "node": "n0"}), df, _entry("a", 4))
    assert status == "TERMINATED"
    assert last["epoch"] == 4 and last["node"] == "n1" and last["time_total_s"] == 4.5
    assert list(out["epoch"]) == [1, 2, 3, 4] and list(out["FreeRun/GeoDeg"]) == [9.0, 8.0, 7.0, 6.0]
    assert (out["config/lr"] == 0.001).all()


def test_a_recorded_resumed_trial_keeps_its_earlier_epochs_and_drops_the_replayed_row():
    """Resumed from epoch 2's checkpoint, it ran 3-4 under the driver that recorded it; that driver's result.json
    upload was lost with it, and the next resume replayed the final result (one row, marked)."""
    stale = [_row(1, 9.0), _row(2, 8.0), _row(3, 7.5)]  # epoch 3 of the run before the first kill
    df = _frame([*stale, {**_row(4, 6.0), REPLAYED: 1}])
    out, last, status = reconcile(_trial("TERMINATED", {"epoch": 4, REPLAYED: 1}), df, _entry("a", 4, first=3))
    assert status == "TERMINATED" and REPLAYED not in last and REPLAYED not in out.columns
    assert list(out["epoch"]) == [1, 2, 3, 4] and list(out["FreeRun/GeoDeg"]) == [9.0, 8.0, 7.0, 6.0]


def test_a_recorded_trial_whose_results_reached_storage_keeps_them():
    rows = [_row(1, 9.0), _row(2, 8.0)]
    df = _frame(rows)
    out, _, status = reconcile(_trial("TERMINATED", {"epoch": 2}), df, _entry("a", 2))
    assert status == "TERMINATED" and out.equals(df)
    _, _, status = reconcile(_trial("ERROR"), df, _entry("a", 2))
    assert status == "ERROR"


def test_short_state_period_is_set_only_while_in_it_and_never_over_the_users(monkeypatch):
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    with short_state_period():
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "2"
    assert "TUNE_GLOBAL_CHECKPOINT_S" not in os.environ
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "auto")
    with short_state_period():
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "auto"
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "auto"
