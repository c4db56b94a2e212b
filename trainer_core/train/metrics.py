"""Evaluation on the validation split, in teacher and in free-run mode, and the copy-last-frame baseline.

``fit`` scores every epoch with it, ``summary`` the test split, and
``evaluate.offline`` a checkpoint on any dataset folder (the same code);
``metric_names`` lists every metric an epoch reports.

Teacher mode predicts every frame from its ground-truth previous frame (a
one-frame rollout from every frame). Free-run mode rolls out
``eval_freerun_horizon`` frames from ground-truth starts spaced one horizon
apart and averages the error over every rolled-out frame. Starts begin at a
clip's second frame, and a step counts only when its control window lies
wholly inside the clip (see ``device_data``), so the model is never scored on a
step whose input or control holds the target.

Two baselines are scored on exactly the same steps:

- ``copy-last-frame`` (the zero-velocity baseline of Martinez et al., CVPR 2017):
  the start pose held still, its root velocity and yaw rate kept.
- ``copy-last-pose+control``: the start pose held still, the root following
  the control signal the model is given. What the control alone predicts: a
  model's root metrics must beat this one to say more than its input.

Metrics (teacher name; free run adds the ``FreeRun/`` prefix):

- ``GeoDeg``: mean local geodesic error over joints, degrees.
- ``YawAbsDeg``: absolute heading error, degrees (free run: integrated from the start).
- ``RootVelMAE``: mean absolute root velocity error, m/s.
- ``FootContact``: mean absolute error of the soft foot contacts (not an accuracy).
- ``KeyBone/<torso|arms|legs>_GeoDeg``, ``KeyBone/<group>_AngVelCos``: per body part,
  the geodesic error and the cosine between predicted and true angular velocity (teacher only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainer_core.config import LOSS_GROUPS
from trainer_core.data.device_data import Split
from trainer_core.geometry import geodesic_angle, so3_log
from trainer_core.model.model import MotionModel
from trainer_core.model.rollout import Runtime, free_run
from trainer_core.train.losses import TERMS, Kinematics, masked_mean
from trainer_core.train.metrics_io import FREERUN_PREFIX, GROUP_PREFIX

EVAL_CHUNK = 8192  # rollouts per forward pass in evaluation


@dataclass
class Prediction:
    """Predicted frames ``(N, H, ...)`` in physical units, and which of them count."""

    R: torch.Tensor  # (N, H, J, 3, 3)
    delta: torch.Tensor  # (N, H, J, 3, 3)
    traj: torch.Tensor  # (N, H, 3) m/s, m/s, rad/s
    contacts: torch.Tensor  # (N, H, 2)
    target_idx: torch.Tensor  # (N, H)
    mask: torch.Tensor  # (N, H)


def teacher_starts(split: Split) -> torch.Tensor:
    """Every frame after its clip's first that has a next frame and a whole control window."""
    idx = torch.arange(split.n_frames, device=split.clip_end.device)
    return idx[(idx > split.clip_begin) & (idx + 1 < split.clip_end) & split.ctrl_full]


def freerun_starts(split: Split, horizon: int) -> torch.Tensor:
    """Starts one horizon apart from each clip's second frame, each with a full window and whole controls."""
    idx = torch.arange(split.n_frames, device=split.clip_end.device)
    first = split.clip_begin + 1
    last_step = torch.minimum(idx + horizon - 1, torch.tensor(split.n_frames - 1, device=idx.device))
    ok = (idx >= first) & ((idx - first) % horizon == 0) & (idx + horizon < split.clip_end) & split.ctrl_full[last_step]
    return idx[ok]


def model_prediction(model: MotionModel, rt: Runtime, split: Split, starts: torch.Tensor, horizon: int) -> Prediction:
    mean, std = rt.norm.traj_stats()
    parts: list[Prediction] = []
    for chunk in starts.split(EVAL_CHUNK):
        roll = free_run(model, rt, split, chunk, horizon)
        parts.append(
            Prediction(
                R=roll.stacked("R"),
                delta=roll.stacked("delta"),
                traj=roll.stacked("traj") * std + mean,
                contacts=torch.sigmoid(roll.stacked("contact_logits")),
                target_idx=roll.target_idx,
                mask=roll.mask,
            )
        )
    return Prediction(*(torch.cat([getattr(p, f) for p in parts]) for f in Prediction.__dataclass_fields__))


def copy_last_prediction(split: Split, starts: torch.Tensor, horizon: int, follow_control: bool = False) -> Prediction:
    """The baseline: the start frame held still, its root velocity and yaw rate kept.

    ``follow_control``: the root instead follows the control signal of each step
    (``ctrl_raw[start + h]`` for the step to ``start + h + 1``), as the model's does.
    """
    k = torch.arange(1, horizon + 1, device=starts.device)
    end = split.clip_end[starts][:, None]
    target = starts[:, None] + k
    mask = target < end
    target = torch.minimum(target, end - 1)
    shape = (starts.shape[0], horizon)
    eye = torch.eye(3, device=starts.device).expand(*shape, split.R.shape[1], 3, 3)
    if follow_control:
        traj = split.ctrl_raw[torch.minimum(starts[:, None] + k - 1, end - 1)]
    else:
        traj = split.traj_raw[starts][:, None].expand(*shape, 3)
    return Prediction(
        R=split.R[starts][:, None].expand(*shape, *split.R.shape[1:]),
        delta=eye,
        traj=traj,
        contacts=split.contacts[starts][:, None].expand(*shape, 2),
        target_idx=target,
        mask=mask,
    )


