"""What the model sees and what it is scored on: no input or control holds the target (issue: trusted metrics).

Each test here failed before the fix it guards: frame 0 carried its own
target, the control window included the target frame, the gait phase came
from a whole-clip transform, mixed frame rates and a resumed run on other data
went unchecked, and there was no test split.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.data.clip import load_npz, save_npz
from trainer_core.data.datasets import bundled_dataset_dir
from trainer_core.data.device_data import build_split, control_window, fit_normalizer
from trainer_core.data.gait import soft_gait
from trainer_core.data.skeleton import HIERARCHY_FILE, OFFSETS_FILE
from trainer_core.errors import CheckpointError, DataError
from trainer_core.train.loop import fit
from trainer_core.train.metrics import freerun_starts, teacher_starts

HORIZON = 12
WINDOW_S = 0.5


def _future_scrambled(clip, t: int):
    """``clip`` with every frame after ``t`` replaced by the later frames in reverse order."""

    def scramble(a):
        a = a.copy()
        a[t + 1 :] = a[t + 1 :][::-1]
        return a

    keys = ("rot6d", "angvel", "root_yaw", "root_vel", "soft_contacts")
    return dataclasses.replace(clip, **{k: scramble(getattr(clip, k)) for k in keys})


@pytest.fixture(scope="module")
def walk(bundled):
    return next(c for c in bundled.clips if c.name == "dataset-1_walk_normal_001")


def _split(clip, skeleton, norm):
    return build_split([clip], skeleton, norm, seq_len=24, cond_window_s=WINDOW_S, device=torch.device("cpu"))


def test_no_start_frame_input_depends_on_a_later_frame(bundled, walk):
    norm = fit_normalizer([walk], bundled.skeleton.n_joints, WINDOW_S)
    full = _split(walk, bundled.skeleton, norm)
    starts = torch.cat([full.window_starts, teacher_starts(full), freerun_starts(full, HORIZON)]).unique()
    assert int(starts.min()) >= 1, "a clip's first frame (velocities copied from frame 1) is an input"
    for t in (0, 1, 5, 40, 90):
        cut = _split(_future_scrambled(walk, t), bundled.skeleton, norm)
        early = starts[starts <= t]
        assert torch.equal(full.x[early], cut.x[early]), f"an input at a start <= {t} sees frames after {t}"


def test_the_control_starts_after_the_target_frame():
    rng = np.random.default_rng(0)
    traj = rng.normal(size=(50, 3))
    window = 6
    ctrl, full = control_window(traj, window)
    for t in (0, 10, 40):
        assert np.allclose(ctrl[t], traj[t + 2 : t + 2 + window].mean(0))
        changed = traj.copy()
        changed[t + 1] += 100.0  # the target of the step t -> t+1
        assert np.allclose(control_window(changed, window)[0][t], ctrl[t])
    assert full[: 50 - window - 1].all() and not full[50 - window - 1 :].any()
    assert np.allclose(ctrl[-1], traj[-1])  # nothing after the target: the input frame's own


def test_evaluation_skips_steps_whose_control_window_is_cut_by_the_clip_end(bundled, walk):
    norm = fit_normalizer([walk], bundled.skeleton.n_joints, WINDOW_S)
    split = _split(walk, bundled.skeleton, norm)
    t = teacher_starts(split)
    assert split.ctrl_full[t].all() and int(t.min()) == 1
    window = round(WINDOW_S * walk.fps)
    assert int(t.max()) == walk.n_frames - window - 2  # the last step with a whole window after its target
    f = freerun_starts(split, HORIZON)
    assert split.ctrl_full[f + HORIZON - 1].all() and (f + HORIZON < walk.n_frames).all()


@pytest.mark.parametrize("t", [10, 45, 100])
def test_gait_phase_and_period_are_causal(walk, t):
    phase, period = soft_gait(walk.soft_contacts, walk.fps)
    p_cut, t_cut = soft_gait(walk.soft_contacts[: t + 1], walk.fps)
    assert np.allclose(phase[: t + 1], p_cut) and np.allclose(period[: t + 1], t_cut)


def _copy_bundle(dst, names=None):
    src = bundled_dataset_dir()
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.glob("*.npz")):
        if names is None or p.stem in names:
            shutil.copy(p, dst / p.name)
    for n in (HIERARCHY_FILE, OFFSETS_FILE):
        shutil.copy(src / n, dst / n)
    return dst


def test_clips_of_different_frame_rates_are_refused(tmp_path, tiny_config):
    data = _copy_bundle(tmp_path / "data")
    odd = sorted(data.glob("*.npz"))[3]
    save_npz(dataclasses.replace(load_npz(odd), fps=60.0), odd)
    with pytest.raises(DataError, match=r"different frame rates: .* 60 fps.*--fps N"):
        fit(tiny_config(data=str(data)), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resume_on_other_data_is_refused(tmp_path, tiny_config):
    cfg = tiny_config(epochs=1, tf_end_epoch=1)
    fit(cfg, tmp_path / "run")
    other = _copy_bundle(tmp_path / "other")
    first = sorted(other.glob("*.npz"))[0]
    first.unlink()
    state = torch.load(tmp_path / "run" / "checkpoint_epoch_1.pt", weights_only=True)
    cfg2 = config_from_dict({**state["config"], "data": str(other), "epochs": 2}, "resume")
    with pytest.raises(CheckpointError, match="differs from the one the checkpoint trained on"):
        fit(cfg2, tmp_path / "run", resume=state)


def test_a_test_split_is_held_out_of_training_and_selection(tmp_path, tiny_config):
    cfg = tiny_config(
        val_split={"group": "style", "values": ["active"]},
        test_split={"group": "style", "values": ["happy", "tired"]},
    )
    summary = fit(cfg, tmp_path / "run")
    data = summary["data"]
    assert all("_happy_" in n or "_tired_" in n for n in data["test_clips"]) and len(data["test_clips"]) >= 6
    assert not set(data["test_clips"]) & (set(data["train_clips"]) | set(data["val_clips"]))
    assert all("_active_" in n for n in data["val_clips"])
    assert data["held_out"]["test"]["held_out"] == ["happy", "tired"]
    test = summary["test"]
    assert test["epoch"] == summary["best"]["epoch"]
    assert set(test["baselines"]) == {"copy-last-frame", "copy-last-pose+control"}
    assert 0 < test["model"]["FreeRun/GeoDeg"] < 90 and test["model"]["FreeRun/GeoDeg"] != summary["best"]["value"]
    # The validation metrics never saw the test clips: no epoch file holds a test value.
    valfree = json.loads((tmp_path / "run" / "metrics" / "valfree_ep001.json").read_text())
    assert valfree["FreeRun/GeoDeg"] != test["model"]["FreeRun/GeoDeg"]


def test_summary_reports_both_baselines(tmp_path, tiny_config):
    summary = fit(tiny_config(epochs=1, tf_end_epoch=1), tmp_path / "run")
    assert set(summary["baselines"]) == {"copy-last-frame", "copy-last-pose+control"}
    pose = summary["baselines"]["copy-last-frame"]
    ctrl = summary["baselines"]["copy-last-pose+control"]
    assert pose["GeoDeg"] == ctrl["GeoDeg"]  # the same pose held
    assert pose["RootVelMAE"] != ctrl["RootVelMAE"]  # the root follows the control
    assert set(summary["beats_control_baseline"]) == set(summary["beats_baseline"])


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"group": "style", "values": ["ballet"]}, "`val_split.values` holds 'ballet', but the clips' `style`"),
        ({"group": "style", "values": ["happy"], "pattern": r"^(?P<style>zzz)"}, "matches no clip name"),
        ({"clips": ["nope"]}, "`val_split.clips` names 'nope'"),
    ],
)
def test_bad_split_specs_are_one_line(tmp_path, spec, message):
    cfg = tmp_path / "c.json"
    raw = load_config().to_dict()
    raw.update({"val_split": spec, "epochs": 1, "freerun_stage_schedule": [], "tf_end_epoch": 1})
    cfg.write_text(json.dumps(raw))
    r = run_cli("train", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_hold_out_of_every_style_leaves_no_training_clip(tmp_path, bundled):
    styles = sorted({c.name.split("_")[2] for c in bundled.clips})
    raw = load_config().to_dict()
    raw.update({"val_split": {"group": "style", "values": styles}, "epochs": 1, "freerun_stage_schedule": []})
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({**raw, "tf_end_epoch": 1}))
    r = run_cli("train", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "hold out every clip" in r.stderr
