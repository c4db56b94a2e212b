"""Where the character is in the world: the root integrated from its rates, the floor, the importer's heading.

A clip holds the root's motion as rates in the heading frame (``root_vel``
``[left, forward]`` m/s; the yaw rate as differences of ``root_yaw``) and the
hips' rotation relative to that heading frame (``data.clip``). The world motion
integrates them, the inverse of what the BVH importer computes::

    p[t]    = p[t-1] + R_yaw(yaw[t]) @ [v_left, 0, v_forward] / fps,   p[0] on the origin
    hips[t] = R_yaw(yaw[t]) @ R_root[t]                                 (the hips' rotation in the world)

(the importer: ``root_vel[t] = R_yaw(yaw[t])^T (p[t] - p[t-1]) fps``). No clip
stores the hips' height: every frame stands with its lowest joint on the floor, y = 0.

The heading frame is the importer's (``data.bvh``): the hips' facing,
``(left leg's first joint apart - right leg's) x up``, averaged over a trailing
window of ``facing_smooth_s`` seconds. ``clip_from_world`` re-expresses a world
motion in that frame, so a clip it returns, written to BVH and imported again,
comes back as itself.

Conventions as in ``trainer_core.geometry``: +Y up, +Z forward, column vectors, metres.
Everything here is float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trainer_core.data import body
from trainer_core.data.bvh import ImportOptions
from trainer_core.data.clip import Clip, angular_velocity
from trainer_core.data.skeleton import Skeleton, find_feet
from trainer_core.errors import DataError
from trainer_core.geometry import depth_levels, forward_kinematics, matrix_to_rot6d, rot6d_to_matrix, yaw_matrix

FACING_SMOOTH_S = ImportOptions().facing_smooth_s  # the importer's default: a written clip reads back as itself


@dataclass
class WorldMotion:
    """``T`` frames of ``J`` joints in the world, float64, metres, +Y up."""

    local_R: torch.Tensor  # (T, J, 3, 3) local rotations; joint 0 (the hips) relative to the world
    root_pos: torch.Tensor  # (T, 3) the hips' position
    positions: torch.Tensor  # (T, J, 3) every joint's position
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.local_R.shape[0])


def integrate_yaw(yaw0: float, yaw_rate: torch.Tensor, fps: float) -> torch.Tensor:
    """Headings ``(T,)`` from a start heading and yaw rates ``(T,)`` rad/s; ``yaw_rate[0]`` is not used.

    ``yaw[t] = yaw[t-1] + yaw_rate[t] / fps``: the inverse of ``datasets.yaw_rate``'s backward differences.
    """
    steps = torch.cat([torch.zeros(1, dtype=torch.float64), yaw_rate[1:].double() / fps])
    return yaw0 + torch.cumsum(steps, dim=0)


def integrate_root(yaw: torch.Tensor, root_vel: torch.Tensor, fps: float) -> torch.Tensor:
    """Ground positions ``(T, 3)`` (y = 0) from headings ``(T,)`` and root velocities ``(T, 2)`` [left, forward]."""
    v = root_vel.double()
    local = torch.stack([v[:, 0], torch.zeros_like(v[:, 0]), v[:, 1]], dim=-1)
    world = (yaw_matrix(yaw.double()) @ local[..., None]).squeeze(-1)
    steps = torch.cat([torch.zeros(1, 3, dtype=torch.float64), world[1:] / fps])
    return torch.cumsum(steps, dim=0)


def world_motion(
    local_R: torch.Tensor, yaw: torch.Tensor, root_vel: torch.Tensor, skeleton: Skeleton, fps: float
) -> WorldMotion:
    """The world motion of local rotations ``(T, J, 3, 3)`` (the hips relative to the heading frame),
    headings ``(T,)`` and root velocities ``(T, 2)``, on ``skeleton``, each frame's lowest joint on the floor."""
    R = local_R.double().clone()
    R[:, 0] = yaw_matrix(yaw.double()) @ R[:, 0]
    offsets = torch.from_numpy(skeleton.offsets.astype(np.float64))
    _, rel = forward_kinematics(R, offsets, skeleton.parents, levels=depth_levels(skeleton.parents))
    ground = integrate_root(yaw, root_vel, fps)
    root = ground.clone()
    root[:, 1] = -rel[..., 1].min(dim=-1).values
    return WorldMotion(R, root, rel + root[:, None], fps)


