"""Long rollouts as a metric (``FreeRun/long``): a free run far past the training horizon neither
freezes, glides nor explodes, and keeps following its control.

From each clip's second frame the model rolls out ``seconds`` (5 s in training,
``eval_long_seconds``; ``motiontune eval --long 10``: 300 frames at 30 fps, past
the end of most clips) under the clip's own control, the last whole control held
past the clip's end, as ``motiontune generate`` does. No ground truth exists that
far, so most metrics ask what any motion of this body must satisfy, in the world
(``data.trajectory``: the root integrated from the predicted velocities, each
frame's lowest joint on the floor):

- ``FreeRun/long/FootSkateMS``: foot skating, the ground speed (m/s) of each
  side's foot joints (``skeleton.feet``), weighted by that side's soft contact
  (the model's own prediction; the clip's for the truth; the start frame's for
  copy-last). Real motion scores 0.1 m/s (walks) to 0.35 m/s (dashes: the
  soft contact fades while the foot lifts off); a pose frozen while the root
  slides skates at the root's speed. A model that predicts no contact escapes
  it, so read it beside ``FreeRun/FootContact`` and ``StepHzErr``. (Heights cannot
  tell contact here: no clip stores the hips' height, and a run's flight phase
  pinned to the floor would look like stance.)
- ``FreeRun/long/BoneErrFrac``: the fraction of frames where some bone's length
  under forward kinematics (of the predicted rotations, as fed back) differs
  from the skeleton's by over ``BONE_TOL_M``, or is not finite. Zero by
  construction while the rotations stay rotations; an exploding rollout shows here.
- ``FreeRun/long/PoseDriftDeg``: the mean, over frames, of the distance to the
  nearest training pose: the mean geodesic angle over joints (degrees) to the
  training frame closest in chordal distance (``sum_j |R_j - R'_j|_F^2``, one
  matrix product), over every ``DRIFT_STRIDE``-th frame. A model that wanders
  into poses no one made drifts far. The reference is every training frame up to
  ``NEAREST_MAX_POSES``; a larger training split gives that many frames evenly
  spaced over it (``reference_poses``), so the search costs what it does at that
  size, not the product of the validation and training frames (at 30 times the
  bundled data, minutes of CPU per validation and gigabytes per chunk).
- ``FreeRun/long/CtrlSpeedErr`` (m/s) and ``FreeRun/long/CtrlYawErr`` (deg/s):
  does the root do what it is told? Step ``h`` (input frame ``h``, target ``h+1``
  of the rollout, frame 0 the real start) is fed the control of frame
  ``start + h`` (``data.device_data.held_index``: the clip's own, the last whole
  one held past its end): the mean root velocity [left, forward] and yaw rate of
  frames ``h+2 .. h+1+W`` (``W = control_frames(cond_window_s, fps)``; the frames
  after the target, as ``control_windows`` computes it). The achieved control is
  the same mean over the rollout's own root velocities and yaw rates (in its own
  heading frame, as the control is); ``CtrlSpeedErr`` is the norm of the
  velocity difference, ``CtrlYawErr`` the absolute yaw-rate difference, each
  averaged over every step whose window lies inside the rollout (``h <= frames -
  1 - W``), pooled over clips. The truth over its own frames scores 0 (its
  controls are its own frames' means); copy-last scores how far the start
  frame's velocity is from where the clip goes.
- ``FreeRun/long/StepHz``: the stepping rate, steps per second. Per motion,
  ``d(t)``: the left foot's horizontal position (the mean of its
  ``skeleton.feet`` joints) minus the right's, in the root's heading frame,
  projected on its principal axis (of ``d``'s centred 2-D samples). Each
  reversal of ``d`` by more than ``STEP_HYSTERESIS_M`` (5 cm) from its last
  extreme is one step: the foot in front changes. The first departure by 5 cm
  from the start sets the direction and is not counted. Pooled: all steps over
  all seconds (``(T - 1) / fps`` per motion). Real walks step at 1.4-2.5 Hz,
  runs and dashes at 2-3.6 Hz, the in-place clips (bows, waves, guiding
  gestures) at 0-0.2 Hz on average; a figure that glides (legs still while the
  root moves on) and copy-last step at 0. Relative to each other, not to the
  root, so a bow (the hips move back over still feet) does not step (0.01 Hz on
  the 15 bundled bows, where each foot against the root gives 0.3 Hz).
- ``FreeRun/long/StepHzErr``: per clip, ``|StepHz of the rollout - StepHz of the
  clip's own frames|``, the mean over clips: 0 for the truth; copy-last's is the
  clips' own mean rate. A gliding model fails it on walks; a model standing
  still where the truth stands passes it.
- ``FreeRun/long/DivergedClips``: the number of clips whose rollout is not
  finite (a NaN or inf rotation, joint position or contact in some frame) or
  runs away (its root faster than ``RUNAWAY_MS``, 50 m/s, in some frame: four
  times a sprinter's top speed; a model blowing up can stay finite for seconds);
  the result's ``diverged`` names them. Such a rollout has no foot speed, pose,
  control or steps to measure: it is left out of every other metric but
  ``BoneErrFrac`` (pooled over the other clips, None where none is left) and
  counted here, never averaged away; its non-finite frames count in ``BoneErrFrac``.

Each is reported for the model, for ``copy-last-frame`` (the start pose held,
its root velocity and yaw rate kept) and for the ground truth over the frames
the clip has (``truth``, a reference: what real motion scores), over all clips
and per motion group (``data.groups``), from the same rollouts.

In training (``loop.fit``), ``LongValidation`` is built once per run: the
starts, held controls and the two baselines' scores are fixed, and the training
split's rotations are the nearest-pose reference; each validated epoch rolls the
model out once from every validation clip (in chunks of ``ROLLOUT_CHUNK``).
``FreeRunConfig.eval_long_every`` says which epochs (``long_due``).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainer_core.config import TrainConfig
from trainer_core.data.device_data import Split, control_frames, held_index
from trainer_core.data.groups import by_group
from trainer_core.data.skeleton import Skeleton, find_feet
from trainer_core.data.trajectory import WorldMotion, integrate_yaw, world_motion
from trainer_core.errors import DataError
from trainer_core.geometry import geodesic_angle, yaw_matrix
from trainer_core.model.model import MotionModel
from trainer_core.model.rollout import Runtime, autoregress, cpu_threads

PREFIX = "FreeRun/long/"
NAMES = ("FootSkateMS", "BoneErrFrac", "PoseDriftDeg", "DivergedClips", "CtrlSpeedErr", "CtrlYawErr", "StepHz",
         "StepHzErr")  # fmt: skip
METRICS = tuple(PREFIX + n for n in NAMES)
EPOCH_KEY = PREFIX + "epoch"  # in a trial's reports: the epoch the carried FreeRun/long values come from
WHO = ("model", "copy-last-frame", "truth")
BONE_TOL_M = 1e-3
DRIFT_STRIDE = 3  # frames (0.1 s at 30 fps) between the frames whose nearest training pose is searched
RUNAWAY_MS = 50.0  # a root faster than this in some frame has run away: the rollout counts as diverged
NEAREST_CHUNK = 1024  # rolled-out frames per nearest-pose matrix product
NEAREST_MAX_POSES = 65_536  # training poses the nearest-pose search compares with (about 3 bundled sets)
STEP_HYSTERESIS_M = 0.05  # a reversal of the feet's separation counts once it moves back this far
ROLLOUT_CHUNK = 256  # clips per autoregress call


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
        d2 = torch.addmm(sq_train[None], flat, flat_train.T, alpha=-2)  # + |flat|^2, the same for every candidate
        finite = torch.isfinite(flat).all(-1)
        if not bool(finite.all()):
            d2 = torch.nan_to_num(d2, nan=math.inf)
        nearest = train_R[d2.argmin(dim=1)]
        drift = geodesic_angle(chunk.double(), nearest.double()).mean(-1)
        out.append(torch.where(finite, drift, torch.full_like(drift, math.nan)))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def reference_poses(train_R: torch.Tensor, most: int = NEAREST_MAX_POSES) -> torch.Tensor:
    """The nearest-pose search's reference: ``train_R (F, J, 3, 3)`` itself up to ``most`` frames, else ``most``
    frames evenly spaced over it, the first and the last included (at 30 fps neighbouring frames differ little)."""
    n = train_R.shape[0]
    if n <= most:
        return train_R
    return train_R[torch.linspace(0, n - 1, most, device=train_R.device).round().long()]


def diverged(R: torch.Tensor, world: WorldMotion, contacts: np.ndarray, traj: torch.Tensor) -> bool:
    """Did a rollout go non-finite (some NaN or inf in its rotations ``R (T, J, 3, 3)``, its joint positions
    in the world or its contacts ``(T, 2)``) or run away (its root, ``traj (T, 3)``, faster than
    ``RUNAWAY_MS`` in some frame)?"""
    finite = (bool(torch.isfinite(R).all()) and bool(torch.isfinite(world.positions).all())
              and bool(np.isfinite(contacts).all()))  # fmt: skip
    return not finite or bool((traj[:, :2].norm(dim=-1) > RUNAWAY_MS).any())


def control_errors(traj: torch.Tensor, ctrl: torch.Tensor, window: int) -> tuple[float, float, int]:
    """Summed control errors of a motion's steps: ``traj (T, 3)`` its root velocity [left, forward] m/s and yaw
    rate rad/s per frame, ``ctrl (H, 3)`` the control fed to step ``h`` (same units), ``window`` the frames a
    control averages. Step ``h``'s achieved control is the mean of ``traj[h+2 : h+2+window]`` (as
    ``control_windows``); only steps whose window lies inside the motion count. Returns the sum of the velocity
    errors' norms (m/s), of the absolute yaw-rate errors (deg/s), and the number of steps counted."""
    n = min(int(ctrl.shape[0]), int(traj.shape[0]) - 1 - window)
    if n <= 0:
        return 0.0, 0.0, 0
    x = traj.double()
    csum = torch.cat([torch.zeros(1, 3, dtype=torch.float64), x.cumsum(0)])
    h = torch.arange(n)
    achieved = (csum[h + 2 + window] - csum[h + 2]) / window
    diff = achieved - ctrl[:n].double()
    return float(diff[:, :2].norm(dim=-1).sum()), float(diff[:, 2].abs().sum()) * 180.0 / math.pi, n


