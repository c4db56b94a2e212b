"""How import, training start-up, memory and step time grow with the dataset: 1x, 3x, 10x and 30x the bundled frames.

The data: the 165 BVH files the bundled set was imported from (``--source``, by default
``/work/shared/data/mocap``), tiled. Scale ``N`` holds ``N`` copies of each file: copy 0 is the file itself,
copy ``k`` is the same take time-warped by a factor ``s_k`` in [0.8, 1.25] (spread evenly in log scale, the same
factors at every scale) and renamed ``<content>_<style>_<kk><take>``: its channels resampled at source
positions ``i s_k`` (linear, rotation channels unwrapped first), the frame time kept, so the copy moves
``s_k`` times as fast and holds about ``1 / s_k`` times the frames. The names keep the content/style/take labels,
so the packaged config's style split holds out the same 3 styles (about a fifth of the frames) at every scale.
The BVH files and the imported datasets go under ``--workdir`` (``/tmp``), never into the repo.

Per scale, each through the command line as a user runs it, in a child process (``--threads N``: torch's CPU
threads there, ``OMP_NUM_THREADS``):

1. ``motiontune data import-bvh FILE... --out DIR --compact`` (how the bundled set was made): wall and CPU
   seconds (the child's user + system time, which a machine shared with other jobs disturbs far less than the
   wall time), clips per second of each, host RSS peak (the child's ``ru_maxrss``);
2. ``motiontune train --data DIR --epochs 1 --device D`` on the packaged config: one epoch of its fixed
   ``steps_per_epoch`` 100 optimizer steps (batch 8, seq_len 60, mirroring on; with ``--epochs 1`` the epoch is
   the stage-2 one: scheduled sampling and a 14-frame free-run term), ``eval_long_every`` as packaged, so the
   epoch, the last, also validates long. An epoch is a fixed number of steps whatever the data, so the step
   time is what must not grow; the epoch's validation covers every validation frame and grows with them:

   - start-up: wall and CPU seconds from the command's launch to its first optimizer step (Python and torch
     imports, loading the clips, the normalizer, the splits built and moved to the device, the mirror maps,
     the validation baselines, the long validation's baselines), and the wall seconds to the ``training on``
     line (everything before the epoch);
   - time per step, wall and CPU: the mean over the epoch's steps after the first (a post-hook on every
     optimizer step records the times, after a ``torch.cuda.synchronize()`` on CUDA);
   - the epoch's seconds as ``fit`` prints them, and its validation: from the last step to the epoch's progress
     line (teacher and free-run metrics over every validation frame, the long validation), wall and CPU;
   - host RSS peak; on CUDA the device's peak allocated memory (``torch.cuda.max_memory_allocated``), else
     n/a; beside it what ``device_data.device_bytes`` estimates the splits need on the device (what the
     trainer's check compares with the free memory, less its reserve).

Each figure is printed beside its ratio to the first scale, measured in the same process; import time and memory
should grow no faster than the data, the step time not at all. The first scale is measured again at the end
(``--no-recheck``: not), to show how far the machine drifted meanwhile. Run::

    python benchmarks/data_scale.py --quick            # 1x and 3x
    python benchmarks/data_scale.py                    # 1x, 3x, 10x, 30x (~850k frames)
    python benchmarks/data_scale.py --device cuda      # the same on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path("/work/shared/data/mocap")
SPEED_RANGE = (0.8, 1.25)
GOLDEN = (math.sqrt(5) - 1) / 2

# The child that runs `motiontune train`: records the wall and CPU time of every optimizer step (after a CUDA
# sync, so a step's time is its own) and of the epoch's progress line, and on CUDA the peak allocated device memory;
# writes them to argv[1] at exit.
TRAIN_CHILD = r"""
import atexit, json, sys, time
import torch
rec = {"steps": [], "cpu": []}
def _hook(opt, args, kwargs):
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    rec["steps"].append(time.time())
    rec["cpu"].append(time.process_time())
from torch.optim.optimizer import register_optimizer_step_post_hook
register_optimizer_step_post_hook(_hook)
class _Marked:  # stdout, noting the wall and CPU time of the epoch's progress line (the end of its validation)
    def __init__(self, out):
        self.out = out
    def write(self, text):
        if text.startswith("epoch ") and "epoch_wall" not in rec:
            rec["epoch_wall"], rec["epoch_cpu"] = time.time(), time.process_time()
        return self.out.write(text)
    def __getattr__(self, name):
        return getattr(self.out, name)
