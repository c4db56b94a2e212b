"""The trainer's config: the seed's flat ``exp_phase_mpl.json`` format, typed once.

A config file is one flat JSON object (``//`` comments allowed) plus
``freerun_stage_schedule``. ``config_load.load_config`` turns it into ``TrainConfig``, a set
of dataclasses, one per concern; every key maps to exactly one field. Unknown
keys fail with a "did you mean" hint; wrong types and out-of-range values are
collected and reported together. ``TrainConfig.to_dict`` gives back the flat
format, keys in a stable order, which ``motiontune train --config`` runs as is.

This module is the schema: the sections, their bounds and the rules across
them. Reading a file or a dict into it is ``config_load``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from trainer_core.errors import ConfigError, did_you_mean, raise_all
from trainer_core.split_spec import GroupSpec, SplitSpec

# Loss terms by group, each weighted by its config key (see losses.py).
LOSS_GROUPS: dict[str, tuple[str, ...]] = {
    "core": ("w_rot_geo", "w_rot_delta", "w_rot_ortho", "w_fk_pos", "w_rot_local", "w_root_vel"),
    "aux": ("w_attn_reg", "w_rot_delta_root", "w_rot_log", "w_limb_geo", "w_contact", "w_phase", "w_foot_early"),
    "long": ("w_latent_consistency", "freerun_weight"),
}
WEIGHT_KEYS = tuple(k for keys in LOSS_GROUPS.values() for k in keys)
DEPRECATED_KEYS = {"w_cond_yaw": "the cond-yaw loss was removed; the key is ignored"}
TF_MODES = ("epoch_linear", "step_linear", "constant")
ROOT_FROM = ("frame", "control")
TF_SHAPES = ("linear", "cosine", "exp", "sigmoid")  # the decay's shape between its two ends (schedules.tf_ratio)
# Loss term name -> its weight key: ``w_fk_pos`` weighs ``fk_pos``, ``freerun_weight`` weighs ``freerun``.
TERM_KEYS: dict[str, str] = {(k.removeprefix("w_") if k.startswith("w_") else "freerun"): k for k in WEIGHT_KEYS}
ADAPTIVE_METHODS = ("none", "gradnorm", "uncertainty", "dwa")
METRIC_MODES = ("min", "max")


def _check(problems: list[str], ok: bool, msg: str) -> None:
    if not ok:
        problems.append(msg)


def _in_range(problems: list[str], owner: object, key: str, lo: float, hi: float, ends: str = "[]") -> None:
    """Require ``owner.key`` in the interval ``lo..hi``; ``ends`` says which ends are closed, e.g. "(]"."""
    v = getattr(owner, key)
    above = lo < v if ends[0] == "(" else lo <= v
    below = v < hi if ends[1] == ")" else v <= hi
    _check(problems, above and below, f"`{key}` is {v}, but must be in {ends[0]}{lo:g}, {hi:g}{ends[1]}")


# Structured values (splits, mirror, joint pairs, speed range, adaptive terms) are parsed from their config form
# once, when their section is built, so every consumer reads a typed value; ``to_dict`` writes them back in the
# form a config file holds. A malformed one keeps its field's default and its message waits for ``problems()``:
# every problem of a config is still reported together, in the usual order.


def _parse_mirror(value: Any) -> bool | Literal["auto"]:
    if isinstance(value, bool) or value == "auto":
        return value
    raise ConfigError(f'`augmentation.mirror` is {value!r}, but must be true, false or "auto"')


def _parse_mirror_pairs(value: Any) -> tuple[tuple[str, str], ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(
        isinstance(q, (list, tuple)) and len(q) == 2 and all(isinstance(n, str) for n in q) for q in value
    ):
        return tuple((q[0], q[1]) for q in value)
    raise ConfigError(f"`augmentation.mirror_pairs` is {value!r}, but must be [[LEFT, RIGHT], ...] joint names")


def _parse_speed_range(value: Any) -> tuple[float, float]:
    if not (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"`augmentation.speed_scale_range` is {value!r}, but must be [lo, hi]")
    if not 0.25 <= value[0] <= value[1] <= 4.0:
        raise ConfigError(f"`augmentation.speed_scale_range` is {list(value)}, but must satisfy 0.25 <= lo <= hi <= 4")
    return float(value[0]), float(value[1])


def _parse_terms(value: Any) -> tuple[str, ...]:
    """A list of term names, or one comma-separated string of them (the CLI's form)."""
    terms = [t.strip() for t in value.split(",") if t.strip()] if isinstance(value, str) else value
    terms = list(terms) if isinstance(terms, tuple) else terms
    if not (isinstance(terms, list) and terms and all(isinstance(t, str) for t in terms)):
        raise ConfigError(
            f'`adaptive_loss_terms` is {terms!r}, but must be term names, e.g. "fk_pos,rot_local,rot_delta"'
        )
    return tuple(terms)


# Structured key -> (parse: its config form, or an already parsed value -> the typed value, ConfigError if
# malformed; write: the typed value -> its config form, JSON lists and strings as a config file holds them).
STRUCTURED: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "val_split": (lambda v: SplitSpec.parse(v, "val_split"), SplitSpec.to_json),
    "test_split": (
        lambda v: None if v is None else SplitSpec.parse(v, "test_split"),
        lambda s: None if s is None else s.to_json(),
    ),
    "motion_groups": (GroupSpec.parse, lambda g: None if g is None else g.to_json()),
    "mirror": (_parse_mirror, lambda m: m),
    "mirror_pairs": (_parse_mirror_pairs, lambda ps: None if ps is None else [list(q) for q in ps]),
    "speed_scale_range": (_parse_speed_range, list),
    "adaptive_loss_terms": (_parse_terms, list),
}


