"""Left/right mirroring of poses and motion across the character's sagittal plane.

In the heading frame x points to the character's left, y up, z forward
(``root_vel`` is ``[left, forward]``), so the mirror there is ``M = diag(-1, 1, 1)``.
Joint ``j`` trades places with its partner ``s(j)`` (itself on the midline), and
each joint's local frame is mirrored by ``A_j``, an orthogonal matrix with
``det = -1`` and ``A_s(j) = A_j^T`` (so mirroring twice is the identity)::

    G'_j = M G_s(j) A_j          rotations in the heading frame
    R'_j = A_p^T R_s(j) A_j      local rotations, p = parent(j); the root's parent frame is mirrored by M
    w'_j = -A_j^T w_s(j)         local angular velocity (an axial vector: det(A) = -1 flips it)

FK of the mirrored pose equals the mirrored FK (positions ``M p_s(j)``) exactly when
``A_j o_k = o_s(k)`` for every child ``k`` of ``j`` (bone offsets ``o``).

Rigs give each joint its own rest frame (a bone along +x on the left may run
along -x on the right), so ``A_j`` is not ``M`` in general. The rest offsets come
first: ``A_j`` must send each child's offset to its partner's (the condition
above). Two non-collinear child offsets pin ``A_j`` (``det = -1`` fixes the third
axis); one pins it up to a rotation about that offset; an end joint has none.
What the offsets leave free is found from the training motion: the frame map
under which the mirrored motion overlays the real one best, i.e. the ``A``
maximising ``tr(A^T S)`` with ``S`` the mean of ``G_s(j)^T M G_j`` over frames
(orthogonal Procrustes), the offsets weighing ``OFFSET_WEIGHT`` times as much.
A midline joint's ``A_j`` is a reflection ``I - 2 n n^T`` (the sagittal plane in
its frame). Last, ``A_j`` is snapped to the nearest signed axis permutation
(rig frames differ by axis swaps and sign flips) when within ``SNAP_DEG`` and
moving no mirrored child joint by more than ``SNAP_TOL_M``. So the motion, and
how little of it there is, never bends a bone: FK of the mirrored pose is the
mirrored FK up to the offsets' own asymmetry, which gets a warning naming the
bones. Pairs come from joint names (``Foot_L``/``Foot_R``, ``LeftFoot``,
``l_ankle``, ``mixamorig:LeftArm``, ``LHipJoint``) or are given.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from dataclasses import dataclass

import torch

from trainer_core.data.skeleton import Skeleton
from trainer_core.errors import ConfigError, did_you_mean

SNAP_DEG = 30.0  # a frame map this close to a signed axis permutation is that permutation ...
SNAP_TOL_M = 5e-4  # ... if that moves no mirrored child joint by more than this (metres)
OFFSET_WEIGHT = 1e6  # rest offsets outweigh the motion: it decides only what they leave free
MIN_OFFSET_M = 1e-6  # a shorter offset (CMU's zero-length `LHipJoint`) pins no direction
SYMMETRY_TOL_M = 0.01  # offsets whose mirror images differ by more than this get a warning
PAIRS_KEY = "augmentation.mirror_pairs"
_SIDE_WORDS = {"l": "L", "left": "L", "r": "R", "right": "R"}


def _tokens(name: str) -> list[str]:
    """``mixamorig:LeftUpLeg`` -> ``[mixamorig, left, up, leg]``; ``LHipJoint`` -> ``[l, hip, joint]``."""
    n = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    n = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", n)
    return [t.lower() for t in re.split(r"[^A-Za-z0-9]+", n) if t]


def side_and_stem(name: str) -> tuple[str | None, str]:
    """The side (``"L"``, ``"R"`` or None) a joint name shows, and the name without it.

    Partners share the stem: ``Foot_L`` and ``Foot_R`` both give ``foot_#``.
    """
    sides, stem = set(), []
    for t in _tokens(name):
        word = next((w for w in ("left", "right") if t != w and (t.startswith(w) or t.endswith(w))), None)
        if t in _SIDE_WORDS:
            sides.add(_SIDE_WORDS[t])
            t = "#"
        elif word is not None:
            sides.add(_SIDE_WORDS[word])
            t = t.replace(word, "#", 1)
        stem.append(t)
    return (sides.pop() if len(sides) == 1 else None), "_".join(stem)


def pairs_by_name(bones: tuple[str, ...]) -> list[tuple[int, int]]:
    """``(left, right)`` joint index pairs whose names differ only in the side; ConfigError if one has none."""
    by_stem: dict[str, dict[str, list[int]]] = {}
    for j, b in enumerate(bones):
        side, stem = side_and_stem(b)
        if side is not None:
            by_stem.setdefault(stem, {"L": [], "R": []})[side].append(j)
    pairs = []
    for sides in by_stem.values():
        left, right = sides["L"], sides["R"]
        if len(left) == 1 and len(right) == 1:
            pairs.append((left[0], right[0]))
            continue
        lonely = bones[(left or right)[0]]
        other = "right" if left else "left"
        raise ConfigError(
            f"`augmentation.mirror`: joint `{lonely}` has {'no' if not (left and right) else 'no unique'} {other}-side "
            f"partner by name; list the pairs in `{PAIRS_KEY}` ([[LEFT, RIGHT], ...])"
        )
    return sorted(pairs)


def _given_pairs(skeleton: Skeleton, given: tuple[tuple[str, str], ...]) -> list[tuple[int, int]]:
    pairs, seen = [], set()
    for left, right in given:
        for n in (left, right):
            if n not in skeleton.bones:
                raise ConfigError(
                    f"`{PAIRS_KEY}` names joint `{n}`, which the skeleton does not have"
                    f"{did_you_mean(n, skeleton.bones)}"
                )
            if n in seen:
                raise ConfigError(f"`{PAIRS_KEY}` names joint `{n}` twice; each joint has one partner")
            seen.add(n)
        if left == right:
            raise ConfigError(f"`{PAIRS_KEY}` pairs `{left}` with itself; list only left/right pairs")
        pairs.append((skeleton.index(left), skeleton.index(right)))
    return pairs


def joint_permutation(skeleton: Skeleton, given: tuple[tuple[str, str], ...] | None) -> list[int]:
    """``s(j)`` for every joint: its partner, or itself. ConfigError if there are no pairs or they break the tree."""
    pairs = _given_pairs(skeleton, given) if given is not None else pairs_by_name(skeleton.bones)
    if not pairs:
        shown = ", ".join(skeleton.bones[:4]) + (", ..." if skeleton.n_joints > 4 else "")
        raise ConfigError(
            f"`augmentation.mirror` is true, but the skeleton's joint names ({shown}) show no left/right pairs; "
            f"name them in `{PAIRS_KEY}` ([[LEFT, RIGHT], ...]) or turn mirroring off"
        )
    perm = list(range(skeleton.n_joints))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    parents = skeleton.parents
    for j, p in enumerate(parents):
        mirrored_parent = parents[perm[j]]
        if (p < 0) != (mirrored_parent < 0) or (p >= 0 and perm[p] != mirrored_parent):
            raise ConfigError(
                f"`augmentation.mirror`: `{skeleton.bones[j]}` and its partner `{skeleton.bones[perm[j]]}` hang from "
                "joints that are not partners; fix the pairs in "
                f"`{PAIRS_KEY}`"
            )
    return perm


def _signed_permutations() -> torch.Tensor:
    """The 24 signed axis permutations with ``det = -1``, ``(24, 3, 3)`` float64."""
    mats = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            P = torch.zeros(3, 3, dtype=torch.float64)
            for row, (col, sg) in enumerate(zip(order, signs)):
                P[row, col] = sg
            if torch.linalg.det(P) < 0:
                mats.append(P)
    return torch.stack(mats)


def _improper_polar(S: torch.Tensor) -> torch.Tensor:
    """The orthogonal ``A`` with ``det(A) = -1`` maximising ``tr(A^T S)``, ``(3, 3)`` float64."""
    U, _, Vh = torch.linalg.svd(S)
    D = torch.ones(3, dtype=S.dtype)
    if torch.linalg.det(U @ Vh) > 0:
        D[-1] = -1.0
    return U @ torch.diag(D) @ Vh


def _reflection(S: torch.Tensor) -> torch.Tensor:
    """The reflection ``I - 2 n n^T`` maximising ``tr(A^T S)``: ``n`` is ``sym(S)``'s lowest eigenvector."""
    n = torch.linalg.eigh(0.5 * (S + S.T)).eigenvectors[:, 0]
    return torch.eye(3, dtype=S.dtype) - 2.0 * torch.outer(n, n)


