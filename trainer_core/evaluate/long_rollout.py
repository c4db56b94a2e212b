"""Long rollouts as a metric (``FreeRun/long``): a free run far past the training horizon neither
freezes nor explodes.

From each clip's second frame the model rolls out ``seconds`` (10 s: 300
frames at 30 fps, past the end of most clips) under the clip's own control,
the last whole control held past the clip's end, as ``motiontune generate``
does. No ground truth exists that far, so the metrics ask what any motion of
this body must satisfy, in the world (``generate.trajectory``: the root
integrated from the predicted velocities, each frame's lowest joint on the floor):

- ``FreeRun/long/FootSkateMS``: foot skating, the ground speed (m/s) of each
  side's foot joints (``skeleton.feet``), weighted by that side's soft contact
  (the model's own prediction; the clip's for the truth; the start frame's for
  copy-last). Real motion scores 0.1 m/s (walks) to 0.35 m/s (dashes: the
  soft contact fades while the foot lifts off); a pose frozen while the root
  slides skates at the root's speed. A model that predicts no contact escapes
  it, so read it beside ``FreeRun/FootContact``. (Heights cannot tell contact
  here: no clip stores the hips' height, and a run's flight phase pinned to the
  floor would look like stance.)
- ``FreeRun/long/BoneErrFrac``: the fraction of frames where some bone's length
  under forward kinematics (of the predicted rotations, as fed back) differs
  from the skeleton's by over ``BONE_TOL_M``, or is not finite. Zero by
  construction while the rotations stay rotations; an exploding rollout shows here.
- ``FreeRun/long/PoseDriftDeg``: the mean, over frames, of the distance to the
  nearest training pose: the mean geodesic angle over joints (degrees) to the
  training frame closest in chordal distance (``sum_j |R_j - R'_j|_F^2``, one
  matrix product), over every ``DRIFT_STRIDE``-th frame. A model that wanders
  into poses no one made drifts far.
- ``FreeRun/long/DivergedClips``: the number of clips whose rollout is not
  finite (a NaN or inf rotation, joint position or contact in some frame); the
  result's ``diverged`` names them. Such a rollout has no foot speed or pose
  to measure: it is left out of ``FootSkateMS`` and ``PoseDriftDeg`` (pooled
  over the other clips, None where none is left) and counted here, never
  averaged away; its non-finite frames count in ``BoneErrFrac``.

Each is reported for the model, for ``copy-last-frame`` (the start pose held,
its root velocity and yaw rate kept) and for the ground truth over the frames
the clip has (``truth``, a reference: what real motion scores).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from trainer_core.config import TrainConfig
from trainer_core.data.datasets import load_dataset
from trainer_core.data.device_data import Split
from trainer_core.data.features import Normalizer
from trainer_core.data.skeleton import Skeleton, find_feet
from trainer_core.data.splits import split_for
from trainer_core.errors import ConfigError, DataError
from trainer_core.generate.control import held_index
from trainer_core.generate.rollout import autoregress
from trainer_core.generate.trajectory import WorldMotion, integrate_yaw, world_motion
from trainer_core.geometry import geodesic_angle, rot6d_to_matrix
from trainer_core.model.model import MotionModel
from trainer_core.model.rollout import Runtime
from trainer_core.train.build import build_runtime

PREFIX = "FreeRun/long/"
BONE_TOL_M = 1e-3
DRIFT_STRIDE = 3  # frames (0.1 s at 30 fps) between the frames whose nearest training pose is searched
NEAREST_CHUNK = 1024  # rolled-out frames per nearest-pose matrix product


def foot_skate(world: WorldMotion, feet: dict[str, list[int]], contacts: np.ndarray) -> tuple[float, float]:
    """The contact-weighted ground speed (m/s) of the feet, and the weight: ``feet`` side -> joints,
    ``contacts (T, 2)`` soft contacts [L, R]; frame ``t``'s speed is ``|p[t] - p[t-1]|`` on the ground, times fps."""
    p = world.positions.numpy()
    if p.shape[0] < 2 or not np.isfinite(p).all():
        return math.nan, 0.0
    total, weight = 0.0, 0.0
    for k, side in enumerate(("L", "R")):
        q = p[:, feet[side]][..., [0, 2]]  # (T, F, 2)
        speed = np.linalg.norm(np.diff(q, axis=0), axis=-1).mean(-1) * world.fps  # (T-1,)
        c = np.nan_to_num(np.asarray(contacts[1:, k], dtype=np.float64))
        total += float((c * speed).sum())
        weight += float(c.sum())
    return (total / weight if weight > 0 else math.nan), weight


