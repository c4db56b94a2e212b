"""The autoregressive rollout of a trained model from one real start frame, as a clip.

The model predicts frame ``t+1`` from frame ``t``'s features and the step's
control (``generate.control``); each prediction is fed back as the next input,
the free run of training (``model.rollout``) for as many frames as asked, far
past the training horizon. The start frame is a real frame of the start clip
(never its first: that frame's velocities are copies of the second's, and
training never feeds it).

The result is a clip of ``frames + 1`` frames: the start frame, then the
``frames`` predicted ones, with the predicted root velocities and yaw rates
integrated into a world trajectory and re-expressed in the importer's heading
frame (``generate.trajectory``), so the clip, its BVH and the BVH re-imported
agree. Soft contacts are the model's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from trainer_core.data.clip import Clip
from trainer_core.data.device_data import Split
from trainer_core.data.skeleton import Skeleton
from trainer_core.generate.trajectory import clip_from_world, integrate_yaw, world_motion
from trainer_core.model.model import MotionModel
from trainer_core.model.rollout import Runtime, next_features, predict


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


def rollout_clip(
    model: MotionModel,
    rt: Runtime,
    split: Split,
    start_yaw: float,
    skeleton: Skeleton,
    start: int,
    controls: torch.Tensor,
    name: str,
) -> Clip:
    """The start frame ``start`` of a one-clip ``split`` and ``len(controls)`` predicted frames, as a clip.

    ``controls (N, Dc)``: the normalized condition of each step; ``start_yaw``: the start frame's heading.
    """
    raw = autoregress(model, rt, split.x[start : start + 1], split.R[start : start + 1], controls[:, None])
    R = torch.cat([split.R[start : start + 1], raw.R[0]]).cpu()
    traj = torch.cat([split.traj_raw[start : start + 1], raw.traj[0]]).cpu()
    contacts = torch.cat([split.contacts[start : start + 1], raw.contacts[0]]).cpu()
    yaw = integrate_yaw(start_yaw, traj[:, 2], split.fps)
    world = world_motion(R, yaw, traj[:, :2], skeleton, split.fps)
    return clip_from_world(world, skeleton, contacts.numpy(), name)
