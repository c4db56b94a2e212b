"""Encoder pre-training: best_encoder.pt, loading it with --encoder, and the errors when it does not fit."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from tests.conftest import run_cli, tiny_overrides
from trainer_core.config_load import load_config
from trainer_core.data.splits import check_same_fps, min_eval_frames, split_dataset
from trainer_core.train.pretrain import ENCODER_NAME, load_encoder, pretrain
from trainer_core.train.setup import arch_for, setup


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A pre-trained encoder of the tiny test config's size (hidden 32, 1 layer), 2 short epochs."""
    out = tmp_path_factory.mktemp("enc")
    summary = pretrain(None, out, epochs=2, batch=512, lr=2e-3, hidden_dim=32, num_layers=1, log=lambda _: None)
    return out / ENCODER_NAME, summary


def test_pretrain_writes_the_encoder_with_arch_and_normalizer(encoder):
    path, summary = encoder
    state = torch.load(path, weights_only=True)
    assert state["kind"] == "motion_encoder" and state["arch"]["hidden_dim"] == 32 and state["arch"]["num_layers"] == 1
    assert {"features", "cond"} <= set(state["normalizer"]) and len(state["skeleton_bones"]) == state["arch"][
        "n_joints"
    ]
    h = summary["history"]
    assert len(h) == 2 and h[1]["train_loss"] < h[0]["train_loss"]  # the objective is learned
    assert summary["best_val_loss"] == min(r["val_loss"] for r in h) == state["val_loss"]
    assert json.loads(path.with_suffix(".json").read_text())["epoch"] == state["epoch"]


def test_train_with_encoder_starts_from_its_weights(encoder, tiny_config):
    path, _ = encoder
    s = setup(tiny_config(encoder=str(path)))
    state = torch.load(path, weights_only=True)
    for k, v in state["encoder_state_dict"].items():
        assert torch.equal(s.model.encoder.state_dict()[k], v), k
    assert s.norm.to_dict() == state["normalizer"]  # the normalizer it was trained under
    fresh = setup(tiny_config())
    assert not torch.equal(fresh.model.encoder.net[0].weight, s.model.encoder.net[0].weight)


def _train_tiny(tmp_path, *extra):
    cfg = tmp_path / "cfg.json"
    raw = load_config().to_dict()
    raw.update(tiny_overrides(epochs=1))
    cfg.write_text(json.dumps(raw))
    out = tmp_path / "out"
    proc = run_cli("train", "--config", str(cfg), "--out", str(out), *extra)
    return proc, out


def _one_line(proc, *fragments):
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "warning" not in ln]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_encoder_of_another_arch_is_one_line(encoder, tmp_path):
    path, _ = encoder
    proc, out = _train_tiny(tmp_path, "--encoder", str(path), "--set", "hidden_dim=64")
    _one_line(proc, str(path), "hidden_dim=32", "hidden_dim=64", "--set hidden_dim=32")
    assert not out.exists()


def test_encoder_of_another_skeleton_is_one_line(encoder, tmp_path):
    path, _ = encoder
    state = torch.load(path, weights_only=True)
    state["skeleton_bones"][3] = "Tail"
    other = tmp_path / "other.pt"
    torch.save(state, other)
    proc, out = _train_tiny(tmp_path, "--encoder", str(other))
    _one_line(proc, str(other), "another skeleton", "joint 3", "`Tail`")
    assert not out.exists()


def test_pretrain_bad_arguments_are_one_line_and_write_nothing(tmp_path):
    proc = run_cli("pretrain", "--out", str(tmp_path / "enc"), "--epochs", "0", "--lr", "-1")
    _one_line(proc, "--epochs is 0", "--lr is -1")
    assert not (tmp_path / "enc").exists()


# --- the encoder's training clips against the run's validation and test clips -----------------------------

NORMAL_TEST = 'test_split={"group": "style", "values": ["normal"]}'


def _tiny_config_file(path, **extra):
    raw = load_config().to_dict()
    raw.update(tiny_overrides(epochs=1, **extra))
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="module")
def hash_encoder(tmp_path_factory):
    """An encoder pre-trained through the CLI with a run's config: val_split "hash", test_split style normal."""
    root = tmp_path_factory.mktemp("hash_enc")
    cfg = _tiny_config_file(root / "run.json", val_split="hash")
    out = root / "enc"
    proc = run_cli("pretrain", "--config", str(cfg), "--set", NORMAL_TEST, "--out", str(out), "--epochs", "1",
                   "--batch", "1024")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return cfg, out / ENCODER_NAME, proc.stdout


