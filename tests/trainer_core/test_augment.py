"""Augmentation on the real mocap: mirror, speed scale and input noise, by their properties."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import warnings

import numpy as np
import pytest
import torch

from tests.conftest import run_cli, tiny_overrides
from trainer_core.config import AugmentConfig
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.data.augment import Augmenter, mirror_raw, resample
from trainer_core.data.datasets import bundled_dataset_dir, load_dataset
from trainer_core.data.device_data import build_split, control_window, fit_normalizer
from trainer_core.data.features import COND_LAYOUT
from trainer_core.data.gait import foot_strikes, soft_gait
from trainer_core.data.mirror import Mirror, pairs_by_name, side_and_stem
from trainer_core.data.skeleton import Skeleton
from trainer_core.errors import ConfigError
from trainer_core.geometry import forward_kinematics, geodesic_angle, so3_log
from trainer_core.model.rollout import predict, scheduled_sampling_inputs
from trainer_core.train.loop import fit, train_epoch
from trainer_core.train.losses import step_terms
from trainer_core.train.setup import setup

CPU = torch.device("cpu")
T = 40
M = torch.tensor([-1.0, 1.0, 1.0])  # the mirror in the heading frame: x is the character's left
WALK_LEFT, WALK_RIGHT = "dataset-1_walk-left_normal_001", "dataset-1_walk-right_normal_001"
COND_WINDOW_S = 0.5  # the splits' `cond_window_s`
WINDOW = 15  # frames: COND_WINDOW_S at the bundled clips' 30 fps


STYLES = ("normal", "happy", "tired", "active")  # a quarter of the bundled styles keeps the tests quick


@pytest.fixture(scope="module")
def four_styles(tmp_path_factory):
    """A dataset folder with every bundled motion in four styles."""
    src, folder = bundled_dataset_dir(), tmp_path_factory.mktemp("four_styles")
    for p in src.glob("*.npz"):
        if p.stem.split("_")[2] in STYLES:
            shutil.copy(p, folder / p.name)
    Skeleton.from_files(src).to_files(folder)
    return folder


@pytest.fixture(scope="module")
def real(four_styles):
    """The real mocap as one split on the CPU, its normalizer and a mirroring, speed-scaling augmenter."""
    bundled = load_dataset(four_styles)
    sk = bundled.skeleton
    norm = fit_normalizer(bundled.clips, sk.n_joints, COND_WINDOW_S)
    split = build_split(bundled.clips, sk, norm, T, COND_WINDOW_S, CPU)
    aug = Augmenter.create(AugmentConfig(mirror=True, speed_scale_range=[0.8, 1.25]), sk, split, norm, COND_WINDOW_S)
    starts = split.window_starts[torch.randperm(len(split.window_starts), generator=torch.Generator().manual_seed(0))]
    return bundled, norm, split, aug, starts[:24]


def _clip_split(bundled, norm, name):
    clip = next(c for c in bundled.clips if c.name == name)
    return build_split([clip], bundled.skeleton, norm, T, COND_WINDOW_S, CPU)


def _whole_clip(split, norm, aug, flip):
    """Every frame after the first of a one-clip split, as raw parts ``(1, F-1, ...)``, mirrored if ``flip``."""
    raw, _ = resample(split, norm, torch.tensor([1]), split.n_frames - 2, None, WINDOW)
    return mirror_raw(raw, aug.mirror, torch.tensor([flip]))


# --- pairs by name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "left, right",
    [("Foot_L", "Foot_R"), ("LeftFoot", "RightFoot"), ("l_ankle", "r_ankle"),
     ("mixamorig:LeftArm", "mixamorig:RightArm"), ("LHipJoint", "RHipJoint"), ("foot.L", "foot.R"),
     ("Bip01 L Thigh", "Bip01 R Thigh"), ("leftfoot", "rightfoot")],
)  # fmt: skip
def test_partners_are_found_by_name(left, right):
    assert side_and_stem(left)[0] == "L" and side_and_stem(right)[0] == "R"
    bones = ("Hips", "Spine", "LowerBack", "Head", right, left)
    assert pairs_by_name(bones) == [(5, 4)]


def test_a_joint_without_a_partner_is_named():
    with pytest.raises(ConfigError, match="`LeftEye` has no right-side partner"):
        pairs_by_name(("Hips", "LeftEye", "LeftFoot", "RightFoot"))


def test_the_bundled_rig_maps_its_frames_by_signed_axis_permutations(real):
    bundled, _, _, aug, _ = real
    sk, A = bundled.skeleton, aug.mirror.right
    perm = aug.mirror.perm.tolist()
    assert [sk.bones[k] for k in perm[5:9]] == ["Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R"]
    assert torch.equal(A[sk.index("Hips")], torch.diag(torch.tensor([1.0, -1.0, 1.0])))  # legs sit at -y/+y
    for name in ("Spine", "Chest", "Neck", "Head"):
        assert torch.equal(A[sk.index(name)], torch.diag(torch.tensor([1.0, 1.0, -1.0]))), name
    for name in ("UpperArm_L", "LowerLeg_R", "Toes_L"):  # bones run along +x on the left, -x on the right
        assert torch.equal(A[sk.index(name)], -torch.eye(3)), name


# --- mirror -------------------------------------------------------------------------------


def test_mirroring_twice_is_the_identity(real):
    _, norm, split, aug, starts = real
    raw, _ = resample(split, norm, starts, T, None, WINDOW)
    flip = torch.ones(len(starts), dtype=torch.bool)
    once = mirror_raw(raw, aug.mirror, flip)
    twice = mirror_raw(once, aug.mirror, flip)
    for key in raw:
        assert not torch.equal(once[key], raw[key]) or key in ("log_period", "ctrl_full"), key
        torch.testing.assert_close(twice[key], raw[key], rtol=0, atol=1e-6, msg=key)


def test_fk_of_the_mirrored_pose_is_the_mirrored_fk(real):
    bundled, norm, split, aug, starts = real
    sk = bundled.skeleton
    raw, _ = resample(split, norm, starts, T, None, WINDOW)
    mirrored = mirror_raw(raw, aug.mirror, torch.ones(len(starts), dtype=torch.bool))
    off = torch.from_numpy(sk.offsets)
    G, pos = forward_kinematics(raw["R"], off, sk.parents)
    G_m, pos_m = forward_kinematics(mirrored["R"], off, sk.parents)
    perm = aug.mirror.perm
    expected_pos = pos[..., perm, :] * M
    assert (pos_m - expected_pos).norm(dim=-1).max() < 2e-3  # metres: the bundled offsets' own asymmetry is 0.4 mm
    assert (pos_m - expected_pos).norm(dim=-1).max() < 0.01 * (pos - expected_pos).norm(dim=-1).max()
    expected_G = M[:, None] * G[..., perm, :, :] @ aug.mirror.right
    assert geodesic_angle(G_m, expected_G).max() < 1e-3


def test_mirrored_angular_velocity_is_the_rate_of_the_mirrored_rotations(real):
    bundled, norm, _, aug, _ = real
    split = _clip_split(bundled, norm, WALK_LEFT)
    errors = []
    for flip in (False, True):
        m = _whole_clip(split, norm, aug, flip)
        R = m["R"][0].double()
        rate = so3_log(R[:-1].transpose(-1, -2) @ R[1:]) * split.fps  # backward differences, as the importer does
        errors.append(float((m["angvel"][0, 1:].double() - rate).abs().max()))
        assert rate.abs().max() > 1.0  # the clip moves
    assert errors[1] <= errors[0] + 1e-4, errors  # mirrored as consistent as the data itself


def test_a_walk_left_mirrored_is_a_walk_right(real):
    """Lateral velocity and yaw rate change sign, contacts follow the feet they now belong to."""
    bundled, norm, _, aug, _ = real
    sk = bundled.skeleton
    left_split = _clip_split(bundled, norm, WALK_LEFT)
    plain, mirrored = (_whole_clip(left_split, norm, aug, f) for f in (False, True))
    right = _whole_clip(_clip_split(bundled, norm, WALK_RIGHT), norm, aug, False)
    v, vm, vr = plain["traj"][0].mean(0), mirrored["traj"][0].mean(0), right["traj"][0].mean(0)
    assert v[0] > 0.1 and vr[0] < -0.1  # x is the character's left: a walk-left drifts to +x
    assert vm[0] == pytest.approx(-float(v[0])) and math.copysign(1, vm[0]) == math.copysign(1, vr[0])
    assert vm[1] == pytest.approx(float(v[1])) and vm[1] > 0.5  # still walking forward
    torch.testing.assert_close(mirrored["traj"][0, :, 2], -plain["traj"][0, :, 2])  # yaw rate
    torch.testing.assert_close(mirrored["contacts"][0], plain["contacts"][0].flip(-1))
    clip = next(c for c in bundled.clips if c.name == WALK_LEFT)
    swapped = clip.soft_contacts[:, ::-1].copy()
    phase, period = soft_gait(swapped, clip.fps)  # the gait of the swapped contacts, by its definition
    phase_m = torch.from_numpy(np.stack([np.cos(phase), np.sin(phase)], axis=1))[1:]
    seen = math.ceil(foot_strikes(swapped)[0][0])  # before a first strike the phase has no reference
    torch.testing.assert_close(mirrored["phase"][0, seen:], phase_m[seen:], rtol=0, atol=1e-4)
    torch.testing.assert_close(mirrored["log_period"][0], torch.from_numpy(np.log(period))[1:], rtol=0, atol=1e-5)
    torch.testing.assert_close(mirrored["ctrl"][0, :, :2] * M[:2], plain["ctrl"][0, :, :2])
    _, pos = forward_kinematics(mirrored["R"][0], torch.from_numpy(sk.offsets), sk.parents)
    foot_l, foot_r = sk.index("Foot_L"), sk.index("Foot_R")
    assert pos[:, foot_l, 0].mean() > 0 > pos[:, foot_r, 0].mean()  # the left foot is on the left

    def corr(a, b):
        return float(np.corrcoef(a.numpy(), b.numpy())[0, 1])

    contact_l = mirrored["contacts"][0, :, 0]
    assert corr(contact_l, -pos[:, foot_l, 1]) > 0.5 > -0.5 > corr(contact_l, -pos[:, foot_r, 1])


def test_mirror_flips_only_the_windows_drawn(real):
    _, norm, split, aug, starts = real
    raw, _ = resample(split, norm, starts, T, None, WINDOW)
    flip = torch.arange(len(starts)) % 2 == 0
    out = mirror_raw(raw, aug.mirror, flip)
    for key in raw:
        assert torch.equal(out[key][~flip], raw[key][~flip]), key


# --- speed scale --------------------------------------------------------------------------


def test_speed_scale_one_is_the_identity(real):
    _, norm, split, aug, starts = real
    batch = aug.windows(split, starts, T, torch.ones(len(starts)), None)
    idx = starts[:, None] + torch.arange(T + 1)
    end = split.clip_end[starts][:, None]
    valid, idx = idx < end, torch.minimum(idx, end - 1)
    for key in ("x", "c", "R", "Rg", "pos", "traj", "traj_raw", "contacts", "phase", "log_period"):
        ours = getattr(batch, key).view(len(starts), T + 1, *getattr(batch, key).shape[1:])
        torch.testing.assert_close(ours, getattr(split, key)[idx], rtol=0, atol=2e-5, msg=key)
    span = batch.window_starts[:, None] + torch.arange(T + 1)
    assert torch.equal(span < batch.clip_end[batch.window_starts][:, None], valid)


def test_speed_scale_resamples_time(real):
    """Scale 2 takes every other frame, 1.5 puts odd frames on the SO(3) midpoint; velocities scale."""
    bundled, norm, _, aug, _ = real
    split = _clip_split(bundled, norm, WALK_LEFT)
    start, n = torch.tensor([1]), 20
    two, _ = resample(split, norm, start, n, torch.tensor([2.0]), WINDOW)
    src = 1 + 2 * torch.arange(n + 1)
    torch.testing.assert_close(two["R"][0], split.R[src], rtol=0, atol=1e-5)
    torch.testing.assert_close(two["traj"][0], 2 * split.traj_raw[src])
    torch.testing.assert_close(two["log_period"][0], split.log_period[src] - math.log(2))
    half, _ = resample(split, norm, start, n, torch.tensor([1.5]), WINDOW)
    a = 1 + (1.5 * torch.arange(1, n + 1, 2)).floor().long()  # odd output frames sit halfway from a to a + 1
    mid = half["R"][0, 1::2]
    to_a, to_b = geodesic_angle(mid, split.R[a]), geodesic_angle(mid, split.R[a + 1])
    torch.testing.assert_close(to_a, to_b, rtol=0, atol=1e-4)
    torch.testing.assert_close(to_a + to_b, geodesic_angle(split.R[a], split.R[a + 1]), rtol=0, atol=1e-4)
    torch.testing.assert_close(half["contacts"][0, 1::2], 0.5 * (split.contacts[a] + split.contacts[a + 1]))


def test_frames_past_the_clip_end_are_masked(real):
    bundled, norm, _, aug, _ = real
    split = _clip_split(bundled, norm, WALK_LEFT)
    F = split.n_frames
    start = torch.tensor([F - T - 1])  # the last full window at scale 1
    batch = aug.windows(split, start, T, torch.tensor([1.25]), None)
    inside = int(batch.clip_end[0])
    assert inside == math.floor((F - 1 - start.item()) / 1.25) + 1 < T + 1


@pytest.mark.parametrize("s", [0.8, 1.25, 1.5, 2.0])
def test_a_speed_scaled_windows_control_is_the_control_of_the_resampled_clip(real, s):
    """``control_window`` (what training and evaluation use) on the clip resampled from the window's start."""
    bundled, norm, _, aug, _ = real
    split = _clip_split(bundled, norm, WALK_LEFT)
    F, window = split.n_frames, round(COND_WINDOW_S * split.fps)
    starts = torch.tensor([1, 37, F - T - 1])  # the last one's window and controls run into the clip's end
    batch = aug.windows(split, starts, T, torch.full((3,), s), None)
    ctrl, full = batch.ctrl_raw.view(3, T + 1, 3), batch.ctrl_full.view(3, T + 1)
    cond = COND_LAYOUT.unpack((batch.c * norm.c_std + norm.c_mean).view(3, T + 1, -1))
    ctrl_in_c = torch.cat([cond["ctrl_vel"], cond["ctrl_yaw_rate"]], -1)  # what the model is conditioned on
    cut = 0
    for k, start in enumerate(starts.tolist()):
        clip, inside = resample(split, norm, torch.tensor([start]), F, torch.tensor([s]), window)
        traj = clip["traj"][0, : int(inside.sum())].numpy()
        want, want_full = control_window(traj, window)
        want = torch.from_numpy(want).float()
        n = min(T + 1, len(traj))
        torch.testing.assert_close(ctrl[k, :n], want[:n], rtol=0, atol=1e-6, msg=lambda m, at=start: f"start {at}: {m}")
        assert torch.equal(full[k, :n], torch.from_numpy(want_full[:n])), start
        torch.testing.assert_close(ctrl_in_c[k, :n], want[:n], rtol=0, atol=1e-5)
        for i in range(n):
            if want_full[i]:  # the frames after the target i + 1, never the target
                torch.testing.assert_close(ctrl[k, i], torch.from_numpy(traj[i + 2 : i + 2 + window]).mean(0))
        cut += int((~want_full[:n]).sum())
    assert cut > 0  # the last window's controls shrink at the clip's end, and are checked there too


