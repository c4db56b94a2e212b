"""Offline evaluation of a checkpoint on a dataset folder: it reproduces the in-training evaluation of
the same clips, per clip and overall beside the baselines; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli
from tests.trainer_core.test_cli import assert_one_line_error
from trainer_core.data.clip import save_npz
from trainer_core.data.datasets import load_dataset
from trainer_core.data.skeleton import HIERARCHY_FILE, Skeleton
from trainer_core.errors import DataError
from trainer_core.evaluate.offline import evaluate_checkpoint
from trainer_core.train import checkpoint as ckpt
from trainer_core.train.loop import fit


def _write_dataset(folder, skeleton, clips):
    folder.mkdir(parents=True)
    skeleton.to_files(folder)
    for clip in clips:
        save_npz(clip, folder / f"{clip.name}.npz")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny model trained on the bundled mocap, and a folder holding only its validation clips."""
    from tests.conftest import tiny_overrides
    from trainer_core.config_load import config_from_dict, load_config

    root = tmp_path_factory.mktemp("eval")
    cfg = config_from_dict({**load_config().to_dict(), **tiny_overrides(epochs=2)}, "tiny test config")
    summary = fit(cfg, root / "run", log=lambda _: None)
    bundled = load_dataset(None)
    val_names = summary["data"]["val_clips"]
    val = _write_dataset(root / "val", bundled.skeleton, [c for c in bundled.clips if c.name in val_names])
    return {"out": root / "run", "summary": summary, "val": val, "root": root, "bundled": bundled}


def _in_training_metrics(out, epoch):
    teacher = json.loads((out / "metrics" / f"teacher_ep{epoch:03d}.json").read_text())
    valfree = json.loads((out / "metrics" / f"valfree_ep{epoch:03d}.json").read_text())
    return {**teacher, **valfree}


def test_evaluating_the_validation_clips_gives_the_in_training_numbers(run):
    best = run["summary"]["best"]["epoch"]
    logged = _in_training_metrics(run["out"], best)
    result = evaluate_checkpoint(run["out"] / "best_model.pt", run["val"])
    overall = result["overall"]
    assert result["epoch"] == best and result["horizon"] == 8  # the config's eval_freerun_horizon
    assert sorted(result["clips"]) == sorted(run["summary"]["data"]["val_clips"])
    keys = [k for k in overall["model"] if k in logged]
    assert {"GeoDeg", "YawAbsDeg", "RootVelMAE", "FreeRun/GeoDeg", "FreeRun/RootVelMAE"} <= set(keys)
    for k in keys:
        assert overall["model"][k] == pytest.approx(logged[k], rel=1e-5, abs=1e-7), k
    base = overall["baselines"]["copy-last-frame"]
    for k in ("GeoDeg", "FreeRun/GeoDeg", "RootVelMAE"):
        assert base[k] == pytest.approx(run["summary"]["baseline"][k], rel=1e-5), k
        assert overall["ratio"]["copy-last-frame"][k] == pytest.approx(overall["model"][k] / base[k], rel=1e-9)


def test_overall_numbers_are_the_step_weighted_mean_of_the_clips(run):
    result = evaluate_checkpoint(run["out"] / "best_model.pt", run["val"])
    clips, overall = list(result["clips"].values()), result["overall"]
    assert sum(c["teacher_steps"] for c in clips) == overall["teacher_steps"] > 0
    assert sum(c["freerun_windows"] for c in clips) == overall["freerun_windows"] > 0
    for key, weight in (("GeoDeg", "teacher_steps"), ("FreeRun/GeoDeg", "freerun_windows")):
        for who in ("model", "copy-last-frame"):
            def value(e, key=key, who=who):
                return e["model"][key] if who == "model" else e["baselines"][who][key]

            mean = sum(value(c) * c[weight] for c in clips) / sum(c[weight] for c in clips)
            assert value(overall) == pytest.approx(mean, rel=1e-4), (key, who)
    # clips differ from each other: the per-clip numbers are not copies of the overall ones
    assert len({round(c["model"]["GeoDeg"], 4) for c in clips}) == len(clips)


