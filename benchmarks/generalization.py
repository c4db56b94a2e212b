"""How well configs generalize: held-out-group error against copy-last-frame, over several seeds.

Each variant (``--variant NAME=KEY=VALUE,KEY=VALUE``; by default the packaged
config, + mirror, + mirror + speed scale) trains once per seed on the bundled
data with the packaged group split (whole styles held out), and is scored on
the held-out styles at its best epoch (``val/``: the epoch these clips chose,
a little optimistic) and after its last epoch (``final/``: no selection at all),
and, when the config has a ``test_split``, on the test styles. Printed per variant: mean and
standard deviation over seeds of teacher ``GeoDeg`` and ``FreeRun/GeoDeg``, and
their ratio to copy-last-frame on the same steps (below 1 beats it), plus the
paired difference to the first variant per seed. One seed is an anecdote;
compare variants on their paired differences.

    python benchmarks/generalization.py --quick                 # minutes: tiny model, 2 seeds
    python benchmarks/generalization.py --seeds 0 1 2 --jobs 2  # the packaged config, as in the README
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

METRICS = ("GeoDeg", "FreeRun/GeoDeg")
DEFAULT_VARIANTS = {
    "default": {},
    "+mirror": {"augmentation.mirror": True},
    "+mirror+speed": {"augmentation.mirror": True, "augmentation.speed_scale_range": [0.8, 1.2]},
}
QUICK = {"hidden_dim": 64, "num_layers": 2, "steps_per_epoch": 20, "epochs": 8}


def _parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition("=")
    sets = {}
    for item in filter(None, re.split(r",(?![^\[]*\])", rest)):  # not the commas inside a [list]
        k, _, v = item.partition("=")
        try:
            sets[k] = json.loads(v)
        except json.JSONDecodeError:
            sets[k] = v
    return name, sets


def _train(overrides: dict, seed: int, out: Path, threads: int) -> dict:
    """One ``motiontune train`` in its own process (its own torch threads), returning summary.json."""
    from trainer_core.config_load import load_config

    raw = load_config().to_dict()
    epochs = overrides.get("epochs")
    if epochs is not None:
        raw = load_config().with_epochs(int(epochs)).to_dict()
    raw.update({k: v for k, v in overrides.items() if k != "epochs"})
    raw["seed"] = seed
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.in.json").write_text(json.dumps(raw))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    code = f"import torch; torch.set_num_threads({threads}); from tuner.cli import main; raise SystemExit(main())"
    cmd = [sys.executable, "-c", code, "train", "--config", str(out / "config.in.json"), "--out", str(out / "run")]
    return {"proc": subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), "out": out}


def _run_dir(root: Path, variant: str, seed: int) -> Path:
    return root / (variant.strip("+").replace("+", "_") or "base") / f"s{seed}"


def _scores(summary: dict) -> dict[str, float]:
    best = summary["best"]["metrics"]
    base = summary["baselines"]["copy-last-frame"]
    out = {}
    for m in METRICS:  # at the epoch the validation chose (what a sweep ranks by: a little optimistic)
        out[f"val/{m}"] = best[m]
        out[f"val/{m}/ratio"] = best[m] / base[m]
    for m in METRICS:  # after the last epoch (no selection on these clips at all)
        out[f"final/{m}"] = summary["final"][m]
        out[f"final/{m}/ratio"] = summary["final"][m] / base[m]
    test = summary.get("test")
    if test:
        for m in METRICS:
            out[f"test/{m}"] = test["model"][m]
            out[f"test/{m}/ratio"] = test["model"][m] / test["baselines"]["copy-last-frame"][m]
    for m in METRICS:  # the baseline is the same at every epoch
        out[f"copy-last/val/{m}"] = out[f"copy-last/final/{m}"] = base[m]
    out["wall_s"] = summary["wall_s"]
    return out


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small model and short runs (minutes)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variant", action="append", metavar="NAME=KEY=VALUE,...", help="replaces the default variants")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="for every variant")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (each gets cpu_count/jobs threads)")
    ap.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="write every score here")
    a = ap.parse_args()
    variants = dict(_parse_variant(v) for v in a.variant) if a.variant else dict(DEFAULT_VARIANTS)
    common = dict(QUICK) if a.quick else {}
    common.update(_parse_variant("x=" + ",".join(a.sets))[1])
    root = a.out or Path(tempfile.mkdtemp(prefix="generalization-"))
    threads = max(1, (os.cpu_count() or 1) // a.jobs)
    queue = [(name, seed) for seed in a.seeds for name in variants]
    running, scores = [], {name: {} for name in variants}
    while queue or running:
        while queue and len(running) < a.jobs:
            name, seed = queue.pop(0)
            job = _train({**common, **variants[name]}, seed, _run_dir(root, name, seed), threads)
            running.append((name, seed, job))
            print(f"started {name} seed {seed}", flush=True)
        name, seed, job = running.pop(0)
        _, err = job["proc"].communicate()
        if job["proc"].returncode != 0:
            raise SystemExit(f"{name} seed {seed} failed:\n{err.decode()[-2000:]}")
        summary = json.loads((job["out"] / "run" / "summary.json").read_text())
        scores[name][seed] = _scores(summary)
        s = scores[name][seed]
        print(
            f"done {name} seed {seed}: val GeoDeg {s['val/GeoDeg']:.3f} FreeRun/GeoDeg {s['val/FreeRun/GeoDeg']:.3f} "
            f"(copy-last {s['copy-last/val/GeoDeg']:.3f} / {s['copy-last/val/FreeRun/GeoDeg']:.3f}) "
            f"{s['wall_s']:.0f}s",
            flush=True,
        )
    first = next(iter(variants))
    held = json.loads((_run_dir(root, first, a.seeds[0]) / "run" / "summary.json").read_text())
    print(f"\nheld out for validation: {held['data']['held_out']['val'].get('held_out') or 'clips by hash'}")
    keys = [k for k in scores[first][a.seeds[0]] if not k.startswith(("copy-last", "wall"))]
    print(f"{'variant':<16}" + "".join(f"{k:>22}" for k in keys))
    base_row = scores[first][a.seeds[0]]
    print(
        f"{'copy-last-frame':<16}"
        + "".join(f"{base_row.get('copy-last/' + k, 1.0 if k.endswith('ratio') else math.nan):>22.3f}" for k in keys)
    )
    for name in variants:
        print(f"{name:<16}" + "".join(f"{_mean_sd([scores[name][s][k] for s in a.seeds]):>22}" for k in keys))
    if len(variants) > 1:
        print(f"\npaired difference to `{first}` per seed (negative: better), mean ± sd over seeds:")
        for name in list(variants)[1:]:
            diffs = {k: [scores[name][s][k] - scores[first][s][k] for s in a.seeds] for k in keys if "ratio" not in k}
            print(f"  {name:<14}" + "  ".join(f"{k} {_mean_sd(v)}" for k, v in diffs.items()))
    if a.json:
        a.json.write_text(json.dumps({n: {str(s): v for s, v in d.items()} for n, d in scores.items()}, indent=2))
    print(f"\nruns in {root}")


if __name__ == "__main__":
    main()
