"""``motiontune suggest``: the guide's metric-driven rules on a real run's metric files."""

from __future__ import annotations

import json

import pytest

from search_spaces.mapping import stage_rule_problems
from search_spaces.spec import Rules, load_space
from search_spaces.suggest import Thresholds, suggest
from tests.conftest import run_cli, tiny_overrides
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.errors import ConfigError
from trainer_core.train.loop import fit


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    """A finished 3-epoch run of the default 3-stage schedule, small: (run dir, config file)."""
    root = tmp_path_factory.mktemp("suggest")
    raw = load_config().with_epochs(3).to_dict()
    small = tiny_overrides(epochs=3, tf_end_epoch=3)
    small.pop("freerun_stage_schedule")
    raw.update(small, freerun_horizon=8, seq_len=30)
    cfg = config_from_dict(raw, "staged")
    fit(cfg, root / "run", log=lambda _: None)
    (root / "c.json").write_text(json.dumps(cfg.to_dict()))
    return root / "run", root / "c.json"


ONE = {"YawAbsDeg": 1.0, "RootVelMAE": 1.0, "GeoDeg": 1.0}


def _set_metrics(run, free: dict[str, float], teacher: dict[str, float]) -> dict:
    """Overwrite the last epoch's values as multiples of the copy-last-frame baseline's."""
    base = json.loads((run / "summary.json").read_text())["baseline"]
    for mode, scale in (("valfree", free), ("teacher", teacher)):
        path = run / "metrics" / f"{mode}_ep003.json"
        m = json.loads(path.read_text())
        for name, f in scale.items():
            key = f"FreeRun/{name}" if mode == "valfree" else name
            m[key] = f * base[key]
        path.write_text(json.dumps(m))
    return base


def test_high_yaw_raises_freerun_weight_and_horizon_within_the_stage_rules(staged_run, tmp_path):
    run, cfg_path = staged_run
    _set_metrics(
        run, {"YawAbsDeg": 2.0, "RootVelMAE": 0.5, "GeoDeg": 0.5}, {"YawAbsDeg": 1, "RootVelMAE": 1, "GeoDeg": 1}
    )
    before = load_config(cfg_path)
    out = tmp_path / "c2.json"
    proc = run_cli("suggest", "--metrics-root", str(run / "metrics"), "--config", str(cfg_path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    after = load_config(out)
    lines = proc.stdout.splitlines()
    assert all("FreeRun/YawAbsDeg" in ln for ln in lines if "->" in ln) and any("freerun_horizon" in ln for ln in lines)
    assert after.freerun.freerun_horizon == before.freerun.freerun_horizon + Thresholds().horizon_step
    old_w = [before.loss.replace(s.weight_overrides()).freerun_weight for s in before.stages]
    new_w = [after.loss.replace(s.weight_overrides()).freerun_weight for s in after.stages]
    assert new_w[0] == old_w[0] and new_w[-1] > old_w[-1]  # stage 1 stays teacher-dominated; the last rises
    assert stage_rule_problems(after, Rules()) == []
    assert after.loss.w_fk_pos == before.loss.w_fk_pos  # GeoDeg beats the baseline: left alone
    run2 = run_cli("train", "--config", str(out), "--epochs", "1", "--out", str(tmp_path / "run2"))
    assert run2.returncode == 0, run2.stderr


def test_error_growing_faster_than_the_baselines_raises_the_latent_and_core_weights(staged_run):
    run, cfg_path = staged_run
    # GeoDeg beats copy-last in free run (0.8x) but its teacher value is 0.2x: 4x the baseline's growth
    _set_metrics(
        run, {"YawAbsDeg": 0.5, "RootVelMAE": 0.5, "GeoDeg": 0.8}, {"YawAbsDeg": 1, "RootVelMAE": 1, "GeoDeg": 0.2}
    )
    before = load_config(cfg_path)
    after, lines = suggest(run / "metrics", before, load_space("default").rules)
    f = Thresholds().weight_factor
    for key in ("w_latent_consistency", "w_fk_pos", "w_rot_local"):
        assert getattr(after.loss, key) == pytest.approx(getattr(before.loss, key) * f)
    for s0, s1 in zip(before.stages, after.stages):
        assert s1.weight_overrides()["w_fk_pos"] == pytest.approx(s0.weight_overrides()["w_fk_pos"] * f)
    assert lines and all("FreeRun/GeoDeg / GeoDeg" in ln for ln in lines)
    assert after.freerun.freerun_horizon == before.freerun.freerun_horizon


def test_nothing_high_changes_nothing(staged_run):
    run, cfg_path = staged_run
    _set_metrics(
        run, {"YawAbsDeg": 0.5, "RootVelMAE": 0.5, "GeoDeg": 0.5}, {"YawAbsDeg": 1, "RootVelMAE": 1, "GeoDeg": 1}
    )
    before = load_config(cfg_path)
    after, lines = suggest(run / "metrics", before, Rules())
    assert after.to_dict() == before.to_dict() and lines[0].startswith("no rule fired")


def test_a_metrics_root_without_metric_files_is_one_line_and_writes_nothing(tmp_path, staged_run):
    _, cfg_path = staged_run
    (tmp_path / "empty").mkdir()
    out = tmp_path / "c2.json"
    proc = run_cli("suggest", "--metrics-root", str(tmp_path / "empty"), "--config", str(cfg_path), "--out", str(out))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "holds no metric files" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    with pytest.raises(ConfigError, match="holds no metric files"):
        suggest(tmp_path / "missing", load_config(cfg_path), Rules())
