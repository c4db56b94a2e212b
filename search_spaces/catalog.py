"""Every parameter a search space may search or fix: its kind, hard limits and meaning.

Scalar parameters set one config key directly. The others are derived:

- TF decay: ``tf_start_frac``, ``tf_span_frac`` place ``tf_start_epoch`` and
  ``tf_end_epoch`` as fractions of the run; ``tf_min_frac`` makes
  ``tf_min = tf_max * tf_min_frac``, so TF always decays from high to low.
- Augmentation: ``augmentation.mirror`` and ``augmentation.noise_std`` set those
  keys of the ``augmentation`` block; ``speed_scale_halfwidth`` ``w`` sets
  ``speed_scale_range`` to ``[1 - w, 1 + w]``.
- In-place share: ``inplace_balance`` false leaves ``inplace_share`` null (batches
  hold in-place clips as the data does); true sets it to ``inplace_share``, drawn
  only then (so a base config without the key stays a point of the space).
- The stage schedule: ``n_stages`` and per-stage families (``<family><k>``, k
  the stage number) that build ``freerun_stage_schedule`` with the seed's
  rules holding by construction (see ``mapping.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer_core.config import ADAPTIVE_METHODS, ROOT_FROM, TF_MODES, TF_SHAPES, WEIGHT_KEYS


@dataclass(frozen=True)
class ParamDef:
    kind: str  # "float", "int" or "categorical"
    low: float | None = None  # hard limits: any space's bounds must lie within them
    high: float | None = None
    choices: tuple = ()
    family: str = ""  # "", "stage" (k = 1..n-1) or "rise" (k = 2..n)
    help: str = ""
    when: tuple[str, object] | None = None  # (param, value): sampled only when that param takes that value


_W = 100.0  # the trainer's bound on any loss weight

SCALARS: dict[str, ParamDef] = {
    "lr": ParamDef("float", 1e-7, 1.0, help="learning rate"),
    "batch": ParamDef("int", 1, 65536, help="windows per step"),
    "seq_len": ParamDef("int", 2, 10000, help="frames per window"),
    "hidden_dim": ParamDef("int", 8, 8192, help="MotionEncoder width"),
    "num_layers": ParamDef("int", 1, 16, help="MotionEncoder layers"),
    "dropout": ParamDef("float", 0.0, 0.99, help="trunk dropout"),
    "weight_decay": ParamDef("float", 0.0, 1.0, help="AdamW weight decay"),
    "hold_s": ParamDef("float", 0.0, 60.0, help="seconds of standing still added per in-place training clip"),
    "hold_legs": ParamDef(
        "categorical", choices=(False, True), help="add each in-place training clip with its root and legs held"
    ),
    "root_from": ParamDef("categorical", choices=ROOT_FROM, help="root motion changes the frame's or the control's"),
    "ema_decay": ParamDef("float", 0.0, 0.9999, help="moving average of the weights, validated and kept (0: off)"),
    **{
        k: ParamDef("float", 0.0, _W, help="global loss weight")
        for k in WEIGHT_KEYS
        if k not in ("freerun_weight", "w_latent_consistency")
    },
    "tf_mode": ParamDef("categorical", choices=TF_MODES, help="teacher forcing decay mode"),
    "tf_shape": ParamDef("categorical", choices=TF_SHAPES, help="teacher forcing decay shape"),
    "foot_early_epochs": ParamDef("int", 0, 100_000, help="w_foot_early applies for epochs 1..this (0: never)"),
    "tf_max": ParamDef("float", 0.0, 1.0, help="teacher forcing ratio at the start of the decay"),
    "adaptive_loss_method": ParamDef("categorical", choices=ADAPTIVE_METHODS, help="adaptive loss weights"),
    "adaptive_loss_alpha": ParamDef(
        "float", 0.0, 10.0, when=("adaptive_loss_method", "gradnorm"), help="GradNorm asymmetry (gradnorm only)"
    ),
    "adaptive_loss_temperature": ParamDef(
        "float", 0.01, 100.0, when=("adaptive_loss_method", "dwa"), help="DWA temperature (dwa only)"
    ),
}

# The guide's augmentation block; the speed range is searched as its half-width around 1.
AUGMENT: dict[str, ParamDef] = {
    "augmentation.mirror": ParamDef(
        "categorical", choices=(False, True), help='mirror half the windows left/right ("auto" unless the base is true)'
    ),
    "augmentation.noise_std": ParamDef("float", 0.0, 1.0, help="Gaussian noise on the normalized inputs"),
    "speed_scale_halfwidth": ParamDef(
        "float", 0.0, 0.75, help="augmentation.speed_scale_range = [1 - w, 1 + w]: windows resampled in time"
    ),
}

# ``inplace_share``: null (the data's own mix) unless ``inplace_balance`` is true.
INPLACE: dict[str, ParamDef] = {
    "inplace_balance": ParamDef(
        "categorical", choices=(False, True), help="true: set inplace_share; false: null (the data's own mix)"
    ),
    "inplace_share": ParamDef(
        "float", 0.0, 0.99, when=("inplace_balance", True), help="in-place share of each batch (balance true)"
    ),
}

DERIVED: dict[str, ParamDef] = {
    "tf_min_frac": ParamDef("float", 0.0, 1.0, help="tf_min = tf_max * tf_min_frac"),
    "tf_start_frac": ParamDef("float", 0.0, 1.0, help="tf_start_epoch as a fraction of the epochs"),
    "tf_span_frac": ParamDef("float", 0.0, 1.0, help="tf_end_epoch: this fraction of the epochs left after the start"),
    "n_stages": ParamDef("int", 2, 20, help="stages of the free-run schedule"),
    "stage_share": ParamDef("float", 0.01, 0.99, family="stage", help="stage k's share of the epochs left"),
    "freerun_first": ParamDef("float", 0.0, _W, help="stage 1 freerun_weight (at most the rule's freerun_first_max)"),
    "freerun_rise": ParamDef(
        "float", 0.0, 1.0, family="rise", help="stage k's rise in freerun_weight, within what the rules allow"
    ),
    "horizon_first": ParamDef("int", 1, 1000, help="stage 1 freerun_horizon"),
    "horizon_step": ParamDef("int", 0, 1000, family="rise", help="stage k's freerun_horizon increase"),
    "latent_first": ParamDef("float", 0.0, _W, help="stage 1 w_latent_consistency"),
    "latent_growth": ParamDef("float", 0.0, _W, family="rise", help="stage k's w_latent_consistency factor"),
    "core_first": ParamDef("float", 0.0, _W, help="stage 1 core weights (w_fk_pos, w_rot_local)"),
    "core_growth": ParamDef("float", 0.0, _W, family="rise", help="stage k's core weight factor"),
    "limb_first": ParamDef("float", 0.0, _W, help="stage 1 w_limb_geo"),
    "limb_step": ParamDef("float", 0.0, _W, family="rise", help="stage k's w_limb_geo increase"),
}

CATALOG: dict[str, ParamDef] = {**SCALARS, **AUGMENT, **INPLACE, **DERIVED}
TF_PARAMS = ("tf_mode", "tf_max", "tf_min_frac", "tf_start_frac", "tf_span_frac")
STAGE_PARAMS = tuple(k for k in DERIVED if k not in TF_PARAMS)
FAMILIES = tuple(k for k, d in CATALOG.items() if d.family)

# What each stage overrides, as the seed's configs do.
STAGE_CORE_KEYS = ("w_fk_pos", "w_rot_local")
STAGE_AUX_KEYS = ("w_limb_geo",)


def condition_holds(name: str, values: dict) -> bool:
    """Whether a conditional parameter is in play given the other params' ``values`` (unconditional: always)."""
    when = CATALOG[name].when
    return when is None or when[0] not in values or values[when[0]] == when[1]


def family_indices(name: str, n_stages: int) -> range:
    """The stage numbers a family has for ``n_stages`` stages."""
    return range(1, n_stages) if CATALOG[name].family == "stage" else range(2, n_stages + 1)


def param_name(family: str, k: int) -> str:
    return f"{family}{k}"
