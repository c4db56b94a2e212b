"""The training loop: batches, loss, evaluation, checkpoints, epochs (the set-up is ``setup.setup``).

``fit`` trains one model from a ``TrainConfig`` and writes, in ``out``:
checkpoints, ``best_model.pt``, ``norm_template.json``, ``metrics/`` and
``summary.json``. ``on_epoch`` hands each epoch's metrics and checkpoint to a
caller (the Ray Tune trainable reports them); this module never imports Ray.

Long validation (``long_eval``): on the epochs ``long_due`` picks, the model
also rolls out ``eval_long_seconds`` from every validation clip, and the
``FreeRun/long/*`` values go into that epoch's metrics (and free-run metric
files); the baselines are scored once per run. ``EpochResult.long`` carries the
latest values to every later epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer_core.config import LOSS_GROUPS, TrainConfig
from trainer_core.data.groups import HELD_SUFFIX, LEGS_SUFFIX, motion_groups
from trainer_core.errors import CheckpointError, ConfigError, DivergedError, did_you_mean
from trainer_core.io_utils import atomic_write_json, json_safe
from trainer_core.model.rollout import free_run, predict, scheduled_sampling_inputs
from trainer_core.train import checkpoint as ckpt
from trainer_core.train.adaptive import shared_layer
from trainer_core.train.group_eval import GroupValidation, group_metric_names, spec_groups
from trainer_core.train.long_eval import EPOCH_KEY, latest_long, long_due, run_validation, summary_section
from trainer_core.train.long_eval import PREFIX as LONG_PREFIX
from trainer_core.train.losses import TERM_GROUP, TERMS, freerun_term, step_terms, weighted_total
from trainer_core.train.metrics import baselines, evaluate, metric_names
from trainer_core.train.metrics_io import FREERUN_PREFIX, MetricsWriter
from trainer_core.train.schedules import EpochPlan, plan_epoch, tf_ratio
from trainer_core.train.setup import Setup, setup
from trainer_core.train.summary import (
    SUMMARY_FILE,
    best_model,
    format_groups,
    group_metrics,
    test_metrics,
    write_summary,
)

NORM_FILE = "norm_template.json"
CONFIG_FILE = "config.json"
TERM_NAMES = tuple(TERMS)


@dataclass
class EpochResult:
    """What ``fit`` hands ``on_epoch`` after each epoch."""

    epoch: int
    metrics: dict[str, Any]  # teacher, free-run and training values of this epoch
    checkpoint: Path | None  # the epoch checkpoint written, if any
    is_best: bool
    # The latest ``FreeRun/long/*`` values (this epoch's, or carried from the last epoch that validated long)
    # and ``FreeRun/long/epoch``, that epoch; empty before the first long validation.
    long: dict[str, Any] = field(default_factory=dict)


def epoch_seed(seed: int, epoch: int) -> int:
    """Every epoch draws from its own seed, so a resumed run repeats the uninterrupted one."""
    return seed * 100_003 + epoch


def epoch_batches(s: Setup, generator: torch.Generator) -> list[torch.Tensor]:
    """Window starts per optimizer step, ``(grad_accum_steps, batch)`` each: a shuffled pass over every
    start, or ``steps_per_epoch`` steps. The draw depends on ``batch * grad_accum_steps`` only, so
    batch B with N micro-batches trains on exactly the windows of batch N*B.

    With ``inplace_share`` p (``s.inplace`` marks the starts in in-place clips), step i holds
    ``floor((i+1) p B) - floor(i p B)`` windows of in-place clips, first, and the rest from the other
    clips: each step's share is p within one window, the epoch's exactly so to one window; each group is
    drawn as its own shuffled passes. Without it the draw is the one above, window for window."""
    starts, micro, n_acc = s.train.window_starts, s.cfg.optim.batch, s.cfg.optim.grad_accum_steps
    batch = micro * n_acc
    steps = s.cfg.optim.steps_per_epoch or max(1, len(starts) // batch)
    need = steps * batch
    if s.inplace is None or s.cfg.data.inplace_share is None:
        order = torch.cat([torch.randperm(len(starts), device=starts.device, generator=generator)
                           for _ in range(math.ceil(need / len(starts)))])  # fmt: skip
        return list(starts[order[:need]].view(steps, n_acc, micro))
    share = s.cfg.data.inplace_share
    done = [math.floor(round(i * share * batch, 9)) for i in range(steps + 1)]
    counts = [b - a for a, b in zip(done, done[1:])]
    drawn = []
    for pool, n in ((starts[s.inplace], done[-1]), (starts[~s.inplace], need - done[-1])):
        passes = [torch.randperm(len(pool), device=starts.device, generator=generator)
                  for _ in range(math.ceil(n / len(pool)))]  # fmt: skip
        drawn.append(pool[torch.cat(passes)[:n]] if passes else pool[:0])
    rows, a, b = [], 0, 0
    for k in counts:
        rows.append(torch.cat([drawn[0][a : a + k], drawn[1][b : b + batch - k]]))
        a, b = a + k, b + batch - k
    return list(torch.stack(rows).view(steps, n_acc, micro))


def train_step(
    s: Setup, micro: torch.Tensor, plan: EpochPlan, tf: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on ``micro`` ``(N, B)`` window starts: N micro-batches, each loss divided by N,
    gradients accumulated (a 1-D ``(B,)`` is one micro-batch). Returns the mean loss and every term's mean."""
    if micro.dim() == 1:
        micro = micro[None]
    n = micro.shape[0]
    s.opt.zero_grad(set_to_none=True)
    total = torch.zeros((), device=micro.device)
    terms = torch.zeros(len(TERM_NAMES), device=micro.device)
    for starts in micro:
        loss, t = accumulate(s, starts, plan, tf, generator, 1.0 / n)
        total, terms = total + loss / n, terms + t / n
    if s.cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.cfg.optim.grad_clip)
    s.opt.step()
    if s.ema is not None:
        s.ema.update(s.model)
    if s.adaptive is not None:
        s.adaptive.step()
    return total, terms


