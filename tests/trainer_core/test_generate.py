"""Generation from a trained model: rollouts far past the training horizon, BVH files the importer reads
back to the same rotations, the exported inference model, and bad input as one line with nothing written."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import MOCAP_DIR, run_cli
from tests.trainer_core.conftest import without_toes
from tests.trainer_core.test_cli import assert_one_line_error
from trainer_core.data.bvh import ImportOptions, euler_to_matrix, import_bvh
from trainer_core.data.clip import load_npz, save_npz
from trainer_core.data.datasets import bundled_dataset_dir, load_dataset, yaw_rate
from trainer_core.data.device_data import build_split, held_index
from trainer_core.errors import ConfigError
from trainer_core.generate.bvh_writer import EULER_ORDERS, matrix_to_euler, max_rotation_error, write_bvh
from trainer_core.generate.control import Control, control_sequence, parse_control
from trainer_core.generate.inference import load_model

START = bundled_dataset_dir() / "dataset-1_walk_normal_001.npz"
# The writer writes Y-up. The importer's "auto" reads the up axis off the pose, and a one-minute model's
# 20 s free run may end lying down (on some CPUs' arithmetic it does), which is not what these tests check.
WRITTEN = ImportOptions(up="y")
FRAMES = 600
ONE_SECOND = 30  # frames at the bundled data's 30 fps


def mean_yaw_rate_deg(clip, frames=None):
    """Mean yaw rate (deg/s) of the frames after the start, from the clip's headings."""
    rate = np.degrees(yaw_rate(clip)[1:])
    return float(rate[:frames].mean())


@pytest.fixture(scope="module")
def model(generation_run):
    return load_model(generation_run[0] / "best_model.pt")


@pytest.fixture(scope="module")
def generated(generation_run, tmp_path_factory):
    """`motiontune generate` of 600 frames under the clip's own control and under `1.2,30`, as BVH and NPZ."""
    out = tmp_path_factory.mktemp("generated")
    ckpt = str(generation_run[0] / "best_model.pt")
    files = {}
    for name, control in (("own", "clip"), ("turn", "1.2,30")):
        for fmt in ("bvh", "npz"):
            path = out / f"{name}.{fmt}"
            proc = run_cli("generate", ckpt, "--start", str(START), "--frames", str(FRAMES), "--control", control,
                           "--out", str(path))  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert f"generated {FRAMES} frames" in proc.stdout
            files[name, fmt] = path
    return files


@pytest.mark.parametrize("name", ["own", "turn"])
def test_generated_bvh_reimports_to_the_same_motion(generated, name):
    clip = load_npz(generated[name, "npz"])
    back, skeleton = import_bvh(generated[name, "bvh"], WRITTEN)
    assert back.n_frames == clip.n_frames == FRAMES + 1
    assert back.fps == pytest.approx(clip.fps, rel=1e-6)
    assert skeleton.bones == load_dataset(None).skeleton.bones
    assert max_rotation_error(clip, back) < 1e-4  # radians, every joint of every frame
    assert np.abs(np.angle(np.exp(1j * (back.root_yaw - clip.root_yaw)))).max() < 1e-4
    # m/s, relative past 10 m/s: a small model's free run may reach hundreds of m/s, stored in float32
    speed = np.linalg.norm(clip.root_vel, axis=-1, keepdims=True)
    assert (np.abs(back.root_vel - clip.root_vel) <= 1e-3 + 1e-4 * speed).all()
    assert np.isfinite(clip.rot6d).all()


def test_the_turn_command_shows_in_the_reimported_heading(generated, model):
    """Under `1.2,30` the re-imported root_yaw turns left at about 30 deg/s over the first second.

    What this model honestly does: trained for a minute, it follows the command's direction and size
    over its first second (20 deg/s; -32 under `1.2,-30`, -5 under `1.2,0`), then drifts: far past its
    6-frame training horizon it spins (hundreds of deg/s over the 600 frames), which ``FreeRun/long``
    measures. The bound is a factor of 3 either side of 30 deg/s over the first second; the order of
    the three commands' turn rates must hold."""
    turn, _ = import_bvh(generated["turn", "bvh"], WRITTEN)
    own, _ = import_bvh(generated["own", "bvh"], WRITTEN)
    first = mean_yaw_rate_deg(turn, ONE_SECOND)
    assert 10.0 < first < 90.0, first
    start = load_npz(START)
    rates = {t: mean_yaw_rate_deg(model.rollout(start, ONE_SECOND, f"1.2,{t}"), ONE_SECOND) for t in (-30, 0)}
    assert rates[-30] < 0 < first and rates[-30] < rates[0] < first, (rates, first)
    # The heading the file holds is the rollout's: the clip and the re-imported BVH turn alike.
    assert mean_yaw_rate_deg(turn) == pytest.approx(mean_yaw_rate_deg(load_npz(generated["turn", "npz"])), abs=1e-2)
    assert abs(mean_yaw_rate_deg(own, ONE_SECOND) - first) > 5.0  # the command changed the motion