def test_a_speed_scaled_control_never_covers_the_target_frame(real):
    """At scale 2 output frame k is source frame 1 + 2k exactly: a change at the target i + 1 of the step
    i -> i+1 moves the controls of the steps whose windows hold frame i + 1, never the step's own."""
    bundled, norm, _, aug, _ = real
    split = _clip_split(bundled, norm, WALK_LEFT)
    window = round(COND_WINDOW_S * split.fps)
    start, scale = torch.tensor([1]), torch.tensor([2.0])
    plain = aug.windows(split, start, T, scale, None).ctrl_raw
    for i in (0, 10, 20):
        traj = split.traj_raw.clone()
        traj[1 + 2 * (i + 1)] += 100.0
        moved = aug.windows(dataclasses.replace(split, traj_raw=traj), start, T, scale, None).ctrl_raw
        changed = ((moved - plain).abs().amax(-1) > 1.0).nonzero().flatten().tolist()
        assert changed == list(range(max(0, i - window), i)), (i, changed)


# --- the loss code on an augmented batch --------------------------------------------------


def _terms(s, split, starts):
    idx = starts[:, None] + torch.arange(s.cfg.optim.seq_len + 1)
    end = split.clip_end[starts][:, None]
    mask, idx = idx < end, torch.minimum(idx, end - 1)
    x_in, R_in = scheduled_sampling_inputs(s.model, s.rt, split, idx, 1.0, torch.Generator())
    step = predict(s.model, s.rt, x_in, split.c[idx[:, :-1]], R_in)
    return step_terms(s.model, s.rt, s.kin, split, step, idx[:, :-1], idx[:, 1:], mask[:, 1:], s.cfg.loss, 0.1)