def test_pretrain_with_a_config_trains_only_on_its_training_clips(hash_encoder, bundled):
    cfg, path, stdout = hash_encoder
    state = torch.load(path, weights_only=True)
    assert state["arch"]["hidden_dim"] == 32 and state["arch"]["num_layers"] == 1  # the config's model
    assert state["data_fingerprint"] == bundled.fingerprint
    trained = set(state["train_clips"])
    # 165 clips: test_split holds out the 11 "normal" ones, the hash split 31 of the other 154 (ceil(0.2 x 154))
    assert len(trained) == 123 and len(state["val_clips"]) == 31
    assert not any("_normal_" in n for n in trained) and not trained & set(state["val_clips"])
    assert trained | set(state["val_clips"]) == {c.name for c in bundled.clips if "_normal_" not in c.name}
    pairs = sum(c.n_frames - 1 for c in bundled.clips if c.name in trained)
    assert f": {pairs} train / " in stdout  # it trained on exactly those clips' frame pairs
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["train_clips"] == state["train_clips"] and sidecar["data_fingerprint"] == bundled.fingerprint


@pytest.mark.parametrize(
    ("sets", "fragments"),
    [
        (['val_split="hash"'], ["27 of the run's 33 validation clips", "dataset-1_bow_chimpira_001"]),
        (['val_split={"group": "style", "values": ["normal", "happy"]}'],
         ["22 of the run's 22 validation clips", "dataset-1_bow_happy_001"]),
        ([NORMAL_TEST], ["11 of the run's 11 test clips", "dataset-1_bow_normal_001"]),
    ],
    ids=["hash", "style", "test_split"],
)  # fmt: skip
def test_encoder_that_trained_on_the_runs_eval_clips_is_refused(encoder, tmp_path, sets, fragments):
    """The packaged split's encoder trained on 132 clips (styles childish, giant, proud held out)."""
    path, _ = encoder
    extra = [x for s in sets for x in ("--set", s)]
    proc, out = _train_tiny(tmp_path, "--encoder", str(path), *extra)
    _one_line(proc, str(path), *fragments, "pretrain with the run's --config")
    assert not out.exists()


def test_encoder_pretrained_with_the_runs_config_is_accepted(hash_encoder, tmp_path):
    cfg, path, _ = hash_encoder
    out = tmp_path / "out"
    proc = run_cli("train", "--config", str(cfg), "--set", NORMAL_TEST, "--out", str(out), "--encoder", str(path))
    assert proc.returncode == 0, proc.stderr
    assert (out / "best_model.pt").is_file()


def test_encoder_without_recorded_clips_is_refused(encoder, tmp_path):
    """An encoder written before pretrain recorded its clips may have trained on any of them."""
    path, _ = encoder
    state = torch.load(path, weights_only=True)
    for key in ("train_clips", "val_clips", "data_fingerprint"):
        state.pop(key, None)
    old = tmp_path / "old.pt"
    torch.save(state, old)
    proc, out = _train_tiny(tmp_path, "--encoder", str(old))
    _one_line(proc, str(old), "does not record the clips it trained on", "re-run `motiontune pretrain --config")
    assert not out.exists()


def test_encoder_of_another_dataset_version_warns(encoder, bundled, tiny_config, tmp_path):
    """Clips are compared by name; a fingerprint that differs from the run's dataset says so once."""
    path, _ = encoder
    cfg = tiny_config()
    fps = check_same_fps(bundled.clips)
    splits = split_dataset(bundled.clips, cfg.data.val_split, cfg.data.val_fraction, None, min_eval_frames(cfg, fps))
    arch = arch_for(cfg, bundled.skeleton.n_joints)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_encoder(path, arch, bundled.skeleton, splits, bundled.fingerprint)  # same dataset: silent
    state = torch.load(path, weights_only=True)
    state["data_fingerprint"] = "0" * 64
    other = tmp_path / "other.pt"
    torch.save(state, other)
    with pytest.warns(UserWarning, match="another dataset .fingerprint 000000000000 vs"):
        load_encoder(other, arch, bundled.skeleton, splits, bundled.fingerprint)
