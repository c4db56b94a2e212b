"""Training throughput of the default model on the bundled data, against the conventional data path.

Three measurements in one process, on one device:

1. motiontune's trainer: the split lives on the device, windows are gathered by index.
2. The same model, loss and optimizer step fed by a ``torch.utils.data.DataLoader``
   over the clip NPZ files, the conventional way: each item opens its clip's NPZ,
   computes the features it needs, slices a window; batches are collated on the
   host and copied to the device every step.
3. The device's own dense matmul rate (fp32 on CPU, bf16 on CUDA), as a ceiling:
   the trainer's achieved FLOP/s (matmul FLOPs of one step, counted by
   ``torch.utils.flop_counter``, over its step time) is reported as a fraction of it.

Both paths run the teacher stage (stage 1) and the free-run stage (stage 3) of
the default schedule. Run::

    python benchmarks/trainer_throughput.py [--device auto|cpu|cuda] [--steps 40] [--workers 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from trainer_core.config_load import load_config
from trainer_core.data.clip import load_npz
from trainer_core.data.device_data import Split, _pack_raw, _raw_frames
from trainer_core.data.splits import split_clips
from trainer_core.geometry import forward_kinematics, rot6d_to_matrix
from trainer_core.train.loop import epoch_batches, train_step
from trainer_core.train.schedules import plan_epoch, tf_ratio
from trainer_core.train.setup import Setup, setup


class NpzWindows(Dataset):
    """Windows of ``seq_len + 1`` frames read from the clip NPZ files, features computed per item."""

    def __init__(self, s: Setup, seq_len: int):
        train_clips, _ = split_clips(s.dataset.clips, s.cfg.data.val_fraction, s.cfg.freerun.eval_freerun_horizon + 1)
        self.paths = {c.name: s.dataset.folder / f"{c.name}.npz" for c in train_clips}
        self.items = [
            (c.name, start) for c in train_clips for start in range(max(1, c.n_frames - seq_len))
        ]  # the same window starts as the trainer's
        self.L = seq_len + 1
        self.norm = s.norm
        self.skeleton = s.dataset.skeleton
        self.cond_window_s = s.cfg.data.cond_window_s

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        name, start = self.items[i]
        clip = load_npz(Path(self.paths[name]))
        raw = _raw_frames([clip], self.cond_window_s)
        x, c = _pack_raw(raw, self.norm.layout)
        n = min(self.L, clip.n_frames - start)
        idx = torch.arange(start, start + self.L).clamp(max=clip.n_frames - 1)
        R = rot6d_to_matrix(raw["rot6d"][idx])
        Rg, pos = forward_kinematics(R, torch.from_numpy(self.skeleton.offsets), self.skeleton.parents)
        mean, std = self.norm.traj_stats()
        return {
            "x": self.norm.norm_x(x[idx]),
            "c": self.norm.norm_c(c[idx]),
            "R": R,
            "Rg": Rg,
            "pos": pos,
            "traj": (raw["traj"][idx] - mean) / std,
            "traj_raw": raw["traj"][idx],
            "contacts": raw["contacts"][idx],
            "phase": raw["phase"][idx],
            "log_period": raw["period"][idx].log(),
            "ctrl_raw": raw["ctrl"][idx],
            "ctrl_full": raw["ctrl_full"][idx],
            "valid": torch.tensor(n),
        }


def batch_to_split(batch: dict[str, torch.Tensor], like: Split, device: torch.device) -> tuple[Split, torch.Tensor]:
    """A collated batch ``[B, L, ...]`` as a split of ``B * L`` frames, and its window starts."""
    B, L = batch["x"].shape[:2]
    flat = {k: v.to(device, non_blocking=True).flatten(0, 1) for k, v in batch.items() if k != "valid"}
    starts = torch.arange(B, device=device) * L
    clip_end = (starts + batch["valid"].to(device)).repeat_interleave(L)
    clip_begin = starts.repeat_interleave(L)
    split = Split(
        **flat, clip_end=clip_end, clip_begin=clip_begin, window_starts=starts, fps=like.fps, names=like.names
    )
    return split, starts


def time_trainer(s: Setup, epoch: int, steps: int) -> float:
    gen = torch.Generator(device=s.device).manual_seed(0)
    plan, tf = plan_epoch(s.cfg, epoch), tf_ratio(s.cfg.tf, epoch)
    batches = epoch_batches(dataclasses.replace(s, cfg=_with_steps(s.cfg, steps + 5)), gen)
    for starts in batches[:5]:
        train_step(s, starts, plan, tf, gen)
    _sync(s.device)
    t0 = time.perf_counter()
    for starts in batches[5:]:
        train_step(s, starts, plan, tf, gen)
    _sync(s.device)
    return (time.perf_counter() - t0) / steps


def time_dataloader(s: Setup, epoch: int, steps: int, workers: int) -> float:
    gen = torch.Generator(device=s.device).manual_seed(0)
    plan, tf = plan_epoch(s.cfg, epoch), tf_ratio(s.cfg.tf, epoch)
    loader = DataLoader(
        NpzWindows(s, s.cfg.optim.seq_len),
        batch_size=s.cfg.optim.batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=s.device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    it = iter(loader)

    def one() -> None:
        split, starts = batch_to_split(next(it), s.train, s.device)
        train_step(dataclasses.replace(s, train=split), starts, plan, tf, gen)

    for _ in range(5):
        one()
    _sync(s.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    _sync(s.device)
    return (time.perf_counter() - t0) / steps


def step_flops(s: Setup, epoch: int) -> int:
    gen = torch.Generator(device=s.device).manual_seed(0)
    starts = s.train.window_starts[: s.cfg.optim.batch]
    with FlopCounterMode(display=False) as counter:
        train_step(s, starts, plan_epoch(s.cfg, epoch), tf_ratio(s.cfg.tf, epoch), gen)
    return counter.get_total_flops()


def matmul_flops(device: torch.device) -> float:
    n = 4096 if device.type == "cuda" else 1024
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps = 50 if device.type == "cuda" else 10
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def _with_steps(cfg, steps: int):  # noqa: ANN001, ANN202
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, steps_per_epoch=steps))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    ap.add_argument("--workers", type=int, nargs="+", default=[0], help="DataLoader worker counts to try")
    args = ap.parse_args()
    cfg = load_config(overrides={"device": args.device})
    s = setup(cfg)
    B = cfg.optim.batch
    name = (
        torch.cuda.get_device_name(s.device) if s.device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    peak = matmul_flops(s.device)
    print(
        f"device: {s.device} ({name}); torch {torch.__version__}; default model, batch {B}, seq_len {cfg.optim.seq_len}"
    )
    print(f"dense matmul ceiling: {peak / 1e9:,.1f} GFLOP/s ({'bf16' if s.device.type == 'cuda' else 'fp32'})")
    print()
    header = (
        f"{'stage':<16}{'data path':<22}{'ms/step':>9}{'windows/s':>11}{'speed-up':>10}{'GFLOP/s':>9}{'of peak':>9}"
    )
    print(header)
    print("-" * len(header))
    for epoch, label in ((1, "stage1_teacher"), (cfg.optim.epochs, "stage3_freerun")):
        flops = step_flops(s, epoch)
        ours = time_trainer(s, epoch, args.steps)
        rows = [("motiontune (device)", ours)]
        rows += [(f"DataLoader, {w} workers", time_dataloader(s, epoch, args.steps, w)) for w in args.workers]
        baseline = rows[1][1]
        for path, t in rows:
            gf = flops / t / 1e9
            speedup = baseline / t if path.startswith("motiontune") else 1.0
            print(
                f"{label:<16}{path:<22}{t * 1e3:>9.1f}{B / t:>11.0f}{speedup:>9.2f}x{gf:>9.2f}{gf * 1e9 / peak:>9.1%}"
            )
    print()
    print("speed-up: DataLoader (first worker count) step time / motiontune step time, same model and loss.")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