def _parse_structured(section: Any) -> dict[str, str]:
    """Type ``section``'s structured fields in place; key -> message for each malformed one (left at its default)."""
    malformed: dict[str, str] = {}
    for f in fields(section):
        if f.name in STRUCTURED:
            try:
                setattr(section, f.name, STRUCTURED[f.name][0](getattr(section, f.name)))
            except ConfigError as e:
                malformed[f.name] = str(e)
                setattr(section, f.name, f.default)
    return malformed


def _section_dict(section: Any) -> dict[str, Any]:
    """A section's keys and values as a config file writes them."""
    out = dataclasses.asdict(section)
    out.update({k: write(getattr(section, k)) for k, (_, write) in STRUCTURED.items() if k in out})
    return out


@dataclass
class DataConfig:
    data: str | None = None
    """Folder of clip NPZ files and the skeleton; None: the bundled real mocap."""
    bundle_json: str | None = None
    """Normalizer bundle to reuse; None: computed on the training split and saved in ``out``."""
    val_split: SplitSpec = SplitSpec("hash")
    """Which clips validate: ``"hash"`` (``val_fraction`` of the clips, by a hash of their names),
    ``{"group": FIELD, "values": [...], "pattern": REGEX}`` (every clip whose name's FIELD, a named
    group of REGEX, is one of the values: whole styles, motions or performers held out), the same
    with ``"fraction": F`` instead of ``values`` (that share of the field's values, chosen by a hash
    of each value), or ``{"clips": [NAME, ...]}``. See ``SplitSpec``."""
    val_fraction: float = 0.2
    """Share of clips held out by ``val_split: "hash"``."""
    test_split: SplitSpec | None = None
    """Clips held out from training and selection, evaluated only at the end (same forms; None: none)."""
    cond_window_s: float = 0.5
    """The control signal is the mean root velocity and yaw rate over this many seconds after the target frame."""
    motion_groups: GroupSpec | None = GroupSpec("speed")
    """Groups the summary and ``eval`` report on their own beside all clips: ``"speed"`` (``in-place`` below
    0.3 m/s mean root speed, else ``locomotion``), ``{"speed": M_PER_S}``, ``{"group": FIELD, "sets":
    {NAME: [VALUE, ..]}}`` by a label of the clip names, or null. See ``GroupSpec``."""
    inplace_share: float | None = None
    """Share of each training batch's windows drawn from ``in-place`` clips; None: as many as the data holds."""
    hold_s: float = 0.0
    """Seconds of standing still added to the training data for each training clip in the ``in-place``
    group: the clip's stillest frame held, with zero velocity (see ``groups.held_poses``); 0: none. Teaches
    the model that a figure at rest stays at rest, which held-out standing clips need."""
    hold_legs: bool = False
    """Add for each training clip in the ``in-place`` group a copy with its root and the skeleton's legs
    held at their stillest frame and the upper body moving as recorded (see ``groups.legs_held``): arms
    that wave or a spine that bows do not set the legs stepping."""

    def __post_init__(self) -> None:
        self._malformed = _parse_structured(self)

    def problems(self) -> list[str]:
        p: list[str] = []
        _in_range(p, self, "val_fraction", 0.0, 1.0, "()")
        _in_range(p, self, "cond_window_s", 0.0, 5.0, "(]")
        p += [self._malformed[k] for k in ("val_split", "test_split", "motion_groups") if k in self._malformed]
        if self.inplace_share is not None:
            _in_range(p, self, "inplace_share", 0.0, 1.0, "[)")
        _in_range(p, self, "hold_s", 0.0, 60.0)
        if self.hold_s > 0 and self.motion_groups is None and "motion_groups" not in self._malformed:
            p.append(f"`hold_s` is {self.hold_s}, but `motion_groups` is null; set it (e.g. \"speed\") so in-place "
                     "clips are known, or set `hold_s` to 0")  # fmt: skip
        if self.hold_legs and self.motion_groups is None and "motion_groups" not in self._malformed:
            p.append("`hold_legs` is true, but `motion_groups` is null; set it (e.g. \"speed\") so in-place "
                     "clips are known, or set `hold_legs` to false")  # fmt: skip
        if self.test_split is not None and self.test_split.kind == "hash":
            p.append('`test_split` is "hash", but must name clips or groups (a hash split is for validation)')
        return p


