"""The report's look at the motion: the best trial's free run on a validation clip, beside the ground truth.

The trial's ``run/best_model.pt`` rolls out, under the clip's own control,
from the second frame of the longest of its validation clips (split from the
checkpoint's config as training splits them: a trial's ``summary.json`` may
not have reached storage) for up to ``PREVIEW_SECONDS``; the animation
(``trainer_core.generate.preview``) goes into the report folder as
``PREVIEW_FILE`` and ``index.html`` shows it with the other figures. Trials
on remote storage (s3://, gs://) or without their run files get no preview;
the report says why instead.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trainer_core.config_load import config_from_dict
from trainer_core.data.datasets import load_dataset
from trainer_core.data.splits import check_same_fps, min_eval_frames, split_dataset
from trainer_core.errors import MotiontuneError
from trainer_core.generate.api import rollout_preview
from trainer_core.train import checkpoint as ckpt
from tuner.experiment.files import is_uri
from tuner.search.trainable import RUN_DIR

PREVIEW_FILE = "best_trial_preview.gif"
PREVIEW_SECONDS = 10.0
PREVIEW_STRIDE = 3  # 10 fps: a 10 s preview is 100 small frames


def best_trial_preview(best: pd.Series, out_dir: Path, name: str = PREVIEW_FILE,
                       what: str = "The best trial") -> tuple[str | None, str]:  # fmt: skip
    """Write the preview of trial ``best`` (a row of the trials table) into ``out_dir`` as ``name``; the caption
    starts with ``what``.

    Returns ``(file name, caption)``, or ``(None, reason)`` when the trial has nothing to roll out.
    """
    trial = str(best["path"])
    if is_uri(trial):
        return None, f"no preview: trial {best['trial_id']} is on remote storage ({trial})"
    checkpoint = Path(trial) / RUN_DIR / "best_model.pt"
    if not checkpoint.is_file():
        return None, f"no preview: trial {best['trial_id']} left no {checkpoint}"
    try:
        cfg = config_from_dict(ckpt.load(checkpoint)["config"], f"{checkpoint} (stored config)")
        dataset = load_dataset(cfg.data.data)
        splits = split_dataset(dataset.clips, cfg.data.val_split, cfg.data.val_fraction, cfg.data.test_split,
                               min_eval_frames(cfg, check_same_fps(dataset.clips)))  # fmt: skip
        val = [c for c in splits.val if c.n_frames >= 3]
        if not val:
            return None, f"no preview: trial {best['trial_id']} has no validation clip of 3 frames or more"
        clip = max(val, key=lambda c: (c.n_frames, c.name))
        r = rollout_preview(checkpoint, clip, dataset.skeleton, out_dir / name, PREVIEW_SECONDS,
                            PREVIEW_STRIDE)  # fmt: skip
    except MotiontuneError as e:
        return None, f"no preview: {e}"
    seconds = r["rollout_frames"] / clip.fps
    return name, (
        f"{what} ({best['trial_id']}): its free run from the second frame of validation clip "
        f"{clip.name} under the clip's own control, {seconds:.1f} s, beside the ground truth (one frame "
        f"in {PREVIEW_STRIDE} drawn)"
    )
