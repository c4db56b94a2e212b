"""Long-horizon knobs in the spaces: free-run horizons of seconds, the free-run weight's reach, the
teacher-forcing shape, the in-place share and the early foot term, each reaching the trainer config."""

from __future__ import annotations

import pytest
import torch

from search_spaces.mapping import config_to_params, params_to_config
from search_spaces.sampling import sample_params
from search_spaces.spec import load_space, space_from_dict
from tests.trainer_core.test_long_horizon_knobs import copy_styles
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.errors import ConfigError
from trainer_core.train import loop
from trainer_core.train.schedules import plan_epoch
from trainer_core.train.setup import setup

FPS = 30
N = 1000


def _samples(name: str):
    space, base = load_space(name), load_config()
    return [(p, params_to_config(space, p, base)) for p in sample_params(space, N, seed=11)]


@pytest.fixture(scope="module")
def drawn():
    return {name: _samples(name) for name in ("default", "wide")}


@pytest.mark.parametrize("name, seconds", [("default", 2.5), ("wide", 3.5)])
def test_the_last_stage_rolls_out_for_seconds_within_the_window(drawn, name, seconds):
    last = [(cfg.stages[-1].trainer["freerun_horizon"], cfg.optim.seq_len) for _, cfg in drawn[name]]
    assert all(h <= T for h, T in last)  # the trainer's rule: a rollout fits its window
    assert max(h for h, _ in last) >= seconds * FPS  # before: at most 12 + 2 x 8 = 28 frames, under 1 s


def _top_of_the_ladder(**extra):
    space, seed = load_space("default"), load_config()
    params = {**config_to_params(space, seed), "horizon_first": 12, "horizon_step2": 40, "horizon_step3": 40, **extra}
    return params_to_config(space, params, seed)


def test_the_ladder_is_capped_at_seq_len():
    assert [s.trainer["freerun_horizon"] for s in _top_of_the_ladder(seq_len=90).stages] == [12, 52, 90]  # 3 s
    assert [s.trainer["freerun_horizon"] for s in _top_of_the_ladder(seq_len=40).stages] == [12, 40, 40]


def test_a_three_second_horizon_reaches_the_free_run_loss(tmp_path, monkeypatch):
    raw = _top_of_the_ladder(seq_len=90).to_dict()
    raw.update(data=str(copy_styles(tmp_path / "data")), hidden_dim=32, num_layers=1, batch=2,
               val_split={"group": "style", "values": ["proud"]}, augmentation={"mirror": False})  # fmt: skip
    cfg = config_from_dict(raw, "test config")
    plan = plan_epoch(cfg, cfg.optim.epochs)
    assert plan.freerun_horizon == 90 and plan.weights.freerun_weight > 0
    horizons = []
    real = loop.free_run
    monkeypatch.setattr(loop, "free_run", lambda *a: horizons.append(a[-1]) or real(*a))
    s = setup(cfg)
    whole = s.train.window_starts[s.train.window_starts + 91 <= s.train.clip_end[s.train.window_starts]]
    _, terms = loop.accumulate(s, whole[:2], plan, 1.0, torch.Generator().manual_seed(0))
    assert horizons == [90] and terms[loop.TERM_NAMES.index("freerun")] > 0


@pytest.mark.parametrize("name, n_stages, first", [("default", 3, 0.0), ("wide", 5, 0.05), ("wide", 3, 0.0)])
def test_the_free_run_weight_reaches_what_the_rules_allow(name, n_stages, first):
    """Rises at 1 give the most the rules allow (each stage's step, under the cap); at 0 the least (the minimum)."""
    space, seed = load_space(name), load_config()
    rules = space.rules
    params = config_to_params(space, seed)  # the seed's 3 stages; the families are redrawn for n_stages
    for k in range(1, n_stages + 1):
        params.update({f"stage_share{k}": 0.3, f"horizon_step{k}": 0, f"latent_growth{k}": 1.0,
                       f"core_growth{k}": 1.0, f"limb_step{k}": 0.0})  # fmt: skip
    params = {k: v for k, v in params.items() if k in space.searched_names(n_stages)}
    if space.dims["n_stages"].searched:
        params["n_stages"] = n_stages
    if space.dims["freerun_first"].searched:
        params["freerun_first"] = first
    most = min(rules.freerun_cap, first + (n_stages - 1) * rules.freerun_step_max)
    for rise, want in ((1.0, most), (0.0, rules.freerun_final_min)):
        p = {**params, **{f"freerun_rise{k}": rise for k in range(2, n_stages + 1)}}
        cfg = params_to_config(space, p, seed)
        assert cfg.stages[-1].trainer["freerun_weight"] == pytest.approx(want)
        assert plan_epoch(cfg, cfg.optim.epochs).weights.freerun_weight == pytest.approx(want)


@pytest.mark.parametrize("name", ["default", "wide"])
def test_the_teacher_forcing_shape_is_drawn_and_set(drawn, name):
    assert {p["tf_shape"] for p, _ in drawn[name]} == {"linear", "cosine", "exp", "sigmoid"}
    assert all(cfg.tf.tf_shape == p["tf_shape"] for p, cfg in drawn[name])


@pytest.mark.parametrize("name", ["default", "wide"])
def test_the_inplace_share_is_null_or_drawn(drawn, name):
    shares = []
    for p, cfg in drawn[name]:
        if p["inplace_balance"]:
            assert cfg.data.inplace_share == p["inplace_share"] and 0.1 <= p["inplace_share"] <= 0.6
            shares.append(p["inplace_share"])
        else:
            assert "inplace_share" not in p and cfg.data.inplace_share is None
    assert 0.3 * N < len(shares) < 0.7 * N


def test_a_base_with_an_inplace_share_round_trips_and_a_space_turning_it_on_must_name_it():
    space = load_space("default")
    base = config_from_dict({**load_config().to_dict(), "inplace_share": 0.3}, "base")
    params = config_to_params(space, base)
    assert (params["inplace_balance"], params["inplace_share"]) == (True, 0.3)
    assert params_to_config(space, params, base).to_dict() == base.to_dict()
    off = params_to_config(space, {**params, "inplace_balance": False}, base)
    assert off.data.inplace_share is None
    with pytest.raises(ConfigError, match="`inplace_share` must be given too"):
        space_from_dict({"name": "t", "params": {"inplace_balance": {"choices": [False, True]}}}, "t.json")


def test_only_the_wide_space_searches_the_early_foot_term(drawn):
    assert "w_foot_early" not in load_space("default").dims and "w_foot_early" not in load_space("small").dims
    for p, cfg in drawn["wide"]:
        assert cfg.loss.w_foot_early == p["w_foot_early"] and cfg.freerun.foot_early_epochs == p["foot_early_epochs"]
    assert {p["foot_early_epochs"] for p, _ in drawn["wide"]} == set(range(6))
    for _, cfg in drawn["default"]:
        assert cfg.loss.w_foot_early == 0.0 and cfg.freerun.foot_early_epochs == 0
    on = next(cfg for p, cfg in drawn["wide"] if p["w_foot_early"] > 0.1 and p["foot_early_epochs"] >= 1)
    assert plan_epoch(on, 1).weights.w_foot_early > 0.1
    assert plan_epoch(on, on.freerun.foot_early_epochs + 1).weights.w_foot_early == 0.0
