"""The structured config values (splits, mirror, pairs, speed range, adaptive terms): typed once at the edge,
written back in the very form the config file used, and rejected with the messages they always had."""

from __future__ import annotations

import dataclasses
import json

import pytest

from trainer_core.config import AdaptiveLossConfig, AugmentConfig, DataConfig
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.errors import ConfigError
from trainer_core.split_spec import DEFAULT_GROUP_PATTERN, SplitSpec

PAIRS = [["Foot_L", "Foot_R"], ["Hand_L", "Hand_R"]]


def _raw(**over) -> dict:
    """The packaged config as a file holds it, with ``over`` (``augmentation`` merged into its block)."""
    raw = json.loads(json.dumps(load_config().to_dict()))
    aug = over.pop("augmentation", {})
    raw.update(over)
    raw["augmentation"].update(aug)
    return raw


def test_the_packaged_config_holds_typed_values():
    cfg = load_config()
    assert cfg.data.val_split == SplitSpec("group", field="style", fraction=0.2)
    assert cfg.data.test_split is None
    assert cfg.aug.mirror == "auto" and cfg.aug.mirror_pairs is None
    assert cfg.aug.speed_scale_range == (1.0, 1.0) and type(cfg.aug.speed_scale_range) is tuple
    assert cfg.adaptive.adaptive_loss_terms == ("fk_pos", "rot_local", "rot_delta")
    assert type(cfg.adaptive.adaptive_loss_terms) is tuple


def test_each_structured_value_is_parsed_into_its_type():
    cfg = config_from_dict(_raw(
        val_split={"clips": ["a", "b"]},
        test_split={"group": "style", "values": ["normal", "happy"]},
        adaptive_loss_terms=" fk_pos, rot_local,freerun",
        augmentation={"mirror": True, "mirror_pairs": PAIRS, "speed_scale_range": [0.8, 1.2]},
    ))  # fmt: skip
    assert cfg.data.val_split == SplitSpec("clips", clips=("a", "b"))
    t = cfg.data.test_split
    assert isinstance(t, SplitSpec) and (t.kind, t.field, t.values, t.pattern) == (
        "group", "style", ("normal", "happy"), DEFAULT_GROUP_PATTERN
    )  # fmt: skip
    assert cfg.aug.mirror is True
    assert cfg.aug.mirror_pairs == (("Foot_L", "Foot_R"), ("Hand_L", "Hand_R"))
    assert all(type(q) is tuple for q in cfg.aug.mirror_pairs)
    assert cfg.aug.speed_scale_range == (0.8, 1.2) and all(type(v) is float for v in cfg.aug.speed_scale_range)
    assert cfg.adaptive.adaptive_loss_terms == ("fk_pos", "rot_local", "freerun")
    ints = config_from_dict(_raw(augmentation={"speed_scale_range": [1, 2]})).aug.speed_scale_range
    assert ints == (1.0, 2.0) and all(type(v) is float for v in ints)
    assert config_from_dict(_raw(val_split="hash")).data.val_split == SplitSpec("hash")


def test_sections_built_in_code_take_the_config_forms_and_stay_typed():
    aug = AugmentConfig(mirror=True, mirror_pairs=PAIRS, speed_scale_range=[0.8, 1.25])
    assert aug.speed_scale_range == (0.8, 1.25) and aug.mirror_pairs[0] == ("Foot_L", "Foot_R")
    assert dataclasses.replace(aug, noise_std=0.1).speed_scale_range == (0.8, 1.25)
    assert AdaptiveLossConfig(adaptive_loss_terms="fk_pos,freerun").adaptive_loss_terms == ("fk_pos", "freerun")
    data = DataConfig(val_split={"group": "style", "values": ["x"]})
    assert data.val_split == SplitSpec("group", field="style", values=("x",))
    assert dataclasses.replace(data, val_fraction=0.3).val_split is data.val_split
    custom = SplitSpec("group", field="s", fraction=0.5, pattern="_(?P<s>[a-z]+)_")  # built, not parsed
    assert custom.to_json() == {"group": "s", "fraction": 0.5, "pattern": "_(?P<s>[a-z]+)_"}
    assert SplitSpec.parse(custom.to_json(), "val_split") == custom


