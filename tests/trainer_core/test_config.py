"""The config edge: seed format in, typed config out, every bad value named."""

from __future__ import annotations

import json
import warnings

import pytest

from trainer_core.config import LOSS_GROUPS, Stage, rescale_stages
from trainer_core.config_load import config_from_dict, default_config_path, load_config
from trainer_core.errors import ConfigError
from trainer_core.io_utils import strip_json_comments


def default_dict() -> dict:
    return load_config().to_dict()


def test_default_config_is_the_seed_three_stage_config_at_half_length():
    cfg = load_config()
    assert [(s.first, s.last, s.label) for s in cfg.stages] == [
        (1, 4, "stage1_teacher"), (5, 10, "stage2_mixed"), (11, 15, "stage3_freerun")
    ]  # fmt: skip  # the seed's (1-9, 10-21, 22-30) rescaled from 30 epochs to 15
    assert [s.trainer["freerun_weight"] for s in cfg.stages] == [0.0, 0.175, 0.325]
    assert [s.trainer["freerun_horizon"] for s in cfg.stages] == [8, 14, 18]
    assert [s.loss_groups["core"]["w_fk_pos"] for s in cfg.stages] == [0.07, 0.2275, 0.4025]
    assert cfg.loss.w_rot_delta == 1.0 and cfg.optim.lr == pytest.approx(3.17329e-4)
    # measured departures from the seed (benchmarks/README.md): w_rot_log 1.0 (the seed's 0.2), the weights' average,
    # in-place clips with their legs held
    assert cfg.loss.w_rot_log == 1.0 and cfg.optim.ema_decay == 0.995 and cfg.data.hold_legs
    assert (cfg.tf.tf_mode, cfg.tf.tf_start_epoch, cfg.tf.tf_end_epoch) == ("epoch_linear", 1, 10)  # the seed's 1-19
    assert cfg.optim.epochs == 15 and cfg.aug.mirror == "auto"


def test_to_dict_round_trips_and_keeps_the_seed_key_order():
    raw = default_dict()
    assert config_from_dict(json.loads(json.dumps(raw))).to_dict() == raw
    assert list(raw)[:7] == ["data", "bundle_json", "out", "epochs", "batch", "lr", "seq_len"]
    assert list(raw)[-1] == "freerun_stage_schedule"


def test_comments_are_stripped_but_not_inside_strings():
    text = '{"out": "s3://bucket/x", // a comment\n "data": "a//b"}'
    assert json.loads(strip_json_comments(text)) == {"out": "s3://bucket/x", "data": "a//b"}


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown key `w_fk_poss` \(did you mean `w_fk_pos`\?\)"):
        config_from_dict({**default_dict(), "w_fk_poss": 0.1})


def test_tf_min_above_tf_max():
    with pytest.raises(ConfigError, match=r"`tf_min` is 0.9, but must be <= `tf_max` \(0.5\)"):
        config_from_dict({**default_dict(), "tf_min": 0.9, "tf_max": 0.5})


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as e:
        config_from_dict({**default_dict(), "lr": -1.0, "batch": 0, "tf_mode": "cosine", "root_from": "wheel"})
    msg = str(e.value)
    assert "`lr` is -1.0, but must be in (0, 1]" in msg and "`batch` is 0" in msg and "`tf_mode` is 'cosine'" in msg
    assert "`root_from` is 'wheel', but must be one of frame, control" in msg


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("epochs", "30", "`epochs` is '30', but must be int"),
        ("dropout", 1.5, "`dropout` is 1.5, but must be in [0, 1)"),
        ("w_rot_geo", -0.1, "`w_rot_geo` is -0.1, but must be in [0, 100]"),
        ("tf_max", -0.5, "`tf_max` is -0.5, but must be in [0, 1]"),
        ("seq_len", True, "`seq_len` is True, but must be int"),
        ("device", "tpu", "`device` is 'tpu'"),
        ("eval_long_every", -1, "`eval_long_every` is -1, but must be in [0, 100000]"),
        ("eval_long_every", 2.5, "`eval_long_every` is 2.5, but must be int"),
        ("eval_long_seconds", 0, "`eval_long_seconds` is 0.0, but must be in (0, 600]"),
        ("eval_long_seconds", 601, "`eval_long_seconds` is 601.0, but must be in (0, 600]"),
    ],
)
def test_bad_values(key, value, message):
    with pytest.raises(ConfigError) as e:
        config_from_dict({**default_dict(), key: value})
    assert message in str(e.value)