def clip_world(clip: Clip, skeleton: Skeleton) -> WorldMotion:
    """A clip's world motion: its own headings, the root integrated from the origin."""
    R = rot6d_to_matrix(torch.from_numpy(clip.rot6d).double())
    return world_motion(R, torch.from_numpy(clip.root_yaw), torch.from_numpy(clip.root_vel), skeleton, clip.fps)


def heading_joints(skeleton: Skeleton, positions: torch.Tensor) -> tuple[int, int]:
    """The left and right legs' first joints apart from the hips (``data.body``), as the importer finds them."""
    feet = skeleton.feet or find_feet(list(skeleton.bones), list(skeleton.parents))
    if "L" not in feet or "R" not in feet:
        raise DataError(
            f"skeleton ({', '.join(skeleton.bones[:4])}, ...): no left and right foot joints, so the heading "
            "cannot be found; name them in FullHierarchy.json `feet`"
        )
    lengths = np.linalg.norm(skeleton.offsets.astype(np.float64), axis=-1)
    gp = positions.numpy()
    apart = []
    for side in ("L", "R"):
        path = body.leg_path(skeleton.parents, 0, skeleton.index(feet[side][0]))
        apart.append(body.first_apart(path, gp, 0, lengths))
    return apart[0], apart[1]


def trailing_mean(x: torch.Tensor, width: int) -> torch.Tensor:
    """Mean along dim 0 over the last ``width`` rows up to and including each row (fewer at the start)."""
    if width <= 1 or x.shape[0] < 2:
        return x
    c = torch.cumsum(x, dim=0)
    n = torch.arange(1, x.shape[0] + 1, dtype=x.dtype).clamp(max=width)[:, None]
    lagged = torch.cat((torch.zeros_like(c[:width]), c[:-width]))[: x.shape[0]]
    return (c - lagged) / n


def facing_yaw(positions: torch.Tensor, left: int, right: int, window: int) -> torch.Tensor:
    """Headings ``(T,)`` of joint positions ``(T, J, 3)``: ``(left - right) x up`` on the ground plane,
    averaged over a trailing ``window`` of frames."""
    across = positions[:, left] - positions[:, right]
    up = torch.tensor([0.0, 1.0, 0.0], dtype=positions.dtype).expand_as(across)
    forward = torch.linalg.cross(across, up, dim=-1)
    forward[:, 1] = 0.0
    forward = trailing_mean(forward, window)
    forward = forward / forward.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return torch.atan2(forward[:, 0], forward[:, 2])


def clip_from_world(
    world: WorldMotion, skeleton: Skeleton, contacts: np.ndarray, name: str, facing_smooth_s: float = FACING_SMOOTH_S
) -> Clip:
    """The clip the BVH importer makes of ``world``: the heading from the hips' facing, the hips relative
    to it, the root velocity in it (frame 0 repeats frame 1's). ``contacts (T, 2)`` are kept as given."""
    fps = world.fps
    left, right = heading_joints(skeleton, world.positions)
    yaw = facing_yaw(world.positions, left, right, max(1, int(round(facing_smooth_s * fps))))
    Ry_T = yaw_matrix(yaw).transpose(-1, -2)
    local = world.local_R.clone()
    local[:, 0] = Ry_T @ world.local_R[:, 0]
    vel = torch.diff(world.root_pos, dim=0) * fps
    vel = torch.cat((vel[:1], vel), dim=0) if len(vel) else torch.zeros_like(world.root_pos)
    vel_local = (Ry_T @ vel[..., None]).squeeze(-1)
    rot6d = matrix_to_rot6d(local).numpy().astype(np.float32)
    clip = Clip(
        rot6d=rot6d,
        angvel=angular_velocity(rot6d, fps),
        root_yaw=yaw.numpy().astype(np.float32),
        root_vel=torch.stack((vel_local[:, 0], vel_local[:, 2]), dim=-1).numpy().astype(np.float32),
        soft_contacts=np.clip(np.asarray(contacts, dtype=np.float32), 0.0, 1.0),
        fps=fps,
        name=name,
    )
    clip.validate(f"generated clip `{name}`")
    return clip
