"""Sampled params + a base config -> a full trainer config, and back.

The seed's rules hold by construction, never by filtering:

- stage ranges: stage k takes ``stage_share<k>`` of the epochs left (at least one
  epoch each), the last stage takes the rest, so ranges are contiguous and cover
  every epoch;
- free-run weight: stage 1 starts at ``freerun_first`` (at most
  ``freerun_first_max``: teacher-dominated); each later stage rises by an amount
  placed by ``freerun_rise<k>`` in [0, 1] inside the interval the rules leave:
  at least what is still needed to reach ``freerun_final_min`` with the stages
  left, at most ``freerun_step_max`` (and the cap). So the weight never
  decreases, never jumps by more than the bound, and ends at or above the minimum;
- horizons add non-negative ``horizon_step<k>`` (capped at ``seq_len``): they never shrink;
- TF: ``tf_min = tf_max * tf_min_frac``, so it decays from high to low;
- ``inplace_share``: null unless ``inplace_balance`` is true (see ``catalog.INPLACE``).

``config_to_params`` is the inverse: it expresses a config (the sweep's base,
the warm start) as a point of a space, or says why it is not one.
"""

from __future__ import annotations

import math
from typing import Any

from search_spaces.catalog import (
    AUGMENT,
    CATALOG,
    FAMILIES,
    INPLACE,
    SCALARS,
    STAGE_AUX_KEYS,
    STAGE_CORE_KEYS,
    STAGE_PARAMS,
    TF_PARAMS,
    condition_holds,
    family_indices,
    param_name,
)
from search_spaces.spec import Rules, SearchSpace
from trainer_core.config import AUGMENT_KEY, STAGE_KEY, TrainConfig
from trainer_core.config_load import config_from_dict
from trainer_core.errors import ConfigError, did_you_mean, raise_all

SIG_DIGITS = 6  # derived weights are rounded to this many significant digits


def _sig(x: float) -> float:
    return float(f"{x:.{SIG_DIGITS}g}")


def rise_interval(prev: float, k: int, n: int, rules: Rules) -> tuple[float, float]:
    """The rise of stage ``k`` (of ``n``) that keeps every rule reachable, given stage ``k-1``'s weight."""
    lo = max(0.0, rules.freerun_final_min - prev - (n - k) * rules.freerun_step_max)
    hi = max(0.0, min(rules.freerun_step_max, rules.freerun_cap - prev))
    return min(lo, hi), hi


def stage_rule_problems(cfg: TrainConfig, rules: Rules) -> list[str]:
    """Where ``cfg``'s stage schedule breaks the rules every sampled schedule keeps by construction:
    stage 1 at most ``freerun_first_max``, each rise within ``rise_interval`` (never down, at most
    ``freerun_step_max``, under the cap, the end at least ``freerun_final_min``), horizons never shrinking."""
    p: list[str] = []
    if not cfg.stages:
        return p
    w = [cfg.loss.replace(s.weight_overrides()).freerun_weight for s in cfg.stages]
    h = [int(s.trainer.get("freerun_horizon", cfg.freerun.freerun_horizon)) for s in cfg.stages]
    n = len(w)
    if w[0] > rules.freerun_first_max + 1e-9:
        p.append(f"stage 1 freerun_weight is {w[0]:g}, but rule `freerun_first_max` is {rules.freerun_first_max:g}")
    for k in range(2, n + 1):
        lo, hi = rise_interval(w[k - 2], k, n, rules)
        step = w[k - 1] - w[k - 2]
        if step < lo - 1e-9 or step > hi + 1e-9:
            p.append(f"stage {k} moves freerun_weight by {step:+g}, outside [{lo:g}, {hi:g}] the rules allow there")
        if h[k - 1] < h[k - 2]:
            p.append(f"stage {k} shrinks freerun_horizon from {h[k - 2]} to {h[k - 1]}")
    return p