@dataclass
class AugmentConfig:
    """The guide's ``augmentation`` block, applied per training window on the device."""

    mirror: bool | Literal["auto"] = False
    """Mirror half the windows left/right (joint pairs found by name, or ``mirror_pairs``): true, false, or
    ``"auto"``: mirror where the skeleton's joint names show left/right pairs, else train unmirrored with a
    warning (for configs meant for skeletons not yet seen; true fails on a skeleton without sides)."""
    mirror_pairs: tuple[tuple[str, str], ...] | None = None
    """``[[LEFT, RIGHT], ...]`` joint-name pairs overriding the ones found by name; None: by name."""
    noise_std: float = 0.0
    """Std of Gaussian noise added to the normalized input features (not to targets)."""
    speed_scale_range: tuple[float, float] = (1.0, 1.0)
    """``[lo, hi]``: each window is resampled in time by a factor drawn uniformly from it."""

    def __post_init__(self) -> None:
        self._malformed = _parse_structured(self)

    def problems(self) -> list[str]:
        p: list[str] = [self._malformed[k] for k in ("mirror",) if k in self._malformed]
        _in_range(p, self, "noise_std", 0.0, 1.0)
        p += [self._malformed[k] for k in ("speed_scale_range", "mirror_pairs") if k in self._malformed]
        return p

    @property
    def active(self) -> bool:
        return bool(self.mirror) or self.noise_std > 0 or self.speed_scale_range != (1.0, 1.0)


@dataclass
class ModelConfig:
    hidden_dim: int = 512
    """Width of the MotionEncoder output and of the heads' trunk."""
    num_layers: int = 3
    """Linear layers in the MotionEncoder."""
    dropout: float = 0.1
    phase_bins: int = 8
    """Bins of the phase attention in the period/phase head."""
    encoder: str | None = None
    """``best_encoder.pt`` from ``motiontune pretrain``: its weights start the MotionEncoder (and its
    normalizer is used unless ``bundle_json`` is given); None: a fresh encoder."""
    root_from: str = "frame"
    """What the predicted root velocity and yaw rate are a change of: ``frame``, the current frame's (the
    seed's), or ``control``, the commanded ones, so a rollout's root cannot drift away from its control."""

    def problems(self) -> list[str]:
        p: list[str] = []
        _check(p, self.root_from in ROOT_FROM,
               f"`root_from` is {self.root_from!r}, but must be one of {', '.join(ROOT_FROM)}")  # fmt: skip
        _in_range(p, self, "hidden_dim", 8, 8192)
        _in_range(p, self, "num_layers", 1, 16)
        _in_range(p, self, "dropout", 0.0, 1.0, "[)")
        _in_range(p, self, "phase_bins", 2, 64)
        return p


