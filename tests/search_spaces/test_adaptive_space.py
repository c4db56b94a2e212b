"""The adaptive loss method as a search dimension: categorical in ``wide``, alpha/temperature conditional on it."""

from __future__ import annotations

import pytest

from search_spaces.mapping import config_to_params, params_to_config
from search_spaces.sampling import sample_params
from search_spaces.spec import load_space
from trainer_core.config_load import load_config


def test_wide_searches_the_method_and_asks_alpha_and_temperature_only_for_their_method():
    space = load_space("wide")
    assert space.dims["adaptive_loss_method"].choices == ("none", "gradnorm", "uncertainty", "dwa")
    draws = sample_params(space, 40, seed=0)
    methods = {p["adaptive_loss_method"] for p in draws}
    assert methods == {"none", "gradnorm", "uncertainty", "dwa"}
    for p in draws:
        assert ("adaptive_loss_alpha" in p) == (p["adaptive_loss_method"] == "gradnorm")
        assert ("adaptive_loss_temperature" in p) == (p["adaptive_loss_method"] == "dwa")


@pytest.mark.parametrize("method", ["gradnorm", "dwa", "none"])
def test_a_drawn_method_reaches_the_trainer_config_and_back(method):
    space, base = load_space("wide"), load_config()
    p = next(q for q in sample_params(space, 40, seed=1) if q["adaptive_loss_method"] == method)
    cfg = params_to_config(space, p, base)
    assert cfg.adaptive.adaptive_loss_method == method
    alpha = p["adaptive_loss_alpha"] if method == "gradnorm" else base.adaptive.adaptive_loss_alpha  # else: base's
    temp = p["adaptive_loss_temperature"] if method == "dwa" else base.adaptive.adaptive_loss_temperature
    assert (cfg.adaptive.adaptive_loss_alpha, cfg.adaptive.adaptive_loss_temperature) == (alpha, temp)


def test_a_config_as_a_point_leaves_out_the_parameters_of_other_methods():
    from search_spaces.spec import space_from_dict

    raw = dict(load_space("wide").raw)
    raw["params"] = {k: v for k, v in raw["params"].items() if k.startswith("adaptive_loss") or k == "lr"}
    space = space_from_dict(raw, "adaptive-only")
    cfg = load_config(None, {"adaptive_loss_method": "dwa", "adaptive_loss_temperature": 3.0, "lr": 0.001})
    expected = {"lr": 0.001, "adaptive_loss_method": "dwa", "adaptive_loss_temperature": 3.0}
    assert config_to_params(space, cfg) == expected
