"""BVH files written from code: common skeleton layouts walking a known path.

A figure walks along a circular arc at a known ground speed, turning at a known
rate, its hips yawing with the path (plus a small gait twist) and its legs and
arms swinging. Motion is built in a canonical frame (metres, +Y up, +Z forward,
+X the figure's left at rest) and written in any layout's joint names, units,
up axis, frame rate and Euler channel order, so a test knows the truth the
importer must recover.

Layouts (joint names and hierarchies as the tools that make them write them):

- ``cmu``: the CMU mocap database's BVH (Hips with zero-offset ``LHipJoint`` /
  ``RHipJoint``, ``LowerBack``, ``Spine1`` holding the neck and shoulders,
  ``LeftHand`` holding ``LeftFingerBase`` and ``LThumb``); ZYX channels.
- ``mixamo``: Adobe Mixamo rigs (``mixamorig:`` names, ``Spine2`` holding the
  neck and shoulders, finger chains under each hand, eyes under the head, toe
  end joints).
- ``unreal``: the Unreal mannequin (``pelvis``, ``spine_01..03``, ``clavicle_l``,
  ``thigh_l``, ``calf_l``, ``foot_l``, ``ball_l``), a Z-up tool's layout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

CMU_UNIT_M = 0.056444  # (1.0 / 0.45) * 2.54 / 100: CMU files' length unit in metres

# (name, parent, offset in metres in the canonical rest frame)
_CMU_U = [
    ("Hips", None, (0.0, 0.0, 0.0)),
    ("LHipJoint", "Hips", (0.0, 0.0, 0.0)),
    ("LeftUpLeg", "LHipJoint", (1.65674, -1.80282, 0.62477)),
    ("LeftLeg", "LeftUpLeg", (2.59720, -7.13576, 0.0)),
    ("LeftFoot", "LeftLeg", (2.49236, -6.84770, 0.0)),
    ("LeftToeBase", "LeftFoot", (0.19776, -0.54332, 2.14249)),
    ("RHipJoint", "Hips", (0.0, 0.0, 0.0)),
    ("RightUpLeg", "RHipJoint", (-1.61070, -1.80282, 0.62476)),
    ("RightLeg", "RightUpLeg", (-2.59502, -7.12977, 0.0)),
    ("RightFoot", "RightLeg", (-2.46780, -6.78024, 0.0)),
    ("RightToeBase", "RightFoot", (-0.23024, -0.63258, 2.13368)),
    ("LowerBack", "Hips", (0.0, 0.0, 0.0)),
    ("Spine", "LowerBack", (0.02827, 2.03559, -0.19338)),
    ("Spine1", "Spine", (0.05672, 2.04885, -0.04275)),
    ("Neck", "Spine1", (0.0, 0.0, 0.0)),
    ("Neck1", "Neck", (-0.05417, 1.74624, 0.17202)),
    ("Head", "Neck1", (0.10407, 1.76136, -0.12397)),
    ("LeftShoulder", "Spine1", (0.0, 0.0, 0.0)),
    ("LeftArm", "LeftShoulder", (3.36241, 1.20089, -0.31121)),
    ("LeftForeArm", "LeftArm", (4.98300, 0.0, 0.0)),
    ("LeftHand", "LeftForeArm", (3.48356, 0.0, 0.0)),
    ("LeftFingerBase", "LeftHand", (0.71526, 0.0, 0.0)),
    ("LeftHandIndex1", "LeftFingerBase", (0.71526, 0.0, 0.0)),
    ("LThumb", "LeftHand", (0.0, 0.0, 0.0)),
    ("RightShoulder", "Spine1", (0.0, 0.0, 0.0)),
    ("RightArm", "RightShoulder", (-3.13660, 1.37405, -0.40465)),
    ("RightForeArm", "RightArm", (-5.24190, 0.0, 0.0)),
    ("RightHand", "RightForeArm", (-3.44417, 0.0, 0.0)),
    ("RightFingerBase", "RightHand", (-0.62253, 0.0, 0.0)),
    ("RightHandIndex1", "RightFingerBase", (-0.62253, 0.0, 0.0)),
    ("RThumb", "RightHand", (0.0, 0.0, 0.0)),
]
CMU = [(n, p, tuple(v * CMU_UNIT_M for v in o)) for n, p, o in _CMU_U]


def _mixamo() -> list[tuple[str, str | None, tuple[float, float, float]]]:
    m = "mixamorig:"
    joints = [
        ("Hips", None, (0, 0, 0)),
        ("Spine", "Hips", (0, 0.10, 0.01)),
        ("Spine1", "Spine", (0, 0.12, 0)),
        ("Spine2", "Spine1", (0, 0.13, 0)),
        ("Neck", "Spine2", (0, 0.15, 0)),
        ("Head", "Neck", (0, 0.10, 0.02)),
        ("HeadTop_End", "Head", (0, 0.18, 0)),
        ("LeftEye", "Head", (0.03, 0.07, 0.08)),
        ("RightEye", "Head", (-0.03, 0.07, 0.08)),
    ]
    for s, x in (("Left", 1.0), ("Right", -1.0)):
        joints += [
            (f"{s}Shoulder", "Spine2", (0.06 * x, 0.09, 0)),
            (f"{s}Arm", f"{s}Shoulder", (0.12 * x, 0, 0)),
            (f"{s}ForeArm", f"{s}Arm", (0.27 * x, 0, 0)),
            (f"{s}Hand", f"{s}ForeArm", (0.26 * x, 0, 0)),
        ]
        for finger, first in (("Thumb", (0.03 * x, 0, 0.03)), ("Index", (0.09 * x, 0, 0.02))):
            joints += [
                (f"{s}Hand{finger}1", f"{s}Hand", first),
                (f"{s}Hand{finger}2", f"{s}Hand{finger}1", (0.03 * x, 0, 0)),
                (f"{s}Hand{finger}3", f"{s}Hand{finger}2", (0.025 * x, 0, 0)),
            ]
        joints += [
            (f"{s}UpLeg", "Hips", (0.09 * x, -0.06, 0)),
            (f"{s}Leg", f"{s}UpLeg", (0, -0.44, 0)),
            (f"{s}Foot", f"{s}Leg", (0, -0.42, -0.02)),
            (f"{s}ToeBase", f"{s}Foot", (0, -0.06, 0.13)),
            (f"{s}Toe_End", f"{s}ToeBase", (0, 0, 0.07)),
        ]
    return [(m + n, None if p is None else m + p, o) for n, p, o in joints]


def _unreal() -> list[tuple[str, str | None, tuple[float, float, float]]]:
    joints = [
        ("pelvis", None, (0, 0, 0)),
        ("spine_01", "pelvis", (0, 0.10, 0)),
        ("spine_02", "spine_01", (0, 0.14, 0)),
        ("spine_03", "spine_02", (0, 0.14, 0)),
        ("neck_01", "spine_03", (0, 0.16, 0)),
        ("head", "neck_01", (0, 0.09, 0.02)),
    ]
    for s, x in (("l", 1.0), ("r", -1.0)):
        joints += [
            (f"clavicle_{s}", "spine_03", (0.04 * x, 0.10, 0)),
            (f"upperarm_{s}", f"clavicle_{s}", (0.15 * x, 0, 0)),
            (f"lowerarm_{s}", f"upperarm_{s}", (0.28 * x, 0, 0)),
            (f"hand_{s}", f"lowerarm_{s}", (0.26 * x, 0, 0)),
            (f"index_01_{s}", f"hand_{s}", (0.10 * x, 0, 0.02)),
            (f"thumb_01_{s}", f"hand_{s}", (0.03 * x, 0, 0.03)),
            (f"thigh_{s}", "pelvis", (0.10 * x, -0.03, 0)),
            (f"calf_{s}", f"thigh_{s}", (0, -0.45, 0)),
            (f"foot_{s}", f"calf_{s}", (0, -0.43, 0)),
            (f"ball_{s}", f"foot_{s}", (0, -0.07, 0.12)),
        ]
    return joints


LAYOUTS = {"cmu": CMU, "mixamo": _mixamo(), "unreal": _unreal()}
# The joints the walk drives, per layout: hips, thighs, knees, upper arms, one spine joint.
_ROLES = {
    "cmu": ("Hips", "LeftUpLeg", "RightUpLeg", "LeftLeg", "RightLeg", "LeftArm", "RightArm", "Spine"),
    "mixamo": tuple(
        "mixamorig:" + n
        for n in ("Hips", "LeftUpLeg", "RightUpLeg", "LeftLeg", "RightLeg", "LeftArm", "RightArm", "Spine1")
    ),
    "unreal": ("pelvis", "thigh_l", "thigh_r", "calf_l", "calf_r", "upperarm_l", "upperarm_r", "spine_02"),
}
# Canonical (+Y up) -> a Z-up file: the importer maps the file's (x, y, z) to (x, z, -y).
Z_UP = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])


@dataclass(frozen=True)
class Walk:
    """A walk along an arc: ``speed`` m/s over the ground, heading turning by ``turn_deg`` in total."""

    seconds: float = 4.0
    speed: float = 1.2
    turn_deg: float = 90.0
    yaw0_deg: float = -60.0  # heading at frame 0 (keeps ZYX's middle angle away from +-90)
    stride_s: float = 1.1  # one gait cycle
    twist_deg: float = 4.0  # pelvis twist with the gait

    def yaw(self, t: np.ndarray) -> np.ndarray:
        return np.deg2rad(self.yaw0_deg) + np.deg2rad(self.turn_deg) * t / self.seconds

    def position(self, t: np.ndarray) -> np.ndarray:
        """Hips ground position ``(F, 3)`` m: the integral of ``speed * (sin yaw, 0, cos yaw)``."""
        y0, w = np.deg2rad(self.yaw0_deg), np.deg2rad(self.turn_deg) / self.seconds
        if abs(w) < 1e-12:
            x, z = self.speed * t * math.sin(y0), self.speed * t * math.cos(y0)
        else:
            yaw = self.yaw(t)
            x = self.speed / w * (math.cos(y0) - np.cos(yaw))
            z = self.speed / w * (np.sin(yaw) - math.sin(y0))
        return np.stack([x + 1.5, np.zeros_like(t), z - 2.0], axis=-1)


def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotations ``(F, 3, 3)`` about one axis by ``angle`` ``(F,)`` radians."""
    return Rotation.from_euler(axis, np.asarray(angle)[:, None]).as_matrix()