@dataclass
class OptimConfig:
    epochs: int = 30
    batch: int = 8
    lr: float = 3e-4
    seq_len: int = 60
    """Frames per training window (the window holds ``seq_len + 1`` frames)."""
    weight_decay: float = 1e-5
    grad_clip: float = 1.0
    """Clip the gradient norm to this; 0 turns clipping off."""
    steps_per_epoch: int | None = None
    """Optimizer steps per epoch; None: one pass over every window start."""
    grad_accum_steps: int = 1
    """Micro-batches of ``batch`` windows per optimizer step, each loss divided by this: the step sees
    ``batch * grad_accum_steps`` windows, in the memory of ``batch``."""
    ema_decay: float = 0.0
    """Validate and keep an exponential moving average of the weights, moving ``1 - ema_decay`` of the way
    to the trained weights each optimizer step (0.995: about the last 200 steps); 0: the trained weights."""

    def problems(self) -> list[str]:
        p: list[str] = []
        _in_range(p, self, "epochs", 1, 100_000)
        _in_range(p, self, "batch", 1, 65_536)
        _in_range(p, self, "lr", 0.0, 1.0, "(]")
        _in_range(p, self, "seq_len", 2, 10_000)
        _in_range(p, self, "weight_decay", 0.0, 1.0)
        _check(p, self.grad_clip >= 0.0, f"`grad_clip` is {self.grad_clip}, but must be >= 0")
        _check(
            p,
            self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            f"`steps_per_epoch` is {self.steps_per_epoch}, but must be >= 1 or null",
        )
        _in_range(p, self, "grad_accum_steps", 1, 1024)
        _in_range(p, self, "ema_decay", 0.0, 1.0, "[)")
        return p


@dataclass
class TFConfig:
    tf_mode: str = "epoch_linear"
    tf_start_epoch: int = 1
    tf_end_epoch: int = 19
    tf_max: float = 1.0
    tf_min: float = 0.0
    tf_shape: str = "linear"
    """How the ratio falls from ``tf_max`` to ``tf_min``: ``linear``, ``cosine`` (half a cosine: slow at both
    ends), ``exp`` (exponential: fast early) or ``sigmoid`` (inverse sigmoid, Bengio et al. 2015: slow, fast,
    slow); see ``schedules.tf_ratio``."""

    def problems(self) -> list[str]:
        p: list[str] = []
        _check(p, self.tf_mode in TF_MODES, f"`tf_mode` is {self.tf_mode!r}, but must be one of {', '.join(TF_MODES)}")
        _check(
            p,
            self.tf_shape in TF_SHAPES,
            f"`tf_shape` is {self.tf_shape!r}, but must be one of {', '.join(TF_SHAPES)}"
            + did_you_mean(str(self.tf_shape), TF_SHAPES),
        )
        _in_range(p, self, "tf_min", 0.0, 1.0)
        _in_range(p, self, "tf_max", 0.0, 1.0)
        _check(p, self.tf_min <= self.tf_max, f"`tf_min` is {self.tf_min}, but must be <= `tf_max` ({self.tf_max})")
        _check(p, self.tf_start_epoch >= 1, f"`tf_start_epoch` is {self.tf_start_epoch}, but must be >= 1")
        _check(
            p,
            self.tf_end_epoch >= self.tf_start_epoch,
            f"`tf_end_epoch` is {self.tf_end_epoch}, but must be >= `tf_start_epoch` ({self.tf_start_epoch})",
        )
        return p


