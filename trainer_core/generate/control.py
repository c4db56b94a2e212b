"""The control signal of a rollout: the start clip's own, or a constant speed and turn rate.

The model is conditioned per step ``t -> t+1`` on ``ctrl_vel`` (2: [left,
forward] m/s), ``ctrl_yaw_rate`` (rad/s) and ``log_period`` (the soft gait
period, log seconds; see ``data.features``). Two ways to drive it:

- ``clip``: the start clip's own controls (the mean root velocity and yaw rate
  over ``cond_window_s`` after each target frame, as in training), step by
  step from the start frame. Near the clip's end the control window shrinks;
  from the last step whose window is whole, that control is held, for as long
  as the rollout goes on.
- ``SPEED,TURN_DEG_S`` (``--control 1.2,30``): forward speed ``SPEED`` m/s, no
  sideways speed, and a turn of ``TURN_DEG_S`` degrees per second (positive
  turns left: yaw about +Y), held throughout; the gait period is held at the
  start frame's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainer_core.data.device_data import Split, held_index
from trainer_core.data.features import COND_LAYOUT, Normalizer
from trainer_core.errors import ConfigError, raise_all

MAX_SPEED = 20.0  # m/s: far past any human gait, the bound of a sane request
MAX_TURN_DEG_S = 720.0


@dataclass(frozen=True)
class Control:
    """``clip`` (None speed/turn) or a constant forward speed (m/s) and turn rate (deg/s)."""

    speed: float | None = None
    turn_deg_s: float | None = None

    @property
    def from_clip(self) -> bool:
        return self.speed is None

    def describe(self) -> str:
        return "the start clip's own" if self.from_clip else f"{self.speed:g} m/s, {self.turn_deg_s:g} deg/s"


def parse_control(text: str) -> Control:
    """``"clip"`` or ``"SPEED,TURN_DEG_S"`` (e.g. ``"1.2,30"``); anything else raises ``ConfigError``."""
    fix = "must be `clip` or SPEED,TURN_DEG_S (m/s and degrees per second), e.g. --control 1.2,30"
    if text.strip().lower() == "clip":
        return Control()
    parts = text.split(",")
    if len(parts) != 2:
        raise ConfigError(f"--control {text!r}: {fix}")
    try:
        speed, turn = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--control {text!r}: {fix}") from None
    problems = []
    if not (math.isfinite(speed) and abs(speed) <= MAX_SPEED):
        problems.append(f"speed is {speed:g}, but must be in [-{MAX_SPEED:g}, {MAX_SPEED:g}] m/s")
    if not (math.isfinite(turn) and abs(turn) <= MAX_TURN_DEG_S):
        problems.append(f"turn is {turn:g}, but must be in [-{MAX_TURN_DEG_S:g}, {MAX_TURN_DEG_S:g}] deg/s")
    raise_all(problems, ConfigError, f"--control {text!r}")
    return Control(speed, turn)


def control_sequence(control: Control, split: Split, start: int, frames: int, norm: Normalizer) -> torch.Tensor:
    """The normalized condition ``(frames, Dc)`` of each step of a rollout from frame ``start`` of a one-clip
    ``split``, on ``split``'s device."""
    if control.from_clip:
        return split.c[held_index(split, torch.tensor([start], device=split.c.device), frames)[:, 0]]
    raw = COND_LAYOUT.pack(
        {
            "ctrl_vel": torch.tensor([0.0, control.speed], device=split.c.device),
            "ctrl_yaw_rate": torch.tensor([math.radians(control.turn_deg_s)], device=split.c.device),
            "log_period": split.log_period[start : start + 1],
        }
    )
    return norm.norm_c(raw.float()).expand(frames, -1)
