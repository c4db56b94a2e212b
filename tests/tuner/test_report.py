"""`motiontune report`, TensorBoard event files and the persisted Optuna study of a real sweep."""

from __future__ import annotations

import struct

import optuna
import pytest

from tests.conftest import run_cli
from tests.trainer_core.test_cli import assert_one_line_error

PLOTS = ("objective.png", "curves.png", "asha.png", "importance.png", "parallel.png")


def png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", data[16:24])


def test_report_writes_every_plot_and_an_index(smoke_sweep, tmp_path):
    exp = smoke_sweep[0]
    out = tmp_path / "report"
    proc = run_cli("report", str(exp), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    html = (out / "index.html").read_text()
    for name in PLOTS:
        w, h = png_size(out / name)
        assert w > 300 and h > 200 and (out / name).stat().st_size > 5000
        assert f'src="{name}"' in html
    assert "best: trial" in proc.stdout and "trials: 8" in proc.stdout and "index.html" in proc.stdout


def test_report_on_a_folder_that_is_not_an_experiment(tmp_path):
    assert_one_line_error(run_cli("report", str(tmp_path)), "not a motiontune experiment")


def test_report_with_no_finished_trial(all_diverged_sweep, tmp_path):
    proc = run_cli("report", str(all_diverged_sweep), "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "no finished trials to report on")
    assert not (tmp_path / "r").exists()


def test_every_trial_writes_tensorboard_events(smoke_sweep):
    from tensorboardX.proto import event_pb2

    exp, trials, _, _ = smoke_sweep
    for path in trials["path"]:
        files = list(__import__("pathlib").Path(path).glob("events.out.tfevents.*"))
        assert files, f"no TensorBoard events in {path}"
        tags = set()
        for f in files:
            data, i = f.read_bytes(), 0
            while i < len(data):  # TFRecord: length, crc, payload, crc
                (n,) = struct.unpack("<Q", data[i : i + 8])
                event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
                tags |= {v.tag for v in event.summary.value}
                i += 12 + n + 4
        assert any(t.endswith("FreeRun/GeoDeg") for t in tags), sorted(tags)[:10]


def test_optuna_storage_holds_every_finished_trial(smoke_sweep):
    exp, trials, _, _ = smoke_sweep
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{exp.parent}/study.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    finished = trials[trials["status"].isin(["COMPLETED", "STOPPED"])]
    assert len(complete) == len(finished) == 8
    # The first is the warm start, the guide's lr.
    assert study.trials[0].params["lr"] == pytest.approx(0.00031732900585132803)