@dataclass
class LossWeights:
    """One weight per loss term; the group of each is in ``LOSS_GROUPS``."""

    w_rot_geo: float = 0.01
    w_rot_delta: float = 1.0
    w_rot_ortho: float = 0.001
    w_fk_pos: float = 0.07
    w_rot_local: float = 0.07
    w_root_vel: float = 0.1
    w_attn_reg: float = 0.01
    w_rot_delta_root: float = 0.01
    w_rot_log: float = 0.2
    w_limb_geo: float = 0.0
    w_contact: float = 0.02
    w_phase: float = 0.02
    w_foot_early: float = 0.0
    """The early foot term (``losses.foot_early_term``), applied only for epochs <= ``foot_early_epochs``."""
    w_latent_consistency: float = 0.03
    freerun_weight: float = 0.0

    def problems(self, where: str = "") -> list[str]:
        return [
            f"`{where}{f.name}` is {getattr(self, f.name)}, but must be in [0, 100]"
            for f in fields(self)
            if not (0.0 <= getattr(self, f.name) <= 100.0)
        ]

    def replace(self, overrides: dict[str, float]) -> LossWeights:
        return dataclasses.replace(self, **overrides)


@dataclass
class AdaptiveLossConfig:
    """The guide's adaptive loss weights (see ``train/adaptive.py``): learned or scheduled multipliers on
    the configured ``w_*`` of ``adaptive_loss_terms``; every other term keeps its weight."""

    adaptive_loss_method: str = "none"
    """``none``, ``gradnorm`` (Chen et al. 2018), ``uncertainty`` (Kendall et al. 2018) or ``dwa`` (Liu et al. 2019)."""
    adaptive_loss_terms: tuple[str, ...] = ("fk_pos", "rot_local", "rot_delta")
    """Loss term names (``TERM_KEYS``); a config gives a list or one comma-separated string."""
    adaptive_loss_alpha: float = 1.5
    """GradNorm's asymmetry: how strongly a term that trains slower than the others is pushed (0: equal grads)."""
    adaptive_loss_temperature: float = 2.0
    """DWA's temperature: large values give near-equal weights, small ones follow the loss ratios sharply."""

    def __post_init__(self) -> None:
        self._malformed = _parse_structured(self)

    @property
    def active(self) -> bool:
        return self.adaptive_loss_method != "none"

    def problems(self) -> list[str]:
        p: list[str] = []
        m = self.adaptive_loss_method
        _check(
            p,
            m in ADAPTIVE_METHODS,
            f"`adaptive_loss_method` is {m!r}, but must be one of {', '.join(ADAPTIVE_METHODS)}"
            + did_you_mean(m, ADAPTIVE_METHODS),
        )
        terms = list(self.adaptive_loss_terms)
        if "adaptive_loss_terms" in self._malformed:
            p.append(self._malformed["adaptive_loss_terms"])
        else:
            for t in terms:
                _check(
                    p,
                    t in TERM_KEYS,
                    f"`adaptive_loss_terms` names `{t}`, which is not a loss term{did_you_mean(t, TERM_KEYS)}",
                )
            _check(p, len(set(terms)) == len(terms), f"`adaptive_loss_terms` {terms} names a term twice")
        _in_range(p, self, "adaptive_loss_alpha", 0.0, 10.0)
        _in_range(p, self, "adaptive_loss_temperature", 0.0, 100.0, "(]")
        return p


@dataclass
class FreeRunConfig:
    freerun_horizon: int = 8
    """Frames rolled out from a ground-truth start for the free-run loss."""
    eval_freerun_horizon: int = 18
    """Frames rolled out when evaluating ``FreeRun/*``; fixed so epochs and trials compare."""
    limb_geo_margin_deg: float = 5.0
    """Limb geodesic errors below this are free (the hinge of ``limb_geo``)."""
    foot_early_epochs: int = 0
    """``w_foot_early`` applies for epochs 1..this only (the guide allows an explicit foot constraint
    early in training); 0: never."""
    eval_long_every: int | None = None
    """Epochs between long-rollout validations (``FreeRun/long/*``, ``train.long_eval``): None, every epoch
    whose stage trains free run (``freerun_weight > 0``); N, every N-th epoch; 0, never. The last epoch always
    validates (unless 0)."""
    eval_long_seconds: float = 5.0
    """Seconds each long-validation rollout runs, from every validation clip's second frame."""

    def problems(self, seq_len: int) -> list[str]:
        p: list[str] = []
        _check(
            p,
            1 <= self.freerun_horizon <= seq_len,
            f"`freerun_horizon` is {self.freerun_horizon}, but must be in [1, seq_len={seq_len}]",
        )
        _in_range(p, self, "eval_freerun_horizon", 1, 1000)
        _in_range(p, self, "limb_geo_margin_deg", 0.0, 180.0)
        _in_range(p, self, "foot_early_epochs", 0, 100_000)
        if self.eval_long_every is not None:
            _in_range(p, self, "eval_long_every", 0, 100_000)
        _in_range(p, self, "eval_long_seconds", 0.0, 600.0, "(]")
        return p