def bone_error_frames(world: WorldMotion, skeleton: Skeleton) -> np.ndarray:
    """Per frame ``(T,)``: does some bone's length differ from the skeleton's by over ``BONE_TOL_M``?"""
    p = world.positions.numpy()
    parents = np.array(skeleton.parents[1:])
    length = np.linalg.norm(p[:, 1:] - p[:, parents], axis=-1)
    want = np.linalg.norm(skeleton.offsets[1:].astype(np.float64), axis=-1)
    err = np.abs(length - want)
    return ~(np.isfinite(err).all(axis=-1) & (err.max(axis=-1) <= BONE_TOL_M))


def pose_drift(R: torch.Tensor, train_R: torch.Tensor) -> torch.Tensor:
    """Per frame ``(P,)``: the mean geodesic angle (radians) over joints from poses ``R (P, J, 3, 3)`` to the
    training pose ``train_R (F, J, 3, 3)`` nearest in chordal distance; NaN for a non-finite pose."""
    flat_train = train_R.reshape(train_R.shape[0], -1).float()
    sq_train = (flat_train**2).sum(-1)
    out = []
    for chunk in R.float().split(NEAREST_CHUNK):
        flat = chunk.reshape(chunk.shape[0], -1)
        d2 = sq_train[None] - 2 * flat @ flat_train.T  # + |flat|^2, the same for every candidate
        nearest = train_R[torch.nan_to_num(d2, nan=math.inf).argmin(dim=1)]
        drift = geodesic_angle(chunk.double(), nearest.double()).mean(-1)
        finite = torch.isfinite(flat).all(-1)
        out.append(torch.where(finite, drift, torch.full_like(drift, math.nan)))
    return torch.cat(out)


def _world(R: torch.Tensor, traj: torch.Tensor, yaw0: float, skeleton: Skeleton, fps: float) -> WorldMotion:
    yaw = integrate_yaw(yaw0, traj[:, 2].cpu(), fps)
    return world_motion(R.cpu(), yaw, traj[:, :2].cpu(), skeleton, fps)


def diverged(R: torch.Tensor, world: WorldMotion, contacts: np.ndarray) -> bool:
    """Did a rollout go non-finite: some NaN or inf in its rotations ``R (T, J, 3, 3)``, its joint positions
    in the world or its contacts ``(T, 2)``?"""
    return not (bool(torch.isfinite(R).all()) and bool(torch.isfinite(world.positions).all())
                and bool(np.isfinite(contacts).all()))  # fmt: skip


Motion = tuple[str, torch.Tensor, WorldMotion, np.ndarray]  # clip name, R (T, J, 3, 3), world, contacts (T, 2)


def _scores(motions: list[Motion], skeleton: Skeleton, train_R: torch.Tensor,
            feet: dict[str, list[int]]) -> tuple[dict[str, float | int | None], list[str]]:  # fmt: skip
    """The four metrics pooled over every clip's motion, and the names of the clips that diverged (counted
    in ``DivergedClips`` and, by their frames, in ``BoneErrFrac``; left out of the other two)."""
    skate_sum, skate_n, bad, frames, drift, gone = 0.0, 0.0, 0, 0, [], []
    for name, R, world, contacts in motions:
        bad += int(bone_error_frames(world, skeleton).sum())
        frames += world.n_frames
        if diverged(R, world, contacts):
            gone.append(name)
            continue
        s, n = foot_skate(world, feet, contacts)
        if n > 0 and math.isfinite(s):
            skate_sum, skate_n = skate_sum + s * n, skate_n + n
        drift.append(pose_drift(R[1::DRIFT_STRIDE], train_R))  # the start frame is real in every rollout
    d = torch.cat(drift) if drift else torch.zeros(0)
    mean_drift = float(d.mean()) * 180.0 / math.pi if len(d) else math.nan

    def finite(v: float) -> float | None:
        return v if math.isfinite(v) else None

    scores = {
        f"{PREFIX}FootSkateMS": finite(skate_sum / skate_n if skate_n else math.nan),
        f"{PREFIX}BoneErrFrac": bad / frames if frames else None,
        f"{PREFIX}PoseDriftDeg": finite(mean_drift),
        f"{PREFIX}DivergedClips": len(gone),
    }
    return scores, gone


