"""Free-run error per motion group every epoch (``FreeRun/group/<g>/*``), on the bundled real clips."""

from __future__ import annotations

import json

import pytest

from trainer_core.errors import ConfigError
from trainer_core.split_spec import GroupSpec
from trainer_core.train.group_eval import group_metric_names, spec_groups
from trainer_core.train.loop import fit
from trainer_core.train.metrics_io import GROUP_PREFIX as PREFIX


def test_every_epoch_reports_free_run_per_group_equal_to_the_summarys_per_group_numbers(tiny_config, tmp_path):
    """Each epoch's free-run metric file holds each group's ``GeoDeg`` and its ratio to copy-last-frame; at the
    best epoch they are the numbers ``summary.json`` reports per group for the best model, computed apart."""
    cfg = tiny_config(epochs=2, tf_end_epoch=2, eval_long_every=0)
    results = []
    summary = fit(cfg, tmp_path / "run", on_epoch=results.append, log=lambda _: None)
    names = group_metric_names(("locomotion", "in-place"))
    for epoch in (1, 2):
        valfree = json.loads((tmp_path / "run" / "metrics" / f"valfree_ep{epoch:03d}.json").read_text())
        assert set(names) <= set(valfree)
        assert set(names) <= set(results[epoch - 1].metrics)  # what a Tune trial reports
    history = (tmp_path / "run" / "metrics" / "valfree" / "group_in-place_VsCopyLast.txt").read_text().split()
    assert history[0::2] == ["1", "2"]
    best = results[summary["best"]["epoch"] - 1].metrics
    for g, entry in summary["groups"]["val"].items():
        model, copy_last = entry["model"]["FreeRun/GeoDeg"], entry["baselines"]["copy-last-frame"]["FreeRun/GeoDeg"]
        assert best[f"{PREFIX}{g}/GeoDeg"] == pytest.approx(model, rel=1e-5)
        assert best[f"{PREFIX}{g}/VsCopyLast"] == pytest.approx(model / copy_last, rel=1e-5)
    # The groups partition the validation windows: the pooled number is their weighted mean, between the two.
    per_group = [r.metrics[f"{PREFIX}{g}/GeoDeg"] for r in results for g in ("locomotion", "in-place")]
    for i, r in enumerate(results):
        lo, hi = sorted(per_group[2 * i : 2 * i + 2])
        assert lo < r.metrics["FreeRun/GeoDeg"] < hi


def test_a_group_metric_can_be_the_objective_and_an_unknown_group_is_refused(tiny_config, tmp_path):
    cfg = tiny_config(epochs=1, eval_long_every=0, objective=f"{PREFIX}in-place/VsCopyLast")
    summary = fit(cfg, tmp_path / "run", log=lambda _: None)
    assert summary["objective"] == f"{PREFIX}in-place/VsCopyLast" and summary["best"]["epoch"] == 1
    with pytest.raises(ConfigError, match="did you mean"):
        fit(tiny_config(epochs=1, objective=f"{PREFIX}in_place/VsCopyLast"), tmp_path / "other", log=lambda _: None)


def test_the_groups_a_spec_can_name_are_known_before_the_data():
    assert spec_groups(GroupSpec.parse("speed")) == ("locomotion", "in-place")
    named = GroupSpec.parse({"group": "content", "sets": {"walks": ["walk"], "waves": ["bye", "byebye"]}})
    assert spec_groups(named) == ("walks", "waves", "other")
    assert spec_groups(None) == ()