def accumulate(
    s: Setup, starts: torch.Tensor, plan: EpochPlan, tf: float, generator: torch.Generator, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward on windows from ``starts``, adding ``scale`` times the loss's gradient to the
    parameters' ``.grad``. Returns the (unscaled) loss and every term, on the device.

    With mirroring or speed scaling on, the windows become an augmented ``Split`` of their own
    (see ``data/augment.py``); input noise goes on the trained pass's inputs only.
    """
    T = s.cfg.optim.seq_len
    split = s.train
    if s.aug is not None and s.aug.rebuilds:
        split = s.aug.batch(s.train, starts, T, generator)
        starts = split.window_starts
    idx = starts[:, None] + torch.arange(T + 1, device=starts.device)
    end = split.clip_end[starts][:, None]
    mask = idx < end
    idx = torch.minimum(idx, end - 1)
    x_in, R_in = scheduled_sampling_inputs(s.model, s.rt, split, idx, tf, generator)
    if s.aug is not None:
        x_in = s.aug.noise(x_in, generator)
    step = predict(s.model, s.rt, x_in, split.c[idx[:, :-1]], R_in)
    terms = step_terms(
        s.model, s.rt, s.kin, split, step, idx[:, :-1], idx[:, 1:], mask[:, 1:], plan.weights,
        math.radians(s.cfg.freerun.limb_geo_margin_deg), R_prev=R_in,
    )  # fmt: skip
    H = plan.freerun_horizon
    if plan.weights.freerun_weight > 0 and H <= T:
        chunk_starts = idx[:, : T - H + 1 : H][mask[:, : T - H + 1 : H]]
        terms["freerun"] = freerun_term(split, free_run(s.model, s.rt, split, chunk_starts, H))
    else:
        terms["freerun"] = torch.zeros((), device=starts.device)
    ad = s.adaptive
    if ad is not None and ad.on:
        active = ad.active(plan.weights)
        ad.observe(terms, plan.weights, shared_layer(s.model), scale)
        total = weighted_total(terms, plan.weights, ad.multipliers())[0] + ad.regularizer(active)
    else:
        total = weighted_total(terms, plan.weights)[0]
    (total * scale).backward()
    return total.detach(), torch.stack([terms[n].detach() for n in TERM_NAMES])


def train_epoch(s: Setup, epoch: int) -> dict[str, Any]:
    """One epoch; the only host syncs happen at its end."""
    plan = plan_epoch(s.cfg, epoch)
    torch.manual_seed(epoch_seed(s.cfg.run.seed, epoch))
    gen = torch.Generator(device=s.device).manual_seed(epoch_seed(s.cfg.run.seed, epoch))
    s.model.train()
    batches = epoch_batches(s, gen)
    total = torch.zeros((), device=s.device)
    term_sum = torch.zeros(len(TERM_NAMES), device=s.device)
    for i, starts in enumerate(batches):
        tf = tf_ratio(s.cfg.tf, epoch, i / len(batches))
        loss, terms = train_step(s, starts, plan, tf, gen)
        total += loss
        term_sum += terms
    n = len(batches)
    terms = dict(zip(TERM_NAMES, (term_sum / n).tolist()))
    loss = float(total / n)
    adaptive: dict[str, float] = {}
    mult = {name: 1.0 for name in TERM_NAMES}
    if s.adaptive is not None and s.adaptive.on:
        raw = [terms[t] for t in s.adaptive.terms]
        adaptive = s.adaptive.epoch_metrics(raw, plan.weights)
        mult.update(zip(s.adaptive.terms, s.adaptive.weights().tolist()))
        s.adaptive.end_epoch(raw, plan.weights)
    group_values = {g: 0.0 for g in LOSS_GROUPS}
    for name, value in terms.items():
        group_values[TERM_GROUP[name]] += mult[name] * getattr(plan.weights, TERMS[name]) * value
    denom = sum(group_values.values())
    return {
        **adaptive,
        "loss/total": loss,
        **{f"loss/{k}": v for k, v in terms.items()},
        **{f"loss_group/{g}": (v / denom if denom > 0 else 0.0) for g, v in group_values.items()},
        "tf_ratio": tf_ratio(s.cfg.tf, epoch, 0.0),
        "freerun_horizon": plan.freerun_horizon,
        "freerun_weight": plan.weights.freerun_weight,
        "stage": plan.stage,
        "steps": n,
    }


def _print_flush(line: str) -> None:
    print(line, flush=True)


def _clip_count(names: list[str]) -> str:
    """``"132"``, or ``"132 (+48 held poses, +48 with the legs held)"`` with ``hold_s`` and ``hold_legs``."""
    held, legs = (sum(n.endswith(suffix) for n in names) for suffix in (HELD_SUFFIX, LEGS_SUFFIX))
    added = [f"+{k} {what}" for k, what in ((held, "held poses"), (legs, "with the legs held")) if k]
    return f"{len(names) - held - legs} ({', '.join(added)})" if added else str(len(names))


def _better(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


def _checkpoint(
    s: Setup, out: Path, epoch: int, metrics: dict, best: float | None, best_epoch: int | None, is_best: bool
) -> Path | None:
    """``checkpoint_epoch_N.pt`` when due (and always after the last epoch), ``best_model.pt`` when best."""
    state = _state(s, epoch, metrics, best, best_epoch)
    path = None
    if epoch % s.cfg.run.checkpoint_every == 0 or epoch == s.cfg.optim.epochs:
        path = ckpt.epoch_path(out, epoch)
        ckpt.save(state, path)
        ckpt.prune(out, s.cfg.run.keep_checkpoints)
    if is_best:
        ckpt.save(state, out / ckpt.BEST_NAME)
    return path


def _state(s: Setup, epoch: int, metrics: dict, best: float | None, best_epoch: int | None) -> dict[str, Any]:
    return {
        "format": ckpt.FORMAT,
        "model_state_dict": s.eval_model.state_dict(),
        "optimizer_state_dict": s.opt.state_dict(),
        "epoch": epoch,
        "config": s.cfg.to_dict(),
        "arch": s.model.arch.to_dict(),
        "normalizer": s.norm.to_dict(),
        "objective": s.cfg.run.objective,
        "objective_mode": s.cfg.run.objective_mode,
        "best_metric": best,
        "best_epoch": best_epoch,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
        "data_fingerprint": s.dataset.fingerprint,
        "adaptive_state_dict": s.adaptive.state_dict() if s.adaptive is not None and s.adaptive.on else None,
        "skeleton_bones": list(s.dataset.skeleton.bones),
        "fps": s.rt.fps,
        **({} if s.ema is None else {"train_state_dict": s.model.state_dict(), "ema_updates": s.ema.updates}),
    }


def _progress_line(epoch: int, total: int, m: dict[str, Any], seconds: float) -> str:
    return (
        f"epoch {epoch:>3}/{total} {m['stage']:<16} tf {m['tf_ratio']:.2f} loss {m['loss/total']:.4f} | "
        f"GeoDeg {m['GeoDeg']:.3f} FreeRun/GeoDeg {m['FreeRun/GeoDeg']:.3f} | {seconds:.1f}s"
    ) + _long_note(m)


def _long_note(m: dict[str, Any]) -> str:
    """`` | skate 1.02 stepErr 0.41`` when the epoch validated long (a metric may be None: ``-``)."""
    if f"{LONG_PREFIX}FootSkateMS" not in m:
        return ""
    skate, step = m[f"{LONG_PREFIX}FootSkateMS"], m[f"{LONG_PREFIX}StepHzErr"]
    return " | " + " ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in (("skate", skate), ("stepErr", step)))


def fit(
    cfg: TrainConfig,
    out: Path,
    resume: Path | dict[str, Any] | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` into ``out``; ``resume`` is a checkpoint path or a loaded checkpoint. Returns the summary."""
    out = Path(out)
    log = log or _print_flush
    state = ckpt.load(resume) if isinstance(resume, (str, Path)) else resume
    if state is None and (ckpt.epoch_checkpoints(out) or (out / ckpt.BEST_NAME).exists()):
        raise CheckpointError(f"{out}: already holds a training run; pass --resume CHECKPOINT or choose another --out")
    s = setup(cfg, state)
    start = 1 if state is None else int(state["epoch"]) + 1
    best = None if state is None else state.get("best_metric")
    best_epoch = None if state is None else state.get("best_epoch")
    objective, mode = cfg.run.objective, cfg.run.objective_mode
    s.val_baselines = baselines(s.val, s.kin, cfg.freerun.eval_freerun_horizon)
    base = s.val_baselines["copy-last-frame"]
    known = [*metric_names(tuple(s.kin.groups)), *group_metric_names(spec_groups(cfg.data.motion_groups))]
    if objective not in known:
        raise ConfigError(
            f"`objective` is {objective!r}, but must be a metric the trainer writes{did_you_mean(objective, known)}"
        )
    clips = {c.name: c for c in s.dataset.clips}
    long_val = run_validation(cfg, s.val, s.dataset.skeleton, s.train.R,
                              motion_groups([clips[n] for n in s.val.names], cfg.data.motion_groups))  # fmt: skip
    group_val = GroupValidation.create(s.val, [clips[n] for n in s.val.names], cfg.data.motion_groups,
                                       cfg.freerun.eval_freerun_horizon)  # fmt: skip

    # Everything is checked: from here on files are written.
    out.mkdir(parents=True, exist_ok=True)
    writer = MetricsWriter(out)
    if state is not None:
        writer.truncate_after(start - 1)
    if isinstance(resume, (str, Path)):  # resumed into another folder: the best model may be an earlier epoch's
        ckpt.carry_best(Path(resume).parent, out, best_epoch)
    atomic_write_json(out / CONFIG_FILE, cfg.to_dict())
    s.norm.save(out / NORM_FILE)
    log(
        f"training on {s.device} ({s.device.type}): {_clip_count(s.train.names)} train / {len(s.val.names)} val clips, "
        f"{s.train.n_frames}/{s.val.n_frames} frames, "
        f"{sum(p.numel() for p in s.model.parameters()):,} parameters -> {out}"
    )
    t_run = time.perf_counter()
    past = writer.read_epochs(start - 1)
    history = [{k: v for k, v in m.items() if k in base or k == "epoch"} for m in past]
    last_metrics: dict[str, Any] = history[-1] if history else {}
    long_last = latest_long(past) if long_val is not None else {}  # carried to every epoch's EpochResult
    long_result: dict[str, Any] | None = None  # the last long validation of this process
    for epoch in range(start, cfg.optim.epochs + 1):
        t0 = time.perf_counter()
        train_stats = train_epoch(s, epoch)
        groups = None if group_val is None else group_val.windows
        horizon = cfg.freerun.eval_freerun_horizon
        metrics = {**evaluate(s.eval_model, s.rt, s.kin, s.val, horizon, groups), **train_stats}
        if group_val is not None:
            metrics.update(group_val.ratios(metrics))
        finite = math.isfinite(train_stats["loss/total"])  # a diverged epoch's rollouts would only be NaN
        if long_val is not None and finite and long_due(cfg, epoch, train_stats["freerun_weight"]):
            long_result = long_val.metrics(s.eval_model, s.rt)
            metrics.update(long_result["model"])
            long_last = {**long_result["model"], EPOCH_KEY: epoch}
        metrics["epoch"] = epoch
        metrics["seconds"] = time.perf_counter() - t0
        teacher = {k: v for k, v in metrics.items() if not k.startswith(FREERUN_PREFIX)}
        valfree = {k: v for k, v in metrics.items() if k.startswith(FREERUN_PREFIX)}
        writer.write_epoch(epoch, teacher, valfree)
        if not math.isfinite(train_stats["loss/total"]):
            summary = write_summary(out, s, metrics, base, history, best, best_epoch, "diverged",
                                    time.perf_counter() - t_run)  # fmt: skip
            if long_val is not None:
                summary["long"] = json_safe(summary_section(long_val, long_result, long_last))
                atomic_write_json(out / SUMMARY_FILE, summary)
            raise DivergedError(epoch, f"training loss is {train_stats['loss/total']} (lr={cfg.optim.lr:g})")
        value = float(metrics.get(objective, math.nan))
        is_best = _better(value, best, mode)
        if is_best:
            best, best_epoch = value, epoch
        path = _checkpoint(s, out, epoch, metrics, best, best_epoch, is_best)
        history.append({k: v for k, v in metrics.items() if k in base or k == "epoch"})
        last_metrics = metrics
        log(_progress_line(epoch, cfg.optim.epochs, metrics, metrics["seconds"]))
        if on_epoch is not None:
            on_epoch(EpochResult(epoch, metrics, path, is_best, dict(long_last)))
    summary = write_summary(
        out, s, last_metrics, base, history, best, best_epoch, "finished", time.perf_counter() - t_run
    )
    if long_val is not None:
        summary["long"] = json_safe(summary_section(long_val, long_result, long_last))
        atomic_write_json(out / SUMMARY_FILE, summary)
    has_best = (out / ckpt.BEST_NAME).exists()  # a run resumed from a loaded state may hold its best elsewhere
    if cfg.data.motion_groups is not None and best_epoch is not None and has_best:
        best_m, _ = best_model(s, out)
        summary["groups"] = {"val": group_metrics(s, best_m, s.val.names)}
        if s.test is not None:
            summary["groups"]["test"] = group_metrics(s, best_m, s.test.names)
        summary["groups"] = json_safe(summary["groups"])
        atomic_write_json(out / SUMMARY_FILE, summary)
        for line in format_groups(summary["groups"]["val"], "val"):
            log(line)
    if s.test is not None and has_best:
        summary["test"] = json_safe(test_metrics(s, out))
        atomic_write_json(out / SUMMARY_FILE, summary)
        t = summary["test"]
        model, base = t["model"], t["baselines"]["copy-last-frame"]
        log(
            f"test ({len(s.test.names)} held-out clips, best_model.pt of epoch {t['epoch']}): "
            f"GeoDeg {model['GeoDeg']:.3f} FreeRun/GeoDeg {model['FreeRun/GeoDeg']:.3f} | copy-last "
            f"{base['GeoDeg']:.3f} / {base['FreeRun/GeoDeg']:.3f}"
        )
    return summary