@torch.no_grad()
def long_rollout_metrics(
    model: MotionModel, rt: Runtime, split: Split, skeleton: Skeleton, train_R: torch.Tensor, seconds: float
) -> dict[str, Any]:
    """``FreeRun/long`` metrics of ``seconds``-long rollouts from every clip of ``split`` (one per clip, from
    its second frame) for the model, ``copy-last-frame`` and the ground truth; ``train_R (F, J, 3, 3)``:
    the training frames' local rotations. Returns ``seconds``, ``frames`` per rollout, ``clips``, the
    three entries (metric -> value, None where undefined) and ``diverged`` (each entry's name -> the names of
    the clips whose rollout went non-finite, in ``DivergedClips``)."""
    H = max(1, int(round(seconds * split.fps)))
    first = split.clip_begin.unique()  # (n_clips,): each clip's first frame, in the order of split.names
    keep = first + 1 < split.clip_end[first]
    starts = first[keep] + 1
    names = [n for n, k in zip(split.names, keep.tolist(), strict=True) if k]
    found = skeleton.feet or find_feet(list(skeleton.bones), list(skeleton.parents))
    feet = {side: [skeleton.index(n) for n in found.get(side, ())] for side in ("L", "R")}
    if not feet["L"] or not feet["R"]:
        raise DataError(f"skeleton ({', '.join(skeleton.bones[:4])}, ...): no left and right foot joints; "
                        "name them in FullHierarchy.json `feet`")  # fmt: skip
    controls = split.c[held_index(split, starts, H)]  # (H, B, Dc)
    raw = autoregress(model, rt, split.x[starts], split.R[starts], controls)
    model_m: list[Motion] = []
    copy_m: list[Motion] = []
    truth_m: list[Motion] = []
    for b, (s, name) in enumerate(zip(starts.tolist(), names, strict=True)):
        yaw0 = 0.0  # the metrics do not depend on the start heading
        R0, traj0, c0 = split.R[s : s + 1], split.traj_raw[s : s + 1], split.contacts[s : s + 1]
        R = torch.cat([R0, raw.R[b]])
        world = _world(R, torch.cat([traj0, raw.traj[b]]), yaw0, skeleton, split.fps)
        model_m.append((name, R.cpu(), world, torch.cat([c0, raw.contacts[b]]).cpu().numpy()))
        R_copy = R0.expand(H + 1, -1, -1, -1)
        world = _world(R_copy, traj0.expand(H + 1, -1), yaw0, skeleton, split.fps)
        copy_m.append((name, R_copy.cpu(), world, c0.expand(H + 1, -1).cpu().numpy()))
        end = min(int(split.clip_end[s]), s + H + 1)
        if end - s >= 2:
            world = _world(split.R[s:end], split.traj_raw[s:end], yaw0, skeleton, split.fps)
            truth_m.append((name, split.R[s:end].cpu(), world, split.contacts[s:end].cpu().numpy()))
    train_R = train_R.cpu()
    result: dict[str, Any] = {"seconds": seconds, "frames": H, "clips": len(starts), "diverged": {}}
    for who, motions in (("model", model_m), ("copy-last-frame", copy_m), ("truth", truth_m)):
        result[who], result["diverged"][who] = _scores(motions, skeleton, train_R, feet)
    return result


def training_rotations(cfg: TrainConfig) -> torch.Tensor:
    """The local rotations ``(F, J, 3, 3)`` of every frame of a config's training clips (its dataset,
    split as training splits it: ``splits.split_for``)."""
    splits = split_for(cfg, load_dataset(cfg.data.data))
    rot6d = np.concatenate([c.rot6d for c in splits.train])
    return rot6d_to_matrix(torch.from_numpy(rot6d))


def check_seconds(seconds: float) -> None:
    if not (math.isfinite(seconds) and 0 < seconds <= 600):
        raise ConfigError(f"--long is {seconds:g}, but must be in (0, 600] seconds of rollout")


@torch.no_grad()
def checkpoint_long_metrics(
    model: MotionModel, norm: Normalizer, cfg: TrainConfig, skeleton: Skeleton, split: Split, seconds: float,
    device: torch.device,
) -> dict[str, Any]:  # fmt: skip
    """``long_rollout_metrics`` of a checkpoint's model (``cfg``: its config) on ``split``, against the
    poses of the clips it trained on."""
    check_seconds(seconds)
    _, rt = build_runtime(cfg, skeleton, norm, split.fps, device)
    return long_rollout_metrics(model, rt, split, skeleton, training_rotations(cfg), seconds)


def format_long(long: dict[str, Any]) -> str:
    """A short table: each ``FreeRun/long`` metric for the model, copy-last-frame and the ground truth, then
    the clips whose rollout diverged (went non-finite), if any."""
    who = ("model", "copy-last-frame", "truth")
    lines = [
        f"{PREFIX[:-1]}: {long['seconds']:g} s rollouts ({long['frames']} frames) from {long['clips']} clips "
        "under their own control (truth: the frames each clip has)",
        f"{'':<28}" + "".join(f"{w:>17}" for w in who),
    ]
    for k in long["model"]:
        vals = [long[w][k] for w in who]
        lines.append(f"{k:<28}" + "".join(_cell(v) for v in vals))
    for w in who:
        if long["diverged"][w]:
            lines.append(f"diverged (non-finite) {w} rollouts: {', '.join(long['diverged'][w])}")
    return "\n".join(lines)


def _cell(v: float | int | None) -> str:
    if v is None:
        return f"{'-':>17}"
    return f"{v:>17d}" if isinstance(v, int) else f"{v:>17.4f}"