def test_summary_and_eval_score_locomotion_and_in_place_clips_on_their_own(run):
    """Held-out styles hold walking and standing clips: each motion group is scored alone, by the best
    model, in summary.json and in ``eval``, and the groups' numbers are the parts of the pooled ones."""
    groups = run["summary"]["groups"]["val"]
    val = run["summary"]["data"]["val_clips"]
    assert set(groups) == {"locomotion", "in-place"}
    assert sorted(groups["locomotion"]["clips"] + groups["in-place"]["clips"]) == sorted(val)
    assert all(n.split("_")[1] in ("bow", "bye", "byebye", "guide") for n in groups["in-place"]["clips"])
    result = evaluate_checkpoint(run["out"] / "best_model.pt", run["val"])
    for g, e in groups.items():
        for k in ("GeoDeg", "FreeRun/GeoDeg"):
            assert result["groups"][g]["model"][k] == pytest.approx(e["model"][k], rel=1e-5), (g, k)
            base = result["groups"][g]["baselines"]["copy-last-frame"][k]
            assert base == pytest.approx(e["baselines"]["copy-last-frame"][k], rel=1e-5), (g, k)
    # standing is easier to copy than walking: the groups differ, and the pooled number lies between them
    loco, still = (result["groups"][g]["baselines"]["copy-last-frame"]["GeoDeg"] for g in ("locomotion", "in-place"))
    pooled = result["overall"]["baselines"]["copy-last-frame"]["GeoDeg"]
    assert still < pooled < loco
    steps = {g: result["groups"][g]["teacher_steps"] for g in groups}
    assert sum(steps.values()) == result["overall"]["teacher_steps"]


def _without_last_joint(skeleton: Skeleton) -> Skeleton:
    drop = skeleton.bones[-1]
    return Skeleton(
        bones=skeleton.bones[:-1],
        parents=skeleton.parents[:-1],
        offsets=skeleton.offsets[:-1],
        feet={k: tuple(b for b in v if b != drop) for k, v in skeleton.feet.items()},
        groups={k: tuple(b for b in v if b != drop) for k, v in skeleton.groups.items()},
    )


def test_a_skeleton_with_a_joint_less_is_refused_also_by_checkpoints_without_bone_names(run, tmp_path):
    bundled = run["bundled"]
    small = _without_last_joint(bundled.skeleton)
    clips = [replace(c, rot6d=c.rot6d[:, :-1], angvel=c.angvel[:, :-1]) for c in bundled.clips[:2]]
    folder = _write_dataset(tmp_path / "small", small, clips)
    with pytest.raises(DataError, match=f"ends after {small.n_joints} joints, but the model's joint "
                                        f"{small.n_joints} is `{bundled.skeleton.bones[-1]}`"):  # fmt: skip
        evaluate_checkpoint(run["out"] / "best_model.pt", folder)
    old = ckpt.load(run["out"] / "best_model.pt")
    del old["skeleton_bones"]  # a checkpoint written before the bone names were stored
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(DataError, match=f"has {small.n_joints} joints, but the model in .* was trained on "
                                        f"{bundled.skeleton.n_joints}"):  # fmt: skip
        evaluate_checkpoint(tmp_path / "old.pt", folder)
    same = evaluate_checkpoint(tmp_path / "old.pt", run["val"])  # the right skeleton still evaluates
    assert same["overall"]["model"]["GeoDeg"] > 0


# --- the command ------------------------------------------------------------------------------------