@pytest.mark.parametrize(
    "over, key, written",
    [
        ({}, "val_split", {"group": "style", "fraction": 0.2}),  # no pattern: none written back
        ({"val_split": "hash"}, "val_split", "hash"),
        ({"val_split": {"group": "style", "values": ["a", "b"]}}, "val_split",
         {"group": "style", "values": ["a", "b"]}),
        (
            {"val_split": {"group": "s", "fraction": 0.5, "pattern": "_(?P<s>[a-z]+)_"}},
            "val_split",
            {"group": "s", "fraction": 0.5, "pattern": "_(?P<s>[a-z]+)_"},
        ),
        (
            {"val_split": {"group": "style", "values": ["a"], "pattern": DEFAULT_GROUP_PATTERN}},
            "val_split",
            {"group": "style", "values": ["a"], "pattern": DEFAULT_GROUP_PATTERN},  # written, so kept
        ),
        ({"val_split": {"clips": ["a", "b"]}}, "val_split", {"clips": ["a", "b"]}),
        ({"test_split": {"group": "style", "values": ["normal"]}}, "test_split",
         {"group": "style", "values": ["normal"]}),
        ({}, "test_split", None),
        ({"adaptive_loss_terms": "fk_pos, rot_delta"}, "adaptive_loss_terms", ["fk_pos", "rot_delta"]),
        ({"adaptive_loss_terms": ["rot_delta", "fk_pos"]}, "adaptive_loss_terms", ["rot_delta", "fk_pos"]),
        ({}, "augmentation",
         {"mirror": "auto", "mirror_pairs": None, "noise_std": 0.5, "speed_scale_range": [1.0, 1.0]}),
        (
            {"augmentation": {"mirror": True, "mirror_pairs": PAIRS, "speed_scale_range": [0.8, 1.2]}},
            "augmentation",
            {"mirror": True, "mirror_pairs": PAIRS, "noise_std": 0.5, "speed_scale_range": [0.8, 1.2]},
        ),
        ({"augmentation": {"mirror": False, "mirror_pairs": []}}, "augmentation",
         {"mirror": False, "mirror_pairs": [], "noise_std": 0.5, "speed_scale_range": [1.0, 1.0]}),
    ],
)  # fmt: skip
def test_to_dict_writes_each_value_back_as_the_config_wrote_it(over, key, written):
    """Exported configs and checkpoints keep their JSON: lists stay lists, strings stay strings."""
    out = config_from_dict(_raw(**over)).to_dict()
    assert json.dumps(out[key]) == json.dumps(written)
    assert config_from_dict(json.loads(json.dumps(out))).to_dict() == out
    assert json.dumps(config_from_dict(json.loads(json.dumps(out))).to_dict()) == json.dumps(out)


def test_the_packaged_config_round_trips_to_the_same_json():
    raw = json.loads(json.dumps(load_config().to_dict()))
    assert json.dumps(config_from_dict(raw).to_dict()) == json.dumps(raw)
    assert "kind" not in json.dumps(raw)  # no SplitSpec internals leak into the file


FORM = '"hash", {"group": FIELD, "values": [..] or "fraction": F, "pattern": REGEX} or {"clips": [NAME, ..]}'


@pytest.mark.parametrize(
    "over, message",
    [
        ({"val_split": None}, f"`val_split` is None, but must be {FORM}"),
        ({"val_split": "random"}, f"`val_split` is 'random', but must be {FORM}"),
        ({"val_split": {"group": "nope", "values": ["a"]}},
         "`val_split.group` is 'nope', but the pattern's named groups are: content, style, take"),
        ({"test_split": "hash"},
         '`test_split` is "hash", but must name clips or groups (a hash split is for validation)'),
        ({"val_split": "x", "test_split": 5, "lr": -1.0},
         f"config: `val_split` is 'x', but must be {FORM}; `test_split` is 5, but must be {FORM}; "
         "`lr` is -1.0, but must be in (0, 1]"),
        ({"augmentation": {"mirror": 1}}, '`augmentation.mirror` is 1, but must be true, false or "auto"'),
        ({"augmentation": {"mirror_pairs": [["a"]]}},
         "`augmentation.mirror_pairs` is [['a']], but must be [[LEFT, RIGHT], ...] joint names"),
        ({"augmentation": {"speed_scale_range": [1.2]}},
         "`augmentation.speed_scale_range` is [1.2], but must be [lo, hi]"),
        ({"augmentation": {"speed_scale_range": [2, 1]}},
         "`augmentation.speed_scale_range` is [2, 1], but must satisfy 0.25 <= lo <= hi <= 4"),
        ({"augmentation": {"mirror": 2, "noise_std": 5.0, "speed_scale_range": [9, 9], "mirror_pairs": 1}},
         'config: `augmentation.mirror` is 2, but must be true, false or "auto"; `noise_std` is 5.0, but must be in '
         "[0, 1]; `augmentation.speed_scale_range` is [9, 9], but must satisfy 0.25 <= lo <= hi <= 4; "
         "`augmentation.mirror_pairs` is 1, but must be [[LEFT, RIGHT], ...] joint names"),
        ({"adaptive_loss_terms": "fk_pos,rot_locl"},
         "`adaptive_loss_terms` names `rot_locl`, which is not a loss term (did you mean `rot_local`?)"),
        ({"adaptive_loss_terms": ["fk_pos", "fk_pos"]},
         "`adaptive_loss_terms` ['fk_pos', 'fk_pos'] names a term twice"),
        ({"adaptive_loss_terms": ""},
         '`adaptive_loss_terms` is [], but must be term names, e.g. "fk_pos,rot_local,rot_delta"'),
        ({"val_split": 1, "adaptive_loss_terms": 2, "augmentation": {"mirror": 3}, "lr": 5.0},
         f"config: `val_split` is 1, but must be {FORM}; `lr` is 5.0, but must be in (0, 1]; `adaptive_loss_terms` is "
         '2, but must be term names, e.g. "fk_pos,rot_local,rot_delta"; `augmentation.mirror` is 3, but must be true, '
         'false or "auto"'),
    ],
)  # fmt: skip
def test_bad_structured_values_keep_their_messages(over, message):
    with pytest.raises(ConfigError) as e:
        config_from_dict(_raw(**over))
    assert message in str(e.value)
