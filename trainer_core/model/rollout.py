"""Predicting frames: one step, feeding predictions back, scheduled sampling and free run.

Teacher forcing feeds the ground-truth previous frame; free run feeds the
model's own prediction. Scheduled sampling mixes the two per frame with
probability ``tf`` of ground truth, in two parallel passes (Mihaylova & Martins,
2019): a gradient-free teacher-forced pass predicts every frame of the window,
then the trained pass sees each input frame replaced by that prediction with
probability ``1 - tf``. The free-run loss and the ``FreeRun/*`` metrics roll the
model out for ``horizon`` frames from a ground-truth start. ``autoregress`` rolls
it out for as long as asked under a given control sequence: generation and the
long rollouts of ``FreeRun/long``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from trainer_core.data.device_data import Split
from trainer_core.data.features import Normalizer
from trainer_core.geometry import matrix_to_rot6d, rot6d_to_matrix, so3_log
from trainer_core.model.model import ModelOutput, MotionModel


@dataclass
class Step:
    """One predicted frame per input frame, fp32."""

    out: ModelOutput
    delta: torch.Tensor  # (..., J, 3, 3) predicted rotation increment
    R: torch.Tensor  # (..., J, 3, 3) predicted local rotations: R_prev @ delta


@dataclass
class Runtime:
    """What a step needs besides the model: normalizer, frame rate, mixed precision."""

    norm: Normalizer
    fps: float
    autocast: bool  # bf16 autocast (CUDA only)
    phase_basis: torch.Tensor  # (K, 2) cos/sin of each phase bin's centre

    @classmethod
    def create(cls, norm: Normalizer, fps: float, phase_bins: int, device: torch.device, amp: bool) -> Runtime:
        angles = torch.arange(phase_bins, dtype=torch.float32) * (2 * math.pi / phase_bins)
        basis = torch.stack([angles.cos(), angles.sin()], dim=-1).to(device)
        return cls(norm.to(device), fps, amp and device.type == "cuda", basis)

    def amp_context(self) -> contextlib.AbstractContextManager:
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def predict(model: MotionModel, rt: Runtime, x: torch.Tensor, c: torch.Tensor, R_prev: torch.Tensor) -> Step:
    """Next frame from features ``x (..., D)``, control ``c (..., Dc)`` and rotations ``R_prev (..., J, 3, 3)``."""
    with rt.amp_context():
        out = model(x, c)
    out = out.float() if rt.autocast else out
    delta = rot6d_to_matrix(out.delta6d)
    return Step(out, delta, R_prev @ delta)


def phase_vector(rt: Runtime, attn: torch.Tensor) -> torch.Tensor:
    """Expected phase ``(..., 2)`` (cos, sin) under the phase attention ``(..., K)``."""
    return attn @ rt.phase_basis


def next_features(rt: Runtime, step: Step) -> torch.Tensor:
    """The normalized frame features ``(..., D)`` of a predicted frame, to feed back as input."""
    mean, std = rt.norm.traj_stats()
    traj = step.out.traj * std + mean
    phase = phase_vector(rt, step.out.phase_attn)
    raw = rt.norm.layout.pack(
        {
            "rot6d": matrix_to_rot6d(step.R),
            "angvel": so3_log(step.delta, near_pi=False) * rt.fps,
            "root_vel": traj[..., :2],
            "yaw_rate": traj[..., 2:],
            "contacts": torch.sigmoid(step.out.contact_logits),
            "phase": phase / phase.norm(dim=-1, keepdim=True).clamp_min(1e-6),
        }
    )
    return rt.norm.norm_x(raw)


def scheduled_sampling_inputs(
    model: MotionModel, rt: Runtime, split: Split, idx: torch.Tensor, tf: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input features and rotations ``(B, T, ...)`` for targets ``idx[:, 1:]``, mixed with probability ``tf``.

    Frame 0 is always ground truth. With ``tf == 1`` no extra pass runs.
    """
    x_in, R_in = split.x[idx[:, :-1]], split.R[idx[:, :-1]]
    if tf >= 1.0:
        return x_in, R_in
    with torch.no_grad():
        first = predict(model, rt, x_in, split.c[idx[:, :-1]], R_in)
        x_hat = next_features(rt, first)
    use_pred = torch.rand(idx.shape[0], idx.shape[1] - 2, device=idx.device, generator=generator) >= tf
    x_mix = torch.cat([x_in[:, :1], torch.where(use_pred[..., None], x_hat[:, :-1], x_in[:, 1:])], dim=1)
    R_mix = torch.cat([R_in[:, :1], torch.where(use_pred[..., None, None, None], first.R[:, :-1], R_in[:, 1:])], dim=1)
    return x_mix, R_mix


