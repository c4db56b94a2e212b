"""Training on the real mocap: files written, exact resume, learning beats the copy-last-frame baseline."""

from __future__ import annotations

import json

import pytest

from trainer_core.errors import CheckpointError, DivergedError
from trainer_core.train import checkpoint as ckpt
from trainer_core.train.loop import fit

EXPECTED_METRICS = ("GeoDeg", "YawAbsDeg", "RootVelMAE", "FootContact", "loss_group/core", "loss_group/aux",
                    "loss_group/long", "KeyBone/legs_GeoDeg", "KeyBone/arms_AngVelCos")  # fmt: skip


def test_a_run_writes_every_file(tmp_path, tiny_config):
    summary = fit(tiny_config(), tmp_path, log=lambda _: None)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"checkpoint_epoch_1.pt", "checkpoint_epoch_2.pt", "best_model.pt", "summary.json",
            "norm_template.json", "config.json", "metrics"} <= names  # fmt: skip
    assert {"checkpoint_epoch_2.json", "best_model.json"} <= names  # sidecars a person can read
    metrics = tmp_path / "metrics"
    for ep in (1, 2):
        teacher = json.loads((metrics / f"teacher_ep{ep:03d}.json").read_text())
        valfree = json.loads((metrics / f"valfree_ep{ep:03d}.json").read_text())
        assert all(k in teacher for k in EXPECTED_METRICS)
        assert {"FreeRun/GeoDeg", "FreeRun/YawAbsDeg", "FreeRun/RootVelMAE"} <= set(valfree)
        shares = [teacher[f"loss_group/{g}"] for g in ("core", "aux", "long")]
        assert sum(shares) == pytest.approx(1.0, abs=1e-6)
    assert (metrics / "teacher" / "GeoDeg.txt").read_text().splitlines()[1].startswith("2 ")
    assert len((metrics / "valfree" / "GeoDeg.txt").read_text().splitlines()) == 2
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["status"] == "finished" and saved["best"]["epoch"] in (1, 2)
    assert saved["baseline"]["name"] == "copy-last-frame" and "FreeRun/GeoDeg" in saved["baseline"]
    assert summary["objective"] == "FreeRun/GeoDeg"
    state = ckpt.load(tmp_path / "checkpoint_epoch_2.pt")  # weights_only=True
    assert state["epoch"] == 2 and state["config"]["hidden_dim"] == 32 and "optimizer_state_dict" in state


def _history(out, mode="teacher", name="GeoDeg"):
    return (out / "metrics" / mode / f"{name}.txt").read_text().splitlines()


def test_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_config):
    cfg = tiny_config(epochs=4, keep_checkpoints=0, dropout=0.1, tf_end_epoch=3, freerun_weight=0.2)
    full, part = tmp_path / "full", tmp_path / "part"
    fit(cfg, full, log=lambda _: None)
    fit(cfg, part, resume=full / "checkpoint_epoch_2.pt", log=lambda _: None)
    for ep in (3, 4):
        a = json.loads((full / "metrics" / f"teacher_ep{ep:03d}.json").read_text())
        b = json.loads((part / "metrics" / f"teacher_ep{ep:03d}.json").read_text())
        c = json.loads((full / "metrics" / f"valfree_ep{ep:03d}.json").read_text())
        d = json.loads((part / "metrics" / f"valfree_ep{ep:03d}.json").read_text())
        for key in ("GeoDeg", "loss/total", "RootVelMAE"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (ep, key)
        assert c["FreeRun/GeoDeg"] == pytest.approx(d["FreeRun/GeoDeg"], rel=1e-6)


def test_resume_in_place_rewrites_the_later_history(tmp_path, tiny_config):
    cfg = tiny_config(epochs=3, keep_checkpoints=0)
    fit(cfg, tmp_path, log=lambda _: None)
    before = _history(tmp_path)
    fit(cfg, tmp_path, resume=tmp_path / "checkpoint_epoch_1.pt", log=lambda _: None)
    assert _history(tmp_path) == before  # epochs 2-3 replaced by identical values, not appended


def test_a_run_resumed_into_another_folder_after_its_best_epoch_keeps_that_best_model(tmp_path, tiny_config):
    """The best epoch can precede the resume point; the resumed run's folder then gets that best model (the
    summary's per-group metrics are of it). Before, the resumed run ended in "best_model.pt not found"."""
    from trainer_core.train import checkpoint as ckpt

    full, part = tmp_path / "full", tmp_path / "part"
    fit(tiny_config(epochs=1), full, log=lambda _: None)
    state = ckpt.load(full / "checkpoint_epoch_1.pt")
    state["best_metric"] = 0.0  # no later epoch beats it: epoch 1 stays the best
    ckpt.save(state, full / "checkpoint_epoch_1.pt")
    summary = fit(tiny_config(epochs=2), part, resume=full / "checkpoint_epoch_1.pt", log=lambda _: None)
    assert ckpt.load(part / ckpt.BEST_NAME)["epoch"] == 1 and summary["best"]["epoch"] == 1
    assert summary["groups"]["val"]  # the per-group metrics, of the carried best model
    assert not (part / "checkpoint_epoch_1.pt").exists()  # only the best model is carried over


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, tiny_config):
    fit(tiny_config(epochs=1), tmp_path, log=lambda _: None)
    with pytest.raises(CheckpointError, match="already holds a training run"):
        fit(tiny_config(epochs=1), tmp_path, log=lambda _: None)


