"""The CLI on bad input: one clear line, exit code 2, no traceback, nothing written. One test per case."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import MOCAP_DIR, run_cli


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "warning" not in ln]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def _default() -> dict:
    from trainer_core.config_load import load_config

    return load_config().to_dict()


def _train_with(tmp_path, raw):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    out = tmp_path / "out"
    proc = run_cli("train", "--config", str(cfg), "--out", str(out))
    assert not out.exists(), "a failed run must not leave an output folder"
    return proc, cfg


def test_malformed_json(tmp_path):
    proc, cfg = _train_with(tmp_path, '{"epochs": 3,,}')
    assert_one_line_error(proc, str(cfg), "malformed JSON at line 1")


def test_misspelled_key(tmp_path):
    proc, _ = _train_with(tmp_path, {**_default(), "w_rot_lcoal": 0.1})
    assert_one_line_error(proc, "unknown key `w_rot_lcoal`", "did you mean `w_rot_local`")


def test_out_of_range_value(tmp_path):
    proc, _ = _train_with(tmp_path, {**_default(), "tf_max": 1.5})
    assert_one_line_error(proc, "`tf_max` is 1.5, but must be in [0, 1]")


def test_stage_ranges_with_a_gap(tmp_path):
    raw = _default()
    raw["freerun_stage_schedule"][1]["range"] = [6, 10]  # the packaged stages are 1-4, 5-10, 11-15
    proc, _ = _train_with(tmp_path, raw)
    assert_one_line_error(proc, "freerun_stage_schedule[1]", "gap after epoch 4")


def test_stage_ranges_that_overlap(tmp_path):
    raw = _default()
    raw["freerun_stage_schedule"][2]["range"] = [9, 15]
    proc, _ = _train_with(tmp_path, raw)
    assert_one_line_error(proc, "freerun_stage_schedule[2]", "overlapping")


def test_missing_config_file(tmp_path):
    proc = run_cli("train", "--config", str(tmp_path / "nope.json"), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "nope.json: file not found")
    assert not (tmp_path / "out").exists()


def test_bvh_without_motion_section(tmp_path):
    text = (MOCAP_DIR / "dataset-1_run_normal_001.bvh").read_text()
    bad = tmp_path / "skeleton_only.bvh"
    bad.write_text(text[: text.index("MOTION")])
    out = tmp_path / "ds"
    proc = run_cli("data", "import-bvh", str(MOCAP_DIR / "dataset-1_run_normal_001.bvh"), str(bad), "--out", str(out))
    assert_one_line_error(proc, "skeleton_only.bvh", "no MOTION section")
    assert not out.exists()


def _dataset_with(tmp_path, mutate):
    """A copy of the bundled dataset with one clip rewritten by ``mutate(arrays)`` (of the full NPZ format)."""
    from trainer_core.data.clip import load_npz, save_npz
    from trainer_core.data.datasets import bundled_dataset_dir

    ds = tmp_path / "ds"
    shutil.copytree(bundled_dataset_dir(), ds)
    victim = sorted(ds.glob("*.npz"))[3]
    save_npz(load_npz(victim), victim)  # the bundle is compact: write this clip's every array
    with np.load(victim) as z:
        arrays = {k: z[k] for k in z.files}
    mutate(arrays)
    np.savez(victim, **arrays)
    return ds, victim


def test_nan_in_a_clip(tmp_path):
    ds, victim = _dataset_with(tmp_path, lambda a: a["rot6d"].__setitem__((5, 2, 1), np.nan))
    proc = run_cli("train", "--data", str(ds), "--out", str(tmp_path / "out"), "--epochs", "1")
    assert_one_line_error(proc, victim.name, "`rot6d` holds NaN/inf")
    assert not (tmp_path / "out").exists()


def test_wrong_array_shape(tmp_path):
    def cut(a):
        a["soft_contacts"] = a["soft_contacts"][:, :1]

    ds, victim = _dataset_with(tmp_path, cut)
    proc = run_cli("data", "profile", str(ds))
    assert_one_line_error(proc, victim.name, "`soft_contacts` has shape", "must be")


def test_missing_data_folder(tmp_path):
    proc = run_cli("train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "nowhere: dataset folder not found")
    assert not (tmp_path / "out").exists()


def test_missing_resume_checkpoint(tmp_path):
    proc = run_cli("train", "--resume", str(tmp_path / "checkpoint_epoch_3.pt"))
    assert_one_line_error(proc, "checkpoint not found")


def test_unknown_option_is_one_line_too():
    proc = run_cli("train", "--epoch", "3")  # no silent abbreviation of --epochs
    assert_one_line_error(proc, "unrecognized arguments: --epoch", "--help")


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_convert_round_trip_through_the_cli(tmp_path, suffix):
    from trainer_core.data.datasets import bundled_dataset_dir

    src = sorted(bundled_dataset_dir().glob("*.npz"))[0]
    mid = tmp_path / "clip.json"
    assert run_cli("data", "convert", str(src), "--out", str(mid)).returncode == 0
    back = tmp_path / f"back{suffix}"
    proc = run_cli("data", "convert", str(mid), "--out", str(back))
    if suffix == ".json":
        assert_one_line_error(proc, "between .json and .npz")
    else:
        assert proc.returncode == 0 and json.loads(proc.stdout)["joints"] == 21


def test_train_smoke_test_runs_in_seconds(tmp_path):
    proc = run_cli("train", "--smoke-test", "--out", str(tmp_path / "smoke"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "smoke" / "summary.json").read_text())
    assert summary["epochs"] == 4 and summary["status"] == "finished"
    assert json.loads((tmp_path / "smoke" / "config.json").read_text())["hidden_dim"] == 64