def reversals(signal: list[float], hysteresis: float) -> int:
    """Direction reversals of a 1-D ``signal``: a reversal counts once the signal has moved back by more than
    ``hysteresis`` from its last extreme. The first departure by more than ``hysteresis`` from the range seen so
    far sets the direction and is not counted."""
    if not signal:
        return 0
    lo = hi = extreme = signal[0]
    direction, count = 0, 0
    for v in signal[1:]:
        if direction == 0:
            lo, hi = min(lo, v), max(hi, v)
            if v - lo > hysteresis:
                direction, extreme = 1, v
            elif hi - v > hysteresis:
                direction, extreme = -1, v
        elif direction > 0:
            if v > extreme:
                extreme = v
            elif extreme - v > hysteresis:
                count, direction, extreme = count + 1, -1, v
        elif v < extreme:
            extreme = v
        elif v - extreme > hysteresis:
            count, direction, extreme = count + 1, 1, v
    return count


def feet_steps(world: WorldMotion, yaw: torch.Tensor, feet: dict[str, list[int]]) -> int:
    """Steps of a motion (see ``StepHz`` in the module docstring): reversals of the left foot's horizontal position
    minus the right's, in the heading frame of ``yaw (T,)``, along its principal axis."""
    p = world.positions
    apart = p[:, feet["L"]].mean(1) - p[:, feet["R"]].mean(1)  # (T, 3), world
    local = (yaw_matrix(yaw.double()).transpose(-1, -2) @ apart[..., None]).squeeze(-1)
    q = local[:, [0, 2]].numpy()
    if q.shape[0] < 2:
        return 0
    q = q - q.mean(0)
    _, _, vt = np.linalg.svd(q, full_matrices=False)
    return reversals((q @ vt[0]).tolist(), STEP_HYSTERESIS_M)


