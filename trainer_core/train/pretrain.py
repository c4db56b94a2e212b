"""Pre-training the MotionEncoder alone (the guide's ``pretrain_mpl_min.py``), and loading it into a run.

Objective, self-supervised on single frames of the training split: from the
latent ``z = E(x_t)`` of normalized frame features ``x_t (..., D)``, two linear
heads reconstruct the frame (``x_t``) and predict the next frame's features
(``x_{t+1}``); the loss is the sum of both mean squared errors. The encoder is
the model's own ``MotionEncoder`` (same ``d_in``, ``hidden_dim``,
``num_layers``), so its weights drop into ``MotionModel.encoder``.

The clips are split exactly as ``train`` splits them with the same config
(``--config``/``--set``; default the packaged one), and only the training
clips are trained on: the run's validation and test clips stay unseen.
``best_encoder.pt`` (lowest validation loss) holds the encoder's weights, its
arch, the normalizer it was trained under, the skeleton's joint names, the
dataset's fingerprint and the names of the clips it trained on.
``load_encoder`` refuses an encoder that trained on any validation or test clip
of the run it is loaded into, or that does not record its clips.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer_core.config_load import load_config
from trainer_core.data.datasets import load_dataset
from trainer_core.data.device_data import build_split, fit_normalizer
from trainer_core.data.features import frame_layout
from trainer_core.data.skeleton import Skeleton, first_bone_mismatch
from trainer_core.data.splits import Splits, split_for
from trainer_core.device import check_device, resolve_device
from trainer_core.errors import CheckpointError, ConfigError, raise_all
from trainer_core.io_utils import atomic_write, atomic_write_json, check_out_folder
from trainer_core.model.model import Arch, MotionEncoder
from trainer_core.train.checkpoint import read_file
from trainer_core.train.pretrain_defaults import PRETRAIN_BATCH, PRETRAIN_EPOCHS, PRETRAIN_LR

ENCODER_NAME = "best_encoder.pt"
ENCODER_KIND = "motion_encoder"
ENCODER_FORMAT = 2  # 2: records `data_fingerprint`, `train_clips` and `val_clips`
NAMES_SHOWN = 3  # clip names an error message shows


class PretrainNet(nn.Module):
    """The MotionEncoder with a reconstruction head and a next-frame head: ``(..., D) -> 2 x (..., D)``."""

    def __init__(self, d_in: int, hidden: int, num_layers: int):
        super().__init__()
        self.encoder = MotionEncoder(d_in, hidden, num_layers)
        self.recon = nn.Linear(hidden, d_in)
        self.next = nn.Linear(hidden, d_in)

    def loss(self, x: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        return (self.recon(z) - x).square().mean() + (self.next(z) - x_next).square().mean()


def _pairs(split: Any) -> torch.Tensor:
    """Indices ``t`` of every frame with a next frame in its clip."""
    idx = torch.arange(split.n_frames, device=split.clip_end.device)
    return idx[idx + 1 < split.clip_end]


def _check_args(epochs: int, batch: int, lr: float, hidden_dim: int | None = None,
                num_layers: int | None = None) -> None:  # fmt: skip
    """The flags' own bounds, named as flags (not as the config keys they set)."""
    problems = []
    if hidden_dim is not None and not 8 <= hidden_dim <= 8192:
        problems.append(f"--hidden-dim is {hidden_dim}, but must be in [8, 8192]")
    if num_layers is not None and not 1 <= num_layers <= 16:
        problems.append(f"--num-layers is {num_layers}, but must be in [1, 16]")
    if not 1 <= epochs <= 100_000:
        problems.append(f"--epochs is {epochs}, but must be in [1, 100000]")
    if not 1 <= batch <= 65_536:
        problems.append(f"--batch is {batch}, but must be in [1, 65536]")
    if not (0 < lr <= 1.0 and math.isfinite(lr)):
        problems.append(f"--lr is {lr}, but must be in (0, 1]")
    raise_all(problems, ConfigError, "pretrain")


