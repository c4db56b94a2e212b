"""Limb groups from the torso outwards, on the real Bandai skeleton and on CMU, Mixamo and Unreal layouts."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import MOCAP_DIR
from tests.trainer_core.synth_bvh import Walk, write_bvh
from trainer_core.data.bvh import import_bvh
from trainer_core.data.skeleton import find_feet, limb_groups, side_of


def _arm(*names: str) -> set[str]:
    return set(names)


def _mixamo(*names: str) -> set[str]:
    return {"mixamorig:" + n for n in names}


def _mixamo_side(s: str) -> tuple[set[str], set[str]]:
    fingers = [f"{s}Hand{f}{i}" for f in ("Thumb", "Index") for i in (1, 2, 3)]
    arm = _mixamo(f"{s}Shoulder", f"{s}Arm", f"{s}ForeArm", f"{s}Hand", *fingers)
    leg = _mixamo(f"{s}UpLeg", f"{s}Leg", f"{s}Foot", f"{s}ToeBase", f"{s}Toe_End")
    return arm, leg


EXPECTED = {
    "bandai": {
        "arms": {f"{b}_{s}" for s in "LR" for b in ("Shoulder", "UpperArm", "LowerArm", "Hand")},
        "legs": {f"{b}_{s}" for s in "LR" for b in ("UpperLeg", "LowerLeg", "Foot", "Toes")},
        "torso": {"Hips", "Spine", "Chest", "Neck", "Head"},
    },
    "cmu": {
        "arms": {
            f"{s}{b}"
            for s in ("Left", "Right")
            for b in ("Shoulder", "Arm", "ForeArm", "Hand", "FingerBase", "HandIndex1")
        }
        | {"LThumb", "RThumb"},
        "legs": {"LHipJoint", "RHipJoint"}
        | {f"{s}{b}" for s in ("Left", "Right") for b in ("UpLeg", "Leg", "Foot", "ToeBase")},
        "torso": {"Hips", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head"},
    },
    "mixamo": {
        "arms": _mixamo_side("Left")[0] | _mixamo_side("Right")[0],
        "legs": _mixamo_side("Left")[1] | _mixamo_side("Right")[1],
        "torso": _mixamo("Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "HeadTop_End", "LeftEye", "RightEye"),
    },
    "unreal": {
        "arms": {
            f"{b}_{s}" for s in "lr" for b in ("clavicle", "upperarm", "lowerarm", "hand", "index_01", "thumb_01")
        },
        "legs": {f"{b}_{s}" for s in "lr" for b in ("thigh", "calf", "foot", "ball")},
        "torso": {"pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head"},
    },
}


@pytest.fixture(scope="module")
def skeletons(tmp_path_factory):
    d = tmp_path_factory.mktemp("layouts")
    walk = Walk(seconds=1.0)
    out = {"bandai": import_bvh(MOCAP_DIR / "dataset-1_walk_normal_001.bvh")[1]}
    for layout in ("cmu", "mixamo", "unreal"):
        out[layout] = import_bvh(write_bvh(d / f"{layout}.bvh", layout, walk, fps=30.0, unit_m=0.01))[1]
    return out


@pytest.mark.parametrize("layout", sorted(EXPECTED))
def test_limbs_run_from_the_torso_outwards(skeletons, layout):
    """Arms hold shoulder to hand with the fingers, legs hip to toes, the torso spine to head."""
    sk = skeletons[layout]
    groups = {k: set(v) for k, v in sk.groups.items()}
    assert groups == EXPECTED[layout]
    # Every joint in exactly one group.
    assert sum(len(v) for v in sk.groups.values()) == sk.n_joints


@pytest.mark.parametrize("layout", ["cmu", "mixamo", "unreal"])
def test_feet_found_on_common_layouts(skeletons, layout):
    sk = skeletons[layout]
    expected = {
        "cmu": {"L": ("LeftFoot", "LeftToeBase"), "R": ("RightFoot", "RightToeBase")},
        "mixamo": {
            "L": ("mixamorig:LeftFoot", "mixamorig:LeftToeBase"),
            "R": ("mixamorig:RightFoot", "mixamorig:RightToeBase"),
        },
        "unreal": {"L": ("foot_l", "ball_l"), "R": ("foot_r", "ball_r")},
    }[layout]
    assert sk.feet == expected


@pytest.mark.parametrize(
    "name, side",
    [
        ("Foot_L", "L"),
        ("LeftFoot", "L"),
        ("mixamorig:RightFoot", "R"),
        ("foot_r", "R"),
        ("l_ankle", "L"),
        ("LThumb", None),  # CMU's thumb: a bare capital L glued to a word is not a side
        ("mixamorig:Hips", None),
        ("LeftHandRing1", "L"),
    ],
)
def test_side_of_names(name, side):
    assert side_of(name) == side


def test_limb_groups_without_a_named_head_use_the_highest_branch():
    """No joint named head: the spine runs to the highest joint; the chest's other branches are arms."""
    bones = ["root", "waist", "chest", "a1", "a2", "b1", "b2", "top1", "top2", "l_leg", "l_foot", "r_leg", "r_foot"]
    parents = [-1, 0, 1, 2, 3, 2, 5, 2, 7, 0, 9, 0, 11]
    height = np.array([0, 0.2, 0.4, 0.45, 0.3, 0.45, 0.3, 0.55, 0.7, -0.4, -0.8, -0.4, -0.8])
    feet = find_feet(bones, parents)
    assert feet == {"L": ("l_foot",), "R": ("r_foot",)}
    groups = limb_groups(bones, parents, feet, height)
    assert set(groups["arms"]) == {"a1", "a2", "b1", "b2"}
    assert set(groups["legs"]) == {"l_leg", "l_foot", "r_leg", "r_foot"}
    assert set(groups["torso"]) == {"root", "waist", "chest", "top1", "top2"}