sys.stdout = _Marked(sys.stdout)
def _dump():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rec["cuda_peak"] = torch.cuda.max_memory_allocated()
        rec["cuda_device"] = torch.cuda.get_device_name()
    rec["torch"] = torch.__version__
    with open(sys.argv[1], "w") as f:
        json.dump(rec, f)
atexit.register(_dump)
from tuner.cli import main
sys.exit(main(sys.argv[2:]))
"""


# --- the data -----------------------------------------------------------------------------------------------


@dataclass
class Bvh:
    """One BVH file: its header up to ``MOTION``, the frame time line, and the channels ``(T, C)``."""

    stem: str
    header: str
    frame_time: str
    motion: np.ndarray
    rotation: np.ndarray  # (C,) bool: the channel is a rotation (degrees)


def read_bvh(path: Path) -> Bvh:
    text = path.read_text()
    head, _, motion = text.partition("MOTION")
    lines = motion.strip().splitlines()
    frames = int(lines[0].split(":")[1])
    values = np.array(" ".join(lines[2 : 2 + frames]).split(), dtype=np.float64).reshape(frames, -1)
    kinds = []
    for m in re.finditer(r"CHANNELS\s+(\d+)((?:\s+\w+)+)", head):
        kinds += [name.lower().endswith("rotation") for name in m.group(2).split()[: int(m.group(1))]]
    if len(kinds) != values.shape[1]:
        raise ValueError(f"{path}: {len(kinds)} channels in the header, {values.shape[1]} per frame")
    return Bvh(path.stem, head, lines[1], values, np.array(kinds))


def speed(k: int) -> float:
    """Copy ``k``'s time-warp factor (copy 0: 1): evenly spread in log scale over ``SPEED_RANGE``."""
    if k == 0:
        return 1.0
    lo, hi = (math.log(v) for v in SPEED_RANGE)
    return math.exp(lo + (hi - lo) * ((k * GOLDEN) % 1.0))


def warped(bvh: Bvh, s: float) -> np.ndarray:
    """The channels resampled at source positions ``i s``: ``s`` times as fast, about ``1 / s`` the frames."""
    T = bvh.motion.shape[0]
    if s == 1.0:
        return bvh.motion
    m = bvh.motion.copy()
    m[:, bvh.rotation] = np.unwrap(m[:, bvh.rotation], period=360.0, axis=0)
    pos = np.arange(0.0, T - 1 + 1e-9, s)
    a = np.floor(pos).astype(int)
    b = np.minimum(a + 1, T - 1)
    u = (pos - a)[:, None]
    return m[a] + u * (m[b] - m[a])


def copy_name(stem: str, k: int) -> str:
    """``..._<take>`` -> ``..._<kk><take>`` (copy 0 keeps its name): the take stays digits, the labels stay."""
    if k == 0:
        return stem
    return re.sub(r"_(\d+)$", lambda m: f"_{k:02d}{m.group(1)}", stem) if re.search(r"_\d+$", stem) else f"{stem}_{k}"


def write_copies(sources: list[Path], copies: int, out: Path) -> list[Path]:
    """BVH files of ``copies`` copies of each source in ``out`` (those already there are kept); their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for src in sources:
        bvh = None
        for k in range(copies):
            path = out / f"{copy_name(src.stem, k)}.bvh"
            paths.append(path)
            if path.exists():
                continue
            if k == 0:
                shutil.copyfile(src, path)
                continue
            bvh = bvh or read_bvh(src)
            m = warped(bvh, speed(k))
            body = "\n".join(" ".join(f"{v:.6g}" for v in row) for row in m)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(f"{bvh.header}MOTION\nFrames:\t{len(m)}\n{bvh.frame_time}\n{body}\n")
            tmp.rename(path)
    return paths


# --- the measurements ---------------------------------------------------------------------------------------


@dataclass
class Child:
    """A finished child process: wall seconds, host RSS peak (bytes), exit code, output, line times."""

    t0: float  # launch, seconds since the epoch
    wall: float
    cpu: float  # user + system seconds
    rss: int
    rc: int
    out: str
    marks: dict[str, float] = field(default_factory=dict)  # first line starting with key -> seconds from launch


def run_child(
    cmd: list[str], marks: tuple[str, ...] = (), log: Path | None = None, threads: int | None = None
) -> Child:
    """Run ``cmd``; its own RSS peak and CPU time from ``wait4`` (not the process tree's). Output lines are timed as
    they come. ``threads``: torch's CPU threads in the child (``OMP_NUM_THREADS``); None: torch's default."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, bufsize=1,
                         env=env)  # fmt: skip
    lines, seen = [], {}
    assert p.stdout is not None
    for line in p.stdout:
        lines.append(line)
        for key in marks:
            if key not in seen and line.startswith(key):
                seen[key] = time.time() - t0
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.time() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out = "".join(lines)
    if log is not None:
        log.write_text(out)
    return Child(t0, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, p.returncode, out, seen)


