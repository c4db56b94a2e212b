"""BVH motion capture -> training clips, for the skeletons people have.

What the importer computes from a BVH file (shapes as in ``clip.py``):

- the skeleton below the hips (the first joint with several children, or
  ``root_joint``); joints above it are folded into it;
- units and axes (``body.py``): the length unit from the legs' length against a
  human's (metres, centimetres, millimetres, inches, feet, CMU units, or the
  ratio itself), the up axis (+Y or +Z) from where the hips stand over the feet;
  ``scale`` and ``up`` override them. Output is metres, +Y up;
- ``fps``: the file's rate, or ``ImportOptions.fps`` by resampling the local
  transforms (``resample.py``: rotations along SO(3) geodesics, translations
  linearly) before anything else is computed;
- ``rot6d``: local rotations, the hips relative to the heading frame;
- ``root_yaw``: the heading, from the hips' facing: the line between the two
  legs' first joints standing apart from the hips (``LeftUpLeg``, not CMU's
  zero-offset ``LHipJoint``), crossed with up, averaged over a trailing window
  of ``facing_smooth_s``;
- ``root_vel``: the hips' ground velocity in the heading frame, m/s;
- ``soft_contacts``: from each foot's height and speed (see ``gait.soft_contact``);
  feet are found by name (``Foot_L``, ``LeftFoot``, ``mixamorig:LeftFoot``,
  ``foot_l``, ``l_ankle`` ...) or given;
- ``angvel``: backward differences of the local rotations.

Causality: every per-frame value at frame t is computed from frames 0..t only
(backward differences, a trailing smoothing window), so a clip cut after frame
t gives the same values up to t. Two things are per clip, not per frame, and
use the whole clip: the units and up axis (a property of the file; snapped to a
common unit, so they do not move with the frames), and each foot joint's
planted height for the soft contacts (the ``floor_percentile`` of its height
over the clip: a calibration of where the floor is, which the foot reaches many
times in any walk, accepted as a per-clip constant rather than a future frame).
Frame 0 has no earlier frame: its root velocity, angular velocity and foot
speed repeat frame 1's (training never uses frame 0 as an input).

Euler channels compose in the order listed (``Zrotation Xrotation Yrotation``
means ``Rz @ Rx @ Ry``), in degrees, acting on column vectors; channel names are
read in any case (``Xrotation``, ``XRotation``), any other name is an error.
Position channels replace the joint's offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainer_core.data import body
from trainer_core.data.body import Units
from trainer_core.data.clip import Clip, angular_velocity
from trainer_core.data.gait import ContactParams, soft_contact
from trainer_core.data.resample import resample_local
from trainer_core.data.skeleton import Skeleton, find_feet, limb_groups
from trainer_core.errors import DataError, raise_all
from trainer_core.geometry import forward_kinematics, matrix_to_rot6d, yaw_matrix

_AXES = {"X": 0, "Y": 1, "Z": 2}
_CHANNELS = {f"{a}{kind}" for a in "xyz" for kind in ("rotation", "position")}


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
    """How to read a BVH file; the defaults read units, axes and joints off the body."""

    scale: float | None = None  # metres per file unit; None: from the legs' length (see body.py)
    up: str = "auto"  # the file's up axis: "y", "z", or "auto" (from the pose)
    root_joint: str | None = None  # the hips; None: first joint with several children
    feet: dict[str, tuple[str, ...]] | None = None  # {"L": (ankle, toe), "R": (...)}; None: by name
    fps: float | None = None  # resample to this rate; None: keep the file's
    facing_smooth_s: float = 0.1  # trailing moving-average window of the facing direction, seconds
    contact: ContactParams = field(default_factory=ContactParams)

    def __post_init__(self) -> None:
        problems = []
        for key in ("scale", "fps"):
            v = getattr(self, key)
            if v is not None and not (math.isfinite(v) and v > 0):
                problems.append(f"`{key}` is {v}, but must be > 0")
        if self.up not in ("auto", "y", "z"):
            problems.append(f"`up` is {self.up!r}, but must be auto, y or z")
        if not self.facing_smooth_s >= 0:
            problems.append(f"`facing_smooth_s` is {self.facing_smooth_s}, but must be >= 0")
        raise_all(problems, DataError, "import options")


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
    for name, chans in zip(names, channels):
        for c in chans:
            if c.lower() not in _CHANNELS:
                raise DataError(
                    f"{path}: joint `{name}` has channel `{c}`; BVH channels are Xposition, Yposition, "
                    "Zposition, Xrotation, Yrotation, Zrotation (in any case)"
                )
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
    """Per-frame local rotations ``(F, J, 3, 3)`` and translations ``(F, J, 3)``, float64, file units."""
    F, J = bvh.motion.shape[0], len(bvh.names)
    R = np.broadcast_to(np.eye(3), (F, J, 3, 3)).copy()
    t = np.broadcast_to(bvh.offsets, (F, J, 3)).copy()
    col = 0
    for j, chans in enumerate(bvh.channels):
        rot_cols, rot_order, pos = [], "", {}
        for c in chans:  # names checked by parse_bvh
            axis, kind = c[0].upper(), c[1:].lower()
            if kind == "rotation":
                rot_cols.append(col)
                rot_order += axis
            else:
                pos[_AXES[axis]] = col
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


@dataclass
class _Posed:
    """A BVH file posed by forward kinematics in its own units and axes, its hips, feet and legs found."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3) file units
    fps: float
    source_fps: float
    local_R: torch.Tensor  # (F, J, 3, 3)
    glob_R: torch.Tensor  # (F, J, 3, 3)
    glob_p: torch.Tensor  # (F, J, 3) file units and axes
    hips: int
    keep: list[int]  # the hips and the joints below them, file order
    feet: dict[str, tuple[str, ...]]  # side -> joint names
    ankles: dict[str, int]  # side -> joint index
    apart: dict[str, int]  # side -> the leg's first joint standing off the hips
    leg_units: float  # thigh plus shin, file units, mean of both legs


