"""Sweeps with real Ray Tune, Optuna TPE and ASHA on the 2-core CI machine."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


def test_smoke_sweep_runs_eight_trials_and_asha_stops_some_early(smoke_sweep):
    exp, trials, history, stdout = smoke_sweep
    assert len(trials) == 8
    assert set(trials["status"]) <= {"COMPLETED", "STOPPED"}
    assert (trials["status"] == "STOPPED").any() and trials["epochs"].nunique() > 1  # ASHA stopped some early
    assert trials["epochs"].max() == 4
    assert len(history) == trials["epochs"].sum()
    assert f"experiment: {exp}" in stdout and "best: trial" in stdout


def test_every_report_carries_the_latest_long_validation(smoke_sweep):
    """The smoke config validates long (``FreeRun/long``) on its free-run epochs, 2 to 4: every report holds the
    latest values and the epoch they come from, so a scheduler on them finds them; before, NaN and epoch 0."""
    from trainer_core.train.group_eval import group_metric_names
    from trainer_core.train.long_eval import EPOCH_KEY, METRICS

    _, _, history, _ = smoke_sweep
    assert set(METRICS) | {EPOCH_KEY} <= set(history.columns)
    first, later = history[history["epoch"] == 1], history[history["epoch"] >= 2]
    assert len(first) == 8 and len(later) > 0
    assert (first[EPOCH_KEY] == 0).all() and first[list(METRICS)].isna().all().all()
    assert (later[EPOCH_KEY] == later["epoch"]).all()
    for k in ("FootSkateMS", "PoseDriftDeg", "CtrlSpeedErr", "StepHzErr"):
        assert later[f"FreeRun/long/{k}"].notna().all() and (later[f"FreeRun/long/{k}"] >= 0).all(), k
    assert (later["FreeRun/long/DivergedClips"] == 0).all()
    # Each epoch's free run per motion group, which a sweep can rank on (``--metric FreeRun/group/...``).
    groups = group_metric_names(("locomotion", "in-place"))
    assert set(groups) <= set(history.columns) and (history[groups] > 0).all().all()


def test_a_report_carries_the_last_long_values_forward():
    import dataclasses
    import math

    from trainer_core.config_load import smoke_config
    from trainer_core.train.long_eval import EPOCH_KEY, METRICS
    from trainer_core.train.loop import EpochResult
    from tuner.search.trainable import long_report

    cfg = smoke_config()
    before = long_report(cfg, EpochResult(1, {}, None, False))
    assert set(before) == {*METRICS, EPOCH_KEY} and before[EPOCH_KEY] == 0
    assert all(math.isnan(before[k]) for k in METRICS)
    carried = {**dict.fromkeys(METRICS, 1.5), "FreeRun/long/StepHz": None, EPOCH_KEY: 2}
    later = long_report(cfg, EpochResult(3, {"GeoDeg": 1.0}, None, False, carried))
    assert later[EPOCH_KEY] == 2 and later["FreeRun/long/FootSkateMS"] == 1.5
    assert math.isnan(later["FreeRun/long/StepHz"])  # undefined: NaN, still reported
    never = dataclasses.replace(cfg, freerun=dataclasses.replace(cfg.freerun, eval_long_every=0))
    assert long_report(never, EpochResult(3, {}, None, False, carried)) == {}


def test_the_first_trial_is_the_warm_start(smoke_sweep):
    _, trials, _, _ = smoke_sweep
    first = trials.sort_values("order").iloc[0]
    assert bool(first["warm_start"]) and trials["warm_start"].sum() == 1
    assert first["config/lr"] == pytest.approx(0.00031732900585132803)  # the guide's lr
    assert first["config/core_first"] == pytest.approx(0.07)


def test_trials_table_has_params_metrics_and_nodes(smoke_sweep):
    _, trials, _, _ = smoke_sweep
    for col in ("trial_id", "status", "error", "node", "epochs", "best/FreeRun/GeoDeg", "final/FreeRun/GeoDeg",
                "final/GeoDeg", "final/RootVelMAE", "wall_s", "config/lr", "config/freerun_rise2"):  # fmt: skip
        assert col in trials.columns, col
    assert trials["node"].str.len().min() > 10 and trials["wall_s"].gt(0).all()
    assert (trials["best/FreeRun/GeoDeg"] <= trials["final/FreeRun/GeoDeg"] + 1e-9).all()


def test_export_writes_a_config_the_trainer_runs_as_is(smoke_sweep, tmp_path):
    exp, trials, _, _ = smoke_sweep
    out = tmp_path / "best.json"
    proc = run_cli("export", str(exp), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    prov = json.loads((tmp_path / "best.provenance.json").read_text())
    best = trials.loc[trials["best/FreeRun/GeoDeg"].idxmin()]
    assert prov["trial_id"] == best["trial_id"] and prov["value"] == pytest.approx(best["best/FreeRun/GeoDeg"])
    assert prov["metric"] == "FreeRun/GeoDeg" and prov["space"] == "small" and len(prov["data_fingerprint"]) == 64
    assert prov["best_checkpoint"] and prov["package_version"]
    cfg = json.loads(out.read_text())
    assert cfg["lr"] == pytest.approx(best["config/lr"]) and list(cfg)[:3] == ["data", "bundle_json", "out"]
    run = run_cli("train", "--config", str(out), "--out", str(tmp_path / "run"))
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"


def test_export_top_k(smoke_sweep, tmp_path):
    exp, trials, _, _ = smoke_sweep
    proc = run_cli("export", str(exp), "--out", str(tmp_path / "c.json"), "--top", "3")
    assert proc.returncode == 0, proc.stderr
    values = [json.loads((tmp_path / f"c.top{k}.provenance.json").read_text())["value"] for k in (1, 2, 3)]
    assert values == sorted(values) and values[0] == pytest.approx(trials["best/FreeRun/GeoDeg"].min())


def test_export_by_another_metric(smoke_sweep, tmp_path):
    exp, _, history, _ = smoke_sweep
    proc = run_cli("export", str(exp), "--out", str(tmp_path / "g.json"), "--metric", "GeoDeg")
    assert proc.returncode == 0, proc.stderr
    prov = json.loads((tmp_path / "g.provenance.json").read_text())
    assert prov["metric"] == "GeoDeg" and prov["value"] == pytest.approx(history["GeoDeg"].min())


def test_asha_first_rung_waits_for_the_free_run_stage():
    from trainer_core.config_load import load_config, smoke_config
    from tuner.search.sweep import default_grace_period

    assert default_grace_period(load_config()) == 5  # stage2_mixed, the first with freerun_weight > 0
    assert default_grace_period(load_config().with_epochs(30)) == 9  # stage 1 rescaled to epochs 1-8
    assert default_grace_period(smoke_config()) == 2
    no_stages = load_config()
    no_stages.stages = []
    assert default_grace_period(no_stages.with_epochs(30)) == 3  # freerun_weight 0 throughout: a tenth of 30 epochs
