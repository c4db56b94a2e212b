"""BVH motion capture -> training clips, for any skeleton.

What the importer computes from a BVH file:

- the skeleton below the hips (the first joint with several children, or
  ``root_joint``); joints above it are folded into it;
- ``rot6d``: local rotations, the hips relative to the heading frame;
- ``root_yaw``: the heading, from the hips' facing (the line between the two
  hip joints, i.e. the first joints of the legs);
- ``root_vel``: the hips' ground velocity in the heading frame, m/s;
- ``soft_contacts``: from each foot's height and speed (see ``gait.soft_contact``);
  feet are found by name (``Foot_L``, ``LeftFoot``, ``l_ankle`` ...) or given;
- ``angvel``: backward differences of the local rotations.

Euler channels compose in the order listed (``Zrotation Xrotation Yrotation``
means ``Rz @ Rx @ Ry``), in degrees, acting on column vectors. Position channels
replace the joint's offset. Units are converted to metres (``scale``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainer_core.data.clip import Clip, angular_velocity
from trainer_core.errors import DataError
from trainer_core.data.gait import ContactParams, soft_contact
from trainer_core.model.geometry import forward_kinematics, matrix_to_rot6d, yaw_matrix
from trainer_core.data.skeleton import Skeleton, find_feet, limb_groups

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BvhData:
    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3) file units
    channels: list[list[str]]
    frame_time: float
    motion: np.ndarray  # (F, C) float64


@dataclass(frozen=True)
class ImportOptions:
    """How to read a BVH file; the defaults fit Y-up files in centimetres or metres."""

    scale: float | None = None  # file units -> metres; None: centimetres if the hips stand above 10 units
    up: str = "y"  # the file's up axis: "y" or "z"
    root_joint: str | None = None  # the hips; None: first joint with several children
    feet: dict[str, tuple[str, ...]] | None = None  # {"L": (ankle, toe), "R": (...)}; None: by name
    facing_smooth_s: float = 0.1  # moving-average window of the facing direction, seconds
    contact: ContactParams = field(default_factory=ContactParams)


def _rot_axis(axis: int, deg: np.ndarray) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(deg.shape + (3, 3))
    i, j = [k for k in range(3) if k != axis]
    R[..., axis, axis] = 1.0
    R[..., i, i] = c
    R[..., j, j] = c
    # Right-handed: about X (i=Y, j=Z), about Y (i=X, j=Z) flips the sign, about Z (i=X, j=Y).
    sign = -1.0 if axis == 1 else 1.0
    R[..., i, j] = -s * sign
    R[..., j, i] = s * sign
    return R


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles ``(..., 3)`` in degrees, ``order`` like ``"ZXY"`` -> ``(..., 3, 3)``."""
    R = np.broadcast_to(np.eye(3), angles_deg.shape[:-1] + (3, 3)).copy()
    for k, ax in enumerate(order):
        R = R @ _rot_axis(_AXES[ax], angles_deg[..., k])
    return R