def _snap(A: torch.Tensor, candidates: torch.Tensor, pinned: torch.Tensor) -> torch.Tensor:
    """The candidate nearest ``A`` if within ``SNAP_DEG`` and moving no ``pinned (K, 3)`` offset over ``SNAP_TOL_M``."""
    scores = (candidates * A).sum((-1, -2))  # tr(P^T A) = 1 + 2 cos(angle between A and P)
    best = int(scores.argmax())
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (float(scores[best]) - 1.0) / 2.0))))
    moved = float(((candidates[best] - A) @ pinned.T).norm(dim=0).max()) if len(pinned) else 0.0
    return candidates[best].clone() if angle <= SNAP_DEG and moved <= SNAP_TOL_M else A


def frame_maps(
    Rg: torch.Tensor, perm: list[int], parents: tuple[int, ...] | list[int], offsets: torch.Tensor
) -> torch.Tensor:
    """``A_j`` ``(J, 3, 3)`` float64 from the rest ``offsets (J, 3)`` and global rotations ``Rg (F, J, 3, 3)``.

    The offsets pin what they can (``A_j o_k = o_s(k)`` for each child ``k``); the training frames' rotations
    decide the rest (see the module docstring).
    """
    J = len(perm)
    if Rg.dim() != 4 or Rg.shape[1:] != (J, 3, 3) or offsets.shape != (J, 3):
        raise ValueError(
            f"`Rg` has shape {tuple(Rg.shape)} and `offsets` {tuple(offsets.shape)}, but must be (F, {J}, 3, 3) "
            f"and ({J}, 3)"
        )
    G = Rg.detach().to("cpu", torch.float64)
    off = offsets.detach().to("cpu", torch.float64)
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    S = (G[:, perm].transpose(-1, -2) @ M @ G).mean(0)  # (J, 3, 3): mean of G_s(j)^T M G_j
    length = off.norm(dim=-1)
    unit = off / length.clamp_min(MIN_OFFSET_M)[:, None]
    H = torch.zeros_like(S)  # sum over children k of unit(o_s(k)) unit(o_k)^T: the offsets' pull on A_j
    children: list[list[int]] = [[] for _ in range(J)]
    for k, j in enumerate(parents):
        if j >= 0 and min(length[k], length[perm[k]]) > MIN_OFFSET_M:
            H[j] += torch.outer(unit[perm[k]], unit[k])
            children[j].append(k)
    candidates = _signed_permutations()
    symmetric = candidates[(candidates == candidates.transpose(-1, -2)).all(-1).all(-1)]
    A = torch.empty_like(S)
    for j, k in enumerate(perm):
        if k < j:
            continue
        target = OFFSET_WEIGHT * H[j] + S[j]
        pinned = off[children[j]]
        if k == j:  # on the midline: A_j is its own inverse, a reflection across the sagittal plane
            A[j] = _snap(_reflection(target), symmetric, pinned)
        else:
            A[j] = _snap(_improper_polar(target), candidates, pinned)
            A[k] = A[j].T
    return A


