"""``FreeRun/long``: foot skating, bone-length errors and pose drift of long rollouts, on known motions
and on a trained model through ``motiontune eval --long``."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from tests.trainer_core.test_cli import assert_one_line_error
from trainer_core.config_load import config_from_dict
from trainer_core.data.clip import save_npz
from trainer_core.data.datasets import load_dataset
from trainer_core.data.device_data import build_split
from trainer_core.evaluate.long_rollout import (
    PREFIX,
    bone_error_frames,
    foot_skate,
    format_long,
    long_rollout_metrics,
    pose_drift,
    training_rotations,
)
from trainer_core.generate.inference import load_model
from trainer_core.generate.trajectory import clip_world, integrate_yaw, world_motion
from trainer_core.geometry import rot6d_to_matrix, so3_exp


@pytest.fixture(scope="module")
def bundled():
    return load_dataset(None)


def _feet(skeleton):
    return {side: [skeleton.index(n) for n in names] for side, names in skeleton.feet.items()}


def test_a_frozen_pose_sliding_skates_at_the_root_speed(bundled):
    sk, clip = bundled.skeleton, bundled.clips[0]
    T, speed = 40, 1.3
    R = rot6d_to_matrix(torch.from_numpy(clip.rot6d[5])).double().expand(T, -1, -1, -1)
    vel = torch.tensor([[0.0, speed]], dtype=torch.float64).expand(T, 2)
    world = world_motion(R, integrate_yaw(0.0, torch.zeros(T), 30.0), vel, sk, 30.0)
    skate, weight = foot_skate(world, _feet(sk), np.ones((T, 2)))
    assert skate == pytest.approx(speed, rel=1e-9) and weight == 2 * (T - 1)
    skate, weight = foot_skate(world, _feet(sk), np.zeros((T, 2)))
    assert math.isnan(skate) and weight == 0  # no contact: nothing to skate


def test_real_walks_barely_skate(bundled):
    walks = [c for c in bundled.clips if "_walk_" in c.name][:6]
    for clip in walks:
        skate, _ = foot_skate(clip_world(clip, bundled.skeleton), _feet(bundled.skeleton), clip.soft_contacts)
        speed = np.linalg.norm(clip.root_vel, axis=1).mean()
        assert skate < 0.35 * speed, (clip.name, skate, speed)


def test_bone_lengths_hold_for_rotations_and_not_otherwise(bundled):
    clip = bundled.clips[0]
    R = rot6d_to_matrix(torch.from_numpy(clip.rot6d)).double()
    world = world_motion(R, torch.from_numpy(clip.root_yaw), torch.from_numpy(clip.root_vel), bundled.skeleton, 30.0)
    assert not bone_error_frames(world, bundled.skeleton).any()
    bad = R.clone()
    bad[10:20, 1:] *= 1.01  # not rotations: bones stretch by 1 %
    bad[30, 3] = math.nan
    world = world_motion(bad, torch.from_numpy(clip.root_yaw), torch.from_numpy(clip.root_vel), bundled.skeleton, 30)
    errors = bone_error_frames(world, bundled.skeleton)
    assert errors[10:20].all() and errors[30] and errors.sum() == 11


def test_pose_drift_is_the_angle_to_the_nearest_training_pose(bundled):
    train = rot6d_to_matrix(torch.from_numpy(np.concatenate([c.rot6d for c in bundled.clips[:3]])))
    assert pose_drift(train[::7], train).abs().max() < 1e-3  # a training pose is its own nearest
    twist = so3_exp(torch.tensor([0.0, 0.2, 0.0]))  # 0.2 rad about Y on every joint of one pose
    moved = train[:1] @ twist
    drift = pose_drift(moved, train)
    assert float(drift) <= 0.2 + 1e-5 and float(drift) > 0.05
    assert torch.isnan(pose_drift(torch.full_like(moved, math.nan), train)).all()


@pytest.fixture(scope="module")
def val_folder(generation_run, tmp_path_factory, bundled):
    """Three of the model's validation clips as a dataset folder."""
    names = generation_run[1]["data"]["val_clips"][:3]
    folder = tmp_path_factory.mktemp("long") / "val"
    folder.mkdir()
    bundled.skeleton.to_files(folder)
    for clip in bundled.clips:
        if clip.name in names:
            save_npz(clip, folder / f"{clip.name}.npz")
    return folder


def _long(trained, clips, seconds, poison=None):
    """``long_rollout_metrics`` of the trained model on ``clips``; ``poison``: the clip (name) whose start frame's
    features are made NaN, so that the model's rollout from it (only) goes non-finite."""
    cfg = config_from_dict(trained.config, "generation model")
    split = build_split(clips, trained.skeleton, trained.runtime.norm, cfg.optim.seq_len, trained.cond_window_s,
                        trained.device)  # fmt: skip
    if poison is not None:
        begin = sum(c.n_frames for c in clips[: [c.name for c in clips].index(poison)])
        split.x[begin + 1] = math.nan  # the rollout starts from each clip's second frame
    train_R = training_rotations(cfg)
    return long_rollout_metrics(trained.model, trained.runtime, split, trained.skeleton, train_R, seconds)


