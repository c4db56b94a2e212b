"""The ``motiontune`` command line. Commands are thin: parse options, make one library call.

Library code raises ``MotiontuneError`` for bad input; only this module turns it
into one line on stderr and exit code 2. Ray is imported only by the commands
that need it, so ``train`` and ``data`` run without it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit code 2) and options are never abbreviated."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"motiontune: warning: {message}", file=sys.stderr)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def _api():  # noqa: ANN202 - imported on use so `motiontune --help` stays fast
    from trainer_core import api

    return api


# --- train -------------------------------------------------------------------------------


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model locally (no Ray)", description="Train one model locally.")
    p.add_argument("--config", help="config JSON in the seed's format (default: the packaged exp_phase_mpl.json)")
    p.add_argument("--data", help="dataset folder of clip .npz files and the skeleton (default: bundled mocap)")
    p.add_argument("--out", help="output folder (default: results/runs/<config>-<time>)")
    p.add_argument("--epochs", type=int, help="train this many epochs; stage ranges and TF epochs are rescaled")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's, auto)")
    p.add_argument(
        "--set", dest="sets", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    p.add_argument(
        "--resume", metavar="CHECKPOINT", help="continue from checkpoint_epoch_N.pt (config from the checkpoint)"
    )
    p.add_argument("--smoke-test", action="store_true", help="a tiny model for 4 short epochs (seconds)")

    def run(a: argparse.Namespace) -> int:
        summary = _api().train(a.config, a.data, a.out, a.epochs, a.device, a.sets, a.resume, a.smoke_test)
        best = summary["best"]
        print(
            f"done: best {summary['objective']} {best['value']:.4f} at epoch {best['epoch']}; "
            f"baseline (copy last frame) {summary['baseline'].get(summary['objective'], float('nan')):.4f}"
        )
        return 0

    p.set_defaults(func=run)


# --- eval --------------------------------------------------------------------------------


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="a trained model's metrics on any dataset folder, beside copy-last-frame",
                       description="Teacher and free-run metrics of a checkpoint on every clip of a dataset folder "
                                   "(the model's skeleton), per clip and overall, against the baselines.")  # fmt: skip
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="best_model.pt or checkpoint_epoch_N.pt")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder of clip .npz files and the skeleton")
    p.add_argument("--horizon", type=int, help="free-run frames per window (default: the checkpoint's config's)")
    p.add_argument("--out", metavar="FILE.json", help="write every number as JSON")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the checkpoint's config's)")
    p.add_argument("--long", type=float, metavar="SECONDS", help="also FreeRun/long: SECONDS-long rollouts per clip")
    p.add_argument("--previews", metavar="DIR", help="write each clip's free run beside its ground truth, DIR/CLIP.gif")

    def run(a: argparse.Namespace) -> int:
        from trainer_core.evaluate.offline import format_table

        print(format_table(_api().evaluate(a.checkpoint, a.data, a.horizon, a.out, a.device, a.long, a.previews)))
        if a.out:
            print(f"\nwritten: {a.out}")
        return 0

    p.set_defaults(func=run)


# --- data --------------------------------------------------------------------------------


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="import, convert and profile motion data", description="Motion data tools.")
    dsub = p.add_subparsers(dest="data_cmd", required=True, parser_class=_Parser)

    imp = dsub.add_parser("import-bvh", help="BVH files -> a dataset folder (clips .npz + skeleton)")
    imp.add_argument("files", nargs="+", metavar="FILE")
    imp.add_argument("--out", required=True, help="dataset folder to write")
    imp.add_argument(
        "--scale", type=float, help="metres per file unit (default: from the legs' length: m, cm, mm, inches, CMU...)"
    )
    imp.add_argument("--up", default="auto", help="the files' up axis: y, z or auto (default: from the pose)")
    imp.add_argument("--root-joint", help="the hips joint (default: the first joint with several children)")
    imp.add_argument("--feet", metavar="LEFT,RIGHT", help="foot joint names (default: found by name)")
    imp.add_argument("--fps", type=float, help="resample to this frame rate (default: the files' own)")
    imp.add_argument(
        "--compact", action="store_true", help="int16 rotations, no stored angular velocity (about 3x smaller files)"
    )

    def _import_bvh(a: argparse.Namespace) -> None:
        report = _api().import_bvh(a.files, a.out, a.scale, a.up, a.root_joint, a.feet, a.fps, a.compact)
        u = report["import"]
        rate = f"{u['source_fps']:g} fps" + (f" resampled to {report['fps']:g}" if a.fps is not None else "")
        print(
            f"motiontune: import-bvh: scale {u['scale']:g} m per unit ({u['reason']}); "
            f"up {u['up']} ({u['up_from']}); {rate}",
            file=sys.stderr,
        )
        _print_json(report)

    imp.set_defaults(func=_import_bvh)

    conv = dsub.add_parser("convert", help="seed JSON clip <-> training NPZ")
    conv.add_argument("src", metavar="CLIP")
    conv.add_argument("--out", required=True, help="output .npz or .json")
    conv.set_defaults(func=lambda a: _print_json(_api().convert(a.src, a.out)))

    prof = dsub.add_parser("profile", help="print the dataset profile as JSON")
    prof.add_argument("folder", nargs="?", metavar="DIR", help="dataset folder (default: bundled mocap)")
    prof.set_defaults(func=lambda a: _print_json(_api().profile(a.folder)))


# --- space -------------------------------------------------------------------------------


def _space_show(a: argparse.Namespace) -> int:
    from search_spaces.sampling import space_table
    from search_spaces.spec import load_space

    print(space_table(load_space(a.space)))
    return 0


def _space_sample(a: argparse.Namespace) -> int:
    from search_spaces.sampling import sample_configs
    from search_spaces.spec import load_space
    from trainer_core.config_load import load_config
    from trainer_core.errors import ConfigError

    if a.n < 1:
        raise ConfigError(f"-n is {a.n}, but must be >= 1")
    space, base = load_space(a.space), load_config(a.config)
    for cfg in sample_configs(space, a.n, a.seed, base):
        print(json.dumps(cfg.to_dict()), flush=True)
    return 0


def _add_space(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="show search spaces and sample configs from them", description="Search spaces.")
    ssub = p.add_subparsers(dest="space_cmd", required=True, parser_class=_Parser)
    space_help = "a shipped space (default, small, wide) or a space .json file (default: default)"
    show = ssub.add_parser("show", help="the space's dimensions, bounds, scales and fixed values")
    show.add_argument("--space", default="default", help=space_help)
    show.set_defaults(func=_space_show)
    sample = ssub.add_parser("sample", help="N full trainer configs, one JSON object per line")
    sample.add_argument("--space", default="default", help=space_help)
    sample.add_argument("-n", type=int, default=1, help="how many configs (default 1)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--config", help="base config (default: the packaged exp_phase_mpl.json)")
    sample.set_defaults(func=_space_sample)


# --- sweep / resume / export ---------------------------------------------------------------


def _print_sweep_summary(summary: dict[str, Any]) -> None:
    from tuner.results import finished_trials
    from tuner.usage import storage_line

    trials = summary["trials"]
    metric, mode = summary["metric"], summary["mode"]
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    parts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    print(f"experiment: {summary['experiment']}")
    print(f"trials: {len(trials)} ({parts})")
    print(storage_line(summary["experiment"]))
    col = f"best/{metric}"
    ok = finished_trials(trials, metric) if len(trials) else trials
    if len(ok):
        best = ok.sort_values(col, ascending=(mode == "min")).iloc[0]
        print(
            f"best: trial {best['trial_id']} {metric} {best[col]:.4f} (epoch {best['best_epoch']} of {best['epochs']})"
        )
    else:
        print("best: none (no trial finished)")
    if summary.get("verification") is not None:
        _print_verification(summary["verification"], summary["experiment"])
    elif len(ok):
        print("unverified: the best above is one seed's value; `motiontune verify` re-trains the finalists")
        print(f"export it: motiontune export {summary['experiment']} --out best.json")


def _print_verification(table: Any, experiment: str) -> None:
    """The verified ranking: mean ± sd over the fresh seeds, the search-time value, the paired gain over the base."""
    seeds = len(table["seeds"].iloc[0]) if len(table) else 0
    print(f"verified on {seeds} fresh seeds (best epoch of each run; improvement = paired gain over the base, "
          "95% t interval):")  # fmt: skip
    for _, r in table.iterrows():
        name = "base config" if r["is_base"] else f"trial {r['label']}"
        search = f"search {r['search_value']:.4f}" if r["search_value"] == r["search_value"] else "search -"
        gain = "" if r["is_base"] else (
            f"  improvement {r['best_improvement_mean']:+.4f} [{r['best_improvement_lo']:+.4f}, "
            f"{r['best_improvement_hi']:+.4f}]" + (" excludes 0" if r["best_excludes_zero"] else "")
        )  # fmt: skip
        short = f"  ({r['n_ok']}/{seeds} seeds finished)" if r["n_ok"] < seeds else ""
        print(f"  {r['rank']}. {name:<18} {r['best_mean']:.4f} ± {r['best_sd']:.4f}  ({search}){gain}{short}")
    print(f"export the verified winner: motiontune export {experiment} --out best.json")


def _parse_resources(items: list[str] | None) -> dict[str, float]:
    from trainer_core.errors import ConfigError

    out = {}
    for item in items or []:
        name, sep, amount = item.partition("=")
        try:
            out[name.strip()] = float(amount)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(f"--resource {item!r}: must be NAME=AMOUNT, e.g. --resource gpu_like=1")
    return out


def _sweep(a: argparse.Namespace) -> int:
    from tuner.sweep import SweepOptions, launch

    opts = SweepOptions(
        config=a.config, space=a.space, samples=a.samples, max_concurrent=a.max_concurrent, epochs=a.epochs,
        cpus_per_trial=a.cpus_per_trial, gpus_per_trial=a.gpus_per_trial, scheduler=a.scheduler,
        searcher=a.searcher, metric=a.metric, mode=a.mode, seed=a.seed, storage=a.storage, name=a.name,
        address=a.address, smoke_test=a.smoke_test, optuna_storage=a.optuna_storage,
        shared_storage=a.shared_storage, resources=_parse_resources(a.resource), budget=a.budget,
        warm_start=not a.no_warm_start, grace_period=a.grace_period, verify=not a.no_verify,
        verify_top=a.verify_top, verify_seeds=a.verify_seeds, verify_data=a.verify_data,
    )  # fmt: skip
    _print_sweep_summary(launch(opts))
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="search hyperparameters with Ray Tune (Optuna TPE + ASHA)",
                       description="Launch a sweep, locally or on a Ray cluster.")  # fmt: skip
    p.add_argument("--config", help="base config (default: the packaged exp_phase_mpl.json; warm start)")
    p.add_argument("--space", default="default", help="default, small, wide or a space .json file")
    p.add_argument("--samples", type=int, default=16, help="trials in all (default 16)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as resources allow)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the config's); ASHA's max_t")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU: 0.25 packs four")
    p.add_argument("--scheduler", default="asha", choices=["asha", "fifo"])
    p.add_argument("--searcher", default="optuna", choices=["optuna", "random"])
    p.add_argument("--metric", help="objective (default: FreeRun/GeoDeg)")
    p.add_argument("--mode", choices=["min", "max"], help="minimise or maximise the objective (default: min)")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler")
    p.add_argument("--storage", default="results", help="experiment root: a path, or s3://, gs://... for clusters")
    p.add_argument("--name", help="experiment name (default: sweep-<time>)")
    p.add_argument("--address", help="Ray cluster to join (`auto` for the one this node belongs to)")
    p.add_argument(
        "--shared-storage",
        action="store_true",
        help="vouch that a local --storage path is mounted on every node of the cluster",
    )
    p.add_argument(
        "--resource",
        action="append",
        metavar="NAME=AMOUNT",
        help="a custom Ray resource each trial needs, e.g. gpu_like=1 (repeatable)",
    )
    p.add_argument("--optuna-storage", metavar="URL", help="persist the Optuna study, e.g. sqlite:///study.db")
    p.add_argument("--grace-period", type=int, help="ASHA's first rung (default: the base's first free-run epoch)")
    p.add_argument("--budget", type=int, metavar="TRIAL_EPOCHS", help="end the sweep after this many epochs in all")
    p.add_argument("--no-warm-start", action="store_true", help="do not run the base config as the first trial")
    p.add_argument("--smoke-test", action="store_true", help="tiny trials (seconds each) on the small space")
    p.add_argument("--verify-top", type=int, metavar="K",
                   help="after the search, re-train the K best configs and the base config (default 3; 2 with "
                        "--smoke-test)")  # fmt: skip
    p.add_argument("--verify-seeds", type=int, metavar="S",
                   help="fresh seeds per re-trained config, the same for all (default 3; 2 with --smoke-test)")
    p.add_argument("--verify-data", metavar="DIR",
                   help="also evaluate each re-trained model on this dataset folder (clips no trial trained on)")
    p.add_argument("--no-verify", action="store_true", help="skip the verification: export's pick stays unverified")
    p.set_defaults(func=_sweep)


def _resume(a: argparse.Namespace) -> int:
    from tuner.sweep import resume

    _print_sweep_summary(resume(a.experiment, a.address, a.shared_storage))
    return 0


def _verify(a: argparse.Namespace) -> int:
    from tuner.sweep import verify_experiment

    summary = verify_experiment(a.experiment, a.top, a.seeds, a.verify_data, a.address, a.shared_storage)
    _print_verification(summary["verification"], summary["experiment"])
    return 0


def _export_line(rec: dict[str, Any]) -> str:
    if not rec["verified"]:
        return f"rank {rec['rank']}: trial {rec['trial_id']} {rec['metric']} {rec['value']:.4f} -> {rec['config']}"
    v = rec["verification"]
    seeds = len(v["seeds"])
    stat = f"{rec['metric']} {v['mean']:.4f} ± {v['sd']:.4f} over {seeds} fresh seeds"
    if rec["rank"] == 1 and rec["is_base"]:
        return (f"no finalist beats the base config on {seeds} fresh seeds: exported the best, the base config "
                f"itself ({stat}) -> {rec['config']}")  # fmt: skip
    name = "base config" if rec["is_base"] else f"trial {rec['trial_id']}"
    gain = v["improvement"]
    lo, hi = gain["ci95"]
    verdict = "excludes 0" if gain["excludes_zero"] else "includes 0: could be seed luck"
    return (f"verified rank {rec['rank']}: {name} {stat} (search {rec['search_value']:.4f}); base "
            f"{v['base']['mean']:.4f} ± {v['base']['sd']:.4f}; improvement {gain['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}] "
            f"(95% t, {verdict}) -> {rec['config']}")  # fmt: skip


def _export(a: argparse.Namespace) -> int:
    from tuner.export import export

    records = export(a.experiment, a.out, a.top, a.metric, a.mode)
    for rec in records:
        print(_export_line(rec))
    if not records[0]["verified"]:
        print(f"unverified: {records[0]['unverified']}")
    return 0


def _report(a: argparse.Namespace) -> int:
    from tuner.report import report

    rep = report(a.experiment, a.out)
    print(rep.summary)
    print(f"\nreport: {rep.out / 'index.html'} ({len(rep.images)} plots)")
    return 0


def _add_resume_export(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("resume", help="finish an interrupted sweep (its search, then its verification)",
                       description="Resume a sweep: the search, then the verification, keeping finished trials.")
    r.add_argument("experiment", metavar="EXPERIMENT_DIR")
    r.add_argument("--address", help="Ray cluster to join")
    r.add_argument("--shared-storage", action="store_true", help="vouch that the experiment's path is on every node")
    r.set_defaults(func=_resume)
    e = sub.add_parser("export", help="the best trial's config, as JSON the trainer runs",
                       description="Export the best config(s) of a sweep.")  # fmt: skip
    e.add_argument("experiment", metavar="EXPERIMENT_DIR")
    e.add_argument("--out", help="config path (default: EXPERIMENT_DIR/best_config.json)")
    e.add_argument("--top", type=int, default=1, help="export the K best (as NAME.top1.json ...)")
    e.add_argument("--metric", help="rank by this metric (default: the sweep's)")
    e.add_argument("--mode", choices=["min", "max"])
    e.set_defaults(func=_export)
    v = sub.add_parser("verify", help="re-train a sweep's finalists and its base config on fresh seeds",
                       description="Verify a finished sweep: re-train its K best configs and the base config on S "
                                   "fresh seeds (the same for all), as Ray Tune trials; writes verification.parquet "
                                   "and export then writes the verified winner.")  # fmt: skip
    v.add_argument("experiment", metavar="EXPERIMENT_DIR")
    v.add_argument("--top", type=int, metavar="K", help="finalists besides the base config (default 3)")
    v.add_argument("--seeds", type=int, metavar="S", help="fresh seeds per config (default 3)")
    v.add_argument("--verify-data", metavar="DIR", help="also evaluate each re-trained model on this dataset folder")
    v.add_argument("--address", help="Ray cluster to join")
    v.add_argument("--shared-storage", action="store_true", help="vouch that the experiment's path is on every node")
    v.set_defaults(func=_verify)
    rp = sub.add_parser("report", help="plots, index.html and a summary of a sweep",
                        description="Report on a sweep: PNG plots, an index.html and a terminal summary.")  # fmt: skip
    rp.add_argument("experiment", metavar="EXPERIMENT_DIR")
    rp.add_argument("--out", help="folder for the report (default: EXPERIMENT_DIR/report)")
    rp.set_defaults(func=_report)


# --- generate / export-model / preview ----------------------------------------------------


def _gen_api():  # noqa: ANN202 - imported on use (matplotlib, torch)
    from trainer_core.generate import api

    return api


def _generate(a: argparse.Namespace) -> int:
    r = _gen_api().generate(a.checkpoint, a.start, a.out, a.frames, a.control, a.start_frame, a.format, a.order,
                            a.device)  # fmt: skip
    print(f"generated {r['frames'] - 1} frames ({r['seconds']:.1f} s at {r['fps']:g} fps) after {r['start']}, "
          f"control {r['control']}: forward {r['forward_m_s']:.2f} m/s, left {r['left_m_s']:.2f} m/s, "
          f"yaw rate {r['yaw_rate_deg_s']:.1f} deg/s -> {r['out']}")  # fmt: skip
    return 0


def _export_model(a: argparse.Namespace) -> int:
    r = _gen_api().export_model(a.checkpoint, a.out, a.skeleton, a.device)
    print(f"exported the model of epoch {r['epoch']} ({r['parameters']} parameters, {r['joints']} joints, "
          f"{r['fps']:g} fps) -> {r['out']}; load it with trainer_core.generate.inference.load_model")  # fmt: skip
    return 0


def _preview(a: argparse.Namespace) -> int:
    r = _gen_api().preview(a.motion, a.out, a.compare, a.skeleton, a.stride)
    print(f"preview: {r['frames']} frames (every {r['stride']} of {r['source_frames']}) -> {r['out']}")
    return 0


def _add_generate(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="roll a trained model out from a real start frame into a BVH or clip",
                       description="Generate motion: roll a model out autoregressively from a real frame of a "
                                   "start clip, driven by the clip's own control or a constant speed and turn, "
                                   "and write it as BVH (the dataset's skeleton) or as a .npz/.json clip.")  # fmt: skip
    g.add_argument("checkpoint", metavar="CHECKPOINT", help="best_model.pt, checkpoint_epoch_N.pt or an exported model")
    g.add_argument("--start", required=True, metavar="CLIP",
                   help="start clip: .npz or seed .json (skeleton files beside it), or .bvh")  # fmt: skip
    g.add_argument("--start-frame", type=int, default=1, metavar="F", help="the real frame to start from (default 1)")
    g.add_argument("--frames", type=int, required=True, metavar="N", help="frames to generate after the start frame")
    g.add_argument("--control", default="clip", metavar="clip|SPEED,TURN_DEG_S",
                   help="clip: the start clip's own (the last held past its end); or forward m/s and turn deg/s "
                        "(positive: left), e.g. 1.2,30; a negative speed as --control=-1,0 (default clip)")  # fmt: skip
    g.add_argument("--out", required=True, metavar="FILE", help="motion.bvh, .npz or .json")
    g.add_argument("--format", choices=["bvh", "npz", "json"], help="must agree with --out's suffix (default: it)")
    g.add_argument("--order", default="ZXY", help="BVH rotation channel order, e.g. ZXY (default) or ZYX")
    g.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    g.set_defaults(func=_generate)
    e = sub.add_parser("export-model", help="a checkpoint's weights and what inference needs, in one file",
                       description="Export a model for inference: weights (no optimizer), architecture, "
                                   "normalizer, skeleton and config, loadable with torch.load(weights_only=True) "
                                   "and by trainer_core.generate.inference.load_model.")  # fmt: skip
    e.add_argument("checkpoint", metavar="CHECKPOINT", help="best_model.pt or checkpoint_epoch_N.pt")
    e.add_argument("--out", required=True, metavar="FILE.pt")
    e.add_argument("--skeleton", metavar="DIR", help="folder of the skeleton files (default: the training data's)")
    e.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    e.set_defaults(func=_export_model)
    p = sub.add_parser("preview", help="a skeleton animation (GIF, or MP4 with ffmpeg) of a motion",
                       description="Render a motion as a skeleton animation; with --compare, beside another "
                                   "(e.g. the ground truth). The camera follows the root.")  # fmt: skip
    p.add_argument("motion", metavar="MOTION", help="a .bvh, or a .npz/.json clip (skeleton beside it or --skeleton)")
    p.add_argument("--compare", metavar="OTHER", help="a second motion drawn beside the first")
    p.add_argument("--out", required=True, metavar="FILE", help="preview.gif or preview.mp4")
    p.add_argument("--skeleton", metavar="DIR", help="folder of the skeleton files, for .npz/.json clips")
    p.add_argument("--stride", type=int, default=2, metavar="K", help="draw every K-th frame (default 2)")
    p.set_defaults(func=_preview)


# --- cluster ------------------------------------------------------------------------------

DEFAULT_CLUSTER_DIR = "results/local-cluster"


def _cluster_up(a: argparse.Namespace) -> int:
    from trainer_core.errors import ConfigError
    from tuner.local_cluster import LocalCluster

    try:
        resources = json.loads(a.worker_resources) if a.worker_resources else {}
    except json.JSONDecodeError as e:
        raise ConfigError(f"--worker-resources {a.worker_resources!r}: not JSON ({e.msg})") from None
    if not isinstance(resources, dict) or not all(isinstance(v, (int, float)) for v in resources.values()):
        raise ConfigError(f"--worker-resources {a.worker_resources!r}: must be a JSON object of numbers")
    cluster = LocalCluster(a.dir, workers=a.workers, cpus_per_node=a.cpus, head_cpus=a.head_cpus,
                           worker_resources=resources, port=a.port or 0)  # fmt: skip
    address = cluster.start()
    print(f"local Ray cluster at {address}: head + {a.workers} worker(s), {a.cpus:g} CPU each")
    print(f"sweep on it: motiontune sweep --address {address} --storage <shared path> --shared-storage ...")
    print(f"stop it:     motiontune cluster down --dir {a.dir}")
    return 0


def _cluster_down(a: argparse.Namespace) -> int:
    from tuner.local_cluster import LocalCluster

    cluster = LocalCluster.from_state(a.dir)
    n = len(cluster.nodes)
    cluster.stop()
    print(f"stopped the {n} node(s) of the local cluster at {cluster.address}")
    return 0


def _add_cluster(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="a multi-node Ray cluster on this machine, for trying things out",
                       description="Start or stop a local multi-node Ray cluster (ray start).")  # fmt: skip
    csub = p.add_subparsers(dest="cluster_cmd", required=True, parser_class=_Parser)
    up = csub.add_parser("up", help="start a head and N workers with `ray start`")
    up.add_argument("--dir", default=DEFAULT_CLUSTER_DIR, help=f"state and logs (default {DEFAULT_CLUSTER_DIR})")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--cpus", type=float, default=1, help="CPUs each node declares")
    up.add_argument("--head-cpus", type=float, help="CPUs the head declares (default: --cpus)")
    up.add_argument("--worker-resources", metavar="JSON", help="custom resources per worker, e.g. '{\"gpu_like\": 1}'")
    up.add_argument("--port", type=int, help="the head's GCS port (default: a free one)")
    up.set_defaults(func=_cluster_up)
    down = csub.add_parser("down", help="stop exactly the nodes `cluster up` started")
    down.add_argument("--dir", default=DEFAULT_CLUSTER_DIR)
    down.set_defaults(func=_cluster_down)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_train, _add_eval, _add_data, _add_space, _add_sweep, _add_resume_export, _add_generate, _add_cluster,
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="motiontune", description="Hyperparameter search for a character-motion model.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from trainer_core.errors import DivergedError, MotiontuneError

    warnings.showwarning = _show_warning
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except MotiontuneError as e:
        print(f"motiontune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DivergedError as e:
        print(f"motiontune: training {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("motiontune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`... | head -1`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
