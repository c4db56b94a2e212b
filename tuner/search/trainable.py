"""The Ray Tune trainable: a plain function around ``trainer_core.train.loop.fit``.

Tune's ``config`` holds the params the searcher sampled; the base config and the
space come bound with ``tune.with_parameters``. The typed trainer config is
built once, here, and unknown params raise. Each epoch is reported with
``tune.report(metrics, checkpoint=...)``; a restored trial continues from
``tune.get_checkpoint()``. A trial whose loss turns NaN/inf stops itself and
reports ``diverged=1`` with the reason; the sweep goes on.

Long validation. ``fit`` computes the ``FreeRun/long/*`` metrics only on some
epochs (``eval_long_every``); every report carries the most recent values
(``EpochResult.long``, carried forward, resumed trials included) and
``FreeRun/long/epoch``, the epoch they come from, so a scheduler or searcher on
a long metric finds it in every result, as Tune requires. Before the first long
validation they are NaN and ``FreeRun/long/epoch`` is 0; with ``eval_long_every``
0 no report holds them.

Where checkpoints live. The trial's working directory is synced to storage as
artifacts (``SyncConfig(sync_artifacts=True)``), and that sync copies new files
but never deletes: every epoch checkpoint the trainer once wrote there would
stay in storage. So each epoch checkpoint is moved out of ``run/`` as soon as
the trainer writes it and becomes Tune's checkpoint of that epoch, the resume
path, of which Tune keeps the newest ``TUNE_CHECKPOINTS_KEPT``. ``run/`` keeps
``best_model.pt`` (what export and the verification read), the metrics and
``summary.json``: per trial, storage holds at most ``TUNE_CHECKPOINTS_KEPT`` + 1
model files, whatever the epoch count. A trial resumed in a fresh working
directory (a new driver, another node) first fetches ``run/`` back from storage.
"""

from __future__ import annotations

import dataclasses
import math
import os
import posixpath
import shutil
import time
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray
import torch
from ray import tune

from search_spaces.mapping import params_to_config
from search_spaces.spec import space_from_dict
from trainer_core.config import TrainConfig
from trainer_core.config_load import config_from_dict
from trainer_core.errors import DivergedError
from trainer_core.train import checkpoint as ckpt
from trainer_core.train.long_eval import EPOCH_KEY, METRICS
from trainer_core.train.loop import EpochResult, fit
from tuner.search.recorder import replay_finished

RUN_DIR = "run"  # the trainer's own output inside each trial's directory
CKPT_NAME = "checkpoint.pt"  # the epoch checkpoint inside Tune's checkpoint_NNNNNN/ (+ its .json sidecar)
# Tune's checkpoints kept per trial, newest first: the last one is what a trial resumes from; the one
# before it survives a driver killed between deleting it and saving the experiment state that names the new one.
# The best epoch needs no Tune checkpoint: the trainer keeps it as run/best_model.pt.
TUNE_CHECKPOINTS_KEPT = 2


def checkpoint_config() -> tune.CheckpointConfig:
    """Tune's checkpoint keeping for search and verification trials: the newest ``TUNE_CHECKPOINTS_KEPT``."""
    return tune.CheckpointConfig(num_to_keep=TUNE_CHECKPOINTS_KEPT)


def take_checkpoint(path: Path, scratch: Path) -> Path:
    """Move an epoch checkpoint and its JSON sidecar out of the synced trial folder into a new folder in ``scratch``.

    Returns the checkpoint's new path, ``scratch/<name>/checkpoint.pt``, whose folder is what Tune persists.
    """
    folder = scratch / path.stem
    folder.mkdir()
    shutil.move(path, folder / CKPT_NAME)
    if path.with_suffix(".json").exists():
        shutil.move(path.with_suffix(".json"), (folder / CKPT_NAME).with_suffix(".json"))
    return folder / CKPT_NAME


def checkpoint_scratch() -> Path:
    """An empty folder for the trial's epoch checkpoints on their way to Tune, outside the synced working directory.

    It sits in Ray's session folder beside the trial working directories (``<session>/.../<experiment>/
    motiontune_scratch/<trial>``), so one that a killed or stopped trial leaves behind goes where Ray's own
    temp files go, never into /tmp at large; a restarted trial empties its own first.
    """
    working = Path(tune.get_context().get_storage().trial_working_directory)
    scratch = working.parent.parent / "motiontune_scratch" / working.name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    return scratch


def restore_trial_files(trial_dir: Path) -> list[str]:
    """Fetch the trial's ``run/`` and ``train.log`` from storage into a fresh working directory ``trial_dir``.

    A trial resumed by a new driver (or on another node) starts in an empty working directory, but its
    ``best_model.pt`` and the metrics of the epochs before its checkpoint are on storage only; without them
    the resumed run would upload histories that start at the resumed epoch over the complete ones, and
    could not score its best model at the end. Returns the paths fetched, relative to the trial folder.
    """
    storage = tune.get_context().get_storage()  # Ray's DeveloperAPI: the trial's folder on the storage filesystem
    fs, trial = storage.storage_filesystem, storage.trial_fs_path
    infos = fs.get_file_info(pafs.FileSelector(posixpath.join(trial, RUN_DIR), recursive=True, allow_not_found=True))
    fetched = []
    for info in [*infos, fs.get_file_info(posixpath.join(trial, "train.log"))]:
        rel = posixpath.relpath(info.path, trial)
        if info.type != pafs.FileType.File or posixpath.basename(rel).startswith("checkpoint_epoch_"):
            continue  # epoch checkpoints in run/ come from sweeps before they were kept out of it
        dest = trial_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src, dest.open("wb") as f:
            shutil.copyfileobj(src, f)
        fetched.append(rel)
    return fetched


