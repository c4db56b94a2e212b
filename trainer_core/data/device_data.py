"""The dataset on the training device: every frame of a split in a few flat tensors.

Clips are concatenated along one frame axis. A training window is
``seq_len + 1`` consecutive frame indices gathered from a start index, so a
batch costs one ``index_select`` per tensor and no host work. Clips shorter
than a window are kept: their windows run past the clip's end and the extra
frames are masked out of every loss.

What the model may see. The input at frame ``t`` holds only frames ``<= t``:
velocities are backward differences, and a clip's first frame, whose
velocities are copies of its second's, is never an input (windows and
evaluation start at a clip's second frame). The control signal for the step
``t -> t+1`` is the mean root velocity and yaw rate over the ``cond_window_s``
seconds *after* the target frame ``t+1``: a controller's intent, never the
target itself. Near a clip's end that window shrinks (``ctrl_full`` is False);
such steps train but are not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trainer_core.data.clip import Clip
from trainer_core.data.datasets import yaw_rate
from trainer_core.data.features import COND_LAYOUT, Layout, Normalizer, frame_layout
from trainer_core.data.gait import soft_gait
from trainer_core.data.skeleton import Skeleton
from trainer_core.errors import DataError
from trainer_core.geometry import depth_levels, forward_kinematics, rot6d_to_matrix


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
    clip_begin: torch.Tensor  # (F,) long: index of the first frame of each frame's clip
    ctrl_raw: torch.Tensor  # (F, 3) the control for the step t -> t+1: m/s, m/s, rad/s
    ctrl_full: torch.Tensor  # (F,) bool: that control's window lies wholly inside the clip
    window_starts: torch.Tensor  # (S,) long: start index of every training window
    fps: float
    names: list[str]

    @property
    def n_frames(self) -> int:
        return int(self.x.shape[0])


# The per-epoch validation (``train.metrics.evaluate``) predicts every validation frame at once: its predicted
# rotations, the gathered targets and the geodesic and angular-velocity terms. Measured on the CPU (the peak above
# the process's memory before it): about 6 kB per validation frame of the 21-joint bundled skeleton.
EVAL_BYTES_PER_FRAME_JOINT = 300
# Beside the data: the model and its optimizer state (the packaged model: 16 MB), a training step's activations
# and the CUDA allocator's slack.
DEVICE_RESERVE_BYTES = 1 << 30


def split_bytes(frames: int, n_joints: int) -> int:
    """Bytes a ``Split`` of ``frames`` frames of ``n_joints`` joints holds on its device: ``build_split``'s
    tensors, with at most one window start per frame (2,645 bytes a frame for the 21-joint bundled skeleton)."""
    J = n_joints
    float32 = (
        frame_layout(J).dim  # x
        + COND_LAYOUT.dim  # c
        + 9 * J * 2  # R, Rg
        + 3 * J  # pos
        + 3 + 3 + 2 + 2 + 1 + 3  # traj, traj_raw, contacts, phase, log_period, ctrl_raw
    )  # fmt: skip
    int64 = 3  # clip_end, clip_begin, window_starts
    return frames * (4 * float32 + 8 * int64 + 1)  # + ctrl_full (bool)


def device_bytes(frames: dict[str, int], n_joints: int) -> int:
    """Device memory a run needs for its splits (``frames``: split name -> frames; ``val`` is validated every
    epoch), beside ``DEVICE_RESERVE_BYTES``: the splits' tensors and the validation's working set."""
    data = sum(split_bytes(n, n_joints) for n in frames.values())
    return data + frames.get("val", 0) * EVAL_BYTES_PER_FRAME_JOINT * n_joints


def check_fits_device(where: str, frames: dict[str, int], n_joints: int, free: int, device: str) -> None:
    """Raise ``DataError`` before anything is built when the splits (``frames``: split name -> frames) of the
    dataset ``where`` need more than the ``free`` bytes of ``device`` (``torch.cuda.mem_get_info`` on CUDA), less
    ``DEVICE_RESERVE_BYTES``. A caller passes ``free``, so the check runs, and is tested, without a GPU."""
    need = device_bytes(frames, n_joints)
    room = free - DEVICE_RESERVE_BYTES
    if need <= room:
        return
    total = sum(frames.values())
    per_frame = need / max(1, total)
    fit = max(0, int(room // per_frame))
    split = "/".join(f"{n:,}" for n in frames.values())
    raise DataError(
        f"{where}: its {total:,} frames ({split} {'/'.join(frames)}) need about {need / 1e9:.3g} GB on {device}, "
        f"but {free / 1e9:.3g} GB is free ({DEVICE_RESERVE_BYTES / 1e9:.2g} GB of it kept for the model): train on "
        f"a smaller --data (about {fit:,} frames fit) or on the CPU (--device cpu)"
    )


def clip_fps(clips: list[Clip]) -> float:
    rates = {round(c.fps, 3) for c in clips}
    if len(rates) != 1:
        raise DataError(f"clips have different frame rates {sorted(rates)}; resample them to one fps")
    return float(clips[0].fps)


def control_frames(cond_window_s: float, fps: float) -> int:
    """Frames the control averages: ``cond_window_s`` at ``fps``, at least one."""
    return max(1, int(round(cond_window_s * fps)))


def control_windows(
    traj: torch.Tensor, window: int, length: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The control ``(..., N, 3)`` for each step ``t -> t+1`` of ``traj (..., N, 3)``, and whether its window
    is whole ``(..., N)``: the one control computation of training, evaluation and augmentation.

    Row ``t`` is the mean of ``traj[t+2 : t+2+window]``: the frames after the
    target ``t+1``, never the target. Only the first ``length (...)`` frames (all
    ``N`` when None) are the clip's: at its end the window shrinks; where it is
    empty the control is ``traj[t]`` (what the input frame already holds). Sums
    run in float64 on ``traj``'s device; the control comes back in its dtype.
    """
    N = traj.shape[-2]
    x = traj.double()
    t = torch.arange(N, device=traj.device)
    end = torch.tensor(N, device=traj.device) if length is None else length[..., None]
    lo = torch.minimum(t + 2, end).expand(x.shape[:-1])
    hi = torch.minimum(t + 2 + window, end).expand(x.shape[:-1])
    n = hi - lo
    csum = torch.cat([torch.zeros_like(x[..., :1, :]), x.cumsum(-2)], dim=-2)  # (..., N+1, 3)

    def at(i: torch.Tensor) -> torch.Tensor:
        return csum.gather(-2, i[..., None].expand(x.shape))

    mean = (at(hi) - at(lo)) / n.clamp_min(1)[..., None]
    ctrl = torch.where((n > 0)[..., None], mean, x)
    return ctrl.to(traj.dtype), n == window