@dataclass
class Mirror:
    """The mirror of one skeleton, as tensors on the training device."""

    perm: torch.Tensor  # (J,) long: s(j)
    left: torch.Tensor  # (J, 3, 3): A_parent(j)^T, M for the root
    right: torch.Tensor  # (J, 3, 3): A_j

    @classmethod
    def create(
        cls, skeleton: Skeleton, Rg: torch.Tensor, given: tuple[tuple[str, str], ...] | None, device: torch.device
    ) -> Mirror:
        """From the skeleton, the training frames' global rotations ``Rg (F, J, 3, 3)`` and optional pairs."""
        perm = joint_permutation(skeleton, given)
        A = frame_maps(Rg, perm, skeleton.parents, torch.from_numpy(skeleton.offsets))
        M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
        left = torch.stack([M if p < 0 else A[p].T for p in skeleton.parents])
        _warn_if_asymmetric(skeleton, perm, A)
        return cls(
            torch.tensor(perm, dtype=torch.long, device=device),
            left.to(device, torch.float32),
            A.to(device, torch.float32),
        )

    def rotations(self, R: torch.Tensor) -> torch.Tensor:
        """Mirrored local rotations ``(..., J, 3, 3)``."""
        return self.left @ R.index_select(-3, self.perm) @ self.right

    def angular_velocity(self, w: torch.Tensor) -> torch.Tensor:
        """Mirrored local angular velocity ``(..., J, 3)``."""
        return -(self.right.transpose(-1, -2) @ w.index_select(-2, self.perm)[..., None])[..., 0]


def _warn_if_asymmetric(skeleton: Skeleton, perm: list[int], A: torch.Tensor) -> None:
    """One warning naming every bone whose offset, mirrored, misses its partner's by over ``SYMMETRY_TOL_M``.

    The maps are fitted to the offsets first, so what remains is the offsets' own asymmetry (a bone longer on one
    side, children at other angles), not a fitting error.
    """
    off = torch.from_numpy(skeleton.offsets).double()
    misses: dict[tuple[int, int], float] = {}
    for k, j in enumerate(skeleton.parents):
        if j < 0:
            continue
        err = float((A[j] @ off[k] - off[perm[k]]).norm())
        if err > SYMMETRY_TOL_M:
            pair = (min(k, perm[k]), max(k, perm[k]))
            misses[pair] = max(err, misses.get(pair, 0.0))
    if not misses:
        return
    named = [
        (f"`{skeleton.bones[a]}`/`{skeleton.bones[b]}`" if a != b else f"`{skeleton.bones[a]}`") + f" {e * 100:.1f} cm"
        for (a, b), e in sorted(misses.items(), key=lambda item: -item[1])
    ]
    warnings.warn(
        "mirror: the skeleton's rest offsets are not left/right symmetric: mirrored, these bones' offsets miss their "
        f"partners' by {', '.join(named)}; mirrored poses are off by about that much at those joints and below them",
        stacklevel=3,
    )
