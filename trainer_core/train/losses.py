"""Loss terms, each a named quantity weighted by its ``w_*`` config key, in three groups.

Per frame a term is summed over joints (an error per pose) and then averaged
over valid frames. Angles are radians, positions metres, the root trajectory is
in normalized units. ``Δ`` is a frame-to-frame rotation increment
``R_prev^T R_next``; ``pred``/``true`` name prediction and ground truth.

======================= ===== =====================================================
term                    group meaning
======================= ===== =====================================================
rot_geo                 core  geodesic between predicted and true rotations in the heading frame (after FK)
rot_delta               core  ``||Δ_pred - Δ_true||_F^2``: the increment (velocity) error
rot_ortho               core  how far the raw 6D output is from two orthonormal columns
fk_pos                  core  FK joint position error
rot_local               core  geodesic between predicted and true parent-relative rotations
root_vel                core  L1 error of next root velocity and yaw rate
attn_reg                aux   entropy of the phase attention (divided by log K)
rot_delta_root          aux   geodesic between predicted and true root increments
rot_log                 aux   ``||log Δ_pred - log Δ_true||`` in the SO(3) tangent space
limb_geo                aux   hinge ``max(0, geodesic - margin)`` on arm and leg joints
contact                 aux   KL divergence of predicted from soft foot contacts
phase                   aux   squared error of the soft gait phase (cos, sin) and log period
foot_early              aux   ground speed (m/s) of the predicted feet where the true foot is in contact
                              (``foot_early_term``); only for epochs <= ``foot_early_epochs``
latent_consistency      long  MotionEncoder features of the predicted vs the true next frame
freerun                 long  pose + trajectory error over a ``freerun_horizon`` rollout
======================= ===== =====================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainer_core.config import LOSS_GROUPS, LossWeights
from trainer_core.data.device_data import Split
from trainer_core.data.skeleton import Skeleton, find_feet
from trainer_core.geometry import depth_levels, forward_kinematics, geodesic_angle, rot6d_ortho_penalty, so3_log
from trainer_core.model.model import MotionModel
from trainer_core.model.rollout import Rollout, Runtime, Step, next_features, phase_vector

# term name -> its weight key
TERMS: dict[str, str] = {
    key.removeprefix("w_") if key.startswith("w_") else "freerun": key for keys in LOSS_GROUPS.values() for key in keys
}
TERM_GROUP: dict[str, str] = {t: g for g, keys in LOSS_GROUPS.items() for t, k in TERMS.items() if k in keys}


@dataclass
class Kinematics:
    """The skeleton as tensors on the training device."""

    offsets: torch.Tensor
    parents: tuple[int, ...]
    levels: list[list[int]]
    limbs: torch.Tensor  # long indices of arm and leg joints
    groups: dict[str, torch.Tensor]  # torso/arms/legs -> long indices
    feet: tuple[torch.Tensor, ...] = ()  # long indices of the foot joints, left then right; () if not found

    @classmethod
    def create(cls, skeleton: Skeleton, device: torch.device) -> Kinematics:
        def idx(ix: list[int]) -> torch.Tensor:
            return torch.tensor(ix, dtype=torch.long, device=device)

        found = skeleton.feet or find_feet(list(skeleton.bones), list(skeleton.parents))
        sides = [[skeleton.index(n) for n in found.get(side, ()) if n in skeleton.bones] for side in ("L", "R")]
        return cls(
            offsets=torch.from_numpy(skeleton.offsets).to(device),
            parents=skeleton.parents,
            levels=depth_levels(skeleton.parents),
            limbs=idx(skeleton.limb_indices()),
            groups={g: idx(skeleton.group_indices(g)) for g in skeleton.groups if skeleton.group_indices(g)},
            feet=tuple(idx(ix) for ix in sides) if all(sides) else (),
        )

    def fk(self, R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return forward_kinematics(R, self.offsets, self.parents, levels=self.levels)


def masked_mean(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(v.dtype)
    return (v * m).sum() / m.sum().clamp_min(1.0)


def step_terms(
    model: MotionModel,
    rt: Runtime,
    kin: Kinematics,
    split: Split,
    step: Step,
    prev_idx: torch.Tensor,
    target_idx: torch.Tensor,
    mask: torch.Tensor,
    weights: LossWeights,
    limb_margin_rad: float,
    R_prev: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every term but ``freerun`` for predictions ``step`` of frames ``target_idx`` from frames ``prev_idx``.

    ``R_prev`` are the input rotations the model stepped from (scheduled sampling may have replaced some
    ground-truth frames by predictions); None: the ground truth of ``prev_idx``. Only ``foot_early`` reads them.
    """
    R_true = split.R[target_idx]
    delta_true = split.R[prev_idx].transpose(-1, -2) @ R_true
    geo_local = geodesic_angle(step.R, R_true)  # (B, T, J)
    Rg_pred, pos_pred = kin.fk(step.R)
    out = step.out
    attn = out.phase_attn.clamp_min(1e-8)
    contact_true = split.contacts[target_idx]
    log_delta_err = so3_log(step.delta, near_pi=False) - so3_log(delta_true, near_pi=False)
    terms = {
        "rot_geo": geodesic_angle(Rg_pred, split.Rg[target_idx]).sum(-1),
        "rot_delta": (step.delta - delta_true).square().sum((-1, -2, -3)),
        "rot_ortho": rot6d_ortho_penalty(out.delta6d).sum(-1),
        "fk_pos": (pos_pred - split.pos[target_idx]).norm(dim=-1).sum(-1),
        "rot_local": geo_local.sum(-1),
        "root_vel": (out.traj - split.traj[target_idx]).abs().sum(-1),
        "attn_reg": -(attn * attn.log()).sum(-1) / math.log(attn.shape[-1]),
        "rot_delta_root": geodesic_angle(step.delta[..., 0, :, :], delta_true[..., 0, :, :]),
        "rot_log": log_delta_err.norm(dim=-1).sum(-1),
        "limb_geo": F.relu(geo_local.index_select(-1, kin.limbs) - limb_margin_rad).sum(-1),
        "contact": (
            F.binary_cross_entropy_with_logits(out.contact_logits, contact_true, reduction="none")
            - _entropy(contact_true)
        ).sum(-1),
        "phase": (phase_vector(rt, out.phase_attn) - split.phase[target_idx]).square().sum(-1)
        + (out.log_period - split.log_period[target_idx]).square(),
    }
    result = {name: masked_mean(v, mask) for name, v in terms.items()}
    if weights.w_latent_consistency > 0:
        with rt.amp_context():
            z_pred = model.encode(next_features(rt, step))
            with torch.no_grad():
                z_true = model.encode(split.x[target_idx])
        result["latent_consistency"] = masked_mean((z_pred.float() - z_true.float()).square().mean(-1), mask)
    else:
        result["latent_consistency"] = torch.zeros((), device=mask.device)
    if weights.w_foot_early > 0:  # 0 past foot_early_epochs (schedules.plan_epoch): no cost then
        if R_prev is None:
            pos_prev = split.pos[prev_idx]
        else:
            with torch.no_grad():
                pos_prev = kin.fk(R_prev)[1]
        mean, std = rt.norm.traj_stats()
        traj = step.out.traj * std + mean
        result["foot_early"] = foot_early_term(kin, rt.fps, pos_pred, pos_prev, traj, contact_true, mask)
    else:
        result["foot_early"] = torch.zeros((), device=mask.device)
    return result


