"""The Ray Tune trainable: a plain function around ``trainer_core.train.loop.fit``.

Tune's ``config`` holds the params the searcher sampled; the base config and the
space come bound with ``tune.with_parameters``. The typed trainer config is
built once, here, and unknown params raise. Each epoch is reported with
``tune.report(metrics, checkpoint=...)``; a restored trial continues from
``tune.get_checkpoint()``. A trial whose loss turns NaN/inf stops itself and
reports ``diverged=1`` with the reason; the sweep goes on.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from search_spaces.mapping import params_to_config
from search_spaces.spec import space_from_dict
from trainer_core.train import checkpoint as ckpt
from trainer_core.config import TrainConfig
from trainer_core.config_load import config_from_dict
from trainer_core.errors import DivergedError
from trainer_core.train.loop import EpochResult, fit

RUN_DIR = "run"  # the trainer's own output inside each trial's directory
CKPT_NAME = "checkpoint.pt"


def trial_device(gpus: float) -> str:
    """The GPU Ray assigned (it sets CUDA_VISIBLE_DEVICES) or the CPU, saying so once when CUDA is missing."""
    if gpus > 0:
        if torch.cuda.is_available():
            return "cuda"
        warnings.warn(f"the trial asked for {gpus:g} GPU but CUDA is not available here; training on CPU", stacklevel=2)
    return "cpu"


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def train_trial(config: dict[str, Any], *, base: dict[str, Any], space: dict[str, Any], metric: str, mode: str) -> None:
    """One search trial. ``config``: the sampled params; ``base``: flat base config; ``space``: the space file."""
    search_space = space_from_dict(space, "experiment space")

    def build(trial_keys: dict[str, Any]) -> TrainConfig:
        base_cfg = config_from_dict({**base, **trial_keys}, "experiment base config")
        return params_to_config(search_space, dict(config), base_cfg)  # unknown params raise here

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
    # Per trial: the device Ray gave it, only its newest checkpoint kept locally (Tune keeps its own),
    # and best_model.pt chosen by the sweep's objective.
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
    if restored is not None:
        with restored.as_directory() as d:
            state = ckpt.load(Path(d) / CKPT_NAME)
    elif out.exists():
        shutil.rmtree(out)  # a restarted trial with no checkpoint starts over
    log_file = (out.parent / "train.log").open("a")
    print(f"trial on node {node_ip} ({node}), device {where['device']}, {cpus:g} CPU", file=log_file, flush=True)
    held: list[EpochResult] = []  # the last epoch, when its report waits for final_extras

    def report(result: EpochResult, extra: dict[str, Any] | None = None) -> None:
        metrics = {**_scalar_metrics(result.metrics), **(extra or {}), **where, "diverged": 0,
                   "report_time": time.time()}  # fmt: skip
        if result.checkpoint is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy2(result.checkpoint, Path(tmp) / CKPT_NAME)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    def on_epoch(result: EpochResult) -> None:
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
