"""Metric-driven config adjustment: the guide's ``train_configurator.py --tune`` rules.

A finished run's last-epoch metrics decide which knobs to raise for the next run:

======================== =================================================================
free-run metric is high  raise
======================== =================================================================
``FreeRun/YawAbsDeg``    ``freerun_weight`` and ``freerun_horizon``
``FreeRun/RootVelMAE``   ``freerun_weight``
``FreeRun/GeoDeg``       ``w_latent_consistency``, ``w_fk_pos``, ``w_rot_local``
======================== =================================================================

``FreeRun/GeoDeg`` is the guide's ``InputRotGeoDeg``: in free run the rotations
the model takes as input are its own previous predictions, so their geodesic
error is the free-run geodesic error.

"High" (every threshold lives in ``Thresholds``): the free-run value does not
beat the copy-last-frame baseline's (``summary.json`` -> ``baseline``) by the
margin ``beat``, or its error grows over the rollout faster than the
baseline's: free-run / teacher value above ``drift`` times the baseline's
free-run / teacher value. The raises keep the stage rules of the search spaces
(``mapping.stage_rule_problems``): the free-run weight is raised from stage 2 on,
each stage by at most what ``freerun_step_max`` and ``freerun_cap`` still allow;
the result is checked with the same code and by the trainer's own validation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces.mapping import stage_rule_problems
from search_spaces.spec import Rules
from trainer_core.config import STAGE_KEY, TrainConfig
from trainer_core.config_load import config_from_dict
from trainer_core.errors import ConfigError, raise_all

_EP = re.compile(r"valfree_ep(\d+)\.json$")


@dataclass(frozen=True)
class Thresholds:
    """When a free-run metric counts as high, and how far each rule moves its knobs."""

    beat: float = 0.9
    """High when the free-run value is above ``beat`` x the copy-last-frame baseline's (beats it by < 10%)."""
    drift: float = 1.5
    """High when free-run / teacher is above ``drift`` x the baseline's free-run / teacher (error grows too fast)."""
    freerun_weight_step: float = 0.05
    """Added to ``freerun_weight`` (each stage from 2 on, within the rules) per rule that raises it."""
    horizon_step: int = 4
    """Frames added to ``freerun_horizon`` (global and every stage, at most ``seq_len``)."""
    weight_factor: float = 1.25
    """``w_latent_consistency``, ``w_fk_pos``, ``w_rot_local`` (global and per stage) are multiplied by this."""


RULES = (  # metric -> what it raises
    ("YawAbsDeg", ("freerun_weight", "freerun_horizon")),
    ("RootVelMAE", ("freerun_weight",)),
    ("GeoDeg", ("w_latent_consistency", "w_fk_pos", "w_rot_local")),
)


def read_run_metrics(metrics_root: Path) -> tuple[int, dict[str, float], dict[str, float]]:
    """The last epoch, its teacher+free-run metrics, and the copy-last-frame baseline of the run's summary."""
    root = Path(metrics_root)
    epochs = sorted(int(m.group(1)) for p in root.glob("valfree_ep*.json") if (m := _EP.search(p.name)))
    if not root.is_dir() or not epochs:
        raise ConfigError(
            f"--metrics-root {root}: holds no metric files (valfree_epXXX.json); pass a run's metrics/ folder"
        )
    last = epochs[-1]
    metrics: dict[str, float] = {}
    for mode in ("teacher", "valfree"):
        path = root / f"{mode}_ep{last:03d}.json"
        if not path.is_file():
            raise ConfigError(f"--metrics-root {root}: {path.name} is missing; pass a complete run's metrics/ folder")
        metrics.update(json.loads(path.read_text()))
    summary = root.parent / "summary.json"
    if not summary.is_file():
        raise ConfigError(
            f"--metrics-root {root}: no summary.json beside it (it holds the copy-last-frame baseline); "
            "pass the metrics/ folder of a finished run"
        )
    base = json.loads(summary.read_text()).get("baseline") or {}
    return last, metrics, base


def high_metrics(metrics: dict[str, float], base: dict[str, float], th: Thresholds) -> dict[str, str]:
    """Metric name -> why it is high (one line), for every rule's metric that is."""
    out: dict[str, str] = {}
    for name, _ in RULES:
        free, teach = metrics.get(f"FreeRun/{name}"), metrics.get(name)
        b_free, b_teach = base.get(f"FreeRun/{name}"), base.get(name)
        if free is None or b_free is None:
            continue
        if free > th.beat * b_free:
            out[name] = f"FreeRun/{name} {free:.4g} > {th.beat:g} x copy-last-frame {b_free:.4g}"
        elif teach and b_teach and free / teach > th.drift * (b_free / b_teach):
            out[name] = (
                f"FreeRun/{name} / {name} = {free / teach:.3g} > {th.drift:g} x copy-last-frame's "
                f"{b_free / b_teach:.3g} (error grows over the rollout)"
            )
    return out