def parse_bvh(path: Path) -> BvhData:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    head, sep, motion_text = text.partition("MOTION")
    if "HIERARCHY" not in head:
        raise DataError(f"{path}: no HIERARCHY section; is this a BVH file?")
    if not sep:
        raise DataError(f"{path}: no MOTION section; the file holds a skeleton but no frames, re-export it with motion")
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    tokens = head.split()
    i, in_end_site, pending = 0, 0, -1
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
                pending = len(names) - 1
                i += 2
            elif tok == "End":
                in_end_site += 1
                pending = -2
                i += 2
            elif tok == "{":
                if pending >= 0:
                    stack.append(pending)
                pending = -1
                i += 1
            elif tok == "}":
                if in_end_site:
                    in_end_site -= 1
                else:
                    stack.pop()
                i += 1
            elif tok == "OFFSET":
                vals = [float(v) for v in tokens[i + 1 : i + 4]]
                if not in_end_site:
                    offsets[-1] = vals
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                channels[-1] = tokens[i + 2 : i + 2 + n]
                i += 2 + n
            else:
                i += 1
    except (IndexError, ValueError) as e:
        raise DataError(f"{path}: malformed HIERARCHY near token {i} ({e})") from None
    if not names:
        raise DataError(f"{path}: HIERARCHY declares no joints")
    lines = [ln for ln in motion_text.strip().splitlines() if ln.strip()]
    try:
        n_frames = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
    except (IndexError, ValueError):
        raise DataError(f"{path}: MOTION must start with `Frames: N` and `Frame Time: dt`") from None
    n_ch = sum(len(c) for c in channels)
    rows = lines[2:]
    if len(rows) < n_frames:
        raise DataError(f"{path}: MOTION declares {n_frames} frames but holds {len(rows)}; the file is truncated")
    try:
        motion = np.array([[float(v) for v in r.split()] for r in rows[:n_frames]], dtype=np.float64)
    except ValueError as e:
        raise DataError(f"{path}: MOTION holds a value that is not a number ({e})") from None
    if motion.ndim != 2 or motion.shape[1] != n_ch:
        raise DataError(f"{path}: MOTION rows must hold {n_ch} values (the CHANNELS total), one row per frame")
    if not np.isfinite(motion).all():
        bad = int(np.argwhere(~np.isfinite(motion))[0][0])
        raise DataError(f"{path}: MOTION frame {bad} holds NaN/inf; repair or re-export the file")
    if not (math.isfinite(frame_time) and frame_time > 0):
        raise DataError(f"{path}: `Frame Time` is {frame_time}, but must be > 0")
    return BvhData(names, parents, np.array(offsets, dtype=np.float64), channels, frame_time, motion)