def stage_ranges(shares: list[float], epochs: int) -> list[tuple[int, int]]:
    """Inclusive ranges from each stage's share of the epochs left; every stage gets at least one epoch.

    With fewer epochs than stages, the stages that cannot get an epoch are left out (first ones first).
    """
    n = len(shares) + 1
    ranges, end = [], 0
    for k, share in enumerate(shares, start=1):
        left = epochs - end
        length = min(max(1, round(share * left)), left - (n - k))
        if length >= 1:
            ranges.append((end + 1, end + length))
            end += length
    ranges.append((end + 1, epochs))
    return ranges


def _label(k: int, n: int) -> str:
    return "stage1_teacher" if k == 1 else (f"stage{k}_freerun" if k == n else f"stage{k}_mixed")


def build_schedule(p: dict[str, Any], rules: Rules, epochs: int, seq_len: int) -> list[dict[str, Any]]:
    """``freerun_stage_schedule`` in the seed's format from fully resolved stage params."""
    n = int(p["n_stages"])
    weight, horizon = float(p["freerun_first"]), int(p["horizon_first"])
    latent, core, limb = float(p["latent_first"]), float(p["core_first"]), float(p["limb_first"])
    per_stage = []
    for k in range(1, n + 1):
        if k > 1:
            lo, hi = rise_interval(weight, k, n, rules)
            weight = _sig(weight + lo + float(p[param_name("freerun_rise", k)]) * (hi - lo))
            horizon = horizon + int(p[param_name("horizon_step", k)])
            latent = _sig(latent * float(p[param_name("latent_growth", k)]))
            core = _sig(core * float(p[param_name("core_growth", k)]))
            limb = _sig(limb + float(p[param_name("limb_step", k)]))
        per_stage.append((weight, min(horizon, seq_len), latent, core, limb))
    ranges = stage_ranges([float(p[param_name("stage_share", k)]) for k in range(1, n)], epochs)
    if len(ranges) < n:  # fewer epochs than stages: keep the last stages (the rules' end point)
        per_stage = per_stage[n - len(ranges) :]
    schedule = []
    for (first, last), (w, h, lat, c, lb), k in zip(ranges, per_stage, range(n - len(ranges) + 1, n + 1)):
        schedule.append(
            {
                "range": [first, last],
                "label": _label(k, n),
                "trainer": {"freerun_weight": w, "freerun_horizon": h, "w_latent_consistency": lat},
                "loss_groups": {
                    "core": {key: c for key in STAGE_CORE_KEYS},
                    "aux": {key: lb for key in STAGE_AUX_KEYS},
                },
            }
        )
    return schedule


def _tf_keys(p: dict[str, Any], epochs: int) -> dict[str, Any]:
    start = 1 + round(float(p["tf_start_frac"]) * (epochs - 1))
    end = start + round(float(p["tf_span_frac"]) * (epochs - start))
    tf_max = float(p["tf_max"])
    return {
        "tf_mode": p["tf_mode"],
        "tf_max": tf_max,
        "tf_min": _sig(tf_max * float(p["tf_min_frac"])),
        "tf_start_epoch": start,
        "tf_end_epoch": end,
    }


