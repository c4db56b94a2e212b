"""`motiontune space show|sample` as a user runs them, bad space files included."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_cli
from tests.search_spaces.test_spaces import _space
from tests.trainer_core.test_cli import assert_one_line_error


def test_show_prints_every_dimension_with_bounds_and_scale():
    proc = run_cli("space", "show", "--space", "default")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "24 searched dimensions" in out
    for fragment in ("lr", "[0.0001, 0.001]", "log", "{4, 8, 16}", "n_stages", "= 3", "freerun_rise", "per stage",
                     "augmentation.mirror", "{False, True}", "speed_scale_halfwidth", "[1 - w, 1 + w]"):  # fmt: skip
        assert fragment in out


def test_sampled_config_trains_as_is(tmp_path):
    """`motiontune space sample -n 3 | head -1 > c.json && motiontune train --config c.json --epochs 1`."""
    cmd = (
        f"{sys.executable} -m tuner.cli space sample -n 3 | head -1 > c.json && "
        f"{sys.executable} -m tuner.cli train --config c.json --epochs 1 --out run --set steps_per_epoch=10"
    )
    proc = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((tmp_path / "c.json").read_text())
    assert cfg["epochs"] == 15 and len(cfg["freerun_stage_schedule"]) == 3
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"


def test_sample_gives_n_lines_of_configs_deterministic_by_seed():
    a = run_cli("space", "sample", "--space", "wide", "-n", "4", "--seed", "3")
    b = run_cli("space", "sample", "--space", "wide", "-n", "4", "--seed", "3")
    assert a.returncode == 0 and a.stdout == b.stdout
    lines = a.stdout.splitlines()
    assert len(lines) == 4 and all(json.loads(ln)["freerun_stage_schedule"] for ln in lines)


BAD_SPACES = {
    "unknown_dimension": (_space(learning_rate={"low": 0.1, "high": 0.2}), "unknown dimension `learning_rate`"),
    "low_above_high": (_space(batch={"low": 16, "high": 4}), "low 16 > high 4"),
    "log_with_low_zero": (_space(w_rot_geo={"low": 0.0, "high": 0.1, "log": True}), "low must be > 0"),
    "rule_cannot_be_met": (
        {**_space(n_stages={"value": 2}, freerun_first={"value": 0.0}), "rules": {"freerun_step_max": 0.15}},
        "rules cannot be met",
    ),
    "malformed_json": ('{"params": {', "malformed JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPACES))
def test_bad_space_file_is_one_line_exit_2(tmp_path, case):
    raw, message = BAD_SPACES[case]
    path = tmp_path / f"{case}.json"
    path.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    proc = run_cli("space", "sample", "--space", str(path), "-n", "2")
    assert_one_line_error(proc, str(path), message)
    assert proc.stdout == ""
