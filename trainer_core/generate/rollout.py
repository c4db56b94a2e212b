"""The autoregressive rollout of a trained model from one real start frame, as a clip.

The model predicts frame ``t+1`` from frame ``t``'s features and the step's
control (``generate.control``); each prediction is fed back as the next input,
the free run of training (``model.rollout``: ``autoregress``) for as many frames
as asked, far past the training horizon. The start frame is a real frame of the start clip
(never its first: that frame's velocities are copies of the second's, and
training never feeds it).

The result is a clip of ``frames + 1`` frames: the start frame, then the
``frames`` predicted ones, with the predicted root velocities and yaw rates
integrated into a world trajectory and re-expressed in the importer's heading
frame (``data.trajectory``), so the clip, its BVH and the BVH re-imported
agree. Soft contacts are the model's.
"""

from __future__ import annotations

import torch

from trainer_core.data.clip import Clip
from trainer_core.data.device_data import Split
from trainer_core.data.skeleton import Skeleton
from trainer_core.data.trajectory import clip_from_world, integrate_yaw, world_motion
from trainer_core.model.model import MotionModel
from trainer_core.model.rollout import Runtime, autoregress


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