def test_export_model_and_load_model_reproduce_generate(generation_run, generated, tmp_path):
    out = tmp_path / "model.pt"
    proc = run_cli("export-model", str(generation_run[0] / "best_model.pt"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    state = torch.load(out, weights_only=True)
    assert state["format"] == "motiontune-inference" and "optimizer_state_dict" not in state
    assert state["skeleton"]["bones"][0] == "Hips" and len(state["skeleton"]["offsets"]) == 21
    clip = load_model(out).rollout(load_npz(START), FRAMES, "1.2,30")
    want = load_npz(generated["turn", "npz"])
    for key in ("rot6d", "root_yaw", "root_vel", "soft_contacts"):
        assert np.array_equal(getattr(clip, key)[:50], getattr(want, key)[:50]), key
    # The exported file also drives `generate`.
    again = tmp_path / "again.npz"
    proc = run_cli("generate", str(out), "--start", str(START), "--frames", "49", "--control", "1.2,30",
                   "--out", str(again))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(load_npz(again).rot6d, want.rot6d[:50])


def test_real_mocap_round_trips_through_the_writer(tmp_path):
    clip, skeleton = import_bvh(MOCAP_DIR / "dataset-1_walk-left_normal_001.bvh")
    write_bvh(clip, skeleton, tmp_path / "out.bvh")
    back, back_skeleton = import_bvh(tmp_path / "out.bvh")
    assert back_skeleton.bones == skeleton.bones
    assert np.allclose(back_skeleton.offsets, skeleton.offsets, atol=1e-5)
    assert max_rotation_error(clip, back) < 1e-4
    assert np.abs(back.root_yaw - clip.root_yaw).max() < 1e-4
    assert np.abs(back.root_vel - clip.root_vel).max() < 1e-3


@pytest.mark.parametrize("order", EULER_ORDERS)
def test_euler_angles_round_trip_through_the_importers_convention(order):
    rng = np.random.default_rng(1)
    R = euler_to_matrix(rng.uniform(-180, 180, size=(200, 3)), order)
    assert np.abs(euler_to_matrix(matrix_to_euler(R, order), order) - R).max() < 1e-10
    # Gimbal lock: the middle angle at +-90 degrees.
    locked = rng.uniform(-180, 180, size=(20, 3))
    locked[:, 1] = np.where(np.arange(20) % 2 == 0, 90.0, -90.0)
    R = euler_to_matrix(locked, order)
    assert np.abs(euler_to_matrix(matrix_to_euler(R, order), order) - R).max() < 1e-10


def test_constant_control_is_the_requested_speed_turn_and_the_start_gait():
    dataset = load_dataset(None)
    clip = next(c for c in dataset.clips if c.name == START.stem)
    from trainer_core.data.device_data import fit_normalizer

    norm = fit_normalizer(dataset.clips, dataset.skeleton.n_joints, 0.5)
    split = build_split([clip], dataset.skeleton, norm, 1, 0.5, torch.device("cpu"))
    c = control_sequence(Control(1.2, 30.0), split, 5, 7, norm) * norm.c_std + norm.c_mean
    assert c.shape == (7, 4)
    assert torch.allclose(c[:, :2], torch.tensor([0.0, 1.2]).expand(7, 2), atol=1e-5)  # [left, forward]
    assert torch.allclose(c[:, 2], torch.full((7,), math.radians(30.0)), atol=1e-5)
    assert torch.allclose(c[:, 3], split.log_period[5].expand(7), atol=1e-5)
    # The clip's own: step by step, then the last whole control held past the clip's end.
    idx = held_index(split, torch.tensor([1]), clip.n_frames + 50)[:, 0]
    last = int(torch.nonzero(split.ctrl_full).max())
    assert idx[:5].tolist() == [1, 2, 3, 4, 5] and int(idx.max()) == last and int(idx[-1]) == last


@pytest.mark.parametrize("text", ["1.2,30", "-0.5,-90", "0,0", "clip"])
def test_control_parses(text):
    ctrl = parse_control(text)
    assert ctrl.from_clip == (text == "clip")


# --- bad input: one line, exit 2, nothing written ---------------------------------------------


def _no_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_start_clip_of_another_skeleton(generation_run, tmp_path):
    dataset = load_dataset(None)
    other, keep = without_toes(dataset.skeleton)
    folder = tmp_path / "other"
    folder.mkdir()
    other.to_files(folder)
    clip = load_npz(START)
    clip.rot6d, clip.angvel = clip.rot6d[:, keep], clip.angvel[:, keep]
    save_npz(clip, folder / "walk.npz")
    out = tmp_path / "out" / "motion.bvh"
    proc = run_cli("generate", str(generation_run[0] / "best_model.pt"), "--start", str(folder / "walk.npz"),
                   "--frames", "10", "--out", str(out))  # fmt: skip
    assert_one_line_error(proc, "FullHierarchy.json", "joint 16 is `UpperLeg_R`", "`Toes_L`")
    assert not (tmp_path / "out").exists()


def test_zero_frames(generation_run, tmp_path):
    proc = run_cli("generate", str(generation_run[0] / "best_model.pt"), "--start", str(START), "--frames", "0",
                   "--out", str(tmp_path / "motion.bvh"))  # fmt: skip
    assert_one_line_error(proc, "--frames is 0, but must be >= 1")
    assert _no_files(tmp_path) == []


@pytest.mark.parametrize("control", ["fast", "1.2", "1.2,x", "1.2,30,5", "nan,0", "1.2,9000"])
def test_malformed_control(generation_run, tmp_path, control):
    proc = run_cli("generate", str(generation_run[0] / "best_model.pt"), "--start", str(START), "--frames", "10",
                   f"--control={control}", "--out", str(tmp_path / "motion.bvh"))  # fmt: skip
    assert_one_line_error(proc, f"--control {control!r}")
    assert _no_files(tmp_path) == []
    with pytest.raises(ConfigError):
        parse_control(control)


def test_unwritable_out(generation_run, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be\n")
    proc = run_cli("generate", str(generation_run[0] / "best_model.pt"), "--start", str(START), "--frames", "10",
                   "--out", str(blocker / "motion.bvh"))  # fmt: skip
    assert_one_line_error(proc, "--out", "not_a_folder", "is a file, not a folder")
    assert _no_files(tmp_path) == ["not_a_folder"]
    assert blocker.read_text() == "a file where the output folder should be\n"
