"""Schedules as pure functions of the epoch: teacher forcing ratio and training stages.

Epochs are 1-based and stage ranges inclusive, as in the seed's configs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainer_core.config import LossWeights, Stage, TFConfig, TrainConfig

TF_EXP_RATE = 5.0
"""``exp``: the remaining decay is ``exp(-5 f)`` (rescaled to end at 0): 36 % left at f = 0.2, 8 % at half-way."""
TF_SIGMOID_STEEPNESS = 10.0
"""``sigmoid``: the remaining decay is ``sigmoid(10 (0.5 - f))`` (rescaled to its ends): half-way at f = 0.5,
7 % of the fall done at f = 0.25; Bengio et al. (2015)'s inverse sigmoid ``k / (k + exp(i / k))`` placed on
the span."""


def tf_shape_fraction(shape: str, frac: float) -> float:
    """The share of the fall from ``tf_max`` to ``tf_min`` done at ``frac`` of the decay span: 0 at 0, 1 at 1,
    never decreasing; ``linear`` returns ``frac`` itself (the numbers of a config without ``tf_shape``)."""
    if shape == "linear":
        return frac
    if shape == "cosine":
        done = (1.0 - math.cos(math.pi * frac)) / 2.0
    elif shape == "exp":
        done = -math.expm1(-TF_EXP_RATE * frac) / -math.expm1(-TF_EXP_RATE)
    elif shape == "sigmoid":
        hi = 1.0 / (1.0 + math.exp(-TF_SIGMOID_STEEPNESS / 2))  # the sigmoid at f = 0; 1 - hi at f = 1
        left = 1.0 / (1.0 + math.exp(-TF_SIGMOID_STEEPNESS * (0.5 - frac)))
        done = (hi - left) / (2.0 * hi - 1.0)
    else:
        raise ValueError(f"unknown tf_shape {shape!r}")
    return min(1.0, max(0.0, done))


def tf_ratio(tf: TFConfig, epoch: int, progress: float = 0.0) -> float:
    """Probability of feeding ground truth as the previous frame.

    ``epoch_linear`` moves once per epoch, ``step_linear`` moves with ``progress``
    (the fraction of the epoch done, in [0, 1)); both go from ``tf_max`` at
    ``tf_start_epoch`` to ``tf_min`` at ``tf_end_epoch`` and hold outside, along
    ``tf_shape`` (``tf_shape_fraction`` of the span's fraction done).
    ``constant`` is ``tf_max`` throughout.
    """
    if tf.tf_mode == "constant":
        return tf.tf_max
    x = float(epoch) + (progress if tf.tf_mode == "step_linear" else 0.0)
    span = tf.tf_end_epoch - tf.tf_start_epoch
    if span <= 0:
        frac = 0.0 if x < tf.tf_start_epoch else 1.0
    else:
        frac = min(1.0, max(0.0, (x - tf.tf_start_epoch) / span))
    return tf.tf_max + (tf.tf_min - tf.tf_max) * tf_shape_fraction(tf.tf_shape, frac)


def stage_for_epoch(stages: list[Stage], epoch: int) -> Stage | None:
    """The stage whose inclusive range holds ``epoch``; None without a schedule."""
    for s in stages:
        if s.first <= epoch <= s.last:
            return s
    return None


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch trains with: the global config with the stage's declared keys on top."""

    epoch: int
    stage: str
    weights: LossWeights
    freerun_horizon: int


def plan_epoch(cfg: TrainConfig, epoch: int) -> EpochPlan:
    """The epoch's weights and horizon; past ``foot_early_epochs`` ``w_foot_early`` is 0, so the term is not
    even computed."""
    stage = stage_for_epoch(cfg.stages, epoch)
    if stage is None:
        label, weights, horizon = "global", cfg.loss, cfg.freerun.freerun_horizon
    else:
        label, weights = stage.label, cfg.loss.replace(stage.weight_overrides())
        horizon = int(stage.trainer.get("freerun_horizon", cfg.freerun.freerun_horizon))
    if weights.w_foot_early > 0 and epoch > cfg.freerun.foot_early_epochs:
        weights = weights.replace({"w_foot_early": 0.0})
    return EpochPlan(epoch, label, weights, horizon)
