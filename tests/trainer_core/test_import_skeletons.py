"""Importing the skeletons people have: CMU, Mixamo and Z-up files, their units and frame rates.

Each fixture is a figure walking a known arc (``synth_bvh.Walk``: 1.2 m/s, the
heading turning 90 degrees in 4 s), written in a layout's names, units, axes and
channel order; the importer must recover the heading, the speed and the scale.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from tests.trainer_core.synth_bvh import CMU_UNIT_M, Z_UP, Walk, write_bvh
from trainer_core.data.bvh import ImportOptions, import_bvh, read_units
from trainer_core.errors import DataError
from trainer_core.geometry import geodesic_angle, rot6d_to_matrix

WALK = Walk()
FIXTURES = {
    # name: (layout, fps, metres per unit, channel order, basis)
    "cmu": ("cmu", 120.0, CMU_UNIT_M, "ZYX", None),
    "mixamo": ("mixamo", 30.0, 0.01, "ZXY", None),
    "zup": ("unreal", 60.0, 0.01, "XYZ", Z_UP),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("skeletons")
    return {
        name: write_bvh(d / f"{name}.bvh", layout, WALK, fps=fps, unit_m=unit, order=order, basis=basis)
        for name, (layout, fps, unit, order, basis) in FIXTURES.items()
    }


def _heading_error_deg(clip) -> np.ndarray:
    t = np.arange(clip.n_frames) / clip.fps
    err = np.unwrap(clip.root_yaw) - WALK.yaw(t)
    return np.rad2deg(np.abs((err + np.pi) % (2 * np.pi) - np.pi))


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_heading_follows_the_turn_and_speed_is_the_true_one(files, name):
    clip, sk = import_bvh(files[name])
    turn = np.rad2deg(np.unwrap(clip.root_yaw)[-1] - clip.root_yaw[0])
    assert turn == pytest.approx(WALK.turn_deg, abs=6.0)  # the arc's angle, less the gait twist at the end
    assert _heading_error_deg(clip).mean() < 4.0  # the heading is the path's all along, not just its ends
    speed = np.linalg.norm(clip.root_vel, axis=1).mean()
    assert speed == pytest.approx(WALK.speed, rel=0.10)
    left, forward = clip.root_vel.mean(0)
    assert forward > 0.9 * WALK.speed and abs(left) < 0.1  # walking forwards in its own heading frame
    assert clip.fps == pytest.approx(FIXTURES[name][1], rel=1e-6)
    # Lengths in metres: thigh plus shin of a human, 0.75 to 0.95 m.
    ankle = sk.index(sk.feet["L"][0])
    knee = sk.parents[ankle]
    assert 0.75 < np.linalg.norm(sk.offsets[knee]) + np.linalg.norm(sk.offsets[ankle]) < 0.95


@pytest.mark.parametrize(
    "name, up, scale",
    [("cmu", "y", CMU_UNIT_M), ("mixamo", "y", 0.01), ("zup", "z", 0.01)],
)
def test_units_and_up_axis_are_read_from_the_body(files, name, up, scale):
    units = read_units(files[name], ImportOptions())
    assert units.up == up and units.scale == pytest.approx(scale, rel=1e-9)


@pytest.mark.parametrize(
    "unit_m, label",
    [(1.0, "metres"), (0.01, "centimetres"), (0.001, "millimetres"), (0.0254, "inches"), (CMU_UNIT_M, "CMU")],
)
def test_auto_scale_picks_the_unit_a_human_body_implies(tmp_path, unit_m, label):
    path = write_bvh(tmp_path / "w.bvh", "cmu", Walk(seconds=1.0), fps=30.0, unit_m=unit_m)
    units = read_units(path, ImportOptions())
    assert units.scale == pytest.approx(unit_m, rel=1e-9) and label in units.reason
    clip, _ = import_bvh(path)
    assert np.linalg.norm(clip.root_vel, axis=1).mean() == pytest.approx(WALK.speed, rel=0.10)


def test_given_scale_and_up_win(files):
    clip, sk = import_bvh(files["cmu"], ImportOptions(scale=0.01, up="y"))
    assert np.linalg.norm(clip.root_vel, axis=1).mean() == pytest.approx(WALK.speed * 0.01 / CMU_UNIT_M, rel=0.10)
    assert read_units(files["cmu"], ImportOptions(scale=0.5)).scale == 0.5
    same, _ = import_bvh(files["zup"], ImportOptions(up="z"))
    auto, _ = import_bvh(files["zup"])
    assert np.allclose(same.root_vel, auto.root_vel) and np.allclose(same.rot6d, auto.rot6d)


def test_fps_resamples_on_import(files):
    full, _ = import_bvh(files["cmu"])
    quarter, _ = import_bvh(files["cmu"], ImportOptions(fps=30.0))
    assert full.n_frames == 481 and quarter.n_frames == 121 and quarter.fps == 30.0
    v_full = np.linalg.norm(full.root_vel, axis=1).mean()
    v_quarter = np.linalg.norm(quarter.root_vel, axis=1).mean()
    assert v_quarter == pytest.approx(v_full, rel=0.02) and v_quarter == pytest.approx(WALK.speed, rel=0.10)
    # Every fourth source frame is a sample: the joints' rotations there are the source's
    # (the hips' is relative to the heading, smoothed over 0.1 s of either rate's frames).
    assert np.allclose(quarter.rot6d[:, 1:], full.rot6d[::4, 1:], atol=1e-5)
    assert np.rad2deg(np.abs(quarter.root_yaw - full.root_yaw[::4])).max() < 1.0
    assert _heading_error_deg(quarter).mean() < 4.0


def test_resampling_interpolates_rotations_on_so3(files):
    """Between two source frames the pose is the geodesic midpoint, not a blend of Euler angles."""
    full, _ = import_bvh(files["mixamo"])
    double, _ = import_bvh(files["mixamo"], ImportOptions(fps=60.0))
    assert double.n_frames == 2 * full.n_frames - 1
    assert np.allclose(double.rot6d[::2, 1:], full.rot6d[:, 1:], atol=1e-5)
    R = rot6d_to_matrix(torch.as_tensor(full.rot6d[:, 1:], dtype=torch.float64))
    mid = rot6d_to_matrix(torch.as_tensor(double.rot6d[1::2, 1:], dtype=torch.float64))
    a, b = geodesic_angle(R[:-1], mid), geodesic_angle(mid, R[1:])
    assert torch.allclose(a, b, atol=1e-5)  # halfway along the arc between the two


def test_resample_local_is_slerp_for_rotations_and_lerp_for_translations():
    """Against scipy's Slerp, with steps up to 150 degrees between source frames (10 fps -> 30 fps)."""
    from scipy.spatial.transform import Rotation, Slerp

    from trainer_core.data.resample import resample_local

    rng = np.random.default_rng(3)
    F, J = 6, 4
    axis = rng.normal(size=(F, J, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    steps = Rotation.from_rotvec((axis * rng.uniform(0.1, np.deg2rad(150), size=(F, J, 1))).reshape(-1, 3))
    R = np.empty((F, J, 3, 3))
    R[0] = Rotation.random(J, random_state=1).as_matrix()
    for f in range(1, F):
        R[f] = R[f - 1] @ steps.as_matrix().reshape(F, J, 3, 3)[f]
    t = rng.normal(size=(F, J, 3))
    R2, t2 = resample_local(torch.as_tensor(R), torch.as_tensor(t), 10.0, 30.0)
    assert R2.shape == (3 * (F - 1) + 1, J, 3, 3)
    times = np.arange(R2.shape[0]) / 3.0
    for j in range(J):
        ref = Slerp(np.arange(F), Rotation.from_matrix(R[:, j]))(times).as_matrix()
        assert np.allclose(R2[:, j].numpy(), ref, atol=1e-9)
        for k in range(3):
            assert np.allclose(t2[:, j, k].numpy(), np.interp(times, np.arange(F), t[:, j, k]), atol=1e-12)


def test_rotation_channels_are_read_whatever_their_case(tmp_path):
    walk = Walk(seconds=1.0)
    lower = write_bvh(tmp_path / "lower.bvh", "cmu", walk, fps=30.0)
    upper = write_bvh(tmp_path / "upper.bvh", "cmu", walk, fps=30.0, rotation_word="Rotation")
    assert "XRotation" in upper.read_text()
    a, _ = import_bvh(lower)
    b, _ = import_bvh(upper)
    for key in ("rot6d", "root_yaw", "root_vel", "soft_contacts"):
        assert np.allclose(getattr(a, key), getattr(b, key), atol=1e-6), key


def test_an_unknown_channel_is_one_clear_error(tmp_path):
    path = write_bvh(tmp_path / "w.bvh", "cmu", Walk(seconds=0.5), fps=30.0)
    head, motion = path.read_text().split("MOTION")
    i = head.index("JOINT LeftLeg")
    j = head.index("CHANNELS 3 Zrotation Yrotation Xrotation", i)
    head = (
        head[:j]
        + "CHANNELS 3 Zrotation Wrotation Xrotation"
        + head[j + len("CHANNELS 3 Zrotation Yrotation Xrotation") :]
    )
    path.write_text(head + "MOTION" + motion)
    with pytest.raises(DataError) as e:
        import_bvh(path)
    msg = str(e.value)
    assert str(path) in msg and "`LeftLeg`" in msg and "`Wrotation`" in msg and "\n" not in msg


# --- the command line: the scale it chose, and bad input -----------------------------------


def test_cli_prints_the_units_it_chose(files, tmp_path):
    out = tmp_path / "cmu_set"
    r = run_cli("data", "import-bvh", str(files["cmu"]), "--out", str(out), "--fps", "30")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["import"]["scale"] == pytest.approx(CMU_UNIT_M) and report["import"]["up"] == "y"
    assert report["import"]["source_fps"] == pytest.approx(120.0) and report["fps"] == pytest.approx(30.0)
    assert report["total_frames"] == 121
    lines = [ln for ln in r.stderr.splitlines() if "scale" in ln]
    assert len(lines) == 1 and "0.056444" in lines[0] and "CMU" in lines[0]
    assert report["speed_mean"] == pytest.approx(WALK.speed, rel=0.10)
    r = run_cli("data", "import-bvh", str(files["cmu"]), "--out", str(tmp_path / "given"), "--scale", "0.01")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["import"]["scale"] == 0.01 and "given" in report["import"]["reason"]


def _bad_cli(tmp_path, *args: str) -> str:
    out = tmp_path / "never"
    r = run_cli("data", "import-bvh", *args, "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()
    return r.stderr


def test_cli_rejects_fps_zero(files, tmp_path):
    err = _bad_cli(tmp_path, str(files["cmu"]), "--fps", "0")
    assert "--fps" in err and "must be > 0" in err


def test_cli_rejects_an_unknown_rotation_channel(tmp_path):
    path = write_bvh(tmp_path / "w.bvh", "cmu", Walk(seconds=0.5), fps=30.0)
    path.write_text(
        path.read_text().replace(
            "CHANNELS 3 Zrotation Yrotation Xrotation", "CHANNELS 3 Zrotation Yrotation Qrotation", 1
        )
    )
    err = _bad_cli(tmp_path, str(path))
    assert str(path) in err and "`Qrotation`" in err and "`LHipJoint`" in err


def test_cli_rejects_a_skeleton_without_feet(tmp_path):
    path = write_bvh(
        tmp_path / "w.bvh", "cmu", Walk(seconds=0.5), fps=30.0, rename={"LeftFoot": "LeftPaw", "RightFoot": "RightPaw"}
    )
    err = _bad_cli(tmp_path, str(path))
    assert str(path) in err and "foot" in err and "--feet" in err