@dataclass
class Stage:
    """One entry of ``freerun_stage_schedule``: inclusive epochs and the keys it overrides."""

    first: int
    last: int
    label: str
    trainer: dict[str, float] = field(default_factory=dict)
    """Overrides of loss weights and ``freerun_horizon``."""
    loss_groups: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per group, overrides of that group's weights only."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"range": [self.first, self.last], "label": self.label}
        if self.trainer:
            out["trainer"] = dict(self.trainer)
        if self.loss_groups:
            out["loss_groups"] = {g: dict(v) for g, v in self.loss_groups.items()}
        return out

    def weight_overrides(self) -> dict[str, float]:
        """Every weight this stage sets, from ``trainer`` and ``loss_groups``."""
        out = {k: v for k, v in self.trainer.items() if k in WEIGHT_KEYS}
        for g in ("core", "aux", "long"):
            out.update(self.loss_groups.get(g, {}))
        return out


@dataclass
class RunConfig:
    out: str | None = None
    """Output folder; None: ``results/runs/<timestamp>``."""
    seed: int = 0
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""
    amp: bool = True
    """bf16 autocast on CUDA (ignored on CPU)."""
    objective: str = "FreeRun/GeoDeg"
    """Metric that picks ``best_model.pt`` (and a sweep's default objective)."""
    objective_mode: str = "min"
    checkpoint_every: int = 1
    keep_checkpoints: int = 3
    """Keep the newest N ``checkpoint_epoch_*.pt``; 0 keeps all."""

    def problems(self) -> list[str]:
        p: list[str] = []
        dev_ok = self.device in ("auto", "cpu", "cuda") or (
            self.device.startswith("cuda:") and self.device[5:].isdigit()
        )
        _check(p, dev_ok, f"`device` is {self.device!r}, but must be auto, cpu, cuda or cuda:N")
        _check(
            p,
            self.objective_mode in METRIC_MODES,
            f"`objective_mode` is {self.objective_mode!r}, but must be min or max",
        )
        _check(p, self.checkpoint_every >= 1, f"`checkpoint_every` is {self.checkpoint_every}, but must be >= 1")
        _check(p, self.keep_checkpoints >= 0, f"`keep_checkpoints` is {self.keep_checkpoints}, but must be >= 0")
        return p


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "tf": TFConfig,
    "loss": LossWeights,
    "freerun": FreeRunConfig,
    "adaptive": AdaptiveLossConfig,
    "run": RunConfig,
}
AUGMENT_KEY = "augmentation"  # the guide's nested block; its keys also work as ``augmentation.KEY``
# Flat key -> section; the seed's keys first so exported files read like the seed's.
KEY_SECTION: dict[str, str] = {f.name: sec for sec, cls in SECTIONS.items() for f in fields(cls)}
STAGE_KEY = "freerun_stage_schedule"
STAGE_TRAINER_KEYS = (*WEIGHT_KEYS, "freerun_horizon")
_KEY_ORDER = (
    "data", "bundle_json", "out", "epochs", "batch", "lr", "seq_len",
    "tf_mode", "tf_start_epoch", "tf_end_epoch", "tf_max", "tf_min", "tf_shape",
)  # fmt: skip


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    tf: TFConfig = field(default_factory=TFConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    freerun: FreeRunConfig = field(default_factory=FreeRunConfig)
    adaptive: AdaptiveLossConfig = field(default_factory=AdaptiveLossConfig)
    run: RunConfig = field(default_factory=RunConfig)
    stages: list[Stage] = field(default_factory=list)
    aug: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self, where: str = "config") -> None:
        """Raise one ConfigError listing every problem."""
        problems = (
            self.data.problems()
            + self.model.problems()
            + self.optim.problems()
            + self.tf.problems()
            + self.loss.problems()
            + self.freerun.problems(self.optim.seq_len)
            + self.adaptive.problems()
            + self.run.problems()
            + self.aug.problems()
            + _stage_problems(self.stages, self.optim.epochs, self.optim.seq_len)
        )
        raise_all(problems, ConfigError, where)

    def to_dict(self) -> dict[str, Any]:
        """The flat seed format, stable key order; ``from_dict(to_dict())`` is the identity."""
        flat: dict[str, Any] = {}
        for sec in SECTIONS:
            flat.update(_section_dict(getattr(self, sec)))
        ordered = {k: flat.pop(k) for k in _KEY_ORDER}
        ordered.update(flat)
        ordered[AUGMENT_KEY] = _section_dict(self.aug)
        ordered[STAGE_KEY] = [s.to_dict() for s in self.stages]
        return ordered

    def with_epochs(self, epochs: int) -> TrainConfig:
        """The same run over ``epochs`` epochs: stage ranges and TF epochs are rescaled."""
        old = self.optim.epochs
        if epochs == old:
            return self
        scale = epochs / old
        new = dataclasses.replace(
            self,
            optim=dataclasses.replace(self.optim, epochs=epochs),
            tf=dataclasses.replace(
                self.tf,
                tf_start_epoch=max(1, round(self.tf.tf_start_epoch * scale)),
                tf_end_epoch=max(1, round(self.tf.tf_end_epoch * scale)),
            ),
            stages=rescale_stages(self.stages, old, epochs),
        )
        if self.freerun.foot_early_epochs > 0:  # an early term stays on for at least one epoch
            early = max(1, round(self.freerun.foot_early_epochs * scale))
            new.freerun = dataclasses.replace(self.freerun, foot_early_epochs=early)
        return new


