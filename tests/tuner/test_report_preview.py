"""`motiontune report` shows the best trial's free run beside the ground truth, in index.html."""

from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image

from tests.conftest import run_cli
from trainer_core.config_load import config_from_dict
from trainer_core.data.datasets import load_dataset
from trainer_core.data.splits import min_eval_frames, split_dataset
from tuner.experiment.results import finished_trials
from tuner.report.previews import PREVIEW_FILE, PREVIEW_SECONDS, PREVIEW_STRIDE


def test_report_embeds_the_best_trials_preview(smoke_sweep, tmp_path):
    exp, trials, _, _ = smoke_sweep
    out = tmp_path / "report"
    proc = run_cli("report", str(exp), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    html = (out / "index.html").read_text()
    assert f'src="{PREVIEW_FILE}"' in html and "free run" in html
    best = finished_trials(trials, "FreeRun/GeoDeg").sort_values("best/FreeRun/GeoDeg", kind="stable").iloc[0]
    assert f"best trial ({best['trial_id']})" in html
    # The validation clips of the trial's config, as training split them (its summary.json may not be in storage).
    cfg = config_from_dict(json.loads((Path(best["path"]) / "run" / "best_model.json").read_text())["config"], "cfg")
    dataset = load_dataset(None)
    val = split_dataset(dataset.clips, cfg.data.val_split, cfg.data.val_fraction, cfg.data.test_split,
                        min_eval_frames(cfg, 30.0)).val  # fmt: skip
    clip = max(val, key=lambda c: (c.n_frames, c.name))
    assert clip.name in html
    steps = min(clip.n_frames - 2, math.ceil(PREVIEW_SECONDS * clip.fps))
    with Image.open(out / PREVIEW_FILE) as im:
        assert im.format == "GIF" and im.n_frames == math.ceil((steps + 1) / PREVIEW_STRIDE)