def foot_early_term(
    kin: Kinematics,
    fps: float,
    pos: torch.Tensor,
    pos_prev: torch.Tensor,
    traj: torch.Tensor,
    contacts: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Foot sliding of the predicted step: the ground speed (m/s) of the foot joints from the input frame to
    the predicted one, weighted by the true soft contact of that side and divided by the contacts' sum.

    In the world, not the root frame: a planted foot stays put while the body walks over it, so its speed
    relative to the root is the walking speed. The displacement, in the predicted frame's heading frame
    (``generate.trajectory``'s conventions: +Y up, [left, forward] on x and z), is
    ``pos + v / fps - Yaw(-yaw_rate / fps) pos_prev``: the root moves by the predicted root velocity ``v``
    and turns by the predicted yaw rate, ``pos_prev`` being the input frame's joints in its own heading frame.
    ``pos``/``pos_prev (..., J, 3)`` heading-frame FK positions (metres), ``traj (..., 3)`` the predicted
    [root velocity (2) m/s, yaw rate rad/s], ``contacts (..., 2)`` true [left, right], ``mask (...)`` valid steps.
    """
    turn = traj[..., 2] / fps
    cos, sin = turn.cos()[..., None], turn.sin()[..., None]
    total = torch.zeros((), device=pos.device)
    weight = torch.zeros((), device=pos.device)
    for side, feet in enumerate(kin.feet):
        p1, p0 = pos[..., feet, :], pos_prev[..., feet, :]  # (..., F, 3)
        x0, z0 = p0[..., 0], p0[..., 2]
        dx = p1[..., 0] - (cos * x0 - sin * z0) + traj[..., :1] / fps
        dz = p1[..., 2] - (sin * x0 + cos * z0) + traj[..., 1:2] / fps
        speed = (dx.square() + dz.square() + 1e-12).sqrt().mean(-1) * fps  # (...)
        w = contacts[..., side] * mask.to(contacts.dtype)
        total = total + (w * speed).sum()
        weight = weight + w.sum()
    return total / weight.clamp_min(1e-6)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Binary entropy, so the contact term is a KL divergence that reaches zero."""
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def freerun_term(split: Split, roll: Rollout) -> torch.Tensor:
    """Mean over rollout frames of the summed local geodesic plus the trajectory L1 error."""
    R = roll.stacked("R")
    traj = roll.stacked("traj")
    err = geodesic_angle(R, split.R[roll.target_idx]).sum(-1) + (traj - split.traj[roll.target_idx]).abs().sum(-1)
    return masked_mean(err, roll.mask)


def weighted_total(
    terms: dict[str, torch.Tensor], weights: LossWeights, multipliers: dict[str, torch.Tensor] | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and each group's weighted sum; ``multipliers`` (the adaptive weights) scale some terms' ``w_*``."""
    groups = {g: torch.zeros((), device=next(iter(terms.values())).device) for g in LOSS_GROUPS}
    multipliers = multipliers or {}
    for name, value in terms.items():
        w = getattr(weights, TERMS[name])
        if name in multipliers:
            w = multipliers[name] * w
        groups[TERM_GROUP[name]] = groups[TERM_GROUP[name]] + w * value
    return sum(groups.values()), groups  # type: ignore[return-value]