def prediction_metrics(
    split: Split, kin: Kinematics, starts: torch.Tensor, pred: Prediction, prefix: str
) -> dict[str, float]:
    """Metrics of rollouts from ``starts``; with one-frame rollouts these are the teacher metrics."""
    tgt, mask = pred.target_idx, pred.mask
    geo = geodesic_angle(pred.R, split.R[tgt])  # (N, H, J)
    true_traj = split.traj_raw[tgt]
    yaw_err = torch.cumsum(pred.traj[..., 2] - true_traj[..., 2], dim=1) / split.fps
    out = {
        f"{prefix}GeoDeg": masked_mean(geo.mean(-1), mask),
        f"{prefix}YawAbsDeg": masked_mean(yaw_err.abs(), mask) * (180.0 / math.pi),
        f"{prefix}RootVelMAE": masked_mean((pred.traj[..., :2] - true_traj[..., :2]).abs().mean(-1), mask),
        f"{prefix}FootContact": masked_mean((pred.contacts - split.contacts[tgt]).abs().mean(-1), mask),
    }
    out[f"{prefix}GeoDeg"] = out[f"{prefix}GeoDeg"] * (180.0 / math.pi)
    if not prefix:
        prev = torch.cat([starts[:, None], tgt[:, :-1]], dim=1)
        w_true = so3_log(split.R[prev].transpose(-1, -2) @ split.R[tgt])
        w_pred = so3_log(pred.delta)
        cos = torch.nn.functional.cosine_similarity(w_pred, w_true, dim=-1, eps=1e-6)
        for g, ix in kin.groups.items():
            out[f"KeyBone/{g}_GeoDeg"] = masked_mean(geo.index_select(-1, ix).mean(-1), mask) * (180.0 / math.pi)
            out[f"KeyBone/{g}_AngVelCos"] = masked_mean(cos.index_select(-1, ix).mean(-1), mask)
    values = torch.stack(list(out.values())).tolist()  # one host sync for all metrics
    return dict(zip(out.keys(), values))


@dataclass
class WindowGroups:
    """Which group each frame of a split belongs to, to score groups of clips from one pooled rollout."""

    index: torch.Tensor  # (F,) long: the group of each frame (its clip's); -1: none
    names: tuple[str, ...]

    def geo_deg(self, split: Split, pred: Prediction, starts: torch.Tensor) -> dict[str, float]:
        """Group name -> ``GeoDeg`` of the predictions from ``starts`` whose start lies in that group (NaN: none).
        The same masked mean as ``prediction_metrics``, over the group's windows alone."""
        geo = geodesic_angle(pred.R, split.R[pred.target_idx]).mean(-1) * (180.0 / math.pi)  # (N, H)
        group = self.index[starts]
        values = [masked_mean(geo, pred.mask & (group == i)[:, None]) for i in range(len(self.names))]
        return dict(zip(self.names, torch.stack(values).tolist()))


@torch.no_grad()
def evaluate(
    model: MotionModel, rt: Runtime, kin: Kinematics, split: Split, horizon: int, groups: WindowGroups | None = None
) -> dict[str, float]:
    """Teacher and free-run metrics of ``model`` on ``split``; with ``groups``, also ``FreeRun/GeoDeg`` of each
    group's windows alone, ``FreeRun/group/<name>/GeoDeg`` (from the same rollouts: no extra work)."""
    was_training = model.training
    model.eval()
    try:
        t_starts = teacher_starts(split)
        f_starts = freerun_starts(split, horizon)
        metrics = prediction_metrics(split, kin, t_starts, model_prediction(model, rt, split, t_starts, 1), "")
        free = model_prediction(model, rt, split, f_starts, horizon)
        metrics.update(prediction_metrics(split, kin, f_starts, free, "FreeRun/"))
        if groups is not None:
            metrics.update({f"{GROUP_PREFIX}{g}/GeoDeg": v for g, v in groups.geo_deg(split, free, f_starts).items()})
    finally:
        model.train(was_training)
    return metrics


BASELINES = {"copy-last-frame": False, "copy-last-pose+control": True}  # name -> follows the control


@torch.no_grad()
def baseline(split: Split, kin: Kinematics, horizon: int, follow_control: bool = False) -> dict[str, float]:
    """A baseline's metrics on ``split``: copy-last-frame, or with ``follow_control`` copy-last-pose+control."""
    t_starts, f_starts = teacher_starts(split), freerun_starts(split, horizon)
    metrics = prediction_metrics(split, kin, t_starts, copy_last_prediction(split, t_starts, 1, follow_control), "")
    metrics.update(
        prediction_metrics(
            split, kin, f_starts, copy_last_prediction(split, f_starts, horizon, follow_control), "FreeRun/"
        )
    )
    return {k: v for k, v in metrics.items() if "AngVelCos" not in k}


def baselines(split: Split, kin: Kinematics, horizon: int) -> dict[str, dict[str, float]]:
    """Every baseline's metrics on ``split``, by name (see the module docstring)."""
    return {name: baseline(split, kin, horizon, follow) for name, follow in BASELINES.items()}


def metric_names(groups: tuple[str, ...] = ("torso", "arms", "legs")) -> list[str]:
    """Every numeric metric an epoch reports (teacher, free run, training losses)."""
    names = [f"{p}{m}" for p in ("", FREERUN_PREFIX) for m in ("GeoDeg", "YawAbsDeg", "RootVelMAE", "FootContact")]
    names += [f"KeyBone/{g}_{m}" for g in groups for m in ("GeoDeg", "AngVelCos")]
    names += ["loss/total", *(f"loss/{t}" for t in TERMS), *(f"loss_group/{g}" for g in LOSS_GROUPS)]
    return names
