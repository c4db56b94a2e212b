"""Entry points behind the CLI's ``train``, ``eval`` and ``data`` commands (no Ray needed)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from pathlib import Path
from typing import Any

from trainer_core.config import TrainConfig
from trainer_core.config_load import config_from_dict, load_config, parse_set_option, smoke_config
from trainer_core.data.bvh import ImportOptions, read_units
from trainer_core.data.clip import load_clip, save_clip
from trainer_core.data.datasets import dataset_profile, import_bvh_files, load_dataset
from trainer_core.device import check_device
from trainer_core.errors import ConfigError, DataError
from trainer_core.evaluate.offline import evaluate_checkpoint
from trainer_core.io_utils import atomic_write_json, check_out_folder, check_suffix, check_writable
from trainer_core.train import checkpoint as ckpt
from trainer_core.train.loop import fit
from trainer_core.train.pretrain_defaults import PRETRAIN_BATCH, PRETRAIN_EPOCHS, PRETRAIN_LR

RESULTS_ROOT = Path("results")


def default_out(config_path: str | None) -> Path:
    stem = Path(config_path).stem if config_path else "exp_phase_mpl"
    return RESULTS_ROOT / "runs" / f"{stem}-{_dt.datetime.now():%Y%m%d-%H%M%S}"


def resolve_train_config(
    config: str | None,
    sets: list[str] | None = None,
    epochs: int | None = None,
    data: str | None = None,
    device: str | None = None,
    resume_state: dict[str, Any] | None = None,
    resume_path: str | None = None,
    smoke_test: bool = False,
    options: dict[str, Any] | None = None,
) -> TrainConfig:
    """The config a ``train`` call runs: a file (or the checkpoint's), ``--set`` pairs, then CLI flags
    (``options``: config keys from flags such as ``--adaptive-loss-method`` and ``--encoder``)."""
    overrides = dict(parse_set_option(item) for item in sets or [])
    overrides.update({k: v for k, v in (options or {}).items() if v is not None})
    if data is not None:
        overrides["data"] = data
    if device is not None:
        overrides["device"] = device
    if resume_state is not None:
        if config is not None or sets:
            raise ConfigError("--resume takes the config stored in the checkpoint; drop --config and --set")
        cfg = config_from_dict({**resume_state["config"], **overrides}, f"{resume_path} (stored config)")
    elif smoke_test:
        if config is not None:
            raise ConfigError("--smoke-test trains its own tiny config; drop --config")
        cfg = config_from_dict({**smoke_config().to_dict(), **overrides}, "smoke-test config")
    else:
        cfg = load_config(config, overrides)
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs is {epochs}, but must be >= 1")
        cfg = cfg.with_epochs(epochs)
        cfg.validate("--epochs")
    return cfg


def train(
    config: str | None = None,
    data: str | None = None,
    out: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
    sets: list[str] | None = None,
    resume: str | None = None,
    smoke_test: bool = False,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``motiontune train``: one local training run. Returns its summary."""
    state = ckpt.load(Path(resume)) if resume else None
    cfg = resolve_train_config(config, sets, epochs, data, device, state, resume, smoke_test, options)
    if out is not None:
        out_dir = Path(out)
    elif resume:
        out_dir = Path(resume).parent
    elif cfg.run.out:
        out_dir = Path(cfg.run.out)
    else:
        out_dir = default_out(config)
    check_out_folder(out_dir)
    return fit(cfg, out_dir, resume=state)


def pretrain(
    data: str | None,
    out: str,
    epochs: int = PRETRAIN_EPOCHS,
    batch: int = PRETRAIN_BATCH,
    lr: float = PRETRAIN_LR,
    hidden_dim: int | None = None,
    num_layers: int | None = None,
    device: str | None = None,
    config: str | None = None,
    sets: list[str] | None = None,
) -> dict[str, Any]:
    """``motiontune pretrain``: the MotionEncoder alone, self-supervised, into ``out/best_encoder.pt``;
    ``config`` and ``sets`` (``--set`` pairs, as for ``train``) give the dataset, split and model size."""
    from trainer_core.train.pretrain import pretrain as _pretrain

    overrides = dict(parse_set_option(item) for item in sets or [])
    return _pretrain(
        data, Path(out), epochs, batch, lr, hidden_dim, num_layers, device=device, config=config, overrides=overrides
    )


def evaluate(
    checkpoint: str,
    data: str | None,
    horizon: int | None = None,
    out: str | None = None,
    device: str | None = None,
    long_s: float | None = None,
    previews: str | None = None,
) -> dict[str, Any]:
    """``motiontune eval``: a checkpoint's metrics on a dataset folder beside the baselines (see
    ``evaluate.offline.evaluate_checkpoint``; ``long_s``: also the ``FreeRun/long`` metrics); written
    atomically to ``out`` when given; ``previews``: a folder for each clip's free run beside its ground
    truth (``generate.api.clip_previews``). Returns the metrics."""
    if out is not None:  # every output checked before the metrics are computed
        check_suffix(Path(out), (".json",), kind="JSON file")
        check_writable(Path(out))
    if device is not None:
        check_device(device)
    if previews is not None:
        from trainer_core.generate.api import check_previews_folder, clip_previews

        check_previews_folder(Path(previews))
    result = evaluate_checkpoint(checkpoint, data, horizon, device, long_s)
    if out is not None:
        atomic_write_json(Path(out), result)
    if previews is not None:
        clip_previews(checkpoint, data, previews)
    return result


def import_bvh(
    files: list[str],
    out: str,
    scale: float | None = None,
    up: str = "auto",
    root_joint: str | None = None,
    feet: str | None = None,
    fps: float | None = None,
    compact: bool = False,
) -> dict[str, Any]:
    """``motiontune data import-bvh``: BVH files -> a dataset folder. Returns its profile and the units used.

    The first file's units and up axis (read off its body unless given) apply to
    every file, so one set gets one scale. ``import`` in the result says which.
    """
    feet_map = None
    if feet is not None:
        parts = [p.strip() for p in feet.split(",")]
        if len(parts) != 2 or not all(parts):
            raise DataError(f"--feet {feet!r}: must be LEFT,RIGHT joint names, e.g. --feet LeftFoot,RightFoot")
        feet_map = {"L": (parts[0],), "R": (parts[1],)}
    if up not in ("auto", "y", "z"):
        raise DataError(f"--up {up!r}: must be auto, y or z")
    if scale is not None and not 0 < scale < float("inf"):
        raise DataError(f"--scale is {scale}, but must be > 0 (metres per file unit)")
    if fps is not None and not 0 < fps < float("inf"):
        raise DataError(f"--fps is {fps}, but must be > 0 (frames per second to resample to)")
    if not files:
        raise DataError("import-bvh: no BVH files given")
    check_out_folder(Path(out), "--out")
    opts = ImportOptions(scale=scale, up=up, root_joint=root_joint, feet=feet_map, fps=fps)
    units = read_units(Path(files[0]), opts)
    opts = dataclasses.replace(opts, scale=units.scale, up=units.up)
    ds = import_bvh_files([Path(f) for f in files], Path(out), opts, compact=compact)
    return {
        **dataset_profile(ds.clips),
        "import": {
            "scale": units.scale,
            "reason": units.reason,
            "up": units.up,
            "up_from": units.up_from,
            "source_fps": round(units.source_fps, 3),
        },
    }


def convert(src: str, out: str) -> dict[str, Any]:
    """``motiontune data convert``: seed JSON clip <-> NPZ by the files' suffixes."""
    src_p, out_p = Path(src), Path(out)
    if src_p.suffix.lower() == out_p.suffix.lower():
        raise DataError(f"{out}: convert goes between .json and .npz; the output has the input's type")
    if out_p.suffix.lower() not in (".json", ".npz"):
        raise DataError(f"{out}: unknown output type `{out_p.suffix}`; use .npz or .json")
    clip = load_clip(src_p)
    save_clip(clip, out_p)
    return {"frames": clip.n_frames, "joints": clip.n_joints, "fps": clip.fps, "out": str(out_p)}


def profile(folder: str | None) -> dict[str, Any]:
    """``motiontune data profile``: the seed's dataset profile."""
    return dataset_profile(load_dataset(folder).clips)
