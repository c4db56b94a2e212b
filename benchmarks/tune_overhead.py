"""What running under Ray Tune costs: one config, trained by ``fit`` directly and as a one-trial sweep.

In one process, on the bundled data:

1. ``trainer_core.train.loop.fit`` (what ``motiontune train`` runs);
2. the same config as a one-trial sweep through ``motiontune``'s sweep path
   (Tuner, OptunaSearch, FIFO, the trainable reporting and checkpointing every epoch).

Printed: the sweep's wall time over the direct run's, without Ray start-up
(the trial's own time, from entering the trainable to its last report) and with
it (from ``ray.init`` to the results tables). Run::

    python benchmarks/tune_overhead.py [--epochs 3] [--steps 100] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from trainer_core.config_load import load_config
from trainer_core.train.loop import fit
from tuner.pipeline import SweepOptions, launch, prepare
from tuner.search.sweep import init_ray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100, help="steps per epoch")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--gpus-per-trial", type=float, default=0.0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tune_overhead_"))
    base = load_config(overrides={"steps_per_epoch": args.steps, "device": args.device}).with_epochs(args.epochs)
    (work / "base.json").write_text(json.dumps(base.to_dict()))
    # Nothing searched: the one trial runs the base config as is.
    (work / "space.json").write_text(json.dumps({"name": "fixed", "params": {"lr": {"value": base.optim.lr}}}))

    t0 = time.perf_counter()
    fit(base, work / "direct", log=lambda _: None)
    direct = time.perf_counter() - t0

    opts = SweepOptions(config=str(work / "base.json"), space=str(work / "space.json"), samples=1,
                        scheduler="fifo", storage=str(work), name="one_trial", gpus_per_trial=args.gpus_per_trial,
                        cpus_per_trial=2)  # fmt: skip
    meta = prepare(opts)
    t1 = time.perf_counter()
    init_ray(None)
    launch(opts, meta)
    with_startup = time.perf_counter() - t1
    trials = pd.read_parquet(work / "one_trial" / "trials.parquet")
    row = trials.iloc[0]
    in_trial = float(row["end_time"] - row["start_time"])

    print(f"config: default model, {args.epochs} epochs x {args.steps} steps; {base.run.device} device request")
    print(f"{'run':<44}{'wall s':>9}{'ratio':>8}")
    print(f"{'motiontune train (fit, no Ray)':<44}{direct:>9.2f}{1.0:>8.3f}")
    print(f"{'one-trial sweep, without Ray start-up':<44}{in_trial:>9.2f}{in_trial / direct:>8.3f}")
    print(f"{'one-trial sweep, with Ray start-up':<44}{with_startup:>9.2f}{with_startup / direct:>8.3f}")
    print(f"trial status {row['status']}, epochs {row['epochs']}; files in {work}")


if __name__ == "__main__":
    main()