def _local_transforms(bvh: BvhData) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame local rotations ``(F, J, 3, 3)`` and translations ``(F, J, 3)``, float64."""
    F, J = bvh.motion.shape[0], len(bvh.names)
    R = np.broadcast_to(np.eye(3), (F, J, 3, 3)).copy()
    t = np.broadcast_to(bvh.offsets, (F, J, 3)).copy()
    col = 0
    for j, chans in enumerate(bvh.channels):
        rot_cols, rot_order, pos = [], "", {}
        for c in chans:
            if c.endswith("rotation"):
                rot_cols.append(col)
                rot_order += c[0].upper()
            elif c.endswith("position"):
                pos[_AXES[c[0].upper()]] = col
            col += 1
        if rot_cols:
            R[:, j] = euler_to_matrix(bvh.motion[:, rot_cols], rot_order)
        for axis, c in pos.items():
            t[:, j, axis] = bvh.motion[:, c]
    return torch.from_numpy(R), torch.from_numpy(t)


def _choose_root(bvh: BvhData, name: str | None, where: str) -> int:
    if name is not None:
        if name not in bvh.names:
            raise DataError(f"{where}: root joint `{name}` not in the skeleton ({', '.join(bvh.names)})")
        return bvh.names.index(name)
    for j in range(len(bvh.names)):
        if sum(p == j for p in bvh.parents) > 1:
            return j
    raise DataError(f"{where}: no joint has several children, so the hips cannot be found; pass the root joint")


def import_bvh(path: Path, options: ImportOptions | None = None) -> tuple[Clip, Skeleton]:
    """Read one BVH file into a clip and its skeleton."""
    options = options or ImportOptions()
    where = str(path)
    bvh = parse_bvh(path)
    fps = 1.0 / bvh.frame_time
    if bvh.motion.shape[0] < 2:
        raise DataError(f"{where}: holds {bvh.motion.shape[0]} frame(s), but at least 2 are needed")
    local_R, local_t = _local_transforms(bvh)
    glob_R, glob_p = forward_kinematics(local_R, local_t, bvh.parents)

    h = _choose_root(bvh, options.root_joint, where)
    scale = options.scale
    if scale is None:
        scale = 0.01 if float(np.median(glob_p[:, h, 1 if options.up == "y" else 2])) > 10 else 1.0
    glob_p = glob_p * scale
    if options.up == "z":  # Z-up -> Y-up: (x, y, z) -> (x, z, -y)
        C = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]], dtype=torch.float64)
        glob_R, glob_p = C @ glob_R, glob_p @ C.T
    elif options.up != "y":
        raise DataError(f"{where}: up axis `{options.up}` is not supported; use y or z")

    # The skeleton below (and including) the hips, in file order.
    keep = [j for j in range(len(bvh.names)) if j == h or _is_below(bvh.parents, j, h)]
    remap = {j: k for k, j in enumerate(keep)}
    bones = [bvh.names[j] for j in keep]
    parents = [-1 if j == h else remap[bvh.parents[j]] for j in keep]
    feet = options.feet or find_feet(bones, parents)
    for side in ("L", "R"):
        if side not in feet or not feet[side]:
            raise DataError(
                f"{where}: no {'left' if side == 'L' else 'right'} foot joint found by name; "
                "pass the feet explicitly (--feet LEFT_ANKLE,RIGHT_ANKLE)"
            )
        for n in feet[side]:
            if n not in bones:
                raise DataError(f"{where}: foot joint `{n}` is not below the hips `{bvh.names[h]}`")
    k_feet = {s: [keep[bones.index(n)] for n in feet[s]] for s in ("L", "R")}

    # Heading from the hips' facing: across = left hip - right hip, forward = across x up.
    hip_l = keep[_child_towards(parents, remap[k_feet["L"][0]])]
    hip_r = keep[_child_towards(parents, remap[k_feet["R"][0]])]
    across = glob_p[:, hip_l] - glob_p[:, hip_r]
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    forward = torch.linalg.cross(across, up.expand_as(across), dim=-1)
    forward[:, 1] = 0.0
    width = max(1, int(round(options.facing_smooth_s * fps)))
    forward = _smooth(forward, width)
    forward = forward / forward.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    yaw = torch.atan2(forward[:, 0], forward[:, 2])
    R_yaw = yaw_matrix(yaw)

    new_local = local_R[:, keep].clone()
    new_local[:, 0] = R_yaw.transpose(-1, -2) @ glob_R[:, h]
    root_p = glob_p[:, h]
    vel = torch.diff(root_p, dim=0) * fps
    vel = torch.cat((vel[:1], vel), dim=0)
    vel_local = (R_yaw.transpose(-1, -2) @ vel[..., None]).squeeze(-1)
    root_vel = torch.stack((vel_local[:, 0], vel_local[:, 2]), dim=-1)

    gp = glob_p.numpy()
    contacts = np.stack([soft_contact(gp[:, k_feet[s]], fps, options.contact) for s in ("L", "R")], axis=1)

    rot6d = matrix_to_rot6d(new_local).numpy().astype(np.float32)
    clip = Clip(
        rot6d=rot6d,
        angvel=angular_velocity(rot6d, fps),
        root_yaw=yaw.numpy().astype(np.float32),
        root_vel=root_vel.numpy().astype(np.float32),
        soft_contacts=contacts,
        fps=fps,
        name=Path(path).stem,
    )
    clip.validate(where)
    offsets = bvh.offsets[keep] * scale
    offsets[0] = 0.0
    heights = (gp[:, keep, 1] - gp[:, [h], 1]).mean(axis=0)
    skeleton = Skeleton(
        bones=tuple(bones),
        parents=tuple(parents),
        offsets=offsets.astype(np.float32),
        feet={s: tuple(feet[s]) for s in ("L", "R")},
        groups=limb_groups(bones, parents, feet, heights),
    )
    return clip, skeleton


def _is_below(parents: list[int], j: int, ancestor: int) -> bool:
    p = parents[j]
    while p >= 0:
        if p == ancestor:
            return True
        p = parents[p]
    return False


def _child_towards(parents: list[int], j: int) -> int:
    """The root's child on the path from the root down to ``j``."""
    while parents[j] > 0:
        j = parents[j]
    return j


def _smooth(x: torch.Tensor, width: int) -> torch.Tensor:
    """Centred moving average along dim 0 with edge padding."""
    if width <= 1 or x.shape[0] < 2:
        return x
    pad = width // 2
    xp = torch.cat((x[:1].expand(pad, *x.shape[1:]), x, x[-1:].expand(width - 1 - pad, *x.shape[1:])))
    return xp.unfold(0, width, 1).mean(-1)
