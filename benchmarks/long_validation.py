"""Cost of the long validation (``FreeRun/long``, ``trainer_core.train.long_eval``) against a training epoch.

The packaged default config on the bundled data, in one process on one device:

1. once per run: ``LongValidation.create`` (starts, held controls, and the copy-last-frame and truth
   baselines' scores, whose nearest-training-pose search is most of it);
2. per free-run epoch (``--epochs``, by default the first epoch of stage 2 and of stage 3, where
   ``eval_long_every`` None validates long): the epoch as ``fit`` runs it (``train_epoch`` and the per-epoch
   ``evaluate``) against that epoch's long validation (``LongValidation.metrics``: one
   ``eval_long_seconds`` rollout from every validation clip, one ``autoregress`` call, and its scores),
   printed as a ratio;
3. the rollout alone (``autoregress`` of every validation clip) on one CPU thread, as the validation runs
   it, and on torch's default thread count.

Run::

    python benchmarks/long_validation.py [--device cpu] [--threads N] [--steps 100] [--epochs 5 11] [--repeat 2]

``--threads N`` sets torch's CPU threads for the whole process (training included; the long validation's
rollout runs on one thread on the CPU whatever it is). On a busy 2-core machine training on one thread is
many times faster than on two, so ``--threads 1`` gives the smaller, fairer epoch to compare against.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from trainer_core.config_load import load_config
from trainer_core.data.groups import motion_groups
from trainer_core.model.rollout import autoregress, cpu_threads
from trainer_core.train.long_eval import LongValidation
from trainer_core.train.loop import train_epoch
from trainer_core.train.metrics import evaluate
from trainer_core.train.schedules import plan_epoch
from trainer_core.train.setup import setup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=None, help="steps_per_epoch (default: the config's)")
    ap.add_argument("--epochs", type=int, nargs="+", default=[5, 11], help="epochs to time (free-run stages)")
    ap.add_argument("--repeat", type=int, default=2, help="long validations timed per epoch (the best is kept)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    over = {"device": args.device, **({"steps_per_epoch": args.steps} if args.steps else {})}
    cfg = load_config(overrides=over)
    s = setup(cfg)
    clips = {c.name: c for c in s.dataset.clips}
    groups = motion_groups([clips[n] for n in s.val.names], cfg.data.motion_groups)
    print(f"device {s.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{len(s.val.names)} val clips, {cfg.freerun.eval_long_seconds:g} s rollouts; "
          f"{s.train.n_frames} training frames (nearest-pose reference)")  # fmt: skip

    t = time.perf_counter()
    val = LongValidation.create(s.val, s.dataset.skeleton, s.train.R, cfg.freerun.eval_long_seconds,
                                cfg.data.cond_window_s, groups)  # fmt: skip
    print(f"once per run (baselines): {time.perf_counter() - t:.2f} s")

    print(f"{'epoch':>5} {'stage':<16} {'fw':>6} {'steps':>5} {'epoch_s':>8} {'long_s':>7} {'long/epoch':>10}")
    ratios = []
    for epoch in args.epochs:
        plan = plan_epoch(cfg, epoch)
        t = time.perf_counter()
        stats = train_epoch(s, epoch)
        evaluate(s.model, s.rt, s.kin, s.val, cfg.freerun.eval_freerun_horizon)
        epoch_s = time.perf_counter() - t
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            val.metrics(s.model, s.rt)
            times.append(time.perf_counter() - t)
        long_s = min(times)
        ratios.append(long_s / epoch_s)
        print(f"{epoch:>5} {plan.stage:<16} {plan.weights.freerun_weight:>6.3f} {stats['steps']:>5} {epoch_s:>8.2f} "
              f"{long_s:>7.2f} {long_s / epoch_s:>9.1%}")  # fmt: skip
    print(f"long validation / epoch: {max(ratios):.1%} at most")

    x0, R0 = s.val.x[val.starts], s.val.R[val.starts]
    s.model.eval()
    for label, n in (("1 thread", 1), ("2 threads", 2)):
        times = []
        for _ in range(args.repeat):
            with cpu_threads(n):
                t = time.perf_counter()
                autoregress(s.model, s.rt, x0, R0, val.controls)
                times.append(time.perf_counter() - t)
        print(f"the rollout alone ({len(val.starts)} clips x {val.frames} frames), {label}: {min(times):.2f} s")


if __name__ == "__main__":
    main()