def base_params(space: SearchSpace, cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """Every parameter value a config implies, and why the others cannot be read from it."""
    flat = cfg.to_dict()
    values: dict[str, Any] = {k: flat[k] for k in SCALARS}
    why: dict[str, str] = {}
    values.update(_augment_values(cfg, why))
    values["inplace_balance"] = cfg.data.inplace_share is not None
    values["inplace_share"] = cfg.data.inplace_share
    E = cfg.optim.epochs
    t = cfg.tf
    values["tf_min_frac"] = t.tf_min / t.tf_max if t.tf_max > 0 else 0.0
    values["tf_start_frac"] = (t.tf_start_epoch - 1) / (E - 1) if E > 1 else 0.0
    values["tf_span_frac"] = (
        (t.tf_end_epoch - t.tf_start_epoch) / (E - t.tf_start_epoch) if E > t.tf_start_epoch else 0.0
    )
    stages = cfg.stages
    if not stages:
        why.update({k: "the config has no freerun_stage_schedule" for k in STAGE_PARAMS})
        return values, why
    n = len(stages)
    values["n_stages"] = n
    end = 0
    for k, s in enumerate(stages[:-1], start=1):
        values[param_name("stage_share", k)] = (s.last - s.first + 1) / (E - end)
        end = s.last
    rows = []
    for s in stages:
        w = cfg.loss.replace(s.weight_overrides())
        cores = {getattr(w, key) for key in STAGE_CORE_KEYS}
        if len(cores) > 1:
            why["core_first"] = why["core_growth"] = f"stage `{s.label}` sets {'/'.join(STAGE_CORE_KEYS)} differently"
        horizon = int(s.trainer.get("freerun_horizon", cfg.freerun.freerun_horizon))
        rows.append((w.freerun_weight, horizon, w.w_latent_consistency, max(cores), getattr(w, STAGE_AUX_KEYS[0])))
    values["freerun_first"], values["horizon_first"], values["latent_first"] = rows[0][0], rows[0][1], rows[0][2]
    values["core_first"], values["limb_first"] = rows[0][3], rows[0][4]
    rules = space.rules
    for k in range(2, n + 1):
        (w0, h0, l0, c0, b0), (w1, h1, l1, c1, b1) = rows[k - 2], rows[k - 1]
        lo, hi = rise_interval(w0, k, n, rules)
        step = w1 - w0
        if step < lo - 1e-9 or step > hi + 1e-9:
            why["freerun_rise"] = (
                f"stage {k} moves freerun_weight by {step:+g}, outside [{lo:g}, {hi:g}] the rules allow there"
            )
        values[param_name("freerun_rise", k)] = 0.0 if hi - lo < 1e-12 else min(1.0, max(0.0, (step - lo) / (hi - lo)))
        values[param_name("horizon_step", k)] = h1 - h0
        values[param_name("limb_step", k)] = b1 - b0
        for fam, a, b in (("latent_growth", l0, l1), ("core_growth", c0, c1)):
            if a > 0:
                values[param_name(fam, k)] = b / a
            elif b == 0:
                values[param_name(fam, k)] = 1.0
            else:
                why[fam] = f"stage {k - 1} has weight 0, so stage {k}'s is not a growth of it"
    return values, why


def _augment_values(cfg: TrainConfig, why: dict[str, str]) -> dict[str, Any]:
    """The augmentation params a config implies; an off-centre speed range has no half-width."""
    lo, hi = cfg.aug.speed_scale_range
    out: dict[str, Any] = {"augmentation.mirror": bool(cfg.aug.mirror), "augmentation.noise_std": cfg.aug.noise_std}
    if math.isclose(lo + hi, 2.0, rel_tol=0, abs_tol=1e-9):
        out["speed_scale_halfwidth"] = round(hi - 1.0, 6)
    else:
        why["speed_scale_halfwidth"] = f"`augmentation.speed_scale_range` [{lo:g}, {hi:g}] is not centred on 1"
    return out


def _augment_block(v: dict[str, Any]) -> dict[str, Any]:
    """``augmentation`` entries from resolved params ``v`` (only the ones given)."""
    out: dict[str, Any] = {}
    if "augmentation.mirror" in v:
        out["mirror"] = bool(v["augmentation.mirror"])
    if "augmentation.noise_std" in v:
        out["noise_std"] = float(v["augmentation.noise_std"])
    if "speed_scale_halfwidth" in v:
        w = round(float(v["speed_scale_halfwidth"]), 6)  # both ends to the same decimals: centred on 1
        out["speed_scale_range"] = [round(1.0 - w, 6), round(1.0 + w, 6)]
    return out


def _check_param_names(space: SearchSpace, params: dict[str, Any]) -> None:
    """Every sampled name is a dimension of the space (families with their stage number)."""
    bad = []
    for name in params:
        base = name.rstrip("0123456789") if name not in CATALOG else name
        if base not in space.dims or (base in FAMILIES) != (base != name):
            bad.append(name)
    if bad:
        known = space.searched_names(int(params.get("n_stages", 0)) or None)
        raise ConfigError(
            f"space `{space.name}`: unknown param `{bad[0]}`{did_you_mean(bad[0], known)}; "
            "the trial's params must come from this space"
        )


def resolve(space: SearchSpace, params: dict[str, Any], base: TrainConfig) -> dict[str, Any]:
    """Base values, then the space's fixed values, then the sampled ``params``."""
    _check_param_names(space, params)
    values, why = base_params(space, base)
    base_stages = values.get("n_stages", 0)  # before the space's and the sample's n_stages replace it
    for name, d in space.dims.items():
        if not d.searched:
            if name in FAMILIES:
                n = int(params.get("n_stages", space.dims["n_stages"].value or values.get("n_stages", 0)))
                values.update({param_name(name, k): d.value for k in family_indices(name, n)})
                why.pop(name, None)
            else:
                values[name] = d.value
    values.update(params)
    if space.searches_stages:
        n = int(values["n_stages"])
        for fam in FAMILIES:
            for k in family_indices(fam, n):
                if param_name(fam, k) not in values:
                    reason = why.get(fam, f"the base config has {base_stages} stages, not {n}")
                    raise ConfigError(
                        f"space `{space.name}` takes `{fam}` from the base config, but {reason}; name it in the space"
                    )
        for fam in ("core_first", "core_growth", "freerun_rise", "latent_growth"):
            if fam in why and fam not in space.dims:
                raise ConfigError(f"space `{space.name}` takes `{fam}` from the base config, but {why[fam]}")
    return values


def params_to_config(space: SearchSpace, params: dict[str, Any], base: TrainConfig,
                     epochs: int | None = None) -> TrainConfig:  # fmt: skip
    """The full trainer config a trial runs: ``base`` with the space's params applied, validated.

    ``epochs`` (``sweep --epochs``; None: the base's): the config built over the base's own epochs is then
    rescaled as ``train --epochs`` rescales a config file (stage ranges and TF epochs; stages left empty
    dropped), so the params always apply to every stage of the base, however few epochs remain."""
    v = resolve(space, params, base)
    raw = base.to_dict()
    raw.update({k: v[k] for k in SCALARS if k in space.dims or k in params})
    aug = _augment_block({k: v[k] for k in AUGMENT if k in space.dims or k in params})
    if aug.get("mirror") is True and base.aug.mirror is not True:
        aug["mirror"] = "auto"  # a skeleton without left/right names then trains unmirrored, not as a failed trial
    raw[AUGMENT_KEY] = {**raw[AUGMENT_KEY], **aug}
    if any(k in space.dims for k in TF_PARAMS):
        raw.update(_tf_keys(v, base.optim.epochs))
    if any(k in space.dims or k in params for k in INPLACE):
        on = bool(v["inplace_balance"]) if "inplace_balance" in space.dims else True
        raw["inplace_share"] = v["inplace_share"] if on else None
    seq_len = int(raw["seq_len"])
    raw["freerun_horizon"] = min(int(raw["freerun_horizon"]), seq_len)
    if space.searches_stages:
        raw[STAGE_KEY] = build_schedule(v, space.rules, base.optim.epochs, seq_len)
    cfg = config_from_dict(raw, f"space `{space.name}` sample")
    if epochs is not None and epochs != cfg.optim.epochs:
        cfg = cfg.with_epochs(epochs)
        cfg.validate(f"space `{space.name}` sample over {epochs} epochs")
    return cfg


def config_to_params(space: SearchSpace, cfg: TrainConfig) -> dict[str, Any]:
    """The searched params that reproduce ``cfg``; ConfigError naming why if it is not a point of the space."""
    values, why = base_params(space, cfg)
    n = values.get("n_stages") if space.searches_stages else None
    problems = []
    params: dict[str, Any] = {}
    for name, d in space.dims.items():
        if not condition_holds(name, values):  # e.g. GradNorm's alpha when the method is dwa
            continue
        names = [param_name(name, k) for k in family_indices(name, n or 0)] if name in FAMILIES else [name]
        for pname in names:
            if name in why:
                problems.append(f"`{name}`: {why[name]}")
                break
            v = values.get(pname)
            if v is None or not d.contains(v):
                problems.append(f"`{pname}` is {_show(v)}, outside {d.describe()}")
            elif d.searched:
                params[pname] = int(round(v)) if d.kind == "int" and not d.choices else v
    raise_all(problems, ConfigError, f"the config is not a point of space `{space.name}`")
    return params


def _show(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else repr(v)
