"""The guide's advanced trainer features: ``train``'s adaptive-loss and encoder flags, ``pretrain``, ``suggest``."""

from __future__ import annotations

import argparse
from typing import Any

from trainer_core.train.pretrain_defaults import PRETRAIN_BATCH, PRETRAIN_EPOCHS, PRETRAIN_LR
from tuner.cli.common import trainer_api

# flag dest -> config key; each flag also takes the guide's spelling with underscores
_ADAPTIVE = {
    "adaptive_loss_method": (str, "none, gradnorm, uncertainty or dwa (default: the config's, none)"),
    "adaptive_loss_terms": (str, "comma-separated loss terms to scale (default fk_pos,rot_local,rot_delta)"),
    "adaptive_loss_alpha": (float, "GradNorm asymmetry alpha in [0, 10] (default 1.5)"),
    "adaptive_loss_temperature": (float, "DWA temperature T in (0, 100] (default 2.0)"),
}


def add_advanced_train_flags(p: argparse.ArgumentParser) -> None:
    for key, (tp, text) in _ADAPTIVE.items():
        p.add_argument("--" + key.replace("_", "-"), "--" + key, dest=key, type=tp, help=text)
    p.add_argument("--encoder", metavar="PATH", help="best_encoder.pt from `motiontune pretrain` to start the encoder")


def advanced_options(a: argparse.Namespace) -> dict[str, Any]:
    """The config keys the advanced flags set (None: not given)."""
    return {**{k: getattr(a, k) for k in _ADAPTIVE}, "encoder": a.encoder}


def add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pre-train the MotionEncoder alone (self-supervised) into best_encoder.pt",
        description="Pre-train the MotionEncoder on single frames: reconstruct the frame and predict the next "
        "frame's features from its latent, on the training clips of the config's split only. "
        "`train --encoder OUT/best_encoder.pt` with the same --config/--set starts from it.",
    )
    p.add_argument("--config", help="the run's config JSON: its data, split and model size (default: the packaged)")
    p.add_argument(
        "--set", dest="sets", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    p.add_argument("--data", help="dataset folder (default: the config's, bundled mocap)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for best_encoder.pt (+ .json, summary)")
    p.add_argument("--epochs", type=int, default=PRETRAIN_EPOCHS, help=f"epochs (default {PRETRAIN_EPOCHS})")
    p.add_argument("--batch", type=int, default=PRETRAIN_BATCH, help=f"frame pairs per step (default {PRETRAIN_BATCH})")
    p.add_argument("--lr", type=float, default=PRETRAIN_LR, help=f"learning rate (default {PRETRAIN_LR:g})")
    p.add_argument("--hidden-dim", type=int, help="encoder width (default: the config's, packaged 512)")
    p.add_argument("--num-layers", type=int, help="encoder layers (default: the config's, packaged 3)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's, auto)")

    def run(a: argparse.Namespace) -> int:
        r = trainer_api().pretrain(
            a.data, a.out, a.epochs, a.batch, a.lr, a.hidden_dim, a.num_layers, a.device, a.config, a.sets
        )
        print(f"done: best validation loss {r['best_val_loss']:.4f} at epoch {r['best_epoch']} -> {r['encoder']}")
        return 0

    p.set_defaults(func=run)


def add_suggest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "suggest",
        help="raise the knobs a finished run's free-run metrics call for (the guide's --tune)",
        description="Read a run's last-epoch metrics and its copy-last-frame baseline; raise freerun_weight, "
        "freerun_horizon or the latent/core weights where free-run metrics are high; keep the stage rules.",
    )
    p.add_argument("--metrics-root", required=True, metavar="RUN/metrics", help="a finished run's metrics/ folder")
    p.add_argument("--config", required=True, metavar="C.json", help="the config to adjust")
    p.add_argument("--out", required=True, metavar="C2.json", help="where to write the adjusted config")
    p.add_argument("--space", default="default", help="the space whose stage rules the result keeps (default)")

    def run(a: argparse.Namespace) -> int:
        from pathlib import Path

        from search_spaces.spec import load_space
        from search_spaces.suggest import suggest
        from trainer_core.config_load import load_config
        from trainer_core.io_utils import atomic_write_json, check_suffix, check_writable

        check_suffix(Path(a.out), (".json",), kind="config file")
        check_writable(Path(a.out))
        cfg, lines = suggest(Path(a.metrics_root), load_config(a.config), load_space(a.space).rules,
                             where=f"--config {a.config}")  # fmt: skip
        for line in lines:
            print(line)
        atomic_write_json(Path(a.out), cfg.to_dict())
        print(f"written: {a.out}")
        return 0

    p.set_defaults(func=run)
