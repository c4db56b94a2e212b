"""Search spaces: every sampled config is valid and keeps the seed's rules; the seed is a point of the default."""

from __future__ import annotations

import json

import pytest

from search_spaces.mapping import config_to_params, params_to_config, rise_interval, stage_ranges
from search_spaces.sampling import sample_params
from search_spaces.spec import load_space, shipped_spaces, space_from_dict
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.errors import ConfigError

N_SAMPLES = 2000


def check_rules(cfg, space):
    """Every rule of the space, on a built config."""
    rules = space.rules
    stages = cfg.stages
    assert stages[0].first == 1 and stages[-1].last == cfg.optim.epochs
    assert all(a.last + 1 == b.first for a, b in zip(stages, stages[1:]))  # contiguous, no overlap
    weights = [s.trainer["freerun_weight"] for s in stages]
    assert weights[0] <= rules.freerun_first_max + 1e-9  # teacher-dominated first stage
    steps = [b - a for a, b in zip(weights, weights[1:])]
    assert all(-1e-9 <= st <= rules.freerun_step_max + 1e-6 for st in steps), steps  # never falls, bounded rise
    assert weights[-1] >= rules.freerun_final_min - 1e-6 and max(weights) <= rules.freerun_cap + 1e-6
    horizons = [s.trainer["freerun_horizon"] for s in stages]
    assert all(a <= b for a, b in zip(horizons, horizons[1:])) and horizons[-1] <= cfg.optim.seq_len
    assert 0 <= cfg.tf.tf_min <= cfg.tf.tf_max <= 1


@pytest.mark.parametrize("name", ["default", "small", "wide"])
def test_every_sample_is_a_valid_config_that_keeps_the_rules(name):
    space, base = load_space(name), load_config()
    for i, params in enumerate(sample_params(space, N_SAMPLES, seed=7)):
        cfg = params_to_config(space, params, base)
        config_from_dict(json.loads(json.dumps(cfg.to_dict())), f"sample {i}")  # the trainer's own validation
        check_rules(cfg, space)
        for key, dim in space.dims.items():
            if key in params and dim.searched:
                assert dim.contains(params[key]), (key, params[key])


def test_the_shipped_spaces_are_the_three_named():
    assert shipped_spaces() == ["default", "small", "wide"]


@pytest.mark.parametrize("name", ["default", "small", "wide"])
def test_the_seed_config_round_trips_through_the_space(name):
    space, seed = load_space(name), load_config()
    params = config_to_params(space, seed)
    back = params_to_config(space, params, seed).to_dict()
    assert back == seed.to_dict()  # every key, searched or not


def test_packaged_params_in_the_default_space_are_its_numbers():
    p = config_to_params(load_space("default"), load_config())
    assert p["stage_share1"] == pytest.approx(4 / 15) and p["stage_share2"] == pytest.approx(6 / 11)  # 1-4, 5-10
    assert (p["horizon_first"], p["horizon_step2"], p["horizon_step3"]) == (8, 6, 4)
    assert p["core_first"] == 0.07 and p["core_growth2"] == pytest.approx(3.25)
    assert p["freerun_rise2"] == pytest.approx(1.0) and p["freerun_rise3"] == pytest.approx(0.5)


def test_a_config_outside_the_space_says_why():
    raw = load_config().to_dict()
    raw["lr"] = 0.01
    raw["freerun_stage_schedule"][2]["trainer"]["freerun_weight"] = 0.1  # falls after stage 2
    with pytest.raises(ConfigError) as e:
        config_to_params(load_space("default"), config_from_dict(raw))
    assert "`lr` is 0.01, outside [0.0001, 0.001]" in str(e.value) and "freerun_rise" in str(e.value)


def test_rise_interval_keeps_the_final_weight_reachable():
    rules = load_space("default").rules
    lo, hi = rise_interval(0.0, 2, 3, rules)
    assert (lo, hi) == (pytest.approx(0.125), 0.175)  # must rise enough for stage 3 to reach 0.3
    lo, hi = rise_interval(0.175, 3, 3, rules)
    assert (lo, hi) == (pytest.approx(0.125), 0.175)


def test_stage_ranges_cover_the_epochs_with_at_least_one_each():
    assert stage_ranges([0.3, 12 / 21], 30) == [(1, 9), (10, 21), (22, 30)]
    assert stage_ranges([0.9, 0.9], 4) == [(1, 2), (3, 3), (4, 4)]
    assert stage_ranges([0.5, 0.5], 2) == [(1, 1), (2, 2)]  # fewer epochs than stages: first dropped


def test_small_space_samples_have_five_searched_dims():
    space = load_space("small")
    assert space.dimension_count() == "5"
    params = sample_params(space, 1, 0)[0]
    assert sorted(params) == ["core_first", "freerun_rise2", "freerun_rise3", "horizon_first", "lr"]


def _space(**params):
    return {"name": "t", "params": {"lr": {"low": 1e-4, "high": 1e-3, "log": True}, **params}}


@pytest.mark.parametrize(
    "raw, message",
    [
        (_space(learning_rate={"low": 0.1, "high": 0.2}), "unknown dimension `learning_rate`"),
        (_space(batch={"low": 16, "high": 4}), "`batch` has low 16 > high 4"),
        (_space(w_rot_geo={"low": 0.0, "high": 0.1, "log": True}), "on a log scale, so low must be > 0"),
        (
            {**_space(n_stages={"value": 2}, freerun_first={"value": 0.0}), "rules": {"freerun_step_max": 0.15}},
            "rules cannot be met: with 2 stage(s) and rises of at most 0.15",
        ),
        (_space(dropout={"low": 0.0, "high": 1.5}), "`dropout` bounds [0.0, 1.5] must lie within"),
        (_space(core_first={"low": 0.01, "high": 0.1}), "`n_stages` must be given too"),
        (_space(n_stages={"low": 3, "high": 5}), "every stage parameter must be searched or fixed"),
        ({**_space(), "rulez": {}}, "unknown key `rulez`"),
    ],
)
def test_bad_space_files_fail_with_one_clear_error(raw, message):
    with pytest.raises(ConfigError) as e:
        space_from_dict(raw, "my_space.json")
    assert message in str(e.value) and "space my_space.json" in str(e.value)


def test_unknown_params_raise_instead_of_being_ignored():
    space, base = load_space("small"), load_config()
    params = config_to_params(space, base)
    with pytest.raises(ConfigError, match=r"unknown param `learning_rate`"):
        params_to_config(space, {**params, "learning_rate": 0.1}, base)
    with pytest.raises(ConfigError, match=r"unknown param `batch`"):  # a catalog name this space does not search
        params_to_config(space, {**params, "batch": 8}, base)
