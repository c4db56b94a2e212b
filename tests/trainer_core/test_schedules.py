"""Teacher forcing and stage schedules are pure functions of the epoch."""

from __future__ import annotations

import pytest

from trainer_core.config import TFConfig
from trainer_core.config_load import load_config
from trainer_core.train.schedules import plan_epoch, stage_for_epoch, tf_ratio


@pytest.mark.parametrize("epoch, expected", [(1, 1.0), (10, 0.5), (19, 0.0), (25, 0.0)])
def test_epoch_linear_decays_from_max_to_min(epoch, expected):
    tf = TFConfig("epoch_linear", 1, 19, 1.0, 0.0)
    assert tf_ratio(tf, epoch) == pytest.approx(expected)


def test_epoch_linear_ignores_progress_and_step_linear_uses_it():
    assert tf_ratio(TFConfig("epoch_linear", 1, 3, 1.0, 0.0), 1, 0.5) == 1.0
    assert tf_ratio(TFConfig("step_linear", 1, 3, 1.0, 0.0), 1, 0.5) == pytest.approx(0.75)
    assert tf_ratio(TFConfig("step_linear", 1, 3, 0.8, 0.2), 2, 0.0) == pytest.approx(0.5)


def test_constant_and_holding_before_start():
    assert tf_ratio(TFConfig("constant", 1, 19, 0.7, 0.0), 15) == 0.7
    assert tf_ratio(TFConfig("epoch_linear", 5, 9, 0.9, 0.1), 2) == 0.9
    assert tf_ratio(TFConfig("epoch_linear", 5, 5, 0.9, 0.1), 5) == pytest.approx(0.1)


def test_stage_lookup_is_inclusive():
    stages = load_config().stages
    assert [stage_for_epoch(stages, e).label for e in (1, 4, 5, 10, 11, 15)] == [
        "stage1_teacher", "stage1_teacher", "stage2_mixed", "stage2_mixed", "stage3_freerun", "stage3_freerun"
    ]  # fmt: skip
    assert stage_for_epoch([], 3) is None


def test_a_stage_overrides_only_the_keys_it_declares():
    cfg = load_config()
    p1, p3 = plan_epoch(cfg, 1), plan_epoch(cfg, 15)
    assert (p1.weights.freerun_weight, p1.freerun_horizon, p1.weights.w_latent_consistency) == (0.0, 8, 0.03)
    assert (p3.weights.freerun_weight, p3.freerun_horizon, p3.weights.w_latent_consistency) == (0.325, 18, 0.288)
    assert (p3.weights.w_fk_pos, p3.weights.w_rot_local, p3.weights.w_limb_geo) == (0.4025, 0.4025, 0.08)
    # Undeclared keys keep the global value.
    assert p3.weights.w_rot_log == cfg.loss.w_rot_log == 1.0
    assert p3.weights.w_rot_delta == cfg.loss.w_rot_delta


def test_without_a_schedule_the_global_config_holds():
    cfg = load_config()
    cfg.stages = []
    plan = plan_epoch(cfg, 5)
    assert plan.stage == "global" and plan.weights == cfg.loss and plan.freerun_horizon == cfg.freerun.freerun_horizon