def python() -> str:
    return sys.executable


def measure_import(files: list[Path], out: Path, threads: int | None) -> dict[str, Any]:
    if out.exists():
        shutil.rmtree(out)
    c = run_child([python(), "-m", "tuner.cli", "data", "import-bvh", *map(str, files), "--out", str(out),
                   "--compact"], log=out.with_suffix(".import.log"), threads=threads)  # fmt: skip
    if c.rc != 0:
        raise SystemExit(f"import-bvh failed ({c.rc}):\n{c.out[-3000:]}")
    profile = json.loads(c.out[c.out.index("{") :])
    return {"clips": profile["n_clips"], "frames": profile["total_frames"], "import_s": c.wall,
            "import_cpu_s": c.cpu, "import_rss": c.rss}  # fmt: skip


def measure_train(data: Path, device: str, work: Path, extra: list[str], threads: int | None) -> dict[str, Any]:
    run_dir, rec_path = work / f"{data.name}.run", work / f"{data.name}.steps.json"
    for p in (run_dir, rec_path):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    cmd = [python(), "-c", TRAIN_CHILD, str(rec_path), "train", "--data", str(data), "--out", str(run_dir),
           "--epochs", "1", "--device", device, *extra]  # fmt: skip
    c = run_child(cmd, marks=("training on",), log=work / f"{data.name}.train.log", threads=threads)
    if c.rc != 0:
        raise SystemExit(f"train failed ({c.rc}):\n{c.out[-3000:]}")
    rec = json.loads(rec_path.read_text())
    steps, cpu = rec["steps"], rec["cpu"]
    m = re.search(r"epoch\s+1/1 .*\| ([\d.]+)s", c.out)
    frames = re.search(r"(\d+) train / (\d+) val clips, (\d+)/(\d+) frames", c.out)
    step_s = (steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else math.nan
    step_cpu_s = (cpu[-1] - cpu[0]) / (len(cpu) - 1) if len(cpu) > 1 else math.nan
    epoch_s = float(m.group(1)) if m else math.nan
    return {
        "first_step_s": steps[0] - c.t0,
        "first_step_cpu_s": cpu[0],
        "ready_s": c.marks.get("training on", math.nan),
        "steps": len(steps),
        "step_s": step_s,
        "step_cpu_s": step_cpu_s,
        "epoch_s": epoch_s,
        "eval_s": rec["epoch_wall"] - steps[-1],
        "eval_cpu_s": rec["epoch_cpu"] - cpu[-1],
        "train_rss": c.rss,
        "cuda_peak": rec.get("cuda_peak"),
        "cuda_device": rec.get("cuda_device"),
        "torch": rec.get("torch"),
        "train_frames": int(frames.group(3)) if frames else None,
        "val_frames": int(frames.group(4)) if frames else None,
        "train_wall_s": c.wall,
        "train_cpu_s": c.cpu,
    }


def measure_scale(
    n: int, files: list[Path], work: Path, device: str, extra: list[str], threads: int | None
) -> dict[str, Any]:
    from trainer_core.data.device_data import device_bytes, split_bytes
    from trainer_core.data.skeleton import Skeleton

    data = work / f"ds_{n}x"
    row: dict[str, Any] = {"scale": n, **measure_import(files, data, threads)}
    row.update(measure_train(data, device, work, extra, threads))
    joints = Skeleton.from_files(data).n_joints
    frames = {"train": row["train_frames"], "val": row["val_frames"]}
    row["splits_est"] = sum(split_bytes(f, joints) for f in frames.values())
    row["device_est"] = device_bytes(frames, joints)
    return row


def gb(b: float | None) -> str:
    return "n/a" if b is None else f"{b / 1e9:.2f}"


def ratio(v: float | None, base: float | None) -> str:
    return "-" if v is None or not base else f"{v / base:.2f}x"


IMPORT = (  # key, header, format (None: bytes as GB)
    ("clips", "clips", "{:,}"),
    ("frames", "frames", "{:,}"),
    ("import_s", "import s", "{:.1f}"),
    ("import_cpu_s", "import CPU s", "{:.1f}"),
    ("clips_per_s", "clips/s", "{:.1f}"),
    ("clips_per_cpu_s", "clips/CPU s", "{:.1f}"),
    ("import_rss", "import RSS GB", None),
    ("load", "load average", "{:.1f}"),
)
TRAIN = (
    ("ready_s", "to `training on` s", "{:.1f}"),
    ("first_step_s", "to 1st step s", "{:.1f}"),
    ("first_step_cpu_s", "to 1st step CPU s", "{:.1f}"),
    ("step_ms", "ms/step", "{:.0f}"),
    ("step_cpu_ms", "CPU ms/step", "{:.0f}"),
    ("epoch_s", "epoch s", "{:.1f}"),
    ("eval_s", "validation s", "{:.1f}"),
    ("eval_cpu_s", "validation CPU s", "{:.1f}"),
    ("train_rss", "train RSS GB", None),
    ("cuda_peak", "device peak GB", None),
    ("device_est", "device need GB (est.)", None),
)
RATIOS = ("frames", "import_s", "import_cpu_s", "import_rss", "first_step_s", "first_step_cpu_s", "step_ms",
          "step_cpu_ms", "eval_s", "eval_cpu_s", "train_rss", "cuda_peak", "device_est")  # fmt: skip


def table(rows: list[dict[str, Any]], columns: tuple[tuple[str, str, str | None], ...]) -> list[str]:
    out = ["| scale | " + " | ".join(h for _, h, _ in columns) + " |", "|---|" + "---:|" * len(columns)]
    for r in rows:
        cells = [gb(r.get(k)) if f is None else f.format(r[k]) for k, _, f in columns]
        out.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return out


def ratio_table(rows: list[dict[str, Any]]) -> list[str]:
    names = {k: h for k, h, _ in IMPORT + TRAIN}
    base = rows[0]
    out = ["| scale | " + " | ".join(names[k] for k in RATIOS) + " |", "|---|" + "---:|" * len(RATIOS)]
    for r in rows:
        out.append(f"| {r['label']} | " + " | ".join(ratio(r.get(k), base.get(k)) for k in RATIOS) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1x and 3x only")
    ap.add_argument("--scales", type=int, nargs="+", help="copies of the source set (default 1 3 10 30)")
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder of the source BVH files")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/motiontune_data_scale"))
    ap.add_argument("--device", default="cpu", help="--device of `motiontune train` (cpu, cuda, auto)")
    ap.add_argument("--threads", type=int, help="torch CPU threads in the children (default: torch's)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="passed on to `motiontune train --set`")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the BVH files and datasets in --workdir")
    ap.add_argument("--no-recheck", action="store_true",
                    help="do not measure the first scale again at the end (how far the machine drifted)")  # fmt: skip
    args = ap.parse_args()
    scales = args.scales or ([1, 3] if args.quick else [1, 3, 10, 30])
    if REPO in args.workdir.resolve().parents:
        raise SystemExit(f"--workdir {args.workdir}: inside the repo; generated data goes under /tmp")
    sources = sorted(args.source.glob("*.bvh"))
    if not sources:
        raise SystemExit(f"--source {args.source}: holds no .bvh files")
    extra = [x for kv in args.sets for x in ("--set", kv)]
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"device {args.device}, threads {args.threads or 'default'}; {len(sources)} source BVH files; "
          f"scales {scales}", flush=True)  # fmt: skip
    t = time.perf_counter()
    bvh_dir = work / "bvh"
    write_copies(sources, max(scales), bvh_dir)
    print(f"BVH copies written in {time.perf_counter() - t:.0f} s (not measured)", flush=True)
    rows = []
    runs = [(n, f"{n}x") for n in scales] + ([] if args.no_recheck else [(scales[0], f"{scales[0]}x again")])
    for n, label in runs:
        files = [bvh_dir / f"{copy_name(src.stem, k)}.bvh" for src in sources for k in range(n)]
        t = time.perf_counter()
        row = {"label": label, **measure_scale(n, files, work, args.device, extra, args.threads)}
        row["clips_per_s"] = row["clips"] / row["import_s"]
        row["clips_per_cpu_s"] = row["clips"] / row["import_cpu_s"]
        row["step_ms"] = row.pop("step_s") * 1000
        row["step_cpu_ms"] = row.pop("step_cpu_s") * 1000
        row["load"] = os.getloadavg()[0]
        rows.append(row)
        print(f"{label}: {json.dumps(row)} ({time.perf_counter() - t:.0f} s)", flush=True)
        (work / "results.json").write_text(json.dumps(rows, indent=1))
    print("\nImport (`motiontune data import-bvh --compact`):\n")
    print("\n".join(table(rows, IMPORT)))
    print("\nTraining (`motiontune train --epochs 1`, the packaged config: 100 steps):\n")
    print("\n".join(table(rows, TRAIN)))
    print(f"\nAgainst {rows[0]['label']}, measured in the same process:\n")
    print("\n".join(ratio_table(rows)))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
