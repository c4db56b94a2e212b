"""Encoder pre-training: best_encoder.pt, loading it with --encoder, and the errors when it does not fit."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_cli, tiny_overrides
from trainer_core.config_load import load_config
from trainer_core.train.loop import setup
from trainer_core.train.pretrain import ENCODER_NAME, pretrain


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
