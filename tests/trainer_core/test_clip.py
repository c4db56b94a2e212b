"""Seed JSON clip <-> NPZ, clip validation, dataset folders and the profile."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from trainer_core.data.clip import Clip, angular_velocity, load_clip, load_npz, save_clip, save_npz
from trainer_core.data.datasets import dataset_profile, load_dataset
from trainer_core.data.splits import split_clips
from trainer_core.errors import DataError
from trainer_core.geometry import geodesic_angle, rot6d_to_matrix


def test_json_npz_round_trip(tmp_path, bundled):
    clip = bundled.clips[0]
    save_clip(clip, tmp_path / "c.json")
    back = load_clip(tmp_path / "c.json")
    assert np.allclose(back.rot6d, clip.rot6d, atol=1e-6)
    assert np.allclose(back.angvel, clip.angvel, atol=1e-3)  # recomputed from the rotations
    for key in ("root_yaw", "root_vel", "soft_contacts"):
        assert np.allclose(getattr(back, key), getattr(clip, key), atol=1e-6)
    save_clip(back, tmp_path / "c.npz")
    again = load_clip(tmp_path / "c.npz")
    assert np.array_equal(again.rot6d, back.rot6d) and again.fps == pytest.approx(clip.fps)
    frame = json.loads((tmp_path / "c.json").read_text())["Frames"][0]
    assert set(frame) == {"RootYaw", "RootVelocityXY", "BoneRotations", "FootEvidence"}
    assert len(frame["BoneRotations"][0]) == 6


def _clip(T=10, J=3) -> Clip:
    rot = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), (T, J, 1))
    return Clip(rot, np.zeros((T, J, 3), np.float32), np.zeros(T, np.float32), np.zeros((T, 2), np.float32),
                np.full((T, 2), 0.5, np.float32), 30.0, "c")  # fmt: skip


def test_nan_in_a_clip_names_the_array_and_index(tmp_path):
    clip = _clip()
    clip.root_vel[4, 1] = np.nan
    np.savez(tmp_path / "c.npz", rot6d=clip.rot6d, angvel=clip.angvel, root_yaw=clip.root_yaw,
             root_vel=clip.root_vel, soft_contacts=clip.soft_contacts, fps=30.0)  # fmt: skip
    with pytest.raises(DataError, match=r"`root_vel` holds NaN/inf \(first at index \(4, 1\)\)"):
        load_clip(tmp_path / "c.npz")


def test_wrong_array_shape_names_the_expected_shape(tmp_path):
    clip = _clip()
    np.savez(tmp_path / "c.npz", rot6d=clip.rot6d, angvel=clip.angvel, root_yaw=clip.root_yaw,
             root_vel=np.zeros((10, 3), np.float32), soft_contacts=clip.soft_contacts, fps=30.0)  # fmt: skip
    with pytest.raises(DataError, match=r"`root_vel` has shape \(10, 3\), but must be \(10, 2\)"):
        load_clip(tmp_path / "c.npz")


def test_json_clip_errors_name_the_frame(tmp_path):
    feet = {"L": {"soft_contact_score": 1}, "R": {"soft_contact_score": 0}}
    frame = {"RootYaw": 0, "RootVelocityXY": [0, 0], "BoneRotations": [[1, 0, 0, 0, 1, 0]], "FootEvidence": feet}
    good = {"FPS": 30, "Frames": [frame] * 3}
    bad = json.loads(json.dumps(good))
    bad["Frames"][2]["BoneRotations"] = [[1, 0, 0, 0, 1]]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"Frames\[2\]\.BoneRotations: has shape \(1, 5\)"):
        load_clip(tmp_path / "bad.json")
    (tmp_path / "good.json").write_text(json.dumps(good))
    assert load_clip(tmp_path / "good.json").n_frames == 3


def test_missing_dataset_folder_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match="holds no .npz clips"):
        load_dataset(tmp_path)


def test_profile_of_the_bundled_data_is_sane(bundled):
    prof = dataset_profile(bundled.clips)
    assert prof["n_clips"] == 165 and prof["total_frames"] == 27829 and prof["fps"] == 30.0
    assert 0.5 < prof["speed_mean"] < 1.0  # m/s: 105 locomotion clips at 1.1, 60 in place at 0.1
    assert 0 < prof["yaw_mean_deg"] < 45 and prof["complexity"] > 0


def test_split_is_stable_and_holds_out_whole_long_clips(bundled):
    train, val = split_clips(bundled.clips, 0.2, 19)
    train2, val2 = split_clips(list(reversed(bundled.clips)), 0.2, 19)
    assert {c.name for c in val} == {c.name for c in val2}
    assert len(val) == 33 and len(train) == 132 and all(c.n_frames >= 19 for c in val)
    assert not {c.name for c in val} & {c.name for c in train}


def test_compact_npz_keeps_rotations_within_a_hundredth_of_a_degree(tmp_path, bundled):
    clip = max(bundled.clips, key=lambda c: c.n_frames)
    save_npz(clip, tmp_path / "full.npz")
    save_npz(clip, tmp_path / "small.npz", compact=True)
    back = load_npz(tmp_path / "small.npz")
    err = geodesic_angle(
        rot6d_to_matrix(torch.from_numpy(back.rot6d).double()), rot6d_to_matrix(torch.from_numpy(clip.rot6d).double())
    )
    assert np.rad2deg(float(err.max())) < 0.01
    assert np.allclose(back.angvel, angular_velocity(back.rot6d, clip.fps)) and back.angvel.shape == clip.angvel.shape
    assert np.abs(back.soft_contacts - clip.soft_contacts).max() < 1e-3
    assert np.array_equal(back.root_vel, clip.root_vel) and np.array_equal(back.root_yaw, clip.root_yaw)
    assert (tmp_path / "small.npz").stat().st_size < 0.5 * (tmp_path / "full.npz").stat().st_size


def test_motion_groups_of_the_bundled_clips_follow_their_motion(bundled):
    """Speed groups read the motion, not the names: every in-place content (bow, bye, byebye, guide) and
    only those fall below 0.3 m/s; the names' own labels give the same sets."""
    from trainer_core.data.groups import by_group, mean_root_speed, motion_groups
    from trainer_core.split_spec import GroupSpec

    groups = motion_groups(bundled.clips, GroupSpec.parse("speed"))
    in_place = {"bow", "bye", "byebye", "guide"}
    content = {c.name: c.name.split("_")[1] for c in bundled.clips}
    assert {n for n, g in groups.items() if g == "in-place"} == {n for n, c in content.items() if c in in_place}
    assert len(by_group(groups, list(groups))["in-place"]) == 60
    speeds = {c.name: mean_root_speed(c) for c in bundled.clips}
    assert max(speeds[n] for n in groups if groups[n] == "in-place") < 0.2
    assert min(speeds[n] for n in groups if groups[n] == "locomotion") > 0.35
    named = motion_groups(
        bundled.clips, GroupSpec.parse({"group": "content", "sets": {"in-place": sorted(in_place), "walks": ["walk"]}})
    )
    assert {n for n, g in named.items() if g == "in-place"} == {n for n, g in groups.items() if g == "in-place"}
    assert named["dataset-1_run_sad_001"] == "other" and named["dataset-1_walk_sad_001"] == "walks"
    assert motion_groups(bundled.clips, None) == {}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"speed": -1}, "`motion_groups.speed` is -1"),
        ({"group": "nope", "sets": {"a": ["b"]}}, "`motion_groups.group` is 'nope'"),
        ({"group": "content", "sets": {"a": []}}, "`motion_groups.sets`"),
        ("fast", "`motion_groups` is 'fast'"),
    ],
)
def test_malformed_motion_groups_name_the_key(value, fragment):
    from trainer_core.config_load import config_from_dict
    from trainer_core.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(fragment)):
        config_from_dict({"motion_groups": value}, "cfg.json")
