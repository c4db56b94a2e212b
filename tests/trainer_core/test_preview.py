"""Previews: skeleton animations of generated and real motion (GIF; MP4 where ffmpeg exists) with the
expected frame count, the report's preview of the best trial, and bad input as one line."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from matplotlib import animation
from PIL import Image

from tests.conftest import run_cli
from tests.trainer_core.test_cli import assert_one_line_error
from trainer_core.data.clip import load_npz, save_npz
from trainer_core.data.datasets import bundled_dataset_dir, load_dataset
from trainer_core.generate.bvh_writer import write_bvh
from trainer_core.generate.inference import load_model
from trainer_core.generate.preview import DPI, PANEL_INCHES, frame_indices

START = bundled_dataset_dir() / "dataset-1_walk_normal_001.npz"
GENERATED = 60


@pytest.fixture(scope="module")
def motion(generation_run, tmp_path_factory):
    """A generated BVH of 60 frames after the start, and the start clip it came from."""
    out = tmp_path_factory.mktemp("preview") / "walk.bvh"
    clip = load_model(generation_run[0] / "best_model.pt").rollout(load_npz(START), GENERATED, "clip")
    write_bvh(clip, load_dataset(None).skeleton, out)
    return out


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as im:
        assert im.format == "GIF"
        frames = []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
        return frames


def test_preview_beside_the_ground_truth_has_the_expected_frames(motion, tmp_path):
    out = tmp_path / "preview.gif"
    proc = run_cli("preview", str(motion), "--compare", str(START), "--out", str(out), "--stride", "4")
    assert proc.returncode == 0, proc.stderr
    expected = math.ceil((GENERATED + 1) / 4)  # the shorter of the two: 61 frames, every 4th
    assert len(frame_indices(GENERATED + 1, 4)) == expected == 16
    frames = gif_frames(out)
    assert len(frames) == expected
    assert frames[0].shape == (int(PANEL_INCHES * DPI), 2 * int(PANEL_INCHES * DPI), 3)  # two panels side by side
    assert f"{expected} frames" in proc.stdout
    assert not np.array_equal(frames[0], frames[-1])  # it moves
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.gif"]  # no temp file left


def test_preview_of_a_clip_needs_its_skeleton(tmp_path):
    clip = load_npz(START)
    save_npz(clip, tmp_path / "walk.npz")
    proc = run_cli("preview", str(tmp_path / "walk.npz"), "--out", str(tmp_path / "p.gif"))
    assert_one_line_error(proc, "walk.npz", "--skeleton")
    assert not (tmp_path / "p.gif").exists()
    proc = run_cli("preview", str(tmp_path / "walk.npz"), "--skeleton", str(bundled_dataset_dir()), "--out",
                   str(tmp_path / "p.gif"), "--stride", "20")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    frames = gif_frames(tmp_path / "p.gif")
    assert len(frames) == math.ceil(clip.n_frames / 20)
    assert frames[0].shape[1] == int(PANEL_INCHES * DPI)  # one panel


@pytest.mark.skipif(not animation.writers.is_available("ffmpeg") or shutil.which("ffprobe") is None,
                    reason="ffmpeg/ffprobe not installed")  # fmt: skip
def test_preview_as_mp4(motion, tmp_path):
    import subprocess

    out = tmp_path / "preview.mp4"
    proc = run_cli("preview", str(motion), "--out", str(out), "--stride", "3")
    assert proc.returncode == 0, proc.stderr
    args = ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames"]
    probe = subprocess.run(["ffprobe", *args, "-of", "csv=p=0", str(out)], capture_output=True, text=True)
    assert int(probe.stdout.strip()) == math.ceil((GENERATED + 1) / 3)


def test_mp4_without_ffmpeg_or_an_unknown_type(motion, tmp_path):
    proc = run_cli("preview", str(motion), "--out", str(tmp_path / "p.png"))
    assert_one_line_error(proc, "unknown preview type `.png`")
    if not animation.writers.is_available("ffmpeg"):
        assert_one_line_error(run_cli("preview", str(motion), "--out", str(tmp_path / "p.mp4")), "needs ffmpeg")
    assert list(tmp_path.iterdir()) == []


def test_best_trial_preview_for_the_report(generation_run, tmp_path):
    """The report's preview of a trial folder laid out as a sweep's (``<trial>/run/``)."""
    import pandas as pd

    from tuner.report.previews import PREVIEW_FILE, best_trial_preview

    trial = tmp_path / "trial_1"
    shutil.copytree(generation_run[0], trial / "run")
    name, caption = best_trial_preview(pd.Series({"path": str(trial), "trial_id": "t1"}), tmp_path)
    assert name == PREVIEW_FILE and "t1" in caption
    summary = json.loads((trial / "run" / "summary.json").read_text())
    clip = max((c for c in load_dataset(None).clips if c.name in summary["data"]["val_clips"]),
               key=lambda c: (c.n_frames, c.name))  # fmt: skip
    assert clip.name in caption
    steps = min(clip.n_frames - 2, 300)
    assert len(gif_frames(tmp_path / PREVIEW_FILE)) == math.ceil((steps + 1) / 3)
    (trial / "run" / "best_model.pt").unlink()
    name, reason = best_trial_preview(pd.Series({"path": str(trial), "trial_id": "t1"}), tmp_path / "x")
    assert name is None and "no preview" in reason and not (tmp_path / "x").exists()