def _tiny(data, **aug):
    raw = load_config().to_dict()
    raw.update(tiny_overrides(seq_len=T, w_latent_consistency=0.1, data=str(data)))
    raw["augmentation"] = aug
    return config_from_dict(raw, "tiny test config")


def test_an_unaugmented_batch_as_its_own_split_gives_the_same_loss(four_styles):
    s = setup(_tiny(four_styles, mirror=True))
    s.model.eval()
    starts = s.train.window_starts[:: max(1, len(s.train.window_starts) // 8)][:8]
    plain = _terms(s, s.train, starts)
    batch = s.aug.windows(s.train, starts, T, None, torch.zeros(len(starts), dtype=torch.bool))
    ours = _terms(s, batch, batch.window_starts)
    for name, value in plain.items():
        torch.testing.assert_close(ours[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_augmentation_off_trains_exactly_the_plain_steps(four_styles):
    """Every augmentation key at its default: no augmenter, nothing extra drawn, the same losses bit for bit."""
    cfg = _tiny(four_styles, noise_std=0.0, speed_scale_range=[1.0, 1.0], mirror=False)
    assert not cfg.aug.active
    s = setup(cfg)
    assert s.aug is None
    reference = setup(_tiny(four_styles))  # no augmentation block at all
    noisy = setup(_tiny(four_styles, noise_std=0.01))
    a, b, c = (train_epoch(x, 1) for x in (s, reference, noisy))
    assert a["loss/total"] == b["loss/total"] and a["loss/freerun"] == b["loss/freerun"]
    assert c["loss/total"] != a["loss/total"]  # the comparison can tell a changed step


def test_noise_goes_on_inputs_with_the_asked_std(real):
    _, norm, split, _, _ = real
    aug = Augmenter.create(AugmentConfig(noise_std=0.05), real[0].skeleton, split, norm, COND_WINDOW_S)
    assert not aug.rebuilds
    x = split.x[:2000]
    noised = aug.noise(x, torch.Generator().manual_seed(3))
    assert float((noised - x).std()) == pytest.approx(0.05, rel=0.02)
    assert torch.equal(noised, aug.noise(x, torch.Generator().manual_seed(3)))  # drawn from the generator only


def test_resume_with_augmentation_reproduces_the_uninterrupted_run(tmp_path, four_styles):
    raw = load_config().to_dict()
    raw.update(tiny_overrides(epochs=2, keep_checkpoints=0, tf_end_epoch=2, data=str(four_styles)))
    raw["augmentation"] = {"mirror": True, "noise_std": 0.02, "speed_scale_range": [0.8, 1.25]}
    cfg = config_from_dict(raw, "tiny augmented config")
    full, part = tmp_path / "full", tmp_path / "part"
    fit(cfg, full, log=lambda _: None)
    fit(cfg, part, resume=full / "checkpoint_epoch_1.pt", log=lambda _: None)
    a = json.loads((full / "metrics" / "teacher_ep002.json").read_text())
    b = json.loads((part / "metrics" / "teacher_ep002.json").read_text())
    assert a["loss/total"] == pytest.approx(b["loss/total"], rel=1e-6) and a["GeoDeg"] == pytest.approx(b["GeoDeg"])


# --- bad input ----------------------------------------------------------------------------


def _one_line_exit_2(proc, *fragments):
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "warning" not in ln.lower()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.parametrize(
    "setting, message",
    [("augmentation.noise_std=-0.1", "`noise_std` is -0.1, but must be in [0, 1]"),
     ("augmentation.speed_scale_range=[1.2, 0.8]", "`augmentation.speed_scale_range` is [1.2, 0.8]")],
    ids=["noise-below-zero", "speed-range-reversed"],
)  # fmt: skip
def test_out_of_range_augmentation_values_fail_in_one_line(tmp_path, setting, message):
    out = tmp_path / "out"
    proc = run_cli("train", "--smoke-test", "--set", setting, "--out", str(out))
    _one_line_exit_2(proc, message)
    assert not out.exists()


def _renamed(sk: Skeleton, rename: dict[str, str]) -> Skeleton:
    """``sk`` with the joints in ``rename`` renamed, the rest as they are."""

    def name(b: str) -> str:
        return rename.get(b, b)

    return Skeleton(
        bones=tuple(name(b) for b in sk.bones),
        parents=sk.parents,
        offsets=sk.offsets,
        feet={k: tuple(name(b) for b in v) for k, v in sk.feet.items()},
        groups={k: tuple(name(b) for b in v) for k, v in sk.groups.items()},
    )


def _without_sides(sk: Skeleton) -> Skeleton:
    """``sk`` with its joints renamed j00, j01, ...: nothing in the names says left or right."""
    return _renamed(sk, {b: f"j{i:02d}" for i, b in enumerate(sk.bones)})


def _lonely_head(sk: Skeleton) -> Skeleton:
    """``sk`` with ``Head`` renamed ``Head_R``: a side-named joint with no left partner."""
    return _renamed(sk, {"Head": "Head_R"})


def _dataset_with(skeleton: Skeleton, folder, clips):
    folder.mkdir()
    for p in clips.glob("*.npz"):
        shutil.copy(p, folder / p.name)
    skeleton.to_files(folder)
    return folder


@pytest.mark.parametrize(
    "rename, fragments",
    [(_without_sides, ("`augmentation.mirror` is true", "no left/right pairs", "augmentation.mirror_pairs")),
     (_lonely_head, ("`augmentation.mirror`: joint `Head_R` has no left-side partner", "augmentation.mirror_pairs"))],
    ids=["no-sides", "side-without-partner"],
)  # fmt: skip
def test_mirror_true_on_a_skeleton_it_cannot_mirror_fails_in_one_line(tmp_path, four_styles, rename, fragments):
    data = _dataset_with(rename(Skeleton.from_files(four_styles)), tmp_path / "data", four_styles)
    out = tmp_path / "out"
    proc = run_cli("train", "--set", "augmentation.mirror=true", "--data", str(data), "--out", str(out))
    _one_line_exit_2(proc, *fragments)
    assert not out.exists()


def test_mirror_pairs_naming_an_unknown_joint_fail_in_setup(four_styles):
    with pytest.raises(ConfigError, match="names joint `Foot_Left`.*did you mean `Foot_L`"):
        setup(_tiny(four_styles, mirror=True, mirror_pairs=[["Foot_Left", "Foot_R"]]))


def test_mirror_pairs_that_break_the_tree_fail_in_setup(four_styles):
    with pytest.raises(ConfigError, match="hang from joints that are not partners"):
        setup(_tiny(four_styles, mirror=True, mirror_pairs=[["Hand_L", "Hand_R"], ["Foot_L", "Toes_R"]]))


def test_an_asymmetric_skeleton_gets_one_warning(real):
    bundled, _, split, _, _ = real
    sk = bundled.skeleton
    offsets = sk.offsets.copy()
    offsets[sk.index("Hand_L")] *= 1.2  # a forearm 4 cm longer on the left
    lopsided = Skeleton(sk.bones, sk.parents, offsets, sk.feet, sk.groups)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Mirror.create(lopsided, split.Rg, None, CPU)
        Mirror.create(sk, split.Rg, None, CPU)
    texts = [str(w.message) for w in caught]
    assert len(texts) == 1 and "not left/right symmetric" in texts[0] and "Hand_L" in texts[0], texts


def test_mirror_auto_mirrors_a_skeleton_with_sides_and_skips_one_without(real):
    bundled, norm, split, _, _ = real
    sided = Augmenter.create(AugmentConfig(mirror="auto"), bundled.skeleton, split, norm, COND_WINDOW_S)
    assert sided is not None and sided.mirror is not None
    assert sided.mirror.perm.tolist() != list(range(bundled.skeleton.n_joints))  # pairs found, swapped
    sideless = _without_sides(bundled.skeleton)
    with pytest.warns(UserWarning, match=r'`augmentation.mirror` is "auto" .* no left/right pairs.*without mirroring'):
        assert Augmenter.create(AugmentConfig(mirror="auto"), sideless, split, norm, COND_WINDOW_S) is None
    with pytest.warns(UserWarning, match="without mirroring"):
        speed_only = Augmenter.create(AugmentConfig(mirror="auto", speed_scale_range=[0.8, 1.25]), sideless, split,
                                      norm, COND_WINDOW_S)  # fmt: skip
    assert speed_only is not None and speed_only.mirror is None and speed_only.speed_range == (0.8, 1.25)
    with pytest.raises(ConfigError, match="no left/right pairs"):  # true still asks for a mirror: it fails
        Augmenter.create(AugmentConfig(mirror=True), sideless, split, norm, COND_WINDOW_S)


def test_mirror_auto_trains_unmirrored_when_a_side_named_joint_has_no_partner(tmp_path, four_styles):
    """``Head_R`` without a ``Head_L``: "auto" warns once, naming the joint, and trains; true refuses."""
    lonely = _lonely_head(Skeleton.from_files(four_styles))
    data = _dataset_with(lonely, tmp_path / "data", four_styles)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = setup(_tiny(data, mirror="auto", speed_scale_range=[0.8, 1.25]))
        metrics = train_epoch(s, 1)
    texts = [str(w.message) for w in caught if "mirror" in str(w.message)]
    assert len(texts) == 1, texts
    assert texts[0].startswith('`augmentation.mirror` is "auto"') and "`Head_R`" in texts[0], texts[0]
    assert "training without mirroring" in texts[0] and "augmentation.mirror_pairs" in texts[0], texts[0]
    assert s.aug is not None and s.aug.mirror is None and s.aug.speed_range == (0.8, 1.25)
    assert math.isfinite(metrics["loss/total"]) and metrics["loss/total"] > 0
    with pytest.raises(ConfigError, match="joint `Head_R` has no left-side partner by name"):
        Augmenter.create(AugmentConfig(mirror=True), lonely, s.train, s.norm, COND_WINDOW_S)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_mirror_is_true_false_or_auto(value):
    raw = {**load_config().to_dict(), "augmentation": {"mirror": value}}
    with pytest.raises(ConfigError, match=r'`augmentation.mirror` is .*, but must be true, false or "auto"'):
        config_from_dict(raw)
    assert config_from_dict({**raw, "augmentation": {"mirror": "auto"}}).aug.mirror == "auto"
