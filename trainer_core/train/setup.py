"""A run's set-up: the dataset, its splits on the device, the normalizer, the model and the optimizer.

``setup`` builds everything a run needs before anything is written, so a bad
dataset, encoder, checkpoint or mirror fails before the run's folder is
touched; ``loop.fit`` trains the ``Setup`` it returns.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer_core.config import TrainConfig
from trainer_core.data.augment import Augmenter
from trainer_core.data.clip import Clip
from trainer_core.data.datasets import Dataset, load_dataset
from trainer_core.data.device_data import Split, build_split, check_fits_device, fit_normalizer
from trainer_core.data.features import COND_LAYOUT, Normalizer, frame_layout
from trainer_core.data.groups import held_poses, legs_held, motion_groups
from trainer_core.data.splits import Splits, check_same_fps, split_for
from trainer_core.device import resolve_device
from trainer_core.errors import CheckpointError, ConfigError, DataError
from trainer_core.model.model import Arch, MotionModel
from trainer_core.model.rollout import Runtime
from trainer_core.split_spec import IN_PLACE
from trainer_core.train.adaptive import AdaptiveLoss
from trainer_core.train.build import WeightAverage, build_model, build_runtime
from trainer_core.train.losses import Kinematics
from trainer_core.train.pretrain import load_encoder
from trainer_core.train.schedules import plan_epoch


@dataclass
class Setup:
    """Everything a run needs, built before anything is written."""

    cfg: TrainConfig
    device: torch.device
    dataset: Dataset
    norm: Normalizer
    train: Split
    val: Split
    kin: Kinematics
    rt: Runtime
    model: MotionModel
    opt: torch.optim.Optimizer
    test: Split | None = None  # evaluated only after the last epoch (and by `motiontune eval`)
    held_out: dict[str, Any] | None = None  # what val_split/test_split held out
    val_baselines: dict[str, dict[str, float]] | None = None  # baseline name -> its validation metrics
    aug: Augmenter | None = None  # the config's augmentation; None: off
    adaptive: AdaptiveLoss | None = None  # the adaptive loss weights (method "none": all 1)
    inplace: torch.Tensor | None = None  # (S,) bool: train.window_starts in in-place clips; only with inplace_share
    ema: WeightAverage | None = None  # the weights' moving average (``ema_decay``); None: off

    @property
    def eval_model(self) -> MotionModel:
        """The model validation scores and checkpoints hold: the moving average, or the trained weights."""
        return self.model if self.ema is None else self.ema.model


def arch_for(cfg: TrainConfig, n_joints: int) -> Arch:
    return Arch(
        d_in=frame_layout(n_joints).dim,
        d_cond=COND_LAYOUT.dim,
        n_joints=n_joints,
        hidden_dim=cfg.model.hidden_dim,
        num_layers=cfg.model.num_layers,
        dropout=cfg.model.dropout,
        phase_bins=cfg.model.phase_bins,
        root_from=cfg.model.root_from,
    )


def training_clips(cfg: TrainConfig, clips: list[Clip], legs: list[int]) -> tuple[list[Clip], dict[str, str]]:
    """The clips the training split is built from, and their motion groups: the training clips, then
    ``hold_s`` seconds of standing still for each one in the ``in-place`` group (``groups.held_poses``)
    and, with ``hold_legs`` and ``legs`` (joint indices) known, a copy of each with the root and legs held
    (``groups.legs_held``). Without ``motion_groups`` (both are then refused by the config's checks) the
    groups are empty."""
    if cfg.data.motion_groups is None:
        return clips, {}
    groups = motion_groups(clips, cfg.data.motion_groups)
    held = held_poses(clips, groups, cfg.data.hold_s) if cfg.data.hold_s > 0 else []
    if cfg.data.hold_legs and legs:
        held += legs_held(clips, groups, legs)
    return [*clips, *held], {**groups, **{c.name: IN_PLACE for c in held}}


def inplace_windows(cfg: TrainConfig, clips: list[Clip], train: Split,
                    groups: dict[str, str] | None = None) -> torch.Tensor | None:  # fmt: skip
    """Which of ``train``'s window starts (built from ``clips``, in order) lie in ``in-place`` clips, for
    ``inplace_share``; None without it. Without ``motion_groups`` it is refused before training; training data
    that is all in one group (no clip in place, or every clip) has no share to set, so it is ignored with a
    warning and the batches draw the windows as the data holds them: the packaged default sets a share, and a
    dataset of walking alone must still train with it."""
    share = cfg.data.inplace_share
    if share is None:
        return None
    if cfg.data.motion_groups is None:
        raise ConfigError(f"`inplace_share` is {share}, but `motion_groups` is null; set it (e.g. \"speed\") "
                          "so clips are grouped, or remove `inplace_share`")  # fmt: skip
    groups = motion_groups(clips, cfg.data.motion_groups) if groups is None else groups
    lengths = torch.tensor([c.n_frames for c in clips], dtype=torch.long)
    begins = (torch.cumsum(lengths, 0) - lengths)[torch.tensor([groups[c.name] == IN_PLACE for c in clips])]
    inplace = torch.isin(train.clip_begin[train.window_starts], begins.to(train.clip_begin.device))
    if bool(inplace.any()) and not bool(inplace.all()):
        return inplace
    which = "no training clip is" if not bool(inplace.any()) else "every training clip is"
    warnings.warn(f"`inplace_share` {share} is ignored: {which} in the `{IN_PLACE}` group of `motion_groups`, so "
                  "batches draw windows as the data holds them (remove `inplace_share` to silence this)",
                  stacklevel=2)  # fmt: skip
    return None


def check_device_memory(device: torch.device, dataset: Dataset, splits: Splits) -> None:
    """On CUDA, refuse (``DataError``, before anything is built) splits that will not fit the device's free
    memory (``device_data.check_fits_device``); the CPU is not checked."""
    if device.type != "cuda":
        return
    free, _ = torch.cuda.mem_get_info(device)
    frames = {name: sum(c.n_frames for c in clips) for name, clips in
              (("train", splits.train), ("val", splits.val), ("test", splits.test)) if clips}  # fmt: skip
    check_fits_device(str(dataset.folder), frames, dataset.skeleton.n_joints, free, str(device))


def _foot_term_used(cfg: TrainConfig) -> bool:
    """Does some epoch train with the early foot term (``w_foot_early`` above 0 within ``foot_early_epochs``)?"""
    last = min(cfg.freerun.foot_early_epochs, cfg.optim.epochs)
    return any(plan_epoch(cfg, e).weights.w_foot_early > 0 for e in range(1, last + 1))


def setup(cfg: TrainConfig, state: dict[str, Any] | None = None) -> Setup:
    """Data, splits on the device, model and optimizer; ``state`` restores a checkpoint."""
    device = resolve_device(cfg.run.device)
    dataset = load_dataset(cfg.data.data)
    if state is not None and state.get("data_fingerprint") not in (None, dataset.fingerprint):
        raise CheckpointError(
            f"{dataset.folder}: the dataset differs from the one the checkpoint trained on (fingerprint "
            f"{dataset.fingerprint[:12]} vs {state['data_fingerprint'][:12]}); resume with the same --data"
        )
    fps = check_same_fps(dataset.clips)
    splits = split_for(cfg, dataset)
    train_clips, val_clips = splits.train, splits.val
    legs = dataset.skeleton.leg_indices()
    if cfg.data.hold_legs and not legs:  # like mirror "auto": a config meant for any skeleton still trains
        warnings.warn(f"{dataset.folder}: `hold_legs` is ignored: the skeleton's legs are unknown (no foot or ankle "
                      "joint found by name); name the feet in FullHierarchy.json `feet`, or set `hold_legs` to "
                      "false to silence this", stacklevel=2)  # fmt: skip
    train_built, groups = training_clips(cfg, train_clips, legs)  # the normalizer below fits the real clips alone
    check_device_memory(device, dataset, dataclasses.replace(splits, train=train_built))
    layout = frame_layout(dataset.skeleton.n_joints)
    arch = arch_for(cfg, dataset.skeleton.n_joints)
    encoder = None
    if state is None and cfg.model.encoder:  # a bad encoder file fails before anything is built
        encoder = load_encoder(Path(cfg.model.encoder), arch, dataset.skeleton, splits, dataset.fingerprint)
    if state is not None:
        norm = Normalizer.from_dict(state["normalizer"], layout, "checkpoint normalizer")
    elif cfg.data.bundle_json:
        norm = Normalizer.load(Path(cfg.data.bundle_json), layout)
    elif encoder is not None:
        norm = Normalizer.from_dict(encoder["normalizer"], layout, f"{cfg.model.encoder} normalizer")
    else:
        norm = fit_normalizer(train_clips, dataset.skeleton.n_joints, cfg.data.cond_window_s)
    train = build_split(train_built, dataset.skeleton, norm, cfg.optim.seq_len, cfg.data.cond_window_s, device)
    inplace = inplace_windows(cfg, train_built, train, groups)
    aug = Augmenter.create(cfg.aug, dataset.skeleton, train, norm, cfg.data.cond_window_s)  # a bad mirror fails here
    val = build_split(val_clips, dataset.skeleton, norm, cfg.optim.seq_len, cfg.data.cond_window_s, device)
    test = None
    if splits.test:
        test = build_split(splits.test, dataset.skeleton, norm, cfg.optim.seq_len, cfg.data.cond_window_s, device)
    if state is not None and state["arch"] != arch.to_dict():
        raise CheckpointError(
            f"checkpoint architecture {state['arch']} does not match the config's {arch.to_dict()}; "
            "resume with the checkpoint's own config"
        )
    torch.manual_seed(cfg.run.seed)
    model = build_model(arch, norm, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, fused=True)
    adaptive = AdaptiveLoss(cfg.adaptive, device)
    if encoder is not None:
        model.encoder.load_state_dict(encoder["encoder_state_dict"])
    if state is not None:  # with ``ema_decay`` the checkpoint's model is the average, the trained weights beside it
        trained = state.get("train_state_dict")
        model.load_state_dict(state["model_state_dict"] if trained is None else trained)
        opt.load_state_dict(state["optimizer_state_dict"])
        if state.get("adaptive_state_dict") is not None:
            adaptive.load_state_dict(state["adaptive_state_dict"])
    ema = None
    if cfg.optim.ema_decay > 0:
        ema = WeightAverage(model, cfg.optim.ema_decay)
        if state is not None and state.get("train_state_dict") is not None:
            ema.load(state["model_state_dict"], int(state["ema_updates"]))
    kin, rt = build_runtime(cfg, dataset.skeleton, norm, fps, device)
    if not kin.feet and _foot_term_used(cfg):
        raise DataError(
            f"`w_foot_early` is on for the first {cfg.freerun.foot_early_epochs} epoch(s), but the skeleton's "
            "left and right feet are not known; name them in FullHierarchy.json `feet` or set `w_foot_early` to 0"
        )
    return Setup(
        cfg, device, dataset, norm, train, val, kin, rt, model, opt, test, splits.held_out,
        aug=aug, adaptive=adaptive, inplace=inplace, ema=ema,
    )  # fmt: skip