def test_a_diverging_clip_is_counted_and_the_other_clips_keep_their_numbers(generation_run, bundled):
    trained = load_model(generation_run[0] / "best_model.pt")
    names = generation_run[1]["data"]["val_clips"][:3]
    clips = [c for c in bundled.clips if c.name in names]
    bad = clips[1]
    seconds = 2.0
    long = _long(trained, clips, seconds, poison=bad.name)
    others = _long(trained, [c for c in clips if c is not bad], seconds)
    H = long["frames"]
    assert H == 60 and long["clips"] == 3 and others["clips"] == 2
    model, ref = long["model"], others["model"]
    # The survivors' numbers, not pooled with a NaN (None) nor with nothing: those of the run without it.
    for k in ("FootSkateMS", "PoseDriftDeg"):
        v = model[f"{PREFIX}{k}"]
        assert isinstance(v, float) and math.isfinite(v), (k, v)
        assert v == pytest.approx(ref[f"{PREFIX}{k}"], rel=1e-5, abs=1e-6), k
    assert model[f"{PREFIX}DivergedClips"] == 1 and ref[f"{PREFIX}DivergedClips"] == 0
    assert long["diverged"] == {"model": [bad.name], "copy-last-frame": [], "truth": []}
    assert others["diverged"] == {"model": [], "copy-last-frame": [], "truth": []}
    # Every frame after the real start frame of the diverged rollout is a bone error.
    bone = (ref[f"{PREFIX}BoneErrFrac"] * 2 * (H + 1) + H) / (3 * (H + 1))
    assert model[f"{PREFIX}BoneErrFrac"] == pytest.approx(bone, rel=1e-9)
    # Copy-last and the truth start from the clip's real frames: nothing diverges there.
    for who in ("copy-last-frame", "truth"):
        assert long[who][f"{PREFIX}DivergedClips"] == 0
        assert all(v is not None and math.isfinite(v) for v in long[who].values()), who
    table = format_long(long)
    assert f"{PREFIX}DivergedClips" in table and f"diverged (non-finite) model rollouts: {bad.name}" in table


def test_eval_long_reports_the_model_beside_copy_last_and_the_truth(generation_run, val_folder, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli("eval", str(generation_run[0] / "best_model.pt"), "--data", str(val_folder), "--long", "10",
                   "--out", str(out), "--previews", str(tmp_path / "previews"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "FreeRun/long: 10 s rollouts (300 frames) from 3 clips" in proc.stdout
    long = json.loads(out.read_text())["long"]
    assert long["frames"] == 300 and long["clips"] == 3
    keys = {f"{PREFIX}FootSkateMS", f"{PREFIX}BoneErrFrac", f"{PREFIX}PoseDriftDeg", f"{PREFIX}DivergedClips"}
    for who in ("model", "copy-last-frame", "truth"):
        assert set(long[who]) == keys, who
        assert long[who][f"{PREFIX}DivergedClips"] == 0 and long["diverged"][who] == [], who
    assert re.search(rf"^{PREFIX}DivergedClips +0 +0 +0$", proc.stdout, re.M), proc.stdout
    # Rotations stay rotations in the model's rollout; copy-last and the truth are exact.
    assert long["copy-last-frame"][f"{PREFIX}BoneErrFrac"] == long["truth"][f"{PREFIX}BoneErrFrac"] == 0.0
    assert long["model"][f"{PREFIX}BoneErrFrac"] < 0.01
    # A held start pose is a real pose: it drifts no further than the clips' own frames do.
    assert long["copy-last-frame"][f"{PREFIX}PoseDriftDeg"] <= long["truth"][f"{PREFIX}PoseDriftDeg"] + 5.0
    # The held pose slides with the root; real feet stand still while planted.
    assert long["copy-last-frame"][f"{PREFIX}FootSkateMS"] > 2 * long["truth"][f"{PREFIX}FootSkateMS"]
    gifs = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert gifs == sorted(f"{p.stem}.gif" for p in val_folder.glob("*.npz"))


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "1e9"])
def test_eval_long_out_of_range(generation_run, val_folder, tmp_path, seconds):
    proc = run_cli("eval", str(generation_run[0] / "best_model.pt"), "--data", str(val_folder),
                   f"--long={seconds}", "--out", str(tmp_path / "e.json"))  # fmt: skip
    assert_one_line_error(proc, "--long is")
    assert list(tmp_path.iterdir()) == []