def pretrain(
    data: str | None,
    out: Path,
    epochs: int = PRETRAIN_EPOCHS,
    batch: int = PRETRAIN_BATCH,
    lr: float = PRETRAIN_LR,
    hidden_dim: int | None = None,
    num_layers: int | None = None,
    seed: int = 0,
    device: str | None = None,
    log: Callable[[str], None] = print,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the encoder on ``data`` (None: the config's, default the bundled mocap) into ``out/best_encoder.pt``.

    ``config`` (None: the packaged one) and ``overrides`` (``--set`` pairs) give the dataset, the
    split (``val_split``, ``val_fraction``, ``test_split``, ``eval_freerun_horizon``) and the model
    size, as for ``train``; ``hidden_dim``/``num_layers``/``data``/``device`` override them. Train
    on the run's config so the run's validation and test clips stay unseen. Returns a summary."""
    _check_args(epochs, batch, lr, hidden_dim, num_layers)
    if device is not None:
        check_device(device)
    out = Path(out)
    check_out_folder(out)
    if (out / ENCODER_NAME).exists():
        raise ConfigError(f"{out}: already holds {ENCODER_NAME}; choose another --out")
    overrides = dict(overrides or {})
    for key, value in (("data", data), ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
        if value is not None:
            overrides[key] = value
    cfg = load_config(config, overrides)
    dev = resolve_device(device if device is not None else cfg.run.device)
    ds = load_dataset(cfg.data.data)
    splits = split_for(cfg, ds)
    J = ds.skeleton.n_joints
    norm = fit_normalizer(splits.train, J, cfg.data.cond_window_s)
    train = build_split(splits.train, ds.skeleton, norm, 2, cfg.data.cond_window_s, dev)
    val = build_split(splits.val, ds.skeleton, norm, 2, cfg.data.cond_window_s, dev)
    torch.manual_seed(seed)
    d_in = frame_layout(J).dim
    net = PretrainNet(d_in, cfg.model.hidden_dim, cfg.model.num_layers).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.optim.weight_decay)
    tr, va = _pairs(train), _pairs(val)
    gen = torch.Generator(device=dev).manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    log(f"pretraining the MotionEncoder on {dev}: {len(tr)} train / {len(va)} val frame pairs -> {out}")
    history, best, best_epoch = [], math.inf, 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        net.train()
        order = tr[torch.randperm(len(tr), device=dev, generator=gen)]
        total = torch.zeros((), device=dev)
        n = max(1, len(order) // batch)
        for i in range(n):
            t = order[i * batch : (i + 1) * batch]
            loss = net.loss(train.x[t], train.x[t + 1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        net.eval()
        with torch.no_grad():
            val_loss = float(net.loss(val.x[va], val.x[va + 1]))
        row = {"epoch": epoch, "train_loss": float(total / n), "val_loss": val_loss}
        history.append(row)
        if math.isfinite(val_loss) and val_loss < best:
            best, best_epoch = val_loss, epoch
            arch = {"d_in": d_in, "n_joints": J, "hidden_dim": cfg.model.hidden_dim, "num_layers": cfg.model.num_layers}
            state = {
                "format": ENCODER_FORMAT,
                "kind": ENCODER_KIND,
                "encoder_state_dict": net.encoder.state_dict(),
                "arch": arch,
                "normalizer": norm.to_dict(),
                "skeleton_bones": list(ds.skeleton.bones),
                "data_fingerprint": ds.fingerprint,
                "train_clips": [c.name for c in splits.train],
                "val_clips": [c.name for c in splits.val],
                "epoch": epoch,
                "val_loss": val_loss,
            }
            atomic_write(out / ENCODER_NAME, lambda f, st=state: torch.save(st, f))
            atomic_write_json(out / "best_encoder.json", {k: v for k, v in state.items() if k != "encoder_state_dict"})
        log(f"epoch {epoch:>3}/{epochs} train {row['train_loss']:.4f} val {val_loss:.4f} | "
            f"{time.perf_counter() - t0:.1f}s")  # fmt: skip
    summary = {"best_epoch": best_epoch, "best_val_loss": best, "encoder": str(out / ENCODER_NAME), "history": history}
    atomic_write_json(out / "pretrain_summary.json", summary)
    return summary


def load_encoder(path: Path, arch: Arch, skeleton: Skeleton, splits: Splits, fingerprint: str) -> dict[str, Any]:
    """Read ``best_encoder.pt`` for a run of ``arch`` on ``skeleton`` with ``splits`` of the dataset of
    ``fingerprint``; a clear error when it does not fit or trained on a clip the run validates or tests on."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"--encoder {path}: file not found; pass the best_encoder.pt that pretrain wrote")
    state = read_file(path, "encoder file", f"--encoder {path}")
    if not isinstance(state, dict) or state.get("kind") != ENCODER_KIND:
        raise CheckpointError(f"--encoder {path}: not a pre-trained encoder; pass the best_encoder.pt of pretrain")
    have = state["arch"]
    want = {"d_in": arch.d_in, "n_joints": arch.n_joints, "hidden_dim": arch.hidden_dim, "num_layers": arch.num_layers}
    bones = first_bone_mismatch(state.get("skeleton_bones", []), skeleton.bones, str(path))
    if bones is not None or have["n_joints"] != want["n_joints"] or have["d_in"] != want["d_in"]:
        raise CheckpointError(
            f"--encoder {path}: pre-trained on another skeleton ({have['n_joints']} joints"
            f"{'; ' + bones if bones else ''}); pretrain on this dataset's skeleton"
        )
    if (have["hidden_dim"], have["num_layers"]) != (want["hidden_dim"], want["num_layers"]):
        raise CheckpointError(
            f"--encoder {path}: encoder arch is hidden_dim={have['hidden_dim']}, num_layers={have['num_layers']}, "
            f"but the config's model is hidden_dim={want['hidden_dim']}, num_layers={want['num_layers']}; "
            f"set those (--set hidden_dim={have['hidden_dim']} --set num_layers={have['num_layers']}) or pretrain "
            "with --hidden-dim/--num-layers"
        )
    _check_unseen(path, state, splits, fingerprint)
    return state


def _check_unseen(path: Path, state: dict[str, Any], splits: Splits, fingerprint: str) -> None:
    """The encoder's training clips hold none of the run's validation or test clips (compared by name)."""
    fix = "pretrain with the run's --config (and --set) so its validation and test clips stay unseen"
    trained = state.get("train_clips")
    if not isinstance(trained, list):
        raise CheckpointError(
            f"--encoder {path}: does not record the clips it trained on (written by an older pretrain), so it may "
            "have trained on this run's validation or test clips; re-run `motiontune pretrain --config` with the "
            "run's config"
        )
    seen = set(trained)
    leaks, shown = [], []
    for label, clips in (("validation", splits.val), ("test", splits.test)):
        hit = [c.name for c in clips if c.name in seen]
        if hit:
            leaks.append(f"{len(hit)} of the run's {len(clips)} {label} clips")
            shown += hit
    if leaks:
        more = ", ..." if len(shown) > NAMES_SHOWN else ""
        raise CheckpointError(
            f"--encoder {path}: trained on {' and '.join(leaks)} ({', '.join(shown[:NAMES_SHOWN])}{more}), "
            f"so their scores would be optimistic; {fix}"
        )
    if state.get("data_fingerprint") != fingerprint:
        warnings.warn(
            f"--encoder {path}: pre-trained on another dataset (fingerprint {str(state.get('data_fingerprint'))[:12]} "
            f"vs {fingerprint[:12]}); its training clips were checked against this run's by name only",
            stacklevel=3,
        )
