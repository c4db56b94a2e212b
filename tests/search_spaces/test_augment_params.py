"""Augmentation, dropout and weight decay in the search spaces: params -> the config's keys, and back."""

from __future__ import annotations

import pandas as pd
import pytest

from search_spaces.mapping import base_params, config_to_params, params_to_config
from search_spaces.sampling import sample_params
from search_spaces.spec import load_space, space_from_dict
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.errors import ConfigError

AUG_DIMS = ("dropout", "weight_decay", "augmentation.mirror", "augmentation.noise_std", "speed_scale_halfwidth")


def _base(**aug):
    raw = load_config().to_dict()
    raw["augmentation"] = {**raw["augmentation"], **aug}
    return config_from_dict(raw, "base")


@pytest.mark.parametrize("name", ["default", "wide"])
def test_default_and_wide_search_augmentation_and_regularisation(name):
    space = load_space(name)
    assert all(space.dims[d].searched for d in AUG_DIMS)
    samples = sample_params(space, 200, seed=3)
    assert {p["augmentation.mirror"] for p in samples} == {False, True}
    for p in samples:
        cfg = params_to_config(space, p, load_config())
        lo, hi = cfg.aug.speed_scale_range
        assert lo + hi == pytest.approx(2.0, abs=1e-9) and hi - 1 == pytest.approx(p["speed_scale_halfwidth"], abs=1e-6)
        assert base_params(space, cfg)[0]["speed_scale_halfwidth"] == pytest.approx(hi - 1, abs=1e-9)  # read back
        assert cfg.aug.mirror == ("auto" if p["augmentation.mirror"] else False)
        assert cfg.aug.noise_std == p["augmentation.noise_std"]
        assert cfg.model.dropout == p["dropout"] and cfg.optim.weight_decay == p["weight_decay"]


def test_params_set_the_augmentation_block():
    params = config_to_params(load_space("default"), _base(mirror=False, noise_std=0.0))
    assert (params["augmentation.mirror"], params["augmentation.noise_std"], params["speed_scale_halfwidth"]) == (
        False, 0.0, 0.0)  # fmt: skip
    assert config_to_params(load_space("default"), load_config())["augmentation.noise_std"] == 0.5  # the packaged
    params.update({"augmentation.mirror": True, "augmentation.noise_std": 0.05, "speed_scale_halfwidth": 0.2})
    cfg = params_to_config(load_space("default"), params, _base(mirror=False))
    assert cfg.aug.mirror == "auto" and cfg.aug.noise_std == 0.05 and list(cfg.aug.speed_scale_range) == [0.8, 1.2]
    assert cfg.to_dict()["augmentation"]["speed_scale_range"] == [0.8, 1.2]


@pytest.mark.parametrize("mirror", [True, "auto"])
def test_an_augmented_base_is_a_point_of_the_default_space_and_round_trips(mirror):
    base = _base(mirror=mirror, noise_std=0.02, speed_scale_range=[0.9, 1.1])
    space = load_space("default")
    params = config_to_params(space, base)
    assert params["speed_scale_halfwidth"] == pytest.approx(0.1) and params["augmentation.mirror"] is True
    assert params_to_config(space, params, base).to_dict() == base.to_dict()  # a strict `true` stays strict


def test_a_sampled_mirror_trains_unmirrored_on_a_skeleton_without_side_names():
    """The space's `true` is written "auto": a trial on such a skeleton warns, it does not fail."""
    params = {**config_to_params(load_space("default"), _base(mirror=False)), "augmentation.mirror": True}
    raw = params_to_config(load_space("default"), params, _base(mirror=False)).to_dict()
    assert raw["augmentation"]["mirror"] == "auto"


def test_a_base_with_an_off_centre_speed_range_says_why_it_is_not_a_point():
    with pytest.raises(ConfigError, match=r"`speed_scale_halfwidth`: `augmentation.speed_scale_range` \[0.8, 1.25\] "
                                          r"is not centred on 1"):  # fmt: skip
        config_to_params(load_space("default"), _base(speed_scale_range=[0.8, 1.25]))


def test_mirror_choices_must_be_booleans():
    raw = {"name": "t", "params": {"augmentation.mirror": {"choices": [0, 1]}}}
    message = r"`augmentation.mirror.choices` holds 0, but each must be one of false, true"
    with pytest.raises(ConfigError, match=message):
        space_from_dict(raw, "my_space.json")


def test_the_report_draws_a_boolean_param(tmp_path):
    from tuner.report.sweep_report import plot_parallel

    top = pd.DataFrame({"config/augmentation.mirror": [True, False, True], "config/lr": [1e-4, 3e-4, 1e-3],
                        "best/FreeRun/GeoDeg": [5.0, 6.0, 5.5]})  # fmt: skip
    plot_parallel(top, load_space("default"), "FreeRun/GeoDeg", tmp_path / "parallel.png")
    assert (tmp_path / "parallel.png").stat().st_size > 1000
