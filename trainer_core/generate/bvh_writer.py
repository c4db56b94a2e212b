"""A clip on its skeleton as a BVH file: what Blender or any BVH viewer opens, and the importer reads back.

The file holds the skeleton below the hips (names, offsets, in ``unit``s per
metre: centimetres by default, as the mocap files are), +Y up. The hips carry
``Xposition Yposition Zposition`` and three rotation channels, every other
joint three rotation channels, in ``order`` (``ZXY`` by default, the Bandai-Namco
files' ``Zrotation Xrotation Yrotation``). Leaf joints end in a zero ``End Site``.

The motion is the clip's world motion (``trajectory.clip_world``): the root
integrated from its velocities, each frame's lowest joint on the floor, the
hips' rotation in the world. Rotations become intrinsic Euler angles in
degrees, composed in the listed order (``ZXY``: ``Rz @ Rx @ Ry``) on column
vectors, the importer's convention; values are written with 6 decimals
(1e-6 degrees), far under the 1e-4 rad a round trip is held to.

Round trip: ``import_bvh`` of the file gives back the clip's local rotations,
heading and root velocity whenever the clip's heading is the importer's own
(the hips' facing, see ``trajectory``), as it is for imported clips and for
every clip ``generate`` makes. The soft contacts are recomputed by the
importer from the feet, not read from the clip.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from trainer_core.data.clip import Clip
from trainer_core.data.skeleton import Skeleton
from trainer_core.data.trajectory import clip_world
from trainer_core.errors import DataError, raise_all
from trainer_core.io_utils import atomic_write_text

_AXES = {"X": 0, "Y": 1, "Z": 2}
EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
DEFAULT_ORDER = "ZXY"
UNITS_PER_METRE = {"cm": 100.0, "m": 1.0}
_GIMBAL_EPS = 1e-9


def matrix_to_euler(R: np.ndarray, order: str) -> np.ndarray:
    """Rotations ``(..., 3, 3)`` -> intrinsic Euler angles ``(..., 3)`` in degrees with
    ``R = R_order[0](a) @ R_order[1](b) @ R_order[2](c)``; ``b`` in [-90, 90].

    For axes ``i, j, k`` with sign ``s`` (+1 when ``ijk`` is a cyclic order of
    XYZ): ``sin b = s R[i,k]``, ``a = atan2(-s R[j,k], R[k,k])``,
    ``c = atan2(-s R[i,j], R[i,i])``. At gimbal lock (``cos b`` = 0) ``c`` is 0
    and ``a = atan2(s R[k,j], R[j,j])``.
    """
    if order not in EULER_ORDERS:
        raise ValueError(f"`order` is {order!r}, but must be one of {', '.join(EULER_ORDERS)}")
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"`R` has shape {R.shape}, but must end in (3, 3)")
    i, j, k = (_AXES[a] for a in order)
    s = 1.0 if (j - i) % 3 == 1 else -1.0
    sin_b = np.clip(s * R[..., i, k], -1.0, 1.0)
    b = np.arcsin(sin_b)
    a = np.arctan2(-s * R[..., j, k], R[..., k, k])
    c = np.arctan2(-s * R[..., i, j], R[..., i, i])
    locked = np.sqrt(R[..., j, k] ** 2 + R[..., k, k] ** 2) < _GIMBAL_EPS
    if np.any(locked):
        a = np.where(locked, np.arctan2(s * R[..., k, j], R[..., j, j]), a)
        c = np.where(locked, 0.0, c)
    return np.degrees(np.stack([a, b, c], axis=-1))


def _children(parents: tuple[int, ...]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {j: [] for j in range(len(parents))}
    for j, p in enumerate(parents):
        if p >= 0:
            out[p].append(j)
    return out


def _hierarchy(skeleton: Skeleton, order: str, scale: float) -> list[str]:
    rot = " ".join(f"{a}rotation" for a in order)
    kids = _children(skeleton.parents)
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "  " * depth
        head = "ROOT" if j == 0 else "JOINT"
        off = skeleton.offsets[j].astype(np.float64) * scale
        lines.append(f"{pad}{head} {skeleton.bones[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        chans = f"6 Xposition Yposition Zposition {rot}" if j == 0 else f"3 {rot}"
        lines.append(f"{pad}  CHANNELS {chans}")
        for c in kids[j]:
            joint(c, depth + 1)
        if not kids[j]:
            end = [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0.000000 0.000000 0.000000", f"{pad}  }}"]
            lines.extend(end)
        lines.append(f"{pad}}}")

    joint(0, 0)
    return lines


def _dfs_order(parents: tuple[int, ...]) -> list[int]:
    """Joints in the order the hierarchy lists them (depth first), the order of the MOTION columns."""
    kids = _children(parents)
    out, stack = [], [0]
    while stack:
        j = stack.pop()
        out.append(j)
        stack.extend(reversed(kids[j]))
    return out


def bvh_text(clip: Clip, skeleton: Skeleton, order: str = DEFAULT_ORDER, unit: str = "cm") -> str:
    """The BVH file of ``clip`` on ``skeleton`` (see the module docstring)."""
    problems = []
    if order not in EULER_ORDERS:
        problems.append(f"rotation order is {order!r}, but must be one of {', '.join(EULER_ORDERS)}")
    if unit not in UNITS_PER_METRE:
        problems.append(f"unit is {unit!r}, but must be one of {', '.join(UNITS_PER_METRE)}")
    if clip.n_joints != skeleton.n_joints:
        problems.append(f"the clip has {clip.n_joints} joints, but the skeleton has {skeleton.n_joints}")
    raise_all(problems, DataError, f"BVH of `{clip.name}`")
    scale = UNITS_PER_METRE[unit]
    world = clip_world(clip, skeleton)
    euler = matrix_to_euler(world.local_R.numpy(), order)  # (T, J, 3)
    cols = [world.root_pos.numpy()[:, None, :] * scale]
    cols += [euler[:, [j]] for j in _dfs_order(skeleton.parents)]
    motion = np.concatenate(cols, axis=1).reshape(clip.n_frames, -1)
    if not np.isfinite(motion).all():
        raise DataError(f"BVH of `{clip.name}`: the motion holds NaN/inf; the clip cannot be written")
    lines = _hierarchy(skeleton, order, scale)
    lines += ["MOTION", f"Frames: {clip.n_frames}", f"Frame Time: {1.0 / clip.fps:.9g}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    return "\n".join(lines) + "\n"


def write_bvh(clip: Clip, skeleton: Skeleton, path: Path, order: str = DEFAULT_ORDER, unit: str = "cm") -> None:
    """Write ``clip`` as a BVH file, atomically."""
    atomic_write_text(Path(path), bvh_text(clip, skeleton, order, unit))


def max_rotation_error(a: Clip, b: Clip) -> float:
    """The largest geodesic angle, radians, between two clips' local rotations (same shape)."""
    from trainer_core.geometry import geodesic_angle, rot6d_to_matrix

    Ra = rot6d_to_matrix(torch.from_numpy(a.rot6d).double())
    Rb = rot6d_to_matrix(torch.from_numpy(b.rot6d).double())
    err = float(geodesic_angle(Ra, Rb).max())
    return err if math.isfinite(err) else math.inf
