"""What grows with the dataset (issue 27, ``benchmarks/data_scale.py``): the device-memory estimate and the check
that refuses data too large for the device, and the costs kept from growing faster than the data."""

from __future__ import annotations

import math

import pytest
import torch

from trainer_core.data.augment import resample
from trainer_core.data.device_data import (
    DEVICE_RESERVE_BYTES,
    build_split,
    check_fits_device,
    device_bytes,
    fit_normalizer,
    held_index,
    split_bytes,
)
from trainer_core.errors import DataError, MotiontuneError
from trainer_core.train.long_eval import pose_drift, reference_poses

CPU = torch.device("cpu")
TENSORS = ("x", "c", "R", "Rg", "pos", "traj", "traj_raw", "contacts", "phase", "log_period", "clip_end",
           "clip_begin", "ctrl_raw", "ctrl_full", "window_starts")  # fmt: skip


@pytest.fixture(scope="module")
def small(bundled):
    """A split of 12 bundled clips on the CPU and its normalizer."""
    clips = bundled.clips[::14]
    norm = fit_normalizer(clips, bundled.skeleton.n_joints, 0.5)
    return build_split(clips, bundled.skeleton, norm, 60, 0.5, CPU), norm


def test_split_bytes_is_what_a_built_split_holds(small, bundled):
    split, _ = small
    held = sum(getattr(split, name).numel() * getattr(split, name).element_size() for name in TENSORS)
    F, J = split.n_frames, bundled.skeleton.n_joints
    assert held == split_bytes(F, J) - 8 * (F - len(split.window_starts))  # one window start a frame at most
    assert split_bytes(1, 21) == 2645  # the figure benchmarks/README.md gives for the bundled skeleton


def test_data_too_large_for_the_free_device_memory_is_refused_in_one_line():
    frames = {"train": 680_000, "val": 170_000}  # 30 times the bundled frames
    need = device_bytes(frames, 21)
    check_fits_device("/data/big", frames, 21, need + DEVICE_RESERVE_BYTES, "cuda:0")  # just fits
    with pytest.raises(DataError) as e:
        check_fits_device("/data/big", frames, 21, need + DEVICE_RESERVE_BYTES - 1, "cuda:0")
    msg = str(e.value)
    assert isinstance(e.value, MotiontuneError)  # the CLI prints it in one line and exits 2
    assert "\n" not in msg and msg.startswith("/data/big: its 850,000 frames (680,000/170,000 train/val)")
    assert "--data" in msg and "--device cpu" in msg
    check_fits_device("/data/big", frames, 21, 24 * 10**9, "cuda:0")  # 850k frames fit a 24 GB card


def test_the_frames_said_to_fit_do_fit():
    free = 24 * 10**9
    with pytest.raises(DataError) as e:
        check_fits_device("/data/huge", {"train": 8_000_000, "val": 2_000_000}, 21, free, "cuda:0")
    fit = int(str(e.value).split("about ")[-1].split(" frames fit")[0].replace(",", ""))
    assert 5_000_000 < fit < 7_000_000
    check_fits_device("/data/huge", {"train": fit * 8 // 10, "val": fit * 2 // 10}, 21, free, "cuda:0")


def test_the_nearest_pose_reference_is_capped_evenly_and_exact_below_the_cap(small):
    split, _ = small
    R = split.R
    assert reference_poses(R, R.shape[0]) is R
    ref = reference_poses(R, 100)
    assert ref.shape[0] == 100 and torch.equal(ref[0], R[0]) and torch.equal(ref[-1], R[-1])
    assert pose_drift(ref[::9], ref).abs().max() < 1e-3  # a reference pose is its own nearest


def test_held_index_holds_the_last_whole_control_of_each_start_s_clip(small):
    split, _ = small
    starts = torch.cat([split.clip_begin.unique() + 1, split.clip_end.unique() - 1])
    held = held_index(split, starts, 500)
    for b, s in enumerate(starts.tolist()):
        begin, end = int(split.clip_begin[s]), int(split.clip_end[s])
        whole = [i for i in range(begin, end) if bool(split.ctrl_full[i])]
        last = max(whole[-1] if whole else end - 1, s)
        assert held[:, b].tolist() == [min(s + h, last) for h in range(500)]


def test_augmented_windows_read_only_their_frames_and_match_the_whole_split(small):
    """The angular velocity a window is resampled from is gathered first, then de-normalized: bit for bit
    what de-normalizing the whole split and gathering gives."""
    split, norm = small
    s = norm.layout.slices()["angvel"]
    every = (split.x[:, s] * norm.x_std[s] + norm.x_mean[s]).view(split.n_frames, -1, 3)
    starts = split.window_starts[:: max(1, len(split.window_starts) // 16)]
    parts, _ = resample(split, norm, starts, 30, None, 15)
    idx = torch.minimum(starts[:, None] + torch.arange(31), split.clip_end[starts][:, None] - 1)
    assert torch.equal(parts["angvel"], every[idx])
    scale = torch.linspace(0.8, 1.25, len(starts))
    parts, _ = resample(split, norm, starts, 30, scale, 15)
    assert parts["angvel"].shape == (len(starts), 31, split.R.shape[1], 3) and bool(parts["angvel"].isfinite().all())
    assert math.isfinite(float(parts["log_period"].sum()))