def trial_device(gpus: float) -> str:
    """The GPU Ray assigned (it sets CUDA_VISIBLE_DEVICES) or the CPU, saying so once when CUDA is missing."""
    if gpus > 0:
        if torch.cuda.is_available():
            return "cuda"
        warnings.warn(f"the trial asked for {gpus:g} GPU but CUDA is not available here; training on CPU", stacklevel=2)
    return "cpu"


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def long_report(cfg: TrainConfig, result: EpochResult) -> dict[str, Any]:
    """The ``FreeRun/long/*`` values every report of a run that validates long carries: the latest (this
    epoch's or carried from the last that computed them), NaN where none yet or undefined, and
    ``FreeRun/long/epoch`` (0: none yet). Empty with ``eval_long_every`` 0."""
    if cfg.freerun.eval_long_every == 0:
        return {}
    latest = {k: (math.nan if v is None else v) for k, v in result.long.items()}
    return {**dict.fromkeys(METRICS, math.nan), EPOCH_KEY: 0, **latest}


def train_trial(config: dict[str, Any], *, base: dict[str, Any], space: dict[str, Any], metric: str, mode: str,
                epochs: int | None = None, finished: Collection[str] = ()) -> None:  # fmt: skip
    """One search trial. ``config``: the sampled params; ``base``: flat base config; ``space``: the space file;
    ``epochs``: the sweep's (``--epochs``: the config is rescaled to it after the params apply; None: the base's);
    ``finished``: the trials the experiment's record holds (a restored search's): one of them that Tune restored as
    unfinished, because it ended after the last state save, reports its recorded result and trains no more."""
    if replay_finished(finished):
        return
    search_space = space_from_dict(space, "experiment space")

    def build(trial_keys: dict[str, Any]) -> TrainConfig:
        base_cfg = config_from_dict({**base, **trial_keys}, "experiment base config")
        return params_to_config(search_space, dict(config), base_cfg, epochs)  # unknown params raise here

    run_trial(build, metric, mode)


def run_trial(
    build: Callable[[dict[str, Any]], TrainConfig],
    metric: str,
    mode: str,
    final_extras: Callable[[Path, dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Train the config ``build(trial_keys)`` returns inside a Tune trial, reporting every epoch.

    ``trial_keys`` are the per-trial settings (device, checkpoint keeping, objective) to merge into the
    flat base config. With ``final_extras``, the last epoch is reported after ``fit`` returns, with
    ``final_extras(run_dir, summary)`` merged in (metrics only known at the end of a run).
    """
    resources = tune.get_context().get_trial_resources().required_resources
    cpus, gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
    torch.set_num_threads(max(1, int(cpus)))
    device = trial_device(gpus)
    # Per trial: the device Ray gave it, one epoch checkpoint at a time (it leaves run/ at once, see the
    # module's docstring), and best_model.pt chosen by the sweep's objective.
    cfg = build({"device": device, "keep_checkpoints": 1, "out": None, "objective": metric, "objective_mode": mode})

    node = ray.get_runtime_context().get_node_id()
    node_ip = ray.util.get_node_ip_address()
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    where = {
        "node": node,
        "node_ip": node_ip,
        "device": device + (f" (GPU {','.join(gpu_ids)})" if gpu_ids else ""),
        "trial_start": time.time(),  # float seconds, finer than Tune's integer timestamp
    }

    out = Path(os.getcwd()) / RUN_DIR
    state = None
    restored = tune.get_checkpoint()
    fetched: list[str] = []
    if restored is not None:
        with restored.as_directory() as d:
            state = ckpt.load(Path(d) / CKPT_NAME)
        if not out.exists():
            fetched = restore_trial_files(out.parent)
    elif out.exists():
        shutil.rmtree(out)  # a restarted trial with no checkpoint starts over
    log_file = (out.parent / "train.log").open("a")
    print(f"trial on node {node_ip} ({node}), device {where['device']}, {cpus:g} CPU", file=log_file, flush=True)
    if restored is not None:
        print(f"resumed from Tune's checkpoint of epoch {state['epoch']}" + (
            f"; {len(fetched)} files fetched from the trial's storage" if fetched else ""), file=log_file, flush=True)
    held: list[EpochResult] = []  # the last epoch, when its report waits for final_extras
    scratch = checkpoint_scratch()

    def report(result: EpochResult, extra: dict[str, Any] | None = None) -> None:
        metrics = {**_scalar_metrics(result.metrics), **long_report(cfg, result), **(extra or {}), **where,
                   "diverged": 0, "report_time": time.time()}  # fmt: skip
        if result.checkpoint is None:
            tune.report(metrics)
            return
        try:  # Tune copies the folder into the trial's checkpoint_NNNNNN/
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(result.checkpoint.parent))
        finally:
            shutil.rmtree(result.checkpoint.parent, ignore_errors=True)

    def on_epoch(result: EpochResult) -> None:
        if result.checkpoint is not None:
            result = dataclasses.replace(result, checkpoint=take_checkpoint(result.checkpoint, scratch))
        if final_extras is not None and result.epoch == cfg.optim.epochs:
            held.append(result)
        else:
            report(result)

    try:
        summary = fit(cfg, out, resume=state, on_epoch=on_epoch,
                      log=lambda line: print(line, file=log_file, flush=True))  # fmt: skip
        if held:
            report(held[0], _scalar_metrics(final_extras(out, summary)))
    except DivergedError as e:
        tune.report({metric: math.nan, **where, "epoch": e.epoch, "diverged": 1, "diverged_reason": e.reason,
                     "report_time": time.time()})  # fmt: skip
    finally:
        log_file.close()
        shutil.rmtree(scratch, ignore_errors=True)
