"""What the BVH importer reads off the body: where the legs start, the up axis, the length unit.

Everything here works on the posed skeleton in the file's own units and axes:
joint positions ``(F, J, 3)`` from forward kinematics, and per-frame bone
translations ``(F, J, 3)`` (the offsets, or the position channels where a file
has them, as Bandai's files do on every joint).

- **Where a leg starts.** A leg is the path from the hips down to its ankle.
  Its *first joint apart* is the first joint on that path standing off the hips
  by over 5 % of the path's length: a CMU file puts zero-offset ``LHipJoint`` /
  ``RHipJoint`` on the hips, so the first joint of a leg is not always where the
  leg leaves the pelvis. The heading comes from the line between the two legs'
  first joints apart.
- **Up axis.** The axis along which the hips stand over the ankles (the median
  over the clip of hips minus the ankles' midpoint): +Y or +Z. The rest pose is
  not used: rest poses differ between tools (Bandai's bones lie along X at rest).
- **Unit.** The legs' length (thigh plus shin: the bones from the first joint
  apart down to the ankle, median over frames, mean of both legs) against a
  human's, ``HUMAN_LEG_M``. The number's size alone says nothing: CMU files stand
  17 units high at the hips, which is neither metres nor centimetres. The
  nearest of ``UNITS`` within a factor ``SNAP_FACTOR`` is chosen (a child or a
  tall adult still reads as the file's unit), else the ratio itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainer_core.errors import DataError

HUMAN_LEG_M = 0.85  # hip joint to ankle of an adult, metres
SNAP_FACTOR = 1.5
APART_FRACTION = 0.05
UNITS = (
    ("metres", 1.0),
    ("centimetres", 0.01),
    ("millimetres", 0.001),
    ("inches", 0.0254),
    ("feet", 0.3048),
    ("CMU units", 0.056444),  # (1.0 / 0.45) * 2.54 / 100, the CMU mocap database's files
)


@dataclass(frozen=True)
class Units:
    """How a file's numbers become metres in a +Y-up frame, and the file's frame rate."""

    scale: float  # metres per file unit
    up: str  # the file's up axis: "y" or "z"
    reason: str  # how ``scale`` was chosen, one phrase
    up_from: str  # "from the pose" or "given"
    source_fps: float  # the file's rate, 1 / Frame Time


def leg_path(parents: list[int] | tuple[int, ...], root: int, ankle: int) -> list[int]:
    """Joints from the root's child down to ``ankle`` (inclusive), root excluded."""
    path = [ankle]
    while parents[path[-1]] != root:
        if parents[path[-1]] < 0:
            raise ValueError(f"joint {ankle} is not below joint {root}")
        path.append(parents[path[-1]])
    return path[::-1]


def bone_lengths(local_t: np.ndarray) -> np.ndarray:
    """Median length over frames of each joint's translation from its parent, ``(F, J, 3)`` -> ``(J,)``."""
    return np.median(np.linalg.norm(local_t, axis=-1), axis=0)


def first_apart(path: list[int], glob_p: np.ndarray, root: int, lengths: np.ndarray) -> int:
    """The first joint of ``path`` standing off ``root`` by over ``APART_FRACTION`` of the path's length."""
    reach = float(lengths[path].sum())
    dist = np.median(np.linalg.norm(glob_p[:, path] - glob_p[:, [root]], axis=-1), axis=0)
    for j, d in zip(path, dist):
        if d > APART_FRACTION * reach:
            return j
    return path[0]


def leg_length(path: list[int], apart: int, lengths: np.ndarray) -> float:
    """Thigh plus shin: the bones below the first joint apart, down to the ankle (file units)."""
    return float(lengths[path[path.index(apart) + 1 :]].sum())


def detect_up(glob_p: np.ndarray, hips: int, ankles: list[int], where: str) -> str:
    """ "y" or "z": the axis along which the hips stand over the ankles' midpoint, in ``glob_p`` ``(F, J, 3)``."""
    v = np.median(glob_p[:, hips] - glob_p[:, ankles].mean(axis=1), axis=0)
    axis = int(np.argmax(np.abs(v)))
    name = "xyz"[axis]
    norm = float(np.linalg.norm(v))
    if norm > 0 and v[axis] > 0 and name in "yz" and abs(v[axis]) >= 0.8 * norm:
        return name
    sign = "+" if v[axis] >= 0 else "-"
    raise DataError(
        f"{where}: cannot tell the up axis from the pose (the hips stand over the feet along {sign}{name}, "
        "not clearly +y or +z); pass --up y or --up z"
    )


def choose_scale(leg_units: float, where: str) -> tuple[float, str]:
    """Metres per file unit from the legs' length in file units, and a phrase saying why."""
    if not (math.isfinite(leg_units) and leg_units > 0):
        raise DataError(f"{where}: the legs have no length, so the units cannot be told; pass --scale")
    body = HUMAN_LEG_M / leg_units
    label, unit = min(UNITS, key=lambda u: abs(math.log(body / u[1])))
    why = f"legs {leg_units:.3g} units long, a human's are {HUMAN_LEG_M} m"
    if abs(math.log(body / unit)) <= math.log(SNAP_FACTOR):
        return unit, f"{label}: {why}"
    scale = float(f"{body:.3g}")
    return scale, f"no common unit fits: {why}"