@dataclass
class Motion:
    """One motion to score: a rollout from a clip's start frame (or the clip's own frames), fp32 on the CPU."""

    name: str  # the clip's
    R: torch.Tensor  # (T, J, 3, 3) local rotations, frame 0 the real start frame
    traj: torch.Tensor  # (T, 3) root velocity [left, forward] m/s and yaw rate rad/s
    contacts: np.ndarray  # (T, 2) soft contacts [L, R]
    ctrl: torch.Tensor  # (H, 3) the raw control fed to each step (held past the clip's end)
    held: bool = False  # one pose in every frame (copy-last): its nearest training pose is searched once


@dataclass
class ClipScore:
    """One motion's sums, so any set of clips (all, a group) pools them without measuring again."""

    name: str
    frames: int
    bone_errors: int
    diverged: bool
    skate: float = 0.0  # contact-weighted foot speed, summed
    skate_weight: float = 0.0
    drift: float = 0.0  # nearest-pose angle (radians), summed over the searched frames
    drift_frames: int = 0
    ctrl_speed: float = 0.0  # velocity errors (m/s), summed over the counted steps
    ctrl_yaw: float = 0.0  # yaw-rate errors (deg/s), summed
    ctrl_steps: int = 0
    steps: int = 0  # reversals of the feet's separation (StepHz)
    seconds: float = 0.0  # (T - 1) / fps

    @property
    def step_hz(self) -> float | None:
        return self.steps / self.seconds if self.seconds > 0 and not self.diverged else None


