"""Bad adaptive-loss and accumulation input from the CLI: one line naming the field and the fix, exit 2, no files."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, tiny_overrides
from trainer_core.config_load import load_config


def _train(tmp_path, *flags):
    raw = load_config().to_dict()
    raw.update(tiny_overrides(epochs=1))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(raw))
    out = tmp_path / "out"
    proc = run_cli("train", "--config", str(cfg), "--out", str(out), *flags)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "warning" not in ln]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists(), "a failed run must not leave an output folder"
    return lines[0]


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (("--adaptive-loss-method", "gradnrm"), ("`adaptive_loss_method` is 'gradnrm'", "did you mean `gradnorm`")),
        (("--adaptive_loss_terms", "fk_pos,rot_locl"), ("`rot_locl`", "not a loss term", "did you mean `rot_local`")),
        (("--adaptive-loss-alpha", "11"), ("`adaptive_loss_alpha` is 11.0", "[0, 10]")),
        (("--adaptive-loss-temperature", "0"), ("`adaptive_loss_temperature` is 0.0", "(0, 100]")),
        (("--set", "grad_accum_steps=0"), ("`grad_accum_steps` is 0", "[1, 1024]")),
    ],
    ids=["unknown-method", "unknown-term", "alpha-range", "temperature-range", "accumulation-0"],
)
def test_bad_advanced_option(tmp_path, flags, fragments):
    line = _train(tmp_path, *flags)
    assert line.startswith("motiontune: error: ") and str(tmp_path / "cfg.json") in line
    for f in fragments:
        assert f in line, line


def test_the_guides_flag_spelling_and_config_keys_work(tmp_path):
    raw = load_config().to_dict()
    raw.update(tiny_overrides(epochs=1), adaptive_loss_terms=["fk_pos", "rot_delta"], grad_accum_steps=2)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(raw))
    out = tmp_path / "out"
    proc = run_cli("train", "--config", str(cfg), "--out", str(out), "--adaptive_loss_method", "dwa",
                   "--adaptive-loss-temperature", "3")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((out / "config.json").read_text())
    assert saved["adaptive_loss_method"] == "dwa" and saved["adaptive_loss_temperature"] == 3.0
    assert saved["adaptive_loss_terms"] == ["fk_pos", "rot_delta"] and saved["grad_accum_steps"] == 2
    m = json.loads((out / "metrics" / "teacher_ep001.json").read_text())
    assert m["adaptive_loss/fk_pos/weight"] == 1.0 and m["adaptive_loss/rot_delta/base_loss"] > 0