def test_motiontune_eval_writes_per_clip_and_overall_numbers_beside_the_baseline(run, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli("eval", str(run["out"] / "best_model.pt"), "--data", str(run["val"]), "--horizon", "6",
                   "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["horizon"] == 6
    names = run["summary"]["data"]["val_clips"]
    assert sorted(result["clips"]) == sorted(names)
    for entry in (result["overall"], *result["clips"].values()):
        model, base = entry["model"], entry["baselines"]["copy-last-frame"]
        for k in ("GeoDeg", "FreeRun/GeoDeg", "YawAbsDeg", "FreeRun/RootVelMAE"):
            assert model[k] > 0 and base[k] > 0
            assert entry["ratio"]["copy-last-frame"][k] == pytest.approx(model[k] / base[k])
        assert entry["freerun_frames"] == 6 * entry["freerun_windows"]
    table = proc.stdout
    assert "copy-last-frame" in table and all(n in table for n in names)
    geo = next(ln for ln in table.splitlines() if ln.startswith("FreeRun/GeoDeg "))
    assert f"{result['overall']['model']['FreeRun/GeoDeg']:.3f}" in geo


def _eval_fails(tmp_path, *args):
    out = tmp_path / "eval.json"
    proc = run_cli("eval", *args, "--out", str(out))
    assert not out.exists(), "a failed evaluation must write nothing"
    return proc


def test_a_dataset_of_another_skeleton(run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run["val"], other)
    hier = json.loads((other / HIERARCHY_FILE).read_text())
    renamed = hier["bones"][13]
    text = (other / HIERARCHY_FILE).read_text().replace(f'"{renamed}"', '"LeftUpLeg"')
    (other / HIERARCHY_FILE).write_text(text)
    proc = _eval_fails(tmp_path, str(run["out"] / "best_model.pt"), "--data", str(other))
    assert_one_line_error(proc, str(other / HIERARCHY_FILE), "joint 13 is `LeftUpLeg`", f"`{renamed}` there")


def test_a_folder_with_no_clips(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for p in run["val"].glob("*.json"):
        shutil.copy(p, empty)
    proc = _eval_fails(tmp_path, str(run["out"] / "best_model.pt"), "--data", str(empty))
    assert_one_line_error(proc, str(empty), "holds no .npz clips")


def test_a_horizon_below_one(run, tmp_path):
    proc = _eval_fails(tmp_path, str(run["out"] / "best_model.pt"), "--data", str(run["val"]), "--horizon", "0")
    assert_one_line_error(proc, "--horizon is 0, but must be >= 1")


def test_clips_all_shorter_than_the_horizon(run, tmp_path):
    proc = _eval_fails(tmp_path, str(run["out"] / "best_model.pt"), "--data", str(run["val"]), "--horizon", "5000")
    assert_one_line_error(proc, str(run["val"]), "no clip holds a full free-run window of 5000 frames",
                          "smaller --horizon")  # fmt: skip


def test_an_unreadable_checkpoint(run, tmp_path):
    bad = tmp_path / "best_model.pt"
    bad.write_bytes(b"not a checkpoint at all")
    proc = _eval_fails(tmp_path, str(bad), "--data", str(run["val"]))
    assert_one_line_error(proc, str(bad), "not a readable checkpoint")


def _default_runs():
    """The default runs in this checkout's results/runs (README set-up command 1 makes one, as CI does)."""
    root = Path(__file__).resolve().parents[2] / "results" / "runs"
    runs = [p.parent for p in root.glob("exp_phase_mpl-*/summary.json") if (p.parent / "best_model.pt").exists()]
    return sorted(runs, key=lambda p: p.stat().st_mtime)


@pytest.mark.skipif(not _default_runs(), reason="no default run here: README set-up command 1 (`motiontune train`)")
def test_the_default_runs_best_model_scores_its_held_out_styles_as_in_training(tmp_path):
    """The real default run's ``best_model.pt`` on a folder of only the clips it never trained on (the held-out
    styles) gives back the numbers its own training logged for that epoch."""
    out = _default_runs()[-1]
    summary = json.loads((out / "summary.json").read_text())
    held_out = summary["data"]["val_clips"]
    bundled = load_dataset(summary["data"]["folder"])
    assert not set(held_out) & set(summary["data"]["train_clips"])
    val = _write_dataset(tmp_path / "held_out", bundled.skeleton, [c for c in bundled.clips if c.name in held_out])
    result = evaluate_checkpoint(out / "best_model.pt", val)
    logged = _in_training_metrics(out, summary["best"]["epoch"])
    assert sorted(result["clips"]) == sorted(held_out)
    for key in ("GeoDeg", "FreeRun/GeoDeg", "YawAbsDeg", "FreeRun/RootVelMAE"):
        assert result["overall"]["model"][key] == pytest.approx(logged[key], rel=1e-5, abs=1e-7), key
    base = result["overall"]["baselines"]["copy-last-frame"]
    assert result["overall"]["model"]["FreeRun/GeoDeg"] < base["FreeRun/GeoDeg"]
