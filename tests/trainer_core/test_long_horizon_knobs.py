"""Knobs for long-horizon quality, each where the trainer uses it: the teacher-forcing decay's shape, the share
of in-place clips per batch and the early foot term (the free-run horizon ladder: tests/search_spaces)."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import tiny_overrides
from trainer_core.config import TFConfig
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.data.datasets import bundled_dataset_dir
from trainer_core.data.groups import HELD_SUFFIX, LEGS_SUFFIX, held_poses, legs_held, motion_groups
from trainer_core.data.skeleton import Skeleton
from trainer_core.data.splits import split_for
from trainer_core.errors import ConfigError, DataError
from trainer_core.geometry import yaw_matrix
from trainer_core.split_spec import IN_PLACE
from trainer_core.train import loop, losses
from trainer_core.train.loop import TERM_NAMES, accumulate, epoch_batches, fit, train_epoch
from trainer_core.train.schedules import plan_epoch, tf_ratio, tf_shape_fraction
from trainer_core.train.setup import inplace_windows, setup

STYLES = ("normal", "happy", "proud")  # every motion, in place and moving, in three styles; proud validates


def copy_styles(folder: Path, skeleton: Skeleton | None = None) -> Path:
    """A small dataset: the bundled clips of ``STYLES`` (and the bundled skeleton unless one is given)."""
    src = bundled_dataset_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for p in src.glob("*.npz"):
        if p.stem.split("_")[2] in STYLES:
            shutil.copy(p, folder / p.name)
    (skeleton or Skeleton.from_files(src)).to_files(folder)
    return folder


def small_config(data: Path, **extra):
    # the packaged share, held poses and legs held off
    raw = {**load_config().to_dict(), "inplace_share": None, "hold_s": 0.0, "hold_legs": False}
    raw.update(tiny_overrides(data=str(data), val_split={"group": "style", "values": ["proud"]}, **extra))
    raw["augmentation"] = {"mirror": False}
    return config_from_dict(raw, "test config")


@pytest.fixture(scope="module")
def three_styles(tmp_path_factory):
    return copy_styles(tmp_path_factory.mktemp("three_styles"))


@pytest.fixture(scope="module")
def shared(three_styles):
    """One set-up (with ``inplace_share`` 0.5) the tests re-configure with ``dataclasses.replace``."""
    return setup(small_config(three_styles, inplace_share=0.5, batch=8, steps_per_epoch=6))


def _variant(s, data, **extra):
    cfg = small_config(data, **extra)
    return dataclasses.replace(s, cfg=cfg, inplace=inplace_windows(cfg, split_for(cfg, s.dataset).train, s.train))


# --- teacher-forcing decay shape -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["epoch_linear", "step_linear"])
def test_the_linear_shape_gives_the_numbers_of_a_config_without_it(mode):
    tf = TFConfig(mode, 3, 9, 0.9, 0.1)
    assert tf.tf_shape == "linear"
    for epoch in range(1, 12):
        for progress in (0.0, 0.3, 0.7):
            x = epoch + (progress if mode == "step_linear" else 0.0)
            frac = min(1.0, max(0.0, (x - 3) / 6))
            assert tf_ratio(tf, epoch, progress) == 0.9 + (0.1 - 0.9) * frac  # bit for bit the old formula


@pytest.mark.parametrize("shape", ["linear", "cosine", "exp", "sigmoid"])
def test_every_shape_falls_from_max_to_min_without_rising(shape):
    tf = TFConfig("step_linear", 2, 6, 0.9, 0.2, tf_shape=shape)
    assert tf_ratio(tf, 1) == tf_ratio(tf, 2) == pytest.approx(0.9)
    assert tf_ratio(tf, 6) == pytest.approx(0.2) and tf_ratio(tf, 9) == pytest.approx(0.2)
    ratios = [tf_ratio(tf, e, p / 20) for e in range(1, 8) for p in range(20)]
    assert all(b <= a + 1e-12 for a, b in zip(ratios, ratios[1:]))


def test_the_shapes_differ_where_they_should():
    quarter = {s: tf_shape_fraction(s, 0.25) for s in ("linear", "cosine", "exp", "sigmoid")}
    assert quarter["exp"] > 0.6 > quarter["linear"] == 0.25 > quarter["cosine"] > quarter["sigmoid"]  # fall done
    assert tf_shape_fraction("cosine", 0.5) == pytest.approx(0.5) and tf_shape_fraction("exp", 0.5) > 0.9


def test_an_unknown_shape_is_refused_with_a_hint():
    raw = {**load_config().to_dict(), "tf_shape": "cosin"}
    with pytest.raises(ConfigError, match=r"`tf_shape` is 'cosin', but must be one of linear, cosine, exp, sigmoid"
                                          r".*cosine"):  # fmt: skip
        config_from_dict(raw, "test config")


def test_tf_shape_sets_the_ratio_every_training_step_uses(shared, three_styles, monkeypatch):
    seen: list[float] = []

    def fake_step(s, starts, plan, tf, gen):
        seen.append(tf)
        return torch.zeros(()), torch.zeros(len(TERM_NAMES))

    monkeypatch.setattr(loop, "train_step", fake_step)
    for shape in ("linear", "exp"):
        s = _variant(shared, three_styles, tf_mode="step_linear", tf_end_epoch=2, tf_shape=shape, steps_per_epoch=4)
        assert s.cfg.tf.tf_shape == shape
        train_epoch(s, 1)
    linear, exp = seen[:4], seen[4:]
    assert linear == pytest.approx([1 - i / 4 for i in range(4)])
    assert exp == pytest.approx([1 - tf_shape_fraction("exp", i / 4) for i in range(4)])
    assert exp[1] < linear[1] - 0.3


# --- share of in-place clips per batch -------------------------------------------------------------------


def _in_place(s, starts: torch.Tensor) -> torch.Tensor:
    """Whether each window start lies in an in-place clip, found from the clip names alone."""
    groups = motion_groups(s.dataset.clips, s.cfg.data.motion_groups)
    begins = torch.tensor(sorted(set(s.train.clip_begin.tolist())))
    clip = torch.searchsorted(begins, starts.flatten(), right=True) - 1
    return torch.tensor([groups[s.train.names[int(i)]] == IN_PLACE for i in clip])


def test_without_inplace_share_the_draw_is_window_for_window_the_same(shared, three_styles):
    s = _variant(shared, three_styles, batch=8, steps_per_epoch=6)
    assert s.inplace is None
    got = epoch_batches(s, torch.Generator().manual_seed(5))
    gen, starts, need = torch.Generator().manual_seed(5), s.train.window_starts, 48
    order = torch.cat([torch.randperm(len(starts), generator=gen) for _ in range(math.ceil(need / len(starts)))])
    assert torch.equal(torch.stack(got), starts[order[:need]].view(6, 1, 8))  # the draw before inplace_share


def test_inplace_share_sets_each_steps_mix(shared, three_styles):
    assert torch.equal(shared.inplace, _in_place(shared, shared.train.window_starts))  # set up from the config
    batches = epoch_batches(shared, torch.Generator().manual_seed(5))
    assert [int(_in_place(shared, b).sum()) for b in batches] == [4] * 6  # 0.5 of 8, every step
    again = epoch_batches(shared, torch.Generator().manual_seed(5))
    assert torch.equal(torch.stack(batches), torch.stack(again))  # drawn from the epoch's generator only
    plain = epoch_batches(_variant(shared, three_styles, batch=8, steps_per_epoch=6), torch.Generator().manual_seed(5))
    assert int(_in_place(shared, torch.stack(plain)).sum()) != 24  # the data's own mix is another


def test_a_fractional_share_holds_within_one_window_per_step_and_over_the_epoch(shared, three_styles):
    s = _variant(shared, three_styles, inplace_share=0.3, batch=8, steps_per_epoch=10)
    counts = [int(_in_place(s, b).sum()) for b in epoch_batches(s, torch.Generator().manual_seed(1))]
    assert set(counts) == {2, 3} and sum(counts) == 24  # 0.3 x 80 windows
    acc = _variant(shared, three_styles, inplace_share=0.3, batch=4, grad_accum_steps=2, steps_per_epoch=10)
    a = epoch_batches(s, torch.Generator().manual_seed(1))
    b = epoch_batches(acc, torch.Generator().manual_seed(1))
    assert all(torch.equal(x.flatten(), y.flatten()) for x, y in zip(a, b))  # 2 micro-batches of 4 draw the 8


def test_a_share_without_groups_is_refused(shared, three_styles):
    cfg = small_config(three_styles, inplace_share=0.3, motion_groups=None)
    with pytest.raises(ConfigError, match=".inplace_share. is 0.3, but .motion_groups. is null"):
        inplace_windows(cfg, split_for(cfg, shared.dataset).train, shared.train)


@pytest.mark.parametrize(
    "groups, message",
    [
        ({"group": "style", "sets": {"calm": ["normal"]}}, "no training clip is in the `in-place` group"),
        ({"speed": 9.0}, "every training clip is in the `in-place` group"),
    ],
    ids=["no-in-place-clip", "only-in-place-clips"],
)  # fmt: skip
def test_a_share_that_data_in_one_group_cannot_draw_is_ignored_with_a_warning(shared, three_styles, groups,
                                                                              message):  # fmt: skip
    """The packaged default sets a share; a dataset of walking alone (or of standing alone) still trains with it,
    its batches drawn as the data holds them, and the user is told."""
    cfg = small_config(three_styles, inplace_share=0.3, motion_groups=groups)
    with pytest.warns(UserWarning, match=f"`inplace_share` 0.3 is ignored: {message}".replace("`", ".")):
        assert inplace_windows(cfg, split_for(cfg, shared.dataset).train, shared.train) is None


def test_setup_refuses_it_before_anything_is_written(three_styles, tmp_path):
    with pytest.raises(ConfigError, match="`inplace_share`"):
        fit(small_config(three_styles, inplace_share=0.3, motion_groups=None), tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()


# --- held poses: standing still added to the training data ------------------------------------------------


def test_held_poses_hold_each_in_place_clips_stillest_frame(shared):
    clips = shared.dataset.clips
    groups = motion_groups(clips, small_config(Path(".")).data.motion_groups)
    held = {c.name: c for c in held_poses(clips, groups, 2.0)}
    in_place = [c for c in clips if groups[c.name] == IN_PLACE]
    assert len(in_place) > 0 and len(in_place) < len(clips)
    assert sorted(held) == sorted(c.name + HELD_SUFFIX for c in in_place)  # none from a walking clip
    for c in in_place:
        h = held[c.name + HELD_SUFFIX]
        speed = np.linalg.norm(c.angvel, axis=-1).mean(-1)
        k = int(np.argmin(speed[1:-1])) + 1
        assert h.n_frames == round(2.0 * c.fps) and h.fps == c.fps
        assert np.array_equal(h.rot6d, np.repeat(c.rot6d[k : k + 1], h.n_frames, 0))
        assert np.array_equal(h.soft_contacts, np.repeat(c.soft_contacts[k : k + 1], h.n_frames, 0))
        assert np.all(h.root_yaw == c.root_yaw[k]) and not h.angvel.any() and not h.root_vel.any()
        assert speed[k] < np.median(speed)  # the frame is one of the clip's still ones


def test_hold_s_adds_standing_to_the_training_split_alone(shared, three_styles):
    s = setup(small_config(three_styles, hold_s=2.0, inplace_share=0.5, batch=8, steps_per_epoch=6))
    held = [n for n in s.train.names if n.endswith(HELD_SUFFIX)]
    groups = motion_groups(shared.dataset.clips, s.cfg.data.motion_groups)
    assert sorted(held) == sorted(n + HELD_SUFFIX for n in shared.train.names if groups[n] == IN_PLACE)
    assert s.train.names[: len(shared.train.names)] == shared.train.names
    assert s.val.names == shared.val.names  # validation stays real clips
    assert torch.equal(s.norm.x_mean, shared.norm.x_mean) and torch.equal(s.norm.x_std, shared.norm.x_std)
    first = len(shared.train.names)
    begin = s.train.clip_begin[s.train.window_starts]
    held_frames = torch.arange(s.train.n_frames) >= shared.train.n_frames
    assert s.train.n_frames == shared.train.n_frames + len(held) * round(2.0 * s.train.fps)
    assert not s.train.traj_raw[held_frames].any()  # no root motion while standing
    assert torch.equal(s.train.R[held_frames], s.train.R[s.train.clip_begin[held_frames]])  # one pose per clip
    windows = held_frames[begin]
    assert windows.sum() > 0 and s.inplace[windows].all()  # held windows count as in place for the share
    assert len(s.train.names) == first + len(held)


def test_hold_s_needs_motion_groups():
    with pytest.raises(ConfigError, match="`hold_s` is 2.0, but `motion_groups` is null".replace("`", ".")):
        small_config(Path("."), hold_s=2.0, motion_groups=None)


# --- legs held: upper-body motion over standing legs ------------------------------------------------------


def test_legs_held_keeps_the_upper_body_moving_over_the_legs_stillest_frame(shared):
    clips, skeleton = shared.dataset.clips, shared.dataset.skeleton
    legs = skeleton.group_indices("legs")
    rest = [j for j in range(1, skeleton.n_joints) if j not in legs]
    assert len(legs) >= 6 and rest
    groups = motion_groups(clips, small_config(Path(".")).data.motion_groups)
    out = {c.name: c for c in legs_held(clips, groups, legs)}
    in_place = [c for c in clips if groups[c.name] == IN_PLACE]
    assert sorted(out) == sorted(c.name + LEGS_SUFFIX for c in in_place)  # none from a walking clip
    held = [0, *legs]
    for c in in_place:
        h = out[c.name + LEGS_SUFFIX]
        k = int(np.argmin(np.linalg.norm(c.angvel[:, held], axis=-1).mean(-1)[1:-1])) + 1
        assert h.n_frames == c.n_frames and h.fps == c.fps
        assert np.array_equal(h.rot6d[:, held], np.repeat(c.rot6d[k : k + 1, held], c.n_frames, 0))
        assert np.array_equal(h.rot6d[:, rest], c.rot6d[:, rest])  # arms, spine and head as recorded
        assert np.array_equal(h.angvel[:, rest], c.angvel[:, rest]) and not h.angvel[:, held].any()
        assert np.all(h.root_yaw == c.root_yaw[k]) and not h.root_vel.any()
        assert np.array_equal(h.soft_contacts, np.repeat(c.soft_contacts[k : k + 1], c.n_frames, 0))
    assert any(np.abs(c.angvel[:, rest]).max() > 1.0 for c in in_place)  # the copies do move


def test_hold_legs_adds_the_copies_to_the_training_split_alone(shared, three_styles):
    s = setup(small_config(three_styles, hold_legs=True, inplace_share=0.5, batch=8, steps_per_epoch=6))
    groups = motion_groups(shared.dataset.clips, s.cfg.data.motion_groups)
    added = [n for n in s.train.names if n.endswith(LEGS_SUFFIX)]
    assert sorted(added) == sorted(n + LEGS_SUFFIX for n in shared.train.names if groups[n] == IN_PLACE)
    assert s.train.names[: len(shared.train.names)] == shared.train.names and len(added) > 0
    assert s.val.names == shared.val.names  # validation stays real clips
    assert torch.equal(s.norm.x_mean, shared.norm.x_mean)  # the normalizer fits the real clips alone
    copies = torch.arange(s.train.n_frames) >= shared.train.n_frames
    assert not s.train.traj_raw[copies].any()  # the root does not move
    assert s.inplace[copies[s.train.clip_begin[s.train.window_starts]]].all()  # they count as in place
    names = ["a", "b", "a" + HELD_SUFFIX, "a" + LEGS_SUFFIX]
    assert loop._clip_count(names) == "2 (+1 held poses, +1 with the legs held)"  # the run's first line
    assert loop._clip_count(names[:3]) == "2 (+1 held poses)" and loop._clip_count(names[:2]) == "2"


def test_hold_legs_needs_motion_groups_and_is_ignored_with_a_warning_without_legs(three_styles, tmp_path):
    with pytest.raises(ConfigError, match="`hold_legs` is true, but `motion_groups` is null".replace("`", ".")):
        small_config(Path("."), hold_legs=True, motion_groups=None)
    src = Skeleton.from_files(bundled_dataset_dir())
    names = tuple(b.replace("Foot", "Paw").replace("Toes", "Claw") for b in src.bones)  # no foot by name
    assert names != src.bones
    renamed = dataclasses.replace(src, bones=names, feet={}, groups={})
    assert renamed.leg_indices() == []
    folder = copy_styles(tmp_path / "nolegs", renamed)
    with pytest.warns(UserWarning, match="`hold_legs` is ignored: the skeleton's legs are unknown"):
        s = setup(small_config(folder, hold_legs=True))
    assert s.train.names and not any(n.endswith(LEGS_SUFFIX) for n in s.train.names)  # it trains without them


def test_a_skeleton_without_groups_finds_its_legs_from_its_feet():
    src = Skeleton.from_files(bundled_dataset_dir())
    legs = src.group_indices("legs")
    assert legs and src.leg_indices() == legs
    assert dataclasses.replace(src, groups={}).leg_indices() == legs  # feet as given
    assert dataclasses.replace(src, groups={}, feet={}).leg_indices() == legs  # feet found by name


# --- the early foot term ---------------------------------------------------------------------------------


def _world_foot_speed(pos, traj, contacts, feet, fps) -> float:
    """The contact-weighted ground speed of the feet in the world: the heading and the root integrated from a
    clip's rates, each frame's joints placed by its heading (independent of ``foot_early_term``)."""
    T = pos.shape[0]
    yaw = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.float64), traj[1:, 2].double() / fps]), 0)
    Y = yaw_matrix(yaw)
    v = torch.stack([traj[:, 0], torch.zeros(T), traj[:, 1]], -1).double()
    step = torch.cat([torch.zeros(1, 3, dtype=torch.float64), (Y[1:] @ v[1:, :, None])[..., 0] / fps])
    world = torch.cumsum(step, 0)[:, None] + (Y[:, None] @ pos.double()[..., None])[..., 0]
    total, weight = 0.0, 0.0
    for k, f in enumerate(feet):
        q = world[:, f][..., [0, 2]]
        speed = (q[1:] - q[:-1]).norm(dim=-1).mean(-1) * fps
        total += float((contacts[1:, k].double() * speed).sum())
        weight += float(contacts[1:, k].sum())
    return total / weight


def test_the_foot_term_is_the_feet_ground_speed_in_the_world(shared):
    val = shared.val
    assert [len(f) for f in shared.kin.feet] == [2, 2]  # Foot and Toes, left then right
    for begin in sorted(set(val.clip_begin.tolist()))[:6]:
        i = torch.arange(begin, int(val.clip_end[begin]))
        valid = torch.ones(len(i) - 1, dtype=torch.bool)
        args = (val.traj_raw[i[1:]], val.contacts[i[1:]], valid)
        ours = losses.foot_early_term(shared.kin, val.fps, val.pos[i[1:]], val.pos[i[:-1]], *args)
        want = _world_foot_speed(val.pos[i], val.traj_raw[i], val.contacts[i], shared.kin.feet, val.fps)
        assert float(ours) == pytest.approx(want, rel=1e-4, abs=1e-6)
        frozen = losses.foot_early_term(shared.kin, val.fps, val.pos[i[:-1]], val.pos[i[:-1]], *args)
        assert float(frozen) > float(ours)  # a pose held while the root moves on slides its planted feet


def test_the_foot_term_trains_only_early_and_only_with_a_weight(shared, three_styles, monkeypatch):
    calls = []
    real = losses.foot_early_term
    monkeypatch.setattr(losses, "foot_early_term", lambda *a: calls.append(1) or real(*a))
    on = small_config(three_styles, w_foot_early=0.5, foot_early_epochs=1)  # 2 epochs
    s = dataclasses.replace(shared, cfg=on, inplace=None)
    early, late, default = plan_epoch(on, 1), plan_epoch(on, 2), plan_epoch(small_config(three_styles), 1)
    assert (early.weights.w_foot_early, late.weights.w_foot_early, default.weights.w_foot_early) == (0.5, 0.0, 0.0)
    starts = s.train.window_starts[:: len(s.train.window_starts) // 4][:4]
    k = TERM_NAMES.index("foot_early")
    on_total, on_terms = accumulate(s, starts, early, 1.0, torch.Generator().manual_seed(0))
    assert len(calls) == 1 and on_terms[k] > 0
    off_total, off_terms = accumulate(s, starts, default, 1.0, torch.Generator().manual_seed(0))
    late_total, _ = accumulate(s, starts, late, 1.0, torch.Generator().manual_seed(0))
    assert len(calls) == 1 and off_terms[k] == 0  # not computed at weight 0 nor after foot_early_epochs
    assert float(on_total - off_total) == pytest.approx(0.5 * float(on_terms[k]), rel=1e-4)
    assert float(late_total) == float(off_total)


def test_foot_early_epochs_follow_a_rescaled_run():
    raw = {**load_config().to_dict(), "w_foot_early": 0.2, "foot_early_epochs": 3}  # 15 epochs
    cfg = config_from_dict(raw, "test config")
    assert cfg.with_epochs(30).freerun.foot_early_epochs == 6
    assert cfg.with_epochs(2).freerun.foot_early_epochs == 1  # an early term stays on for an epoch
    assert load_config().with_epochs(30).freerun.foot_early_epochs == 0


def test_the_foot_term_needs_the_feet(tmp_path):
    sk = Skeleton.from_files(bundled_dataset_dir())
    names = {b: f"joint{j}" for j, b in enumerate(sk.bones)}  # no name tells a foot
    anonymous = Skeleton(tuple(names.values()), sk.parents, np.asarray(sk.offsets),
                         groups={g: tuple(names[b] for b in v) for g, v in sk.groups.items()})  # fmt: skip
    data = copy_styles(tmp_path / "data", anonymous)
    with pytest.raises(DataError, match="`w_foot_early` is on for the first 2 epoch"):
        setup(small_config(data, w_foot_early=0.1, foot_early_epochs=2))
    assert setup(small_config(data)).kin.feet == ()  # without the term the skeleton trains as before
