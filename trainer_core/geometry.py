"""Rotation geometry and forward kinematics.

Conventions, used throughout the package:

- Rotation matrices act on column vectors: ``v_parent = R @ v_local``.
- The 6D representation is the first two *columns* of the matrix, packed as
  ``[c0x, c0y, c0z, c1x, c1y, c1z]`` (Zhou et al., "On the Continuity of
  Rotation Representations in Neural Networks", CVPR 2019). Any 6D vector maps to
  a rotation through Gram-Schmidt.
- Skeletons list parents before children (``parents[j] < j``, root ``-1``).
- "local" is a joint's rotation relative to its parent, "global" relative to the
  character's heading frame (root at the origin); ``true_*`` / ``pred_*`` name
  ground truth and prediction.
- Up is +Y, forward is +Z: yaw is the rotation about +Y that takes +Z to the
  character's facing direction.

Every function is differentiable, works on any leading batch shape and in any
float dtype; shapes are given as ``(..., J, 3, 3)`` etc.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_EPS = 1e-8


def _check_last(x: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    if tuple(x.shape[-len(shape) :]) != shape:
        raise ValueError(f"`{name}` has shape {tuple(x.shape)}, but must end in {shape}")


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt: any 6D vector ``(..., 6)`` -> rotation matrix ``(..., 3, 3)``."""
    _check_last(d6, (6,), "d6")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> its first two columns ``(..., 6)``."""
    _check_last(R, (3, 3), "R")
    return torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1)


def rot6d_ortho_penalty(d6: torch.Tensor) -> torch.Tensor:
    """How far a raw 6D vector ``(..., 6)`` is from two orthonormal columns, ``(...)``.

    ``(|a1|^2 - 1)^2 + (|a2|^2 - 1)^2 + (a1 . a2)^2``; zero exactly for the 6D of a rotation.
    """
    _check_last(d6, (6,), "d6")
    a1, a2 = d6[..., :3], d6[..., 3:]
    n1 = (a1 * a1).sum(-1)
    n2 = (a2 * a2).sum(-1)
    dot = (a1 * a2).sum(-1)
    return (n1 - 1.0) ** 2 + (n2 - 1.0) ** 2 + dot**2


_VEE_INDEX = (7, 2, 3)  # flat (row * 3 + col) positions of (2,1), (0,2), (1,0)


def _vee_skew(M: torch.Tensor) -> torch.Tensor:
    """``vee(M - M^T)`` for ``(..., 3, 3)`` -> ``(..., 3)``; equals ``2 sin(theta) axis`` for a rotation."""
    return (M - M.transpose(-1, -2)).flatten(-2)[..., _VEE_INDEX]


def _trace(M: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(M, dim1=-2, dim2=-1).sum(-1)


def _angle_vee(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Angle ``(...)``, its sine ``(...)`` and ``vee(R - R^T)`` ``(..., 3)`` of rotations ``(..., 3, 3)``."""
    cos = (_trace(R) - 1.0) * 0.5
    v = _vee_skew(R)
    sin = 0.5 * torch.sqrt((v * v).sum(-1) + _EPS**2)
    return torch.atan2(sin, cos), sin, v


def rotation_angle(R: torch.Tensor) -> torch.Tensor:
    """Angle in radians ``(...)`` of rotations ``(..., 3, 3)``, in [0, pi].

    Uses ``atan2(sin, cos)`` so the gradient stays finite near 0 and pi, where ``acos`` breaks.
    """
    _check_last(R, (3, 3), "R")
    return _angle_vee(R)[0]


def geodesic_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Geodesic distance in radians ``(...)`` between rotations ``(..., 3, 3)``."""
    return rotation_angle(R1.transpose(-1, -2) @ R2)


def so3_exp(v: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` -> rotation matrix ``(..., 3, 3)`` (Rodrigues)."""
    _check_last(v, (3,), "v")
    theta2 = (v * v).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + _EPS**2)
    small = theta2 < 1e-8
    # sin(t)/t and (1-cos t)/t^2 with Taylor series near zero.
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*v.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(K)
    return eye + a[..., None] * K + b[..., None] * (K @ K)