def score_motions(
    motions: list[Motion], skeleton: Skeleton, train_R: torch.Tensor, feet: dict[str, list[int]], window: int,
    fps: float,
) -> list[ClipScore]:  # fmt: skip
    """Each motion's ``ClipScore``; the nearest-pose search runs once over every motion's frames."""
    out, drift_frames = [], []
    for m in motions:
        yaw = integrate_yaw(0.0, m.traj[:, 2], fps)  # the metrics do not depend on the start heading
        world = world_motion(m.R, yaw, m.traj[:, :2], skeleton, fps)
        s = ClipScore(m.name, world.n_frames, int(bone_error_frames(world, skeleton).sum()),
                      diverged(m.R, world, m.contacts, m.traj))  # fmt: skip
        out.append(s)
        if s.diverged:
            drift_frames.append(m.R[:0])
            continue
        skate, weight = foot_skate(world, feet, m.contacts)
        if weight > 0 and math.isfinite(skate):
            s.skate, s.skate_weight = skate * weight, weight
        s.ctrl_speed, s.ctrl_yaw, s.ctrl_steps = control_errors(m.traj, m.ctrl, window)
        s.steps, s.seconds = feet_steps(world, yaw, feet), (world.n_frames - 1) / fps
        drift_frames.append(m.R[1:2] if m.held else m.R[1::DRIFT_STRIDE])  # the start frame is real in every rollout
    drift = pose_drift(torch.cat(drift_frames), train_R) if drift_frames else torch.zeros(0)
    for m, s, d in zip(motions, out, drift.split([len(f) for f in drift_frames]), strict=True):
        n = len(m.R[1::DRIFT_STRIDE]) if m.held and not s.diverged else len(d)
        s.drift, s.drift_frames = float(d.sum()) * n / max(len(d), 1), n
    return out


