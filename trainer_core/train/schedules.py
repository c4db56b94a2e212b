"""Schedules as pure functions of the epoch: teacher forcing ratio and training stages.

Epochs are 1-based and stage ranges inclusive, as in the seed's configs.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer_core.config import LossWeights, Stage, TFConfig, TrainConfig


def tf_ratio(tf: TFConfig, epoch: int, progress: float = 0.0) -> float:
    """Probability of feeding ground truth as the previous frame.

    ``epoch_linear`` moves once per epoch, ``step_linear`` moves with ``progress``
    (the fraction of the epoch done, in [0, 1)); both go from ``tf_max`` at
    ``tf_start_epoch`` to ``tf_min`` at ``tf_end_epoch`` and hold outside.
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
    return tf.tf_max + (tf.tf_min - tf.tf_max) * frac


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
    stage = stage_for_epoch(cfg.stages, epoch)
    if stage is None:
        return EpochPlan(epoch, "global", cfg.loss, cfg.freerun.freerun_horizon)
    horizon = int(stage.trainer.get("freerun_horizon", cfg.freerun.freerun_horizon))
    return EpochPlan(epoch, stage.label, cfg.loss.replace(stage.weight_overrides()), horizon)