def _pose(path: Path, options: ImportOptions) -> _Posed:
    where = str(path)
    bvh = parse_bvh(path)
    if bvh.motion.shape[0] < 2:
        raise DataError(f"{where}: holds {bvh.motion.shape[0]} frame(s), but at least 2 are needed")
    source_fps = 1.0 / bvh.frame_time
    local_R, local_t = _local_transforms(bvh)
    fps = source_fps
    if options.fps is not None and abs(options.fps - source_fps) > 1e-6 * source_fps:
        local_R, local_t = resample_local(local_R, local_t, source_fps, options.fps)
        fps = float(options.fps)
        if local_R.shape[0] < 2:
            raise DataError(f"{where}: at {fps:g} fps the clip holds {local_R.shape[0]} frame(s), but 2 are needed")
    glob_R, glob_p = forward_kinematics(local_R, local_t, bvh.parents)

    h = _choose_root(bvh, options.root_joint, where)
    keep = [j for j in range(len(bvh.names)) if j == h or _is_below(bvh.parents, j, h)]
    remap = {j: k for k, j in enumerate(keep)}
    bones = [bvh.names[j] for j in keep]
    feet = options.feet or find_feet(bones, [-1 if j == h else remap[bvh.parents[j]] for j in keep])
    for side in ("L", "R"):
        if side not in feet or not feet[side]:
            raise DataError(
                f"{where}: no {'left' if side == 'L' else 'right'} foot joint found by name; "
                "pass the feet explicitly (--feet LEFT_ANKLE,RIGHT_ANKLE)"
            )
        for n in feet[side]:
            if n not in bones or n == bones[0]:
                raise DataError(f"{where}: foot joint `{n}` is not below the hips `{bvh.names[h]}`")
    ankles = {s: keep[bones.index(feet[s][0])] for s in ("L", "R")}
    gp = glob_p.numpy()
    lengths = body.bone_lengths(local_t.numpy())
    apart, legs = {}, []
    for s in ("L", "R"):
        path_s = body.leg_path(bvh.parents, h, ankles[s])
        apart[s] = body.first_apart(path_s, gp, h, lengths)
        legs.append(body.leg_length(path_s, apart[s], lengths))
    if apart["L"] == apart["R"]:
        raise DataError(f"{where}: both feet hang from joint `{bvh.names[apart['L']]}`; pass the feet explicitly")
    return _Posed(
        bvh.names, bvh.parents, bvh.offsets, fps, source_fps, local_R, glob_R, glob_p,
        h, keep, feet, ankles, apart, float(np.mean(legs)),
    )  # fmt: skip