def pool(scores: list[ClipScore], truth_hz: dict[str, float]) -> dict[str, float | int | None]:
    """The metrics of a set of clips' ``ClipScore``s (module docstring); ``truth_hz``: each clip's own
    ``StepHz`` over its frames. None where nothing is left to measure."""
    ok = [s for s in scores if not s.diverged]
    frames = sum(s.frames for s in scores)

    def ratio(num: float, den: float) -> float | None:
        v = num / den if den > 0 else math.nan
        return v if math.isfinite(v) else None

    hz_err = [abs(s.step_hz - truth_hz[s.name]) for s in ok if s.step_hz is not None and s.name in truth_hz]
    return {
        f"{PREFIX}FootSkateMS": ratio(sum(s.skate for s in ok), sum(s.skate_weight for s in ok)),
        f"{PREFIX}BoneErrFrac": sum(s.bone_errors for s in scores) / frames if frames else None,
        f"{PREFIX}PoseDriftDeg": ratio(sum(s.drift for s in ok) * 180.0 / math.pi, sum(s.drift_frames for s in ok)),
        f"{PREFIX}DivergedClips": len(scores) - len(ok),
        f"{PREFIX}CtrlSpeedErr": ratio(sum(s.ctrl_speed for s in ok), sum(s.ctrl_steps for s in ok)),
        f"{PREFIX}CtrlYawErr": ratio(sum(s.ctrl_yaw for s in ok), sum(s.ctrl_steps for s in ok)),
        f"{PREFIX}StepHz": ratio(sum(s.steps for s in ok), sum(s.seconds for s in ok)),
        f"{PREFIX}StepHzErr": ratio(sum(hz_err), len(hz_err)),
    }


def skeleton_feet(skeleton: Skeleton) -> dict[str, list[int]]:
    """Side -> the foot joints' indices (``skeleton.feet``, else found by name); DataError without both sides."""
    found = skeleton.feet or find_feet(list(skeleton.bones), list(skeleton.parents))
    feet = {side: [skeleton.index(n) for n in found.get(side, ())] for side in ("L", "R")}
    if not feet["L"] or not feet["R"]:
        raise DataError(f"skeleton ({', '.join(skeleton.bones[:4])}, ...): no left and right foot joints; "
                        "name them in FullHierarchy.json `feet`")  # fmt: skip
    return feet


