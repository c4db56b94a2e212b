"""Resampling motion to another frame rate: rotations along SO(3) geodesics, translations linearly.

Works on a skeleton's local transforms, before forward kinematics, so every
joint's rotation is interpolated on its own: ``R(a) = R0 exp(a log(R0^T R1))``
between the two source frames around each new time (the shortest arc; the
source rate must be high enough that a joint turns under 180 degrees per frame).
"""

from __future__ import annotations

import math

import torch

from trainer_core.geometry import so3_exp, so3_log


def resampled_times(n_frames: int, fps_in: float, fps_out: float) -> torch.Tensor:
    """Source frame positions ``(K,)`` float64 of the new frames: ``k * fps_in / fps_out``, within the clip.

    The new clip starts at the first source frame and keeps every new frame that
    falls within the source's span: ``K = floor((n_frames - 1) * fps_out / fps_in) + 1``,
    give or take a thousandth of a frame (a file's ``Frame Time: 0.00833333`` is 120 fps).
    """
    if not (fps_in > 0 and fps_out > 0):
        raise ValueError(f"frame rates must be > 0, got {fps_in} and {fps_out}")
    n_out = math.floor((n_frames - 1) * fps_out / fps_in + 1e-3) + 1
    return torch.arange(n_out, dtype=torch.float64) * (fps_in / fps_out)


def resample_local(
    local_R: torch.Tensor, local_t: torch.Tensor, fps_in: float, fps_out: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations ``(F, J, 3, 3)`` and translations ``(F, J, 3)`` at ``fps_in`` -> the same at ``fps_out``.

    Returns ``(K, J, 3, 3)`` and ``(K, J, 3)`` with ``K`` from ``resampled_times``.
    """
    F = local_R.shape[0]
    if local_R.shape[-2:] != (3, 3) or local_t.shape != local_R.shape[:-1]:
        raise ValueError(
            f"local_R {tuple(local_R.shape)} and local_t {tuple(local_t.shape)} must be (F, J, 3, 3), (F, J, 3)"
        )
    s = resampled_times(F, fps_in, fps_out)
    i0 = s.floor().long().clamp(0, F - 1)
    i1 = (i0 + 1).clamp(max=F - 1)
    a = (s - i0.to(s.dtype)).clamp(0.0, 1.0)
    R0, R1 = local_R[i0], local_R[i1]
    step = so3_log(R0.transpose(-1, -2) @ R1)  # (K, J, 3)
    R = R0 @ so3_exp(step * a[:, None, None])
    t = local_t[i0] + (local_t[i1] - local_t[i0]) * a[:, None, None]
    return R, t
