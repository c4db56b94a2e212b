"""``FreeRun/long``: foot skating, bone-length errors, pose drift, control following and stepping of long
rollouts, on known motions, on the bundled held-out clips (truth against copy-last), on a trained model through
``motiontune eval --long``, and in training runs (which epochs validate long, what the files hold)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from tests.trainer_core.test_cli import assert_one_line_error
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.data.clip import save_npz
from trainer_core.data.datasets import load_dataset
from trainer_core.data.device_data import build_split, fit_normalizer
from trainer_core.data.features import frame_layout
from trainer_core.data.groups import motion_groups
from trainer_core.data.splits import split_for
from trainer_core.data.trajectory import clip_world, integrate_yaw, world_motion
from trainer_core.evaluate.long_rollout import format_long, training_rotations
from trainer_core.generate.inference import load_model
from trainer_core.geometry import rot6d_to_matrix, so3_exp
from trainer_core.train import long_eval
from trainer_core.train.long_eval import (
    EPOCH_KEY,
    METRICS,
    PREFIX,
    RUNAWAY_MS,
    LongValidation,
    bone_error_frames,
    foot_skate,
    latest_long,
    long_due,
    long_rollout_metrics,
    pose_drift,
    reversals,
)
from trainer_core.train.loop import fit


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


def _long(trained, clips, seconds, poison=None, value=math.nan, features=slice(None)):
    """``long_rollout_metrics`` of the trained model on ``clips``; ``poison``: the clip (name) whose start frame's
    ``features`` are set to ``value`` (NaN: the model's rollout from it, only, goes non-finite)."""
    cfg = config_from_dict(trained.config, "generation model")
    split = build_split(clips, trained.skeleton, trained.runtime.norm, cfg.optim.seq_len, trained.cond_window_s,
                        trained.device)  # fmt: skip
    if poison is not None:
        begin = sum(c.n_frames for c in clips[: [c.name for c in clips].index(poison)])
        split.x[begin + 1, features] = value  # the rollout starts from each clip's second frame
    train_R = training_rotations(cfg)
    return long_rollout_metrics(trained.model, trained.runtime, split, trained.skeleton, train_R, seconds,
                                trained.cond_window_s)  # fmt: skip


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
    assert f"{PREFIX}DivergedClips" in table and f"diverged (non-finite or runaway) model rollouts: {bad.name}" in table


def test_a_rollout_whose_root_runs_away_counts_as_diverged_though_it_stays_finite(generation_run, bundled):
    trained = load_model(generation_run[0] / "best_model.pt")
    names = generation_run[1]["data"]["val_clips"][:2]
    clips = [c for c in bundled.clips if c.name in names]
    root_vel = frame_layout(trained.skeleton.n_joints).slices()["root_vel"]
    # The root velocity is the current one plus a change (root_from "frame"): a start at 10^4 std runs on.
    long = _long(trained, clips, 1.0, poison=clips[0].name, value=1e4, features=root_vel)
    assert long["diverged"] == {"model": [clips[0].name], "copy-last-frame": [], "truth": []}
    assert long["model"][f"{PREFIX}DivergedClips"] == 1
    assert long["model"][f"{PREFIX}CtrlSpeedErr"] < RUNAWAY_MS  # pooled over the clip that did not run away


def test_eval_long_reports_the_model_beside_copy_last_and_the_truth(generation_run, val_folder, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli("eval", str(generation_run[0] / "best_model.pt"), "--data", str(val_folder), "--long", "10",
                   "--out", str(out), "--previews", str(tmp_path / "previews"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "FreeRun/long: 10 s rollouts (300 frames) from 3 clips" in proc.stdout
    long = json.loads(out.read_text())["long"]
    assert long["frames"] == 300 and long["clips"] == 3
    keys = set(METRICS)
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
    # Per motion group, from the same rollouts: the groups' clips are the three, and each has its table.
    assert long["groups"] and sorted(n for g in long["groups"].values() for n in g["clips"]) == sorted(
        p.stem for p in val_folder.glob("*.npz"))  # fmt: skip
    for group, entry in long["groups"].items():
        assert f"FreeRun/long, {group} ({len(entry['clips'])} clips):" in proc.stdout
        assert set(entry["model"]) == keys and entry["truth"][f"{PREFIX}StepHzErr"] == 0.0
    gifs = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert gifs == sorted(f"{p.stem}.gif" for p in val_folder.glob("*.npz"))


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "1e9"])
def test_eval_long_out_of_range(generation_run, val_folder, tmp_path, seconds):
    proc = run_cli("eval", str(generation_run[0] / "best_model.pt"), "--data", str(val_folder),
                   f"--long={seconds}", "--out", str(tmp_path / "e.json"))  # fmt: skip
    assert_one_line_error(proc, "--long is")
    assert list(tmp_path.iterdir()) == []


def test_reversals_count_swings_beyond_the_hysteresis():
    t = np.arange(151) / 30.0
    walk = (0.3 * np.sin(2 * np.pi * 1.0 * t)).tolist()  # 1 Hz for 5 s: extremes at 0.25 s, 0.75 s, ...
    assert reversals(walk, 0.05) == 10  # every extreme: the first swing only sets the direction
    assert reversals((0.02 * np.sin(2 * np.pi * 3.0 * t)).tolist(), 0.05) == 0  # sway under 5 cm
    assert reversals([0.0, 0.1, 0.04, 0.1], 0.05) == 2 and reversals([0.0, 0.1, 0.06], 0.05) == 0


@pytest.fixture(scope="module")
def held_out(bundled):
    """The default run's validation clips (held-out styles) as ``LongValidation`` of 5 s, against its training
    clips' poses: the baselines, scored once (no model)."""
    cfg = load_config()
    splits = split_for(cfg, bundled)
    sk, cond = bundled.skeleton, cfg.data.cond_window_s
    norm = fit_normalizer(splits.train, sk.n_joints, cond)
    split = build_split(splits.val, sk, norm, cfg.optim.seq_len, cond, torch.device("cpu"))
    train_R = rot6d_to_matrix(torch.from_numpy(np.concatenate([c.rot6d for c in splits.train])))
    groups = motion_groups(splits.val, cfg.data.motion_groups)
    return LongValidation.create(split, sk, train_R, 5.0, cond, groups)


def test_the_gait_and_control_measures_separate_the_truth_from_copy_last(held_out):
    """Copy-last is the glide: the pose held while the root moves on. On the held-out clips it never steps and
    misses the control; the real motion steps at a walker's rate and follows its own control exactly."""
    res = held_out.result([])
    truth, copy = res["truth"], res["copy-last-frame"]
    walks = {s.name: s.step_hz for s in held_out.baselines["truth"] if "_walk" in s.name}
    # Bundled data (2026-12): the 15 held-out walks step at 1.0-2.6 Hz (mean 1.57) over their first 5 s.
    assert len(walks) >= 6 and min(walks.values()) > 0.9 and np.mean(list(walks.values())) > 1.4, walks
    assert copy[f"{PREFIX}StepHz"] == 0.0
    assert all(s.steps == 0 for s in held_out.baselines["copy-last-frame"])
    assert truth[f"{PREFIX}StepHz"] > 1.0 and truth[f"{PREFIX}StepHzErr"] == 0.0
    assert copy[f"{PREFIX}StepHzErr"] == pytest.approx(np.mean(list(held_out.truth_hz.values())), rel=1e-9)
    assert truth[f"{PREFIX}CtrlSpeedErr"] < 1e-5 and truth[f"{PREFIX}CtrlYawErr"] < 1e-4  # its own control
    assert copy[f"{PREFIX}CtrlSpeedErr"] > 0.2 and copy[f"{PREFIX}CtrlYawErr"] > 5.0
    loco, still = res["groups"]["locomotion"], res["groups"]["in-place"]
    assert loco["truth"][f"{PREFIX}StepHz"] > 1.5 and loco["copy-last-frame"][f"{PREFIX}StepHzErr"] > 1.5
    # Standing still where the truth stands costs little: the in-place clips hardly step.
    assert still["truth"][f"{PREFIX}StepHz"] < 0.5 and still["copy-last-frame"][f"{PREFIX}StepHzErr"] < 0.5
    assert sorted(loco["clips"] + still["clips"]) == sorted(held_out.names)


def test_a_batched_long_rollout_equals_the_per_clip_one(generation_run, bundled, monkeypatch):
    trained = load_model(generation_run[0] / "best_model.pt")
    names = generation_run[1]["data"]["val_clips"][:3]
    clips = [c for c in bundled.clips if c.name in names]
    cfg = config_from_dict(trained.config, "generation model")
    train_R = training_rotations(cfg)

    def validation(some):
        split = build_split(some, trained.skeleton, trained.runtime.norm, cfg.optim.seq_len, trained.cond_window_s,
                            trained.device)  # fmt: skip
        return LongValidation.create(split, trained.skeleton, train_R, 2.0, trained.cond_window_s)

    monkeypatch.setattr(long_eval, "ROLLOUT_CHUNK", 2)  # two autoregress calls: 2 clips, then 1
    together = {s.name: s for s in validation(clips).model_scores(trained.model, trained.runtime)}
    assert sorted(together) == sorted(names)
    for clip in clips:
        [alone] = validation([clip]).model_scores(trained.model, trained.runtime)
        both = together[clip.name]
        assert (alone.frames, alone.bone_errors, alone.diverged, alone.steps, alone.ctrl_steps) == (
            both.frames, both.bone_errors, both.diverged, both.steps, both.ctrl_steps)  # fmt: skip
        for k in ("skate", "skate_weight", "drift", "ctrl_speed", "ctrl_yaw", "seconds"):
            assert getattr(alone, k) == pytest.approx(getattr(both, k), rel=1e-4, abs=1e-6), (clip.name, k)
        assert alone.ctrl_steps > 0 and alone.seconds == pytest.approx(2.0, rel=1e-5)


def test_which_epochs_validate_long(tiny_config):
    every = {n: tiny_config(epochs=6, eval_long_every=n) for n in (None, 0, 2)}
    due = {n: [e for e in range(1, 7) if long_due(cfg, e, 0.1 if e >= 3 else 0.0)] for n, cfg in every.items()}
    assert due == {None: [3, 4, 5, 6], 0: [], 2: [2, 4, 6]}
    assert [e for e in range(1, 6) if long_due(tiny_config(epochs=5, eval_long_every=2), e, 0.0)] == [2, 4, 5]
    assert [e for e in range(1, 7) if long_due(every[None], e, 0.0)] == [6]  # no free run: the last epoch only
    epochs = [{"epoch": 1, "GeoDeg": 1.0}, {"epoch": 2, f"{PREFIX}StepHz": 1.5}, {"epoch": 3}]
    assert latest_long(epochs)[EPOCH_KEY] == 2 and latest_long(epochs)[f"{PREFIX}StepHz"] == 1.5
    assert latest_long(epochs[:1]) == {}


def test_a_run_validates_long_on_its_epochs_and_writes_it(tiny_config, tmp_path):
    """Every 2nd epoch and the last: the model's FreeRun/long values in those epochs' free-run metric files
    and histories, carried to every later epoch's result, and summary.json's ``long`` section."""
    cfg = tiny_config(epochs=3, tf_end_epoch=3, eval_long_every=2, eval_long_seconds=1.0)
    results, lines = [], []
    summary = fit(cfg, tmp_path / "run", on_epoch=results.append, log=lines.append)
    metrics = tmp_path / "run" / "metrics"
    for epoch, computed in ((1, False), (2, True), (3, True)):
        valfree = json.loads((metrics / f"valfree_ep{epoch:03d}.json").read_text())
        teacher = json.loads((metrics / f"teacher_ep{epoch:03d}.json").read_text())
        assert (set(METRICS) <= set(valfree)) is computed and not any(k.startswith(PREFIX) for k in teacher)
        assert ("| skate " in next(ln for ln in lines if ln.startswith(f"epoch   {epoch}/3"))) is computed
    history = (metrics / "valfree" / "long_StepHzErr.txt").read_text().split()
    assert history[0::2] == ["2", "3"]
    assert [r.long.get(EPOCH_KEY) for r in results] == [None, 2, 3]
    assert results[1].long[f"{PREFIX}StepHz"] == results[1].metrics[f"{PREFIX}StepHz"]
    long = summary["long"]
    assert long["epoch"] == 3 and long["seconds"] == 1.0 and long["frames"] == 30
    assert long["clips"] == len(summary["data"]["val_clips"])
    assert long["model"][f"{PREFIX}StepHzErr"] == pytest.approx(float(history[-1]), rel=1e-5)
    assert long["truth"][f"{PREFIX}StepHzErr"] == 0.0 and long["copy-last-frame"][f"{PREFIX}StepHz"] == 0.0
    assert set(long["groups"]) == {"locomotion", "in-place"}
    assert sum(len(g["clips"]) for g in long["groups"].values()) == long["clips"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["long"] == long