def test_a_diverging_run_stops_itself(tmp_path, tiny_config):
    with pytest.raises(DivergedError) as e:
        fit(tiny_config(lr=1.0, grad_clip=0.0, weight_decay=0.0, epochs=4, steps_per_epoch=30), tmp_path,
            log=lambda _: None)  # fmt: skip
    assert "loss is" in e.value.reason
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def test_training_on_real_mocap_beats_copying_the_last_frame(tmp_path, tiny_config):
    cfg = tiny_config(
        hidden_dim=128, num_layers=2, epochs=6, steps_per_epoch=25, batch=8, seq_len=40,
        freerun_weight=0.2, freerun_horizon=8, eval_freerun_horizon=18, lr=1e-3, tf_end_epoch=4,
    )  # fmt: skip
    summary = fit(cfg, tmp_path, log=lambda _: None)
    final, base = summary["final"], summary["baseline"]
    assert final["GeoDeg"] < 0.9 * base["GeoDeg"]
    assert final["FreeRun/GeoDeg"] < 0.9 * base["FreeRun/GeoDeg"]
    assert summary["beats_baseline"]["GeoDeg"] and summary["beats_baseline"]["FreeRun/GeoDeg"]
    # Pooled numbers mix walking with standing (whose copy-last error is small); on the walks alone the lead is wide.
    walks = summary["groups"]["val"]["locomotion"]
    for k in ("GeoDeg", "FreeRun/GeoDeg"):
        assert walks["model"][k] < 0.8 * walks["baselines"]["copy-last-frame"][k], k


def test_the_weight_average_is_the_mean_of_the_first_steps_then_an_exponential_one():
    import torch

    from trainer_core.train.build import WeightAverage

    net = torch.nn.Linear(1, 1, bias=False)
    avg = WeightAverage(net, decay=0.6)  # the plain mean while n / (n + 1) < 0.6: the first 2 steps
    seen = []
    for w in (1.0, 4.0, 10.0, 2.0):
        with torch.no_grad():
            net.weight.fill_(w)
        avg.update(net)
        seen.append(avg.model.weight.item())
    assert seen == pytest.approx([1.0, 2.5, 0.6 * 2.5 + 0.4 * 10.0, 0.6 * 5.5 + 0.4 * 2.0])
    assert not avg.model.training and not avg.model.weight.requires_grad


def test_with_ema_decay_validation_and_checkpoints_hold_the_average_and_resume_reproduces_it(tmp_path, tiny_config):
    import torch

    from trainer_core.train.build import model_from_state
    from trainer_core.train.metrics import evaluate
    from trainer_core.train.setup import setup

    same = dict(epochs=4, keep_checkpoints=0, dropout=0.1, tf_end_epoch=3, freerun_weight=0.2, lr=3e-3)
    cfg = tiny_config(**same, ema_decay=0.9)
    full, part, plain = tmp_path / "full", tmp_path / "part", tmp_path / "plain"
    fit(cfg, full, log=lambda _: None)
    fit(tiny_config(**same, ema_decay=0.0), plain, log=lambda _: None)
    fit(cfg, part, resume=full / "checkpoint_epoch_2.pt", log=lambda _: None)
    for ep in (3, 4):
        a, b, c = (json.loads((o / "metrics" / f"teacher_ep{ep:03d}.json").read_text()) for o in (full, part, plain))
        assert a["loss/total"] == pytest.approx(c["loss/total"], rel=1e-6)  # the average does not change training
        for key in ("GeoDeg", "loss/total", "RootVelMAE"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (ep, key)
    state = ckpt.load(full / "checkpoint_epoch_4.pt")
    assert state["ema_updates"] == 4 * 3  # 3 steps an epoch
    differ = [k for k, v in state["model_state_dict"].items() if not torch.equal(v, state["train_state_dict"][k])]
    assert differ  # the average is not the trained weights
    model, _ = model_from_state(state, "ckpt", torch.device("cpu"))  # what eval, generate and export load
    s = setup(cfg)
    got = evaluate(model, s.rt, s.kin, s.val, cfg.freerun.eval_freerun_horizon)
    logged = json.loads((full / "metrics" / "teacher_ep004.json").read_text())
    assert got["GeoDeg"] == pytest.approx(logged["GeoDeg"], rel=1e-5)  # validation scored the average
    model.load_state_dict(state["train_state_dict"])
    trained = evaluate(model, s.rt, s.kin, s.val, cfg.freerun.eval_freerun_horizon)
    assert trained["GeoDeg"] != pytest.approx(logged["GeoDeg"], rel=1e-3)  # not the trained weights