def _units(posed: _Posed, options: ImportOptions, where: str) -> Units:
    if options.up == "auto":
        up = body.detect_up(posed.glob_p.numpy(), posed.hips, [posed.ankles["L"], posed.ankles["R"]], where)
        up_from = "from the pose"
    else:
        up, up_from = options.up, "given"
    if options.scale is not None:
        return Units(float(options.scale), up, "given", up_from, posed.source_fps)
    scale, reason = body.choose_scale(posed.leg_units, where)
    return Units(scale, up, reason, up_from, posed.source_fps)


def read_units(path: Path, options: ImportOptions | None = None) -> Units:
    """The scale and up axis ``import_bvh`` uses for ``path`` (``options.scale``/``up`` win over the body's)."""
    options = options or ImportOptions()
    return _units(_pose(Path(path), options), options, str(path))


def import_bvh(path: Path, options: ImportOptions | None = None) -> tuple[Clip, Skeleton]:
    """Read one BVH file into a clip (metres, +Y up, ``options.fps`` or the file's rate) and its skeleton."""
    options = options or ImportOptions()
    where = str(path)
    posed = _pose(Path(path), options)
    units = _units(posed, options, where)
    fps, h, keep = posed.fps, posed.hips, posed.keep
    glob_R, glob_p = posed.glob_R, posed.glob_p * units.scale
    if units.up == "z":  # Z-up -> Y-up: (x, y, z) -> (x, z, -y)
        C = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]], dtype=torch.float64)
        glob_R, glob_p = C @ glob_R, glob_p @ C.T

    # Heading from the hips' facing: across = left leg - right leg, forward = across x up.
    across = glob_p[:, posed.apart["L"]] - glob_p[:, posed.apart["R"]]
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    forward = torch.linalg.cross(across, up.expand_as(across), dim=-1)
    forward[:, 1] = 0.0
    forward = _trailing_mean(forward, max(1, int(round(options.facing_smooth_s * fps))))
    forward = forward / forward.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    yaw = torch.atan2(forward[:, 0], forward[:, 2])
    R_yaw = yaw_matrix(yaw)

    new_local = posed.local_R[:, keep].clone()
    new_local[:, 0] = R_yaw.transpose(-1, -2) @ glob_R[:, h]
    vel = torch.diff(glob_p[:, h], dim=0) * fps
    vel = torch.cat((vel[:1], vel), dim=0)  # frame 0 has no earlier frame: it repeats frame 1
    vel_local = (R_yaw.transpose(-1, -2) @ vel[..., None]).squeeze(-1)
    root_vel = torch.stack((vel_local[:, 0], vel_local[:, 2]), dim=-1)

    gp = glob_p.numpy()
    names = posed.names
    k_feet = {s: [names.index(n) for n in posed.feet[s]] for s in ("L", "R")}
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
    remap = {j: k for k, j in enumerate(keep)}
    bones = [names[j] for j in keep]
    parents = [-1 if j == h else remap[posed.parents[j]] for j in keep]
    offsets = posed.offsets[keep] * units.scale
    offsets[0] = 0.0
    heights = (gp[:, keep, 1] - gp[:, [h], 1]).mean(axis=0)
    skeleton = Skeleton(
        bones=tuple(bones),
        parents=tuple(parents),
        offsets=offsets.astype(np.float32),
        feet={s: tuple(posed.feet[s]) for s in ("L", "R")},
        groups=limb_groups(bones, parents, posed.feet, heights),
    )
    return clip, skeleton


def _is_below(parents: list[int], j: int, ancestor: int) -> bool:
    p = parents[j]
    while p >= 0:
        if p == ancestor:
            return True
        p = parents[p]
    return False


def _trailing_mean(x: torch.Tensor, width: int) -> torch.Tensor:
    """Mean along dim 0 over the last ``width`` frames up to and including each frame (fewer at the start)."""
    if width <= 1 or x.shape[0] < 2:
        return x
    c = torch.cumsum(x, dim=0)
    n = torch.arange(1, x.shape[0] + 1, dtype=x.dtype).clamp(max=width).reshape(-1, *([1] * (x.dim() - 1)))
    lagged = torch.cat((torch.zeros_like(c[:width]), c[:-width]))[: x.shape[0]]
    return (c - lagged) / n