def _names(layout: list) -> tuple[list[str], list[int]]:
    names = [n for n, _, _ in layout]
    return names, [-1 if p is None else names.index(p) for _, p, _ in layout]


def walk_motion(layout: str, walk: Walk, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical motion: hips position ``(F, 3)`` m, local rotations ``(F, J, 3, 3)``, times ``(F,)``."""
    joints = LAYOUTS[layout]
    names, parents = _names(joints)
    n = int(round(walk.seconds * fps)) + 1
    t = np.arange(n) / fps
    # Legs: hips height so that the ankles of straight legs are just off the floor.
    hips, thigh_l, thigh_r, knee_l, knee_r, arm_l, arm_r, spine = (names.index(r) for r in _ROLES[layout])
    ankle = names.index(next(n_ for n_, p, _ in joints if p == names[knee_l]))
    hip_h = 0.08 - sum(joints[j][2][1] for j in (thigh_l, knee_l, ankle))  # ankles 8 cm up
    phase = 2 * np.pi * t / walk.stride_s
    R = np.broadcast_to(np.eye(3), (n, len(names), 3, 3)).copy()
    yaw = walk.yaw(t) + np.deg2rad(walk.twist_deg) * np.sin(phase)
    R[:, hips] = _rot("y", yaw)
    R[:, thigh_l] = _rot("x", -np.deg2rad(25) * np.sin(phase))
    R[:, thigh_r] = _rot("x", np.deg2rad(25) * np.sin(phase))
    R[:, knee_l] = _rot("x", np.deg2rad(35) * np.clip(np.sin(phase + 1.2), 0, None))
    R[:, knee_r] = _rot("x", np.deg2rad(35) * np.clip(-np.sin(phase + 1.2), 0, None))
    R[:, arm_l] = _rot("y", np.deg2rad(15) * np.sin(phase))
    R[:, arm_r] = _rot("y", np.deg2rad(15) * np.sin(phase))
    R[:, spine] = _rot("z", np.deg2rad(3) * np.sin(2 * phase))
    pos = walk.position(t)
    pos[:, 1] = hip_h + 0.02 * np.cos(2 * phase)
    return pos, R, t


def write_bvh(
    path: Path,
    layout: str = "cmu",
    walk: Walk | None = None,
    fps: float = 120.0,
    unit_m: float = CMU_UNIT_M,
    order: str = "ZYX",
    basis: np.ndarray | None = None,
    rotation_word: str = "rotation",
    rename: dict[str, str] | None = None,
    edit: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> Path:
    """Write a walk in ``layout`` to ``path``.

    ``unit_m``: metres per file unit; ``order``: the Euler channel order (``"ZYX"``
    writes ``Zrotation Yrotation Xrotation``); ``basis``: canonical -> file axes
    (``Z_UP`` for a Z-up file); ``rotation_word``: the channel suffix's spelling;
    ``rename``: joint names to replace; ``edit(pos, R)``: changes the canonical
    motion (hips position ``(F, 3)`` m, local rotations ``(F, J, 3, 3)``) in place
    before it is written.
    """
    walk = walk or Walk()
    M = np.eye(3) if basis is None else np.asarray(basis, dtype=np.float64)
    joints = LAYOUTS[layout]
    names, parents = _names(joints)
    pos, R, _ = walk_motion(layout, walk, fps)
    if edit is not None:
        edit(pos, R)
    R_file = M @ R @ M.T
    euler = Rotation.from_matrix(R_file.reshape(-1, 3, 3)).as_euler(order, degrees=True).reshape(*R.shape[:2], 3)
    pos_file = pos @ M.T / unit_m
    rename = rename or {}
    rot_names = " ".join(f"{a}{rotation_word}" for a in order)
    children: dict[int, list[int]] = {j: [] for j in range(len(names))}
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        off = M @ np.asarray(joints[j][2]) / unit_m
        kind = "ROOT" if parents[j] < 0 else "JOINT"
        chans = f"CHANNELS 6 Xposition Yposition Zposition {rot_names}" if parents[j] < 0 else f"CHANNELS 3 {rot_names}"
        lines.extend([f"{pad}{kind} {rename.get(names[j], names[j])}", f"{pad}{{"])
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        lines.append(f"{pad}  {chans}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            end = M @ np.array([0.0, 0.05, 0.0]) / unit_m
            lines.extend(
                [
                    f"{pad}  End Site",
                    f"{pad}  {{",
                    f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}",
                    f"{pad}  }}",
                ]
            )
        lines.append(f"{pad}}}")

    emit(0, 0)
    order_j = []

    def walk_order(j: int) -> None:  # channels are listed in the order joints are declared
        order_j.append(j)
        for c in children[j]:
            walk_order(c)

    walk_order(0)
    lines += ["MOTION", f"Frames: {len(pos)}", f"Frame Time: {1.0 / fps:.8f}"]
    for f in range(len(pos)):
        vals = [*pos_file[f]]
        for j in order_j:
            vals.extend(euler[f, j])
        lines.append(" ".join(f"{v:.6f}" for v in vals))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