def held_index(split: Split, starts: torch.Tensor, frames: int) -> torch.Tensor:
    """Frame indices ``(frames, B)`` of the controls of rollouts from ``starts (B,)``: step ``h``'s own
    (``start + h``) while its control window lies whole inside the start's clip, then the last whole one's, held."""
    out = []
    begins, ends = split.clip_begin[starts].tolist(), split.clip_end[starts].tolist()
    for s, begin, end in zip(starts.tolist(), begins, ends):
        whole = split.ctrl_full[begin:end].nonzero()  # the start's clip only: linear in the split's frames
        last = begin + int(whole.max()) if len(whole) else end - 1
        out.append(torch.clamp(s + torch.arange(frames, device=starts.device), max=max(last, s)))
    return torch.stack(out, dim=1)


def control_window(traj: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """``control_windows`` of one clip's ``traj (T, 3)`` as arrays: the control ``(T, 3)``, whether whole ``(T,)``."""
    ctrl, full = control_windows(torch.from_numpy(traj), window)
    return ctrl.numpy(), full.numpy()


def _raw_frames(clips: list[Clip], cond_window_s: float) -> dict[str, torch.Tensor]:
    fps = clip_fps(clips)
    window = control_frames(cond_window_s, fps)
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("rot6d", "angvel", "traj", "contacts", "phase", "period", "ctrl", "ctrl_full")
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
        ctrl, full = control_window(traj, window)
        cols["ctrl"].append(ctrl)
        cols["ctrl_full"].append(full)
    out = {k: torch.from_numpy(np.concatenate(v).astype(np.float32)) for k, v in cols.items() if k != "ctrl_full"}
    out["ctrl_full"] = torch.from_numpy(np.concatenate(cols["ctrl_full"]))
    return out


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
    clip_begin = torch.from_numpy(np.repeat(ends - np.array(lengths), lengths)).long()
    starts = []
    for begin, end in zip(ends - np.array(lengths), ends):
        first = begin + 1  # a clip's first frame is never an input (see the module docstring)
        if end - first < 2:
            continue  # no frame to predict
        last = max(first, end - seq_len - 1)  # short clips: one padded window
        starts.append(np.arange(first, last + 1))
    if not starts:
        raise DataError("no clip holds 3 frames; a training window needs an input frame after the first and a target")
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
        clip_begin=clip_begin,
        ctrl_raw=raw["ctrl"],
        ctrl_full=raw["ctrl_full"],
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
        "clip_begin",
        "ctrl_raw",
        "ctrl_full",
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
