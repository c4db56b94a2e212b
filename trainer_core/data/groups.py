"""Motion groups of clips (``motion_groups``): locomotion and in place, or sets of a name label.

Reports score each group on its own as well as all clips together, so a model
that walks well and cannot stand still shows; ``inplace_share`` draws a set
share of each training batch from the ``in-place`` group.

The default groups by the motion itself (mean root speed), not by the names,
so clips from any source and naming are grouped the same way.
"""

from __future__ import annotations

import re

import numpy as np

from trainer_core.data.clip import Clip
from trainer_core.split_spec import IN_PLACE, GroupSpec

OTHER = "other"
HELD_SUFFIX = ":held"  # the name of a clip ``held_poses`` adds: its source clip's, then this
LEGS_SUFFIX = ":legs"  # likewise for ``legs_held``


def mean_root_speed(clip: Clip) -> float:
    """The clip's mean ground speed of the root, m/s."""
    return float(np.linalg.norm(np.asarray(clip.root_vel, dtype=np.float64), axis=-1).mean()) if clip.n_frames else 0.0


def motion_groups(clips: list[Clip], spec: GroupSpec | None) -> dict[str, str]:
    """Clip name -> its group (``{}`` without a spec). Speed: ``in-place`` below ``still_speed_ms``, else
    ``locomotion``; names: the set holding the clip's label, ``other`` for none."""
    if spec is None:
        return {}
    if spec.kind == "speed":
        return {c.name: (IN_PLACE if mean_root_speed(c) < spec.still_speed_ms else "locomotion") for c in clips}
    rx = re.compile(spec.pattern)
    value_to_set = {v: name for name, values in spec.sets for v in values}
    out = {}
    for c in clips:
        m = rx.search(c.name)
        label = m.group(spec.field) if m else None
        out[c.name] = value_to_set.get(label, OTHER) if label is not None else OTHER
    return out


def by_group(groups: dict[str, str], names: list[str]) -> dict[str, list[str]]:
    """Group -> the names (in the order given) of its clips, for the groups that hold any of ``names``."""
    out: dict[str, list[str]] = {}
    for n in names:
        if n in groups:
            out.setdefault(groups[n], []).append(n)
    return dict(sorted(out.items()))


def stillest_frame(angvel: np.ndarray) -> int:
    """The frame of ``angvel (T, J, 3)`` with the least mean joint angular speed, the first and last aside
    (their velocities are copies of their neighbours'); ``T`` must be at least 3."""
    return int(np.linalg.norm(angvel, axis=-1).mean(-1)[1:-1].argmin()) + 1


def held_poses(clips: list[Clip], groups: dict[str, str], seconds: float) -> list[Clip]:
    """For each clip of the ``in-place`` group, a clip of ``seconds`` standing still (``hold_s``).

    Each holds its clip's stillest frame (least mean joint angular speed, first and last
    frames aside) with zero angular velocity and root velocity, its heading and foot
    contacts kept, named after their clip (``HELD_SUFFIX``).
    """
    out = []
    for c in clips:
        n = round(seconds * c.fps)
        if groups.get(c.name) != IN_PLACE or n < 2 or c.n_frames < 3:
            continue
        k = stillest_frame(c.angvel)
        rot6d, yaw, contacts = (np.repeat(a[k : k + 1], n, axis=0) for a in (c.rot6d, c.root_yaw, c.soft_contacts))
        still = np.zeros((n, *c.angvel.shape[1:]), c.angvel.dtype), np.zeros((n, 2), c.root_vel.dtype)
        out.append(Clip(rot6d, still[0], yaw, still[1], contacts, c.fps, c.name + HELD_SUFFIX))
    return out


def legs_held(clips: list[Clip], groups: dict[str, str], legs: list[int]) -> list[Clip]:
    """For each clip of the ``in-place`` group, a copy with its root and ``legs`` (joint indices) held
    (``hold_legs``): their rotations, the heading and the foot contacts of the frame where they are
    stillest (least mean angular speed, first and last frames aside), their angular velocity and the root's
    velocity zero, while the arms, spine and head move as recorded; named after their clip (``LEGS_SUFFIX``).

    A person who waves or bows from a standing pose keeps their feet: these clips show the model upper-body
    motion that does not set the legs stepping.
    """
    held = [0, *legs]
    out = []
    for c in clips:
        if groups.get(c.name) != IN_PLACE or c.n_frames < 3:
            continue
        k = stillest_frame(c.angvel[:, held])
        rot6d, angvel = c.rot6d.copy(), c.angvel.copy()
        rot6d[:, held] = c.rot6d[k, held]
        angvel[:, held] = 0
        n = c.n_frames
        yaw, contacts = (np.repeat(a[k : k + 1], n, axis=0) for a in (c.root_yaw, c.soft_contacts))
        out.append(Clip(rot6d, angvel, yaw, np.zeros((n, 2), c.root_vel.dtype), contacts, c.fps, c.name + LEGS_SUFFIX))
    return out