def so3_log(R: torch.Tensor, near_pi: bool = True) -> torch.Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> axis-angle ``(..., 3)`` with angle in [0, pi].

    Near pi the axis comes from the symmetric part of ``R``; elsewhere from its skew
    part. ``near_pi=False`` skips that branch for speed, for inputs known to stay
    below ``pi - 1e-3`` such as frame-to-frame increments (beyond it the result
    stays finite but loses accuracy).
    """
    _check_last(R, (3, 3), "R")
    theta, sin, v = _angle_vee(R)
    theta, sin = theta[..., None], sin[..., None]
    scale = torch.where(theta < 1e-4, 0.5 + theta**2 / 12.0, theta / (2.0 * sin.clamp_min(1e-12)))
    log_regular = scale * v
    if not near_pi:
        return log_regular
    # Near pi the skew part vanishes; sym(R) - I cos(theta) = (1 - cos(theta)) a a^T gives the axis.
    B = (R + R.transpose(-1, -2)) * 0.5 - torch.eye(3, dtype=R.dtype, device=R.device) * torch.cos(theta)[..., None]
    d0, d1, d2 = B[..., 0, 0:1], B[..., 1, 1:2], B[..., 2, 2:3]  # the column with the largest diagonal
    col = torch.where((d0 >= d1) & (d0 >= d2), B[..., :, 0], torch.where(d1 >= d2, B[..., :, 1], B[..., :, 2]))
    axis = col / col.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    axis = torch.where((axis * v).sum(-1, keepdim=True) < 0, -axis, axis)
    return torch.where(theta > torch.pi - 1e-3, axis * theta, log_regular)


def yaw_matrix(yaw: torch.Tensor) -> torch.Tensor:
    """Rotation about +Y by ``yaw`` radians ``(...)`` -> ``(..., 3, 3)``."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    o, z = torch.ones_like(yaw), torch.zeros_like(yaw)
    return torch.stack((c, z, s, z, o, z, -s, z, c), dim=-1).reshape(*yaw.shape, 3, 3)


def yaw_of_direction(direction: torch.Tensor) -> torch.Tensor:
    """Heading angle ``(...)`` of a direction ``(..., 3)`` projected on the ground plane.

    ``yaw_matrix(yaw_of_direction(d)) @ +Z`` points along ``d``'s horizontal part.
    """
    _check_last(direction, (3,), "direction")
    return torch.atan2(direction[..., 0], direction[..., 2])


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    """Wrap radians to (-pi, pi]."""
    return torch.remainder(a + torch.pi, 2 * torch.pi) - torch.pi


def depth_levels(parents: Sequence[int]) -> list[list[int]]:
    """Joints grouped by depth below the root(s): level 0 holds the roots."""
    depth: list[int] = []
    for j, p in enumerate(parents):
        if p >= j:
            raise ValueError(f"`parents[{j}]` is {p}, but parents must come before children")
        depth.append(0 if p < 0 else depth[p] + 1)
    levels: list[list[int]] = [[] for _ in range(max(depth) + 1)] if depth else []
    for j, d in enumerate(depth):
        levels[d].append(j)
    return levels


def forward_kinematics(
    local_R: torch.Tensor,
    offsets: torch.Tensor,
    parents: Sequence[int],
    root_pos: torch.Tensor | None = None,
    levels: list[list[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations -> global rotations and joint positions.

    Args:
        local_R: ``(..., J, 3, 3)`` rotation of each joint relative to its parent.
        offsets: ``(J, 3)`` translation of each joint in its parent's frame, or
            ``(..., J, 3)`` when it changes per frame (BVH position channels).
        parents: ``J`` parent indices, parents before children, roots ``-1``.
        root_pos: ``(..., 3)`` position of the root, zero when omitted.
        levels: ``depth_levels(parents)``, precomputed by callers in a hot loop.

    Returns:
        ``(global_R (..., J, 3, 3), global_pos (..., J, 3))``.

    Joints of one depth are done together, so the loop runs over depth, not joints.
    """
    J = len(parents)
    _check_last(local_R, (J, 3, 3), "local_R")
    _check_last(offsets, (J, 3), "offsets")
    per_frame = offsets.dim() > 2
    levels = levels if levels is not None else depth_levels(parents)
    batch = local_R.shape[:-3]
    offsets = offsets.to(local_R.dtype)
    glob_R: list[torch.Tensor | None] = [None] * J
    glob_p: list[torch.Tensor | None] = [None] * J
    root = torch.zeros(*batch, 3, dtype=local_R.dtype, device=local_R.device) if root_pos is None else root_pos
    for level in levels:
        idx = torch.tensor(level, device=local_R.device)
        R_loc = local_R.index_select(-3, idx)
        off = offsets.index_select(-2, idx)
        if not per_frame:
            off = off.expand(*batch, len(level), 3)
        if parents[level[0]] < 0:  # level 0 holds the roots and only them
            R = R_loc
            p = root[..., None, :] + off
        else:
            pR = torch.stack([glob_R[parents[j]] for j in level], dim=-3)  # type: ignore[misc]
            pp = torch.stack([glob_p[parents[j]] for j in level], dim=-2)  # type: ignore[misc]
            R = pR @ R_loc
            p = pp + (pR @ off[..., None]).squeeze(-1)
        for k, j in enumerate(level):
            glob_R[j] = R[..., k, :, :]
            glob_p[j] = p[..., k, :]
    return torch.stack(glob_R, dim=-3), torch.stack(glob_p, dim=-2)  # type: ignore[arg-type]
