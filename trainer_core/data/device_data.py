"""The dataset on the training device: every frame of a split in a few flat tensors.

Clips are concatenated along one frame axis. A training window is
``seq_len + 1`` consecutive frame indices gathered from a start index, so a
batch costs one ``index_select`` per tensor and no host work. Clips shorter
than a window are kept: their windows run past the clip's end and the extra
frames are masked out of every loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trainer_core.data.clip import Clip
from trainer_core.data.datasets import yaw_rate
from trainer_core.errors import DataError
from trainer_core.data.features import COND_LAYOUT, Layout, Normalizer, frame_layout
from trainer_core.data.gait import soft_gait
from trainer_core.model.geometry import depth_levels, forward_kinematics, rot6d_to_matrix
from trainer_core.data.skeleton import Skeleton


@dataclass
class Split:
    """One split's frames on one device; ``F`` frames, ``J`` joints."""

    x: torch.Tensor  # (F, D) normalized frame features
    c: torch.Tensor  # (F, Dc) normalized condition (control signal)
    R: torch.Tensor  # (F, J, 3, 3) local rotations
    Rg: torch.Tensor  # (F, J, 3, 3) rotations in the heading frame (FK)
    pos: torch.Tensor  # (F, J, 3) joint positions in the heading frame, metres
    traj: torch.Tensor  # (F, 3) normalized [root_vel (2), yaw_rate (1)]
    traj_raw: torch.Tensor  # (F, 3) m/s, m/s, rad/s
    contacts: torch.Tensor  # (F, 2) soft contacts
    phase: torch.Tensor  # (F, 2) soft gait phase (cos, sin)
    log_period: torch.Tensor  # (F,) log soft gait period, seconds
    clip_end: torch.Tensor  # (F,) long: index one past the last frame of each frame's clip
    window_starts: torch.Tensor  # (S,) long: start index of every training window
    fps: float
    names: list[str]

    @property
    def n_frames(self) -> int:
        return int(self.x.shape[0])


def clip_fps(clips: list[Clip]) -> float:
    rates = {round(c.fps, 3) for c in clips}
    if len(rates) != 1:
        raise DataError(f"clips have different frame rates {sorted(rates)}; resample them to one fps")
    return float(clips[0].fps)


def _control(traj: np.ndarray, window: int) -> np.ndarray:
    """Mean of ``traj[t+1 : t+1+window]`` per frame, shortened at the clip's end; the last frame keeps its own."""
    T = traj.shape[0]
    csum = np.concatenate([np.zeros((1, traj.shape[1])), np.cumsum(traj, axis=0)])
    lo = np.minimum(np.arange(T) + 1, T - 1)
    hi = np.minimum(np.arange(T) + 1 + window, T)
    hi = np.maximum(hi, lo + 1)
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


def _raw_frames(clips: list[Clip], cond_window_s: float) -> dict[str, torch.Tensor]:
    fps = clip_fps(clips)
    window = max(1, int(round(cond_window_s * fps)))
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("rot6d", "angvel", "traj", "contacts", "phase", "period", "ctrl")
    }
    for clip in clips:
        traj = np.concatenate([clip.root_vel, yaw_rate(clip)[:, None]], axis=1)
        phase, period = soft_gait(clip.soft_contacts, clip.fps)
        cols["rot6d"].append(clip.rot6d)
        cols["angvel"].append(clip.angvel)
        cols["traj"].append(traj)
        cols["contacts"].append(clip.soft_contacts)
        cols["phase"].append(np.stack([np.cos(phase), np.sin(phase)], axis=1))
        cols["period"].append(period)
        cols["ctrl"].append(_control(traj, window))
    return {k: torch.from_numpy(np.concatenate(v).astype(np.float32)) for k, v in cols.items()}


def _pack_raw(raw: dict[str, torch.Tensor], layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    x = layout.pack(
        {
            "rot6d": raw["rot6d"],
            "angvel": raw["angvel"],
            "root_vel": raw["traj"][:, :2],
            "yaw_rate": raw["traj"][:, 2:],
            "contacts": raw["contacts"],
            "phase": raw["phase"],
        }
    )
    c = COND_LAYOUT.pack(
        {
            "ctrl_vel": raw["ctrl"][:, :2],
            "ctrl_yaw_rate": raw["ctrl"][:, 2:],
            "log_period": raw["period"].log()[:, None],
        }
    )
    return x, c


def fit_normalizer(train_clips: list[Clip], n_joints: int, cond_window_s: float) -> Normalizer:
    layout = frame_layout(n_joints)
    x, c = _pack_raw(_raw_frames(train_clips, cond_window_s), layout)
    return Normalizer.fit(x, c, layout)


def build_split(
    clips: list[Clip],
    skeleton: Skeleton,
    norm: Normalizer,
    seq_len: int,
    cond_window_s: float,
    device: torch.device,
) -> Split:
    """Everything a split needs for training and evaluation, computed once and moved to ``device``."""
    raw = _raw_frames(clips, cond_window_s)
    x, c = _pack_raw(raw, norm.layout)
    R = rot6d_to_matrix(raw["rot6d"])
    Rg, pos = forward_kinematics(
        R, torch.from_numpy(skeleton.offsets), skeleton.parents, levels=depth_levels(skeleton.parents)
    )
    lengths = [clip.n_frames for clip in clips]
    ends = np.cumsum(lengths)
    clip_end = torch.from_numpy(np.repeat(ends, lengths)).long()
    starts = []
    for begin, end in zip(ends - np.array(lengths), ends):
        last = max(begin, end - seq_len - 1)  # short clips: one padded window
        starts.append(np.arange(begin, last + 1))
    mean, std = norm.traj_stats()
    split = Split(
        x=norm.norm_x(x),
        c=norm.norm_c(c),
        R=R,
        Rg=Rg,
        pos=pos,
        traj=(raw["traj"] - mean) / std,
        traj_raw=raw["traj"],
        contacts=raw["contacts"],
        phase=raw["phase"],
        log_period=raw["period"].log(),
        clip_end=clip_end,
        window_starts=torch.from_numpy(np.concatenate(starts)).long(),
        fps=clip_fps(clips),
        names=[clip.name for clip in clips],
    )
    for name in (
        "x",
        "c",
        "R",
        "Rg",
        "pos",
        "traj",
        "traj_raw",
        "contacts",
        "phase",
        "log_period",
        "clip_end",
        "window_starts",
    ):
        setattr(split, name, getattr(split, name).to(device))
    return split


def gather_windows(split: Split, starts: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame indices ``(B, length)`` from ``starts (B,)`` and the mask of frames inside each clip."""
    idx = starts[:, None] + torch.arange(length, device=starts.device)
    end = split.clip_end[starts][:, None]
    mask = idx < end
    return torch.minimum(idx, end - 1), mask