@dataclass
class Rollout:
    """``N`` rollouts of ``H`` frames: predictions stacked on dim 1, target frame indices and validity."""

    steps: list[Step]
    target_idx: torch.Tensor  # (N, H) long
    mask: torch.Tensor  # (N, H) bool: the target frame lies inside the start's clip

    def stacked(self, name: str) -> torch.Tensor:
        if name in ("delta", "R"):
            return torch.stack([getattr(s, name) for s in self.steps], dim=1)
        return torch.stack([getattr(s.out, name) for s in self.steps], dim=1)


def free_run(model: MotionModel, rt: Runtime, split: Split, starts: torch.Tensor, horizon: int) -> Rollout:
    """Roll out ``horizon`` frames from ground-truth frames ``starts (N,)``, feeding predictions back.

    The control signal stays the ground truth (it is what a user steers with).
    """
    k = torch.arange(1, horizon + 1, device=starts.device)
    end = split.clip_end[starts][:, None]
    target = starts[:, None] + k
    mask = target < end
    target = torch.minimum(target, end - 1)
    x, R = split.x[starts], split.R[starts]
    steps = []
    for h in range(horizon):
        control_idx = torch.minimum(starts + h, end[:, 0] - 1)
        step = predict(model, rt, x, split.c[control_idx], R)
        steps.append(step)
        if h + 1 < horizon:
            x, R = next_features(rt, step), step.R
    return Rollout(steps, target, mask)


@dataclass
class RawRollout:
    """``N`` predicted frames in physical units, fp32."""

    R: torch.Tensor  # (N, J, 3, 3) local rotations (the hips relative to the heading frame)
    traj: torch.Tensor  # (N, 3) root velocity [left, forward] m/s and yaw rate rad/s
    contacts: torch.Tensor  # (N, 2) soft contacts [L, R]


SMALL_BATCH = 16  # rollouts at once up to which one CPU thread is faster than several (no waiting on threads)


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads, then restore the number."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@torch.no_grad()
def autoregress(
    model: MotionModel, rt: Runtime, x0: torch.Tensor, R0: torch.Tensor, controls: torch.Tensor
) -> RawRollout:
    """Roll out ``len(controls)`` frames from features ``x0 (B, D)`` and rotations ``R0 (B, J, 3, 3)``.

    ``controls (N, B, Dc)`` (normalized) drive the steps in turn. Returns frames stacked on
    dim 1: ``R (B, N, J, 3, 3)``, ``traj (B, N, 3)``, ``contacts (B, N, 2)``.
    """
    mean, std = rt.norm.traj_stats()
    x, R = x0, R0
    Rs, trajs, contacts = [], [], []
    small = x0.device.type == "cpu" and x0.shape[0] <= SMALL_BATCH
    with cpu_threads(1) if small else contextlib.nullcontext():
        for c in controls:
            step = predict(model, rt, x, c, R)
            Rs.append(step.R)
            trajs.append(step.out.traj * std + mean)
            contacts.append(torch.sigmoid(step.out.contact_logits))
            x, R = next_features(rt, step), step.R
    return RawRollout(torch.stack(Rs, 1), torch.stack(trajs, 1), torch.stack(contacts, 1))