def _raise_freerun_weight(raw: dict[str, Any], cfg: TrainConfig, delta: float, rules: Rules) -> list[str]:
    if not cfg.stages:
        old = cfg.loss.freerun_weight
        raw["freerun_weight"] = round(min(rules.freerun_cap, old + delta), 6)
        return [f"freerun_weight {old:g} -> {raw['freerun_weight']:g}"]
    changes, prev = [], None
    for k, (s, rs) in enumerate(zip(cfg.stages, raw[STAGE_KEY]), start=1):
        w = cfg.loss.replace(s.weight_overrides()).freerun_weight
        new = w if k == 1 else min(rules.freerun_cap, prev + rules.freerun_step_max, w + delta)
        new = round(max(new, w), 6)
        if new != w:
            rs.setdefault("trainer", {})["freerun_weight"] = new
            rs.get("loss_groups", {}).get("long", {}).pop("freerun_weight", None)
            changes.append(f"{s.label} freerun_weight {w:g} -> {new:g}")
        prev = new
    return changes or ["freerun_weight: no room left under the stage rules (freerun_step_max, freerun_cap)"]


def _raise_horizon(raw: dict[str, Any], cfg: TrainConfig, step: int) -> list[str]:
    T = cfg.optim.seq_len
    old = cfg.freerun.freerun_horizon
    raw["freerun_horizon"] = min(T, old + step)
    changes = [f"freerun_horizon {old} -> {raw['freerun_horizon']}"] if raw["freerun_horizon"] != old else []
    for s, rs in zip(cfg.stages, raw[STAGE_KEY]):
        if "freerun_horizon" in s.trainer:
            h = int(s.trainer["freerun_horizon"])
            rs["trainer"]["freerun_horizon"] = min(T, h + step)
            if rs["trainer"]["freerun_horizon"] != h:
                changes.append(f"{s.label} freerun_horizon {h} -> {rs['trainer']['freerun_horizon']}")
    return changes or [f"freerun_horizon: already at seq_len={T}"]


def _scale_weight(raw: dict[str, Any], cfg: TrainConfig, key: str, factor: float) -> list[str]:
    old = getattr(cfg.loss, key)
    raw[key] = round(min(100.0, old * factor), 6)
    changes = [f"{key} {old:g} -> {raw[key]:g}"]
    for rs in raw[STAGE_KEY]:
        for block in (rs.get("trainer", {}), *rs.get("loss_groups", {}).values()):
            if key in block:
                v = block[key]
                block[key] = round(min(100.0, v * factor), 6)
                changes.append(f"{rs.get('label')} {key} {v:g} -> {block[key]:g}")
    return changes


def suggest(
    metrics_root: Path, cfg: TrainConfig, rules: Rules, th: Thresholds = Thresholds(), where: str = "the config"
) -> tuple[TrainConfig, list[str]]:
    """The adjusted config and one line per change, each with the metric and value that caused it.

    ``cfg`` (from ``where``, for messages) must keep ``rules`` itself: the raises keep them, but cannot mend
    a config that breaks them (a run trained with ``--epochs`` keeps only the stages that fit, so its
    stored config may start with a free-run stage)."""
    broken = stage_rule_problems(cfg, rules)
    if broken:
        raise ConfigError(
            f"{where}: already breaks the stage rules that suggest keeps ({'; '.join(broken)}); pass a config "
            "that keeps them (for a run trained with --epochs, the config it was rescaled from) or a --space "
            "whose rules it keeps"
        )
    epoch, metrics, base = read_run_metrics(metrics_root)
    high = high_metrics(metrics, base, th)
    raw = cfg.to_dict()
    lines: list[str] = []
    for name, knobs in RULES:
        if name not in high:
            continue
        for knob in knobs:
            now = config_from_dict(raw, "suggested config")
            if knob == "freerun_weight":
                done = _raise_freerun_weight(raw, now, th.freerun_weight_step, rules)
            elif knob == "freerun_horizon":
                done = _raise_horizon(raw, now, th.horizon_step)
            else:
                done = _scale_weight(raw, now, knob, th.weight_factor)
            lines += [f"{c}  (because {high[name]}, epoch {epoch})" for c in done]
    out = config_from_dict(raw, "suggested config")
    problems = stage_rule_problems(out, rules)
    raise_all(problems, ConfigError, "the suggested config breaks the stage rules")
    if not lines:
        lines.append(f"no rule fired at epoch {epoch}: every free-run metric beats copy-last-frame as required")
    return out, lines