@dataclass
class LongValidation:
    """``seconds``-long rollouts from every clip of a split: what stays fixed across a run's epochs (starts,
    held controls, the baselines' scores), built once by ``create``; ``metrics`` rolls a model out."""

    split: Split
    skeleton: Skeleton
    train_R: torch.Tensor  # (F, J, 3, 3) on the CPU: the nearest-pose reference (``reference_poses``)
    seconds: float
    frames: int  # H, steps per rollout
    window: int  # frames a control averages
    starts: torch.Tensor  # (B,) each clip's second frame, for the clips that have one
    names: list[str]  # (B,)
    controls: torch.Tensor  # (H, B, Dc) normalized, what the model is fed
    ctrl_raw: torch.Tensor  # (H, B, 3) the same in m/s, m/s, rad/s, on the CPU
    feet: dict[str, list[int]]
    groups: dict[str, list[str]]  # group -> its clips (of ``names``)
    baselines: dict[str, list[ClipScore]]  # copy-last-frame and truth, per clip
    truth_hz: dict[str, float]  # clip -> its own StepHz

    @classmethod
    @torch.no_grad()
    def create(
        cls, split: Split, skeleton: Skeleton, train_R: torch.Tensor, seconds: float, cond_window_s: float,
        groups: dict[str, str] | None = None,
    ) -> LongValidation:  # fmt: skip
        """``train_R (F, J, 3, 3)``: the training frames' local rotations (``reference_poses`` of them are the
        nearest-pose reference); ``cond_window_s``: the control window the split was built with; ``groups``: clip
        name -> motion group (None: no groups)."""
        H = max(1, int(round(seconds * split.fps)))
        first = split.clip_begin.unique()  # (n_clips,): each clip's first frame, in the order of split.names
        keep = first + 1 < split.clip_end[first]
        starts = first[keep] + 1
        names = [n for n, k in zip(split.names, keep.tolist(), strict=True) if k]
        feet = skeleton_feet(skeleton)
        held = held_index(split, starts, H)  # (H, B)
        window = control_frames(cond_window_s, split.fps)
        train_R = reference_poses(train_R).cpu()
        ctrl_raw = split.ctrl_raw[held].cpu()
        copy_m, truth_m = [], []
        for b, (s, name) in enumerate(zip(starts.tolist(), names, strict=True)):
            R0, traj0, c0 = split.R[s : s + 1].cpu(), split.traj_raw[s : s + 1].cpu(), split.contacts[s : s + 1]
            copy_m.append(Motion(name, R0.expand(H + 1, -1, -1, -1), traj0.expand(H + 1, -1),
                                 c0.expand(H + 1, -1).cpu().numpy(), ctrl_raw[:, b], held=True))  # fmt: skip
            end = min(int(split.clip_end[s]), s + H + 1)
            if end - s >= 2:
                truth_m.append(Motion(name, split.R[s:end].cpu(), split.traj_raw[s:end].cpu(),
                                      split.contacts[s:end].cpu().numpy(), ctrl_raw[:, b]))  # fmt: skip
        base = {
            "copy-last-frame": score_motions(copy_m, skeleton, train_R, feet, window, split.fps),
            "truth": score_motions(truth_m, skeleton, train_R, feet, window, split.fps),
        }
        truth_hz = {s.name: s.step_hz for s in base["truth"] if s.step_hz is not None}
        return cls(split, skeleton, train_R, seconds, H, window, starts, names, split.c[held], ctrl_raw, feet,
                   by_group(groups or {}, names), base, truth_hz)  # fmt: skip

    @torch.no_grad()
    def model_scores(self, model: MotionModel, rt: Runtime) -> list[ClipScore]:
        """Roll ``model`` out from every start (``ROLLOUT_CHUNK`` clips per ``autoregress`` call) and score it.
        On the CPU the rollout runs on one thread: its steps are small, and on a busy 2-core machine two
        threads waiting on each other made it 10 times slower (``benchmarks/long_validation.py``)."""
        was_training = model.training
        model.eval()
        split, motions = self.split, []
        one_thread = cpu_threads(1) if split.x.device.type == "cpu" else contextlib.nullcontext()
        try:
            with one_thread:
                for lo in range(0, len(self.starts), ROLLOUT_CHUNK):
                    starts = self.starts[lo : lo + ROLLOUT_CHUNK]
                    raw = autoregress(model, rt, split.x[starts], split.R[starts],
                                      self.controls[:, lo : lo + ROLLOUT_CHUNK])  # fmt: skip
                    R, traj, contacts = raw.R.cpu(), raw.traj.cpu(), raw.contacts.cpu()
                    for i, s in enumerate(starts.tolist()):
                        b = lo + i
                        motions.append(Motion(
                            self.names[b],
                            torch.cat([split.R[s : s + 1].cpu(), R[i]]),
                            torch.cat([split.traj_raw[s : s + 1].cpu(), traj[i]]),
                            torch.cat([split.contacts[s : s + 1].cpu(), contacts[i]]).numpy(),
                            self.ctrl_raw[:, b],
                        ))  # fmt: skip
                return score_motions(motions, self.skeleton, self.train_R, self.feet, self.window, split.fps)
        finally:
            model.train(was_training)

    def result(self, model: list[ClipScore]) -> dict[str, Any]:
        """The ``FreeRun/long`` result of the model's per-clip scores beside the baselines': ``seconds``,
        ``frames`` per rollout, ``clips``, ``model``, ``copy-last-frame`` and ``truth`` (metric -> value, None
        where undefined), ``diverged`` (each entry's name -> the clips whose rollout went non-finite) and
        ``groups`` (group -> ``clips`` and the three entries on its clips alone; empty without groups)."""
        every = {"model": model, **self.baselines}
        out: dict[str, Any] = {"seconds": self.seconds, "frames": self.frames, "clips": len(self.starts)}
        for who in WHO:
            out[who] = pool(every[who], self.truth_hz)
        out["diverged"] = {who: [s.name for s in every[who] if s.diverged] for who in WHO}
        out["groups"] = {}
        for group, members in self.groups.items():
            inside = set(members)
            entry: dict[str, Any] = {"clips": members}
            for who in WHO:
                entry[who] = pool([s for s in every[who] if s.name in inside], self.truth_hz)
            out["groups"][group] = entry
        return out

    def metrics(self, model: MotionModel, rt: Runtime) -> dict[str, Any]:
        """``result`` of ``model``'s rollouts."""
        return self.result(self.model_scores(model, rt))