def rescale_stages(stages: list[Stage], old_epochs: int, new_epochs: int) -> list[Stage]:
    """Stretch stage ranges from ``old_epochs`` to ``new_epochs``; stages left empty are dropped.

    Each stage's last epoch ``b`` moves to ``round(b * new / old)``, so stages stay
    contiguous and the last one ends at ``new_epochs``.
    """
    out: list[Stage] = []
    prev = 0
    for s in stages:
        last = new_epochs if s is stages[-1] else min(new_epochs, round(s.last * new_epochs / old_epochs))
        if last > prev:
            out.append(dataclasses.replace(s, first=prev + 1, last=last))
            prev = last
    if out and out[-1].last < new_epochs:  # the final stages collapsed into earlier ones
        out[-1] = dataclasses.replace(out[-1], last=new_epochs)
    return out


def _stage_problems(stages: list[Stage], epochs: int, seq_len: int) -> list[str]:
    if not stages:
        return []
    p: list[str] = []
    expected = 1
    for i, s in enumerate(stages):
        where = f"`{STAGE_KEY}[{i}]` ({s.label})"
        if s.first > s.last:
            p.append(f"{where}: range [{s.first}, {s.last}] is empty; first must be <= last")
        if s.first > expected:
            p.append(
                f"{where}: range starts at epoch {s.first}, leaving a gap after epoch {expected - 1}; "
                "ranges must be contiguous"
            )
        elif s.first < expected:
            p.append(
                f"{where}: range starts at epoch {s.first}, overlapping the previous stage (ends at {expected - 1})"
            )
        expected = s.last + 1
        h = s.trainer.get("freerun_horizon")
        if h is not None and not (1 <= h <= seq_len):
            p.append(f"{where}: `trainer.freerun_horizon` is {h}, but must be in [1, seq_len={seq_len}]")
        for k, v in s.weight_overrides().items():
            if not 0.0 <= v <= 100.0:
                p.append(f"{where}: `{k}` is {v}, but must be in [0, 100]")
    if stages[-1].last != epochs:
        p.append(
            f"`{STAGE_KEY}` ends at epoch {stages[-1].last}, but `epochs` is {epochs}; "
            "the stages must cover every epoch (use --epochs to rescale them)"
        )
    return p
