"""BVH import on the real mocap: Euler conventions, heading, speeds, contacts, and malformed files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tests.conftest import MOCAP_DIR, SHARED_MOCAP_DIR, bvh_files
from trainer_core.data.bvh import ImportOptions, euler_to_matrix, import_bvh, parse_bvh
from trainer_core.errors import DataError


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YZX", "ZYX"])
def test_euler_channels_compose_in_listed_order_like_scipy_intrinsic(order):
    angles = np.random.default_rng(0).uniform(-180, 180, size=(50, 3))
    ref = Rotation.from_euler(order, angles, degrees=True).as_matrix()  # upper case: intrinsic
    assert np.allclose(euler_to_matrix(angles, order), ref, atol=1e-12)


@pytest.fixture(scope="module")
def walk():
    return import_bvh(MOCAP_DIR / "dataset-1_walk_normal_001.bvh")


def test_import_finds_hips_feet_and_limb_groups(walk):
    clip, sk = walk
    assert sk.bones[0] == "Hips" and "joint_Root" not in sk.bones
    assert clip.n_joints == sk.n_joints == 21
    assert sk.feet == {"L": ("Foot_L", "Toes_L"), "R": ("Foot_R", "Toes_R")}
    assert set(sk.groups["legs"]) == {
        "UpperLeg_L",
        "LowerLeg_L",
        "Foot_L",
        "Toes_L",
        "UpperLeg_R",
        "LowerLeg_R",
        "Foot_R",
        "Toes_R",
    }
    assert "Hand_L" in sk.groups["arms"] and "Head" in sk.groups["torso"]
    assert np.allclose(sk.offsets[0], 0) and 0.3 < np.linalg.norm(sk.offsets[sk.index("LowerLeg_L")]) < 0.5  # metres


def test_import_units_and_rates_are_physical(walk):
    clip, _ = walk
    assert clip.fps == pytest.approx(30.0, rel=1e-4)
    speed = np.linalg.norm(clip.root_vel, axis=1)
    assert 0.9 < speed.mean() < 1.6  # a normal walk, m/s
    assert ((clip.soft_contacts >= 0) & (clip.soft_contacts <= 1)).all()
    assert 0.3 < clip.soft_contacts.mean() < 0.7  # walking: each foot down about half the time
    # Feet alternate: left and right contacts anti-correlate.
    assert np.corrcoef(clip.soft_contacts[:, 0], clip.soft_contacts[:, 1])[0, 1] < -0.3


@pytest.mark.parametrize(
    "name, forward_sign, left_sign",
    [
        ("walk_normal", 1, 0),
        ("walk-back_normal", -1, 0),
        ("run_happy", 1, 0),
        ("walk-left_normal", 1, 1),
        ("walk-right_normal", 1, -1),
    ],
)
def test_heading_frame_velocity_matches_the_motion(name, forward_sign, left_sign):
    clip, _ = import_bvh(MOCAP_DIR / f"dataset-1_{name}_001.bvh")
    left, forward = clip.root_vel.mean(0)
    assert np.sign(forward) == forward_sign and abs(forward) > 0.5
    if left_sign:
        assert np.sign(left) == left_sign and abs(left) > 0.1


def test_every_bundled_source_clip_imports():
    for path in bvh_files():
        clip, sk = import_bvh(path)
        assert clip.n_frames >= 20 and sk.n_joints == 21
        assert np.isfinite(clip.angvel).all()


def test_scale_and_root_joint_options(tmp_path):
    clip_m, sk_m = import_bvh(MOCAP_DIR / "dataset-1_run_normal_001.bvh", ImportOptions(scale=0.01))
    clip_auto, _ = import_bvh(MOCAP_DIR / "dataset-1_run_normal_001.bvh")
    assert np.allclose(clip_m.root_vel, clip_auto.root_vel)
    with pytest.raises(DataError, match="root joint `Pelvis` not in the skeleton"):
        import_bvh(MOCAP_DIR / "dataset-1_run_normal_001.bvh", ImportOptions(root_joint="Pelvis"))
    with pytest.raises(DataError, match="foot joint `Nope`"):
        import_bvh(MOCAP_DIR / "dataset-1_run_normal_001.bvh", ImportOptions(feet={"L": ("Nope",), "R": ("Foot_R",)}))


def _bvh_text() -> str:
    return (MOCAP_DIR / "dataset-1_run_normal_001.bvh").read_text()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t[: t.index("MOTION")], "no MOTION section"),
        (lambda t: t.replace("HIERARCHY", "HIERARCHX"), "no HIERARCHY section"),
        (lambda t: t.rsplit("\n", 6)[0], "the file is truncated"),
        (lambda t: t.replace("Frame Time:", "Frame Tme"), "MOTION must start with"),
        (lambda t: t[: t.rindex("\n", 0, len(t) - 2)] + "\n" + " ".join(["nan"] * 132) + "\n", "holds NaN/inf"),
    ],
)
def test_malformed_bvh_raises_one_clear_error(tmp_path, mutate, message):
    path = tmp_path / "bad.bvh"
    path.write_text(mutate(_bvh_text()))
    with pytest.raises(DataError, match=message) as e:
        import_bvh(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_bvh_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        parse_bvh(tmp_path / "nope.bvh")


def test_the_bundled_dataset_is_what_the_importer_makes_of_the_clips(bundled):
    """The shipped NPZ files are reproducible from the raw BVH with today's importer.

    They are stored compact (int16 rotations, float16 contacts, angular velocity
    recomputed on load): within the quantization, they are the importer's output.
    """
    shipped = {c.name: c for c in bundled.clips}
    tolerance = {"rot6d": 1e-4, "angvel": 5e-3, "root_yaw": 1e-6, "root_vel": 1e-6, "soft_contacts": 1e-3}
    sources = bvh_files()
    assert {p.stem for p in sources} <= set(shipped), "a raw clip is not bundled"
    if SHARED_MOCAP_DIR.is_dir():  # the whole raw set: every bundled clip comes from one
        assert sorted(p.stem for p in sources) == sorted(shipped), "a bundled clip has no raw BVH"
    for path in sources:
        clip, sk = import_bvh(path)
        ref = shipped[path.stem]
        for key, atol in tolerance.items():
            assert np.allclose(getattr(clip, key), getattr(ref, key), atol=atol), (path.name, key)
        # Takes differ by under half a millimetre; the dataset keeps its first clip's offsets.
        assert sk.bones == bundled.skeleton.bones and np.allclose(sk.offsets, bundled.skeleton.offsets, atol=1e-3)


# --- causality: a feature at frame t is computed from frames 0..t only -------------------


def _first_frames(src, dst, n: int):
    head, motion = src.read_text().split("MOTION")
    lines = motion.strip().splitlines()
    dst.write_text(head + "MOTION\n" + f"Frames: {n}\n" + lines[1] + "\n" + "\n".join(lines[2 : 2 + n]) + "\n")
    return dst


@pytest.mark.parametrize("t", [1, 2, 14, 60])
def test_features_at_frame_t_are_the_same_when_the_clip_ends_at_t(tmp_path, t):
    """Real mocap cut after frame t: rotations, angular velocity, heading and root velocity up to t agree."""
    src = MOCAP_DIR / "dataset-1_walk-left_normal_001.bvh"
    full, _ = import_bvh(src)
    cut, _ = import_bvh(_first_frames(src, tmp_path / "cut.bvh", t + 1))
    assert cut.n_frames == t + 1
    for key in ("rot6d", "angvel", "root_yaw", "root_vel"):
        np.testing.assert_allclose(getattr(cut, key), getattr(full, key)[: t + 1], atol=1e-6, err_msg=key)


def test_no_feature_at_frame_t_sees_a_change_after_t(tmp_path):
    """The figure swerves after frame t: every feature up to t, soft contacts included, is unchanged.

    The swerve turns the whole figure about the vertical through the hips, so no
    joint's height changes and each foot's planted level (a per-clip calibration
    of the floor, see ``bvh``) stays the same; only what happens after t differs.
    """
    from tests.trainer_core.synth_bvh import Walk, write_bvh

    t0, fps = 40, 30.0

    def swerve(pos: np.ndarray, R: np.ndarray) -> None:
        extra = np.deg2rad(60.0) * np.clip(np.arange(len(pos)) - t0, 0, None) / fps  # 60 deg/s after t0
        Ry = Rotation.from_rotvec(extra[:, None] * np.array([0.0, 1.0, 0.0])).as_matrix()
        pivot = pos[t0] * np.array([1.0, 0.0, 1.0])
        R[:, 0] = Ry @ R[:, 0]
        pos[:] = pivot + (Ry @ (pos - pivot)[..., None])[..., 0]

    walk = Walk(seconds=3.0)
    base, _ = import_bvh(write_bvh(tmp_path / "base.bvh", "mixamo", walk, fps=fps, unit_m=0.01))
    swerved, _ = import_bvh(write_bvh(tmp_path / "swerve.bvh", "mixamo", walk, fps=fps, unit_m=0.01, edit=swerve))
    for key in ("rot6d", "angvel", "root_yaw", "root_vel", "soft_contacts"):
        a, b = getattr(base, key), getattr(swerved, key)
        np.testing.assert_allclose(b[: t0 + 1], a[: t0 + 1], atol=1e-6, err_msg=key)
    # The change after t0 is there to be seen: the heading turns away.
    assert abs(np.unwrap(swerved.root_yaw)[-1] - np.unwrap(base.root_yaw)[-1]) > np.deg2rad(60)
