"""The skeleton: bone names, parents, offsets, and the joint groups derived from them.

Stored beside the clips in the seed's two files: ``FullHierarchy.json``
(``bones``, ``parents``, ``feet``, ``groups``) and ``FullOffsets.json``
(``offsets``, metres). The root is the hips; parents come before children.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer_core.errors import DataError, raise_all
from trainer_core.io_utils import atomic_write_json, read_json

HIERARCHY_FILE = "FullHierarchy.json"
OFFSETS_FILE = "FullOffsets.json"
GROUPS = ("torso", "arms", "legs")


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree. ``offsets`` are metres in the parent's frame; the root's is zero."""

    bones: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray  # (J, 3) float32
    feet: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "L"/"R" -> joint names
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # torso/arms/legs -> names

    def __post_init__(self) -> None:
        J = len(self.bones)
        problems = []
        if len(self.parents) != J:
            problems.append(f"`parents` has {len(self.parents)} entries, but `bones` has {J}")
        if self.offsets.shape != (J, 3):
            problems.append(f"`offsets` has shape {self.offsets.shape}, but must be ({J}, 3)")
        for j, p in enumerate(self.parents):
            if not (-1 <= p < j):
                problems.append(f"`parents[{j}]` is {p}, but must be -1 or an earlier joint")
                break
        if self.parents and self.parents[0] != -1:
            problems.append("`parents[0]` must be -1 (the root comes first)")
        if len(set(self.bones)) != J:
            problems.append("`bones` has duplicate names")
        raise_all(problems, DataError, "skeleton")

    @property
    def n_joints(self) -> int:
        return len(self.bones)

    def index(self, name: str) -> int:
        return self.bones.index(name)

    def group_indices(self, group: str) -> list[int]:
        return [self.bones.index(b) for b in self.groups.get(group, ())]

    def leg_indices(self) -> list[int]:
        """The leg joints: the ``legs`` group, or for a skeleton without one the hips' branches that hold a
        foot (``feet``, else found by name; see ``limb_groups``); none when no foot is known."""
        if self.groups.get("legs"):
            return self.group_indices("legs")
        bones, parents = list(self.bones), list(self.parents)
        return sorted(leg_branches(bones, parents, self.feet or find_feet(bones, parents)))

    def limb_indices(self) -> list[int]:
        return sorted(self.group_indices("arms") + self.group_indices("legs"))

    def to_files(self, folder: Path) -> None:
        atomic_write_json(
            folder / HIERARCHY_FILE,
            {
                "bones": list(self.bones),
                "parents": list(self.parents),
                "feet": {k: list(v) for k, v in self.feet.items()},
                "groups": {k: list(v) for k, v in self.groups.items()},
            },
        )
        atomic_write_json(folder / OFFSETS_FILE, {"offsets": np.round(self.offsets, 6).tolist()})

    @classmethod
    def from_files(cls, folder: Path) -> Skeleton:
        hier_path, off_path = folder / HIERARCHY_FILE, folder / OFFSETS_FILE
        hier = read_json(hier_path)
        offs = read_json(off_path)
        for path, obj, keys in ((hier_path, hier, ("bones", "parents")), (off_path, offs, ("offsets",))):
            if not isinstance(obj, dict):
                raise DataError(f"{path}: must hold a JSON object")
            for k in keys:
                if k not in obj:
                    raise DataError(f"{path}: missing key `{k}`")
        try:
            offsets = np.asarray(offs["offsets"], dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(f"{off_path}: `offsets` must be a list of [x, y, z] numbers ({e})") from None
        try:
            return cls(
                bones=tuple(str(b) for b in hier["bones"]),
                parents=tuple(int(p) for p in hier["parents"]),
                offsets=offsets,
                feet={k: tuple(v) for k, v in hier.get("feet", {}).items()},
                groups={k: tuple(v) for k, v in hier.get("groups", {}).items()},
            )
        except DataError as e:
            raise DataError(f"{hier_path}: {e}") from None


def first_bone_mismatch(
    model_bones: list[str] | tuple[str, ...], bones: tuple[str, ...], model_where: str
) -> str | None:
    """Where ``bones`` first differs from a model's bones (names in order), said in words; None if they agree."""
    for j in range(max(len(model_bones), len(bones))):
        want = model_bones[j] if j < len(model_bones) else None
        have = bones[j] if j < len(bones) else None
        if want == have:
            continue
        if have is None:
            return f"the skeleton ends after {j} joints, but the model's joint {j} is `{want}`"
        if want is None:
            return f"joint {j} is `{have}`, but the model's skeleton ends after {j} joints"
        return f"joint {j} is `{have}`, but the model in {model_where} has `{want}` there"
    return None


_LEFT = re.compile(r"(^|[^a-z])l($|[^a-z])|left", re.IGNORECASE)
_RIGHT = re.compile(r"(^|[^a-z])r($|[^a-z])|right", re.IGNORECASE)


def side_of(name: str) -> str | None:
    """'L', 'R' or None from a joint name: ``Foot_L``, ``LeftFoot``, ``l_ankle``, ``foot.R``."""
    n = name.replace(":", "_")
    n = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", n)  # LeftFoot -> Left_Foot
    left, right = bool(_LEFT.search(n)), bool(_RIGHT.search(n))
    if left == right:
        return None
    return "L" if left else "R"


def find_feet(bones: list[str], parents: list[int]) -> dict[str, tuple[str, ...]]:
    """Foot joints per side by name: the ankle (``foot``/``ankle``) and its toe child if any."""
    feet: dict[str, tuple[str, ...]] = {}
    for side in ("L", "R"):
        ankles = [j for j, b in enumerate(bones) if side_of(b) == side and re.search(r"foot|ankle", b, re.IGNORECASE)]
        if not ankles:
            continue
        ankle = ankles[0]
        toes = [j for j, p in enumerate(parents) if p == ankle and re.search(r"toe|ball", bones[j], re.IGNORECASE)]
        feet[side] = tuple(bones[j] for j in [ankle, *toes])
    return feet


def limb_groups(
    bones: list[str], parents: list[int], feet: dict[str, tuple[str, ...]], mean_height: np.ndarray
) -> dict[str, tuple[str, ...]]:
    """Split joints into torso, arms and legs, from the torso outwards.

    - legs: the branches of the hips (the root) that hold a foot, whole (a CMU
      ``LHipJoint``, the toes);
    - the spine: the path from the hips to the head, the shallowest joint named
      ``head`` outside the legs, or without one the joint standing highest
      (``mean_height`` ``(J,)``, posed, Y up);
    - arms: the side branches of the chest, whole (shoulder to hand with the
      fingers). The chest is the spine joint, below the head, whose side branches
      hold the most joints: the one the shoulders hang from, where a face's or
      the eyes' small branches off the head do not count;
    - torso: the rest: hips, spine, neck, head and what hangs off them.

    Chains that stop at the first joint with several children would end at a
    hand holding fingers and a thumb (CMU's ``LeftHand``); branches do not.
    """
    J = len(bones)
    children = _children(parents)
    legs = leg_branches(bones, parents, feet)
    rest = [j for j in range(1, J) if j not in legs]
    named = [j for j in rest if re.search("head", bones[j], re.IGNORECASE)]
    depth = [0] * J
    for j in range(1, J):
        depth[j] = depth[parents[j]] + 1
    if named:
        head = min(named, key=lambda j: (depth[j], j))
    elif rest:
        head = max(rest, key=lambda j: (float(mean_height[j]), -j))
    else:
        head = 0
    spine = [head]
    while parents[spine[-1]] >= 0:
        spine.append(parents[spine[-1]])
    spine = spine[::-1]  # hips ... head
    on_spine = set(spine)
    arms: set[int] = set()
    best = 0
    for j in spine[1:-1]:
        side = [k for c in children[j] if c not in on_spine for k in _subtree(children, c)]
        if len(side) > best:
            best, arms = len(side), set(side)
    return {
        "torso": tuple(bones[j] for j in range(J) if j not in legs and j not in arms),
        "arms": tuple(bones[j] for j in range(J) if j in arms),
        "legs": tuple(bones[j] for j in range(J) if j in legs),
    }


def leg_branches(bones: list[str], parents: list[int], feet: dict[str, tuple[str, ...]]) -> set[int]:
    """The joints of the hips' (the root's) branches that hold a foot of ``feet``, whole."""
    children = _children(parents)
    foot_names = {n for names in feet.values() for n in names}
    legs: set[int] = set()
    for c in children[0] if bones else []:
        branch = _subtree(children, c)
        if any(bones[k] in foot_names for k in branch):
            legs.update(branch)
    return legs


def _children(parents: list[int]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {j: [] for j in range(len(parents))}
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    return children


def _subtree(children: dict[int, list[int]], j: int) -> list[int]:
    out, stack = [], [j]
    while stack:
        k = stack.pop()
        out.append(k)
        stack.extend(children[k])
    return out