@torch.no_grad()
def long_rollout_metrics(
    model: MotionModel, rt: Runtime, split: Split, skeleton: Skeleton, train_R: torch.Tensor, seconds: float,
    cond_window_s: float, groups: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``FreeRun/long`` metrics of ``seconds``-long rollouts from every clip of ``split`` (one per clip, from
    its second frame) for the model, ``copy-last-frame`` and the ground truth (``LongValidation.result``);
    ``train_R (F, J, 3, 3)``: the training frames' local rotations; ``cond_window_s``: the control window
    ``split`` was built with; ``groups``: clip name -> motion group, scored from the same rollouts."""
    return LongValidation.create(split, skeleton, train_R, seconds, cond_window_s, groups).metrics(model, rt)


def long_due(cfg: TrainConfig, epoch: int, freerun_weight: float) -> bool:
    """Does ``epoch`` validate long? ``eval_long_every`` 0: never; None: when the epoch's stage trains free run
    (``freerun_weight > 0``); N: every N-th epoch. The last epoch always does (unless 0)."""
    every = cfg.freerun.eval_long_every
    if every == 0:
        return False
    if epoch == cfg.optim.epochs:
        return True
    return freerun_weight > 0 if every is None else epoch % every == 0


def run_validation(cfg: TrainConfig, split: Split, skeleton: Skeleton, train_R: torch.Tensor,
                   groups: dict[str, str]) -> LongValidation | None:  # fmt: skip
    """A run's ``LongValidation`` of its validation ``split`` (None with ``eval_long_every`` 0), against the
    training split's rotations ``train_R``; ``groups``: clip name -> motion group. The baselines are scored here,
    once per run. A skeleton without left and right feet trains without it, with a warning."""
    if cfg.freerun.eval_long_every == 0:
        return None
    try:
        skeleton_feet(skeleton)
    except DataError as e:
        warnings.warn(f"{e}: training without the long validation (FreeRun/long); set `eval_long_every` to 0 "
                      "to silence this", stacklevel=2)  # fmt: skip
        return None
    return LongValidation.create(split, skeleton, train_R, cfg.freerun.eval_long_seconds, cfg.data.cond_window_s,
                                 groups)  # fmt: skip


def summary_section(val: LongValidation, result: dict[str, Any] | None, last: dict[str, Any]) -> dict[str, Any]:
    """``summary.json``'s ``long``: the last validation's ``result`` (``LongValidation.result``: ``model``, the
    baselines ``copy-last-frame`` and ``truth``, ``diverged``, ``groups``) with its ``epoch``. Without a result
    computed in this process (a run resumed past its last validation), the model's values come from the metric
    files (``last``: ``latest_long``) and its per-group entries are None."""
    if result is None:
        result = val.result([])
        result["model"] = {k: last.get(k) for k in METRICS} if last else None
        result["diverged"]["model"] = None
        for entry in result["groups"].values():
            entry["model"] = None
    return {"epoch": last.get(EPOCH_KEY), **result}


def latest_long(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``FreeRun/long`` values of the last of ``epochs`` (metric dicts with ``epoch``) that holds them, with
    ``EPOCH_KEY``; empty when none does."""
    for m in reversed(epochs):
        if any(k in m for k in METRICS):
            return {**{k: m.get(k) for k in METRICS}, EPOCH_KEY: m["epoch"]}
    return {}