def _with_ranges(*ranges):
    raw = default_dict()
    for stage, rng in zip(raw["freerun_stage_schedule"], ranges):
        stage["range"] = list(rng)
    return raw


def test_stage_gap_is_rejected():
    with pytest.raises(ConfigError, match="leaving a gap after epoch 9"):
        config_from_dict(_with_ranges((1, 9), (11, 21), (22, 30)))


def test_stage_overlap_is_rejected():
    with pytest.raises(ConfigError, match="overlapping the previous stage"):
        config_from_dict(_with_ranges((1, 9), (9, 21), (22, 30)))


def test_stages_must_cover_every_epoch():
    with pytest.raises(ConfigError, match="ends at epoch 13, but `epochs` is 15"):
        config_from_dict(_with_ranges((1, 4), (5, 10), (11, 13)))


def test_stage_group_weights_must_belong_to_the_group():
    raw = default_dict()
    raw["freerun_stage_schedule"][0]["loss_groups"]["aux"]["w_fk_pos"] = 0.1
    with pytest.raises(ConfigError, match="`aux` weight; it belongs to `core`"):
        config_from_dict(raw)


def test_deprecated_cond_yaw_warns_when_nonzero_and_is_ignored():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = config_from_dict({**default_dict(), "w_cond_yaw": 0.1})
    assert any("w_cond_yaw" in str(w.message) for w in caught)
    assert "w_cond_yaw" not in cfg.to_dict()


def test_with_epochs_rescales_stages_and_tf():
    cfg = load_config().with_epochs(10)
    assert [(s.first, s.last) for s in cfg.stages] == [(1, 3), (4, 7), (8, 10)]
    assert (cfg.tf.tf_start_epoch, cfg.tf.tf_end_epoch) == (1, 7)
    cfg.validate()
    one = load_config().with_epochs(1)
    # Stage ends move to round(last * 1 / 15): stage 1 empties, stage 2 takes epoch 1.
    assert [(s.first, s.last, s.label) for s in one.stages] == [(1, 1, "stage2_mixed")]
    one.validate()


def test_rescale_keeps_stages_contiguous():
    stages = [Stage(1, 5, "a"), Stage(6, 12, "b"), Stage(13, 20, "c"), Stage(21, 35, "d")]
    for n in range(1, 40):
        out = rescale_stages(stages, 35, n)
        assert out[0].first == 1 and out[-1].last == n
        assert all(a.last + 1 == b.first for a, b in zip(out, out[1:]))


def test_group_table_covers_every_weight():
    weights = {k for keys in LOSS_GROUPS.values() for k in keys}
    assert {"w_fk_pos", "w_rot_local", "w_rot_geo", "w_rot_delta", "w_rot_ortho"} <= set(LOSS_GROUPS["core"])
    assert {"w_attn_reg", "w_rot_delta_root", "w_rot_log", "w_limb_geo"} <= set(LOSS_GROUPS["aux"])
    assert set(LOSS_GROUPS["long"]) == {"w_latent_consistency", "freerun_weight"}
    assert weights <= set(default_dict())


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"lr": 0.1,,}')
    with pytest.raises(ConfigError, match=r"malformed JSON at line 1, column 12"):
        load_config(tmp_path / "bad.json")
    assert default_config_path().is_file()
