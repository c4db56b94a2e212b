"""Reading configs: a seed-format file or dict -> a validated ``TrainConfig``.

Keys are typed against the schema in ``config``; every problem (unknown key,
with a "did you mean" hint; wrong type; out-of-range value; a bad stage) is
collected and raised together as one ``ConfigError``.
"""

from __future__ import annotations

import json
import math
import types
import typing
import warnings
from pathlib import Path
from typing import Any

from trainer_core.config import (
    AUGMENT_KEY,
    DEPRECATED_KEYS,
    KEY_SECTION,
    LOSS_GROUPS,
    SECTIONS,
    STAGE_KEY,
    STAGE_TRAINER_KEYS,
    STRUCTURED,
    AugmentConfig,
    Stage,
    TrainConfig,
)
from trainer_core.errors import ConfigError, did_you_mean, raise_all
from trainer_core.io_utils import read_json


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """Check ``value`` against a field's type; ints are accepted for floats, never bools for numbers."""
    if key.removeprefix(f"{AUGMENT_KEY}.") in STRUCTURED:  # splits, pairs, ranges, terms: their section types them
        return value
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, problems)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                problems.append(f"`{key}` is {value}, but must be a finite number")
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    problems.append(f"`{key}` is {value!r}, but must be {'null or ' if None in args else ''}{_type_name(tp)}")
    return value


_HINTS = {sec: typing.get_type_hints(cls) for sec, cls in SECTIONS.items()}
_AUG_HINTS = typing.get_type_hints(AugmentConfig)


def _parse_augmentation(raw: dict[str, Any], problems: list[str]) -> AugmentConfig:
    """The ``augmentation`` block (or ``augmentation.KEY`` entries) -> ``AugmentConfig``."""
    values: dict[str, Any] = {}
    for k, v in raw.items():
        if k not in _AUG_HINTS:
            problems.append(f"`{AUGMENT_KEY}.{k}` is not an augmentation key{did_you_mean(k, _AUG_HINTS)}")
            continue
        values[k] = _coerce(v, _AUG_HINTS[k], f"{AUGMENT_KEY}.{k}", problems)
    return AugmentConfig(**values)


def _parse_stage(i: int, raw: Any, problems: list[str]) -> Stage | None:
    at = f"{STAGE_KEY}[{i}]"
    if not isinstance(raw, dict):
        problems.append(f"`{at}` must be an object with `range` and `label`")
        return None
    for k in raw:
        if k not in ("range", "label", "trainer", "loss_groups"):
            problems.append(
                f"`{at}.{k}` is not a stage key{did_you_mean(k, ('range', 'label', 'trainer', 'loss_groups'))}"
            )
    rng = raw.get("range")
    if not (
        isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in rng)
    ):
        problems.append(f"`{at}.range` is {rng!r}, but must be [first_epoch, last_epoch] (integers, inclusive)")
        return None
    trainer: dict[str, float] = {}
    for k, v in (raw.get("trainer") or {}).items():
        if k in DEPRECATED_KEYS:
            _warn_deprecated(k, v)
            continue
        if k not in STAGE_TRAINER_KEYS:
            problems.append(f"`{at}.trainer.{k}` cannot be set per stage{did_you_mean(k, STAGE_TRAINER_KEYS)}")
            continue
        trainer[k] = _coerce(v, int if k == "freerun_horizon" else float, f"{at}.trainer.{k}", problems)
    groups: dict[str, dict[str, float]] = {}
    raw_groups = raw.get("loss_groups") or {}
    if not isinstance(raw_groups, dict):
        problems.append(f"`{at}.loss_groups` must be an object of core/aux/long")
        raw_groups = {}
    for g, weights in raw_groups.items():
        if g not in LOSS_GROUPS:
            problems.append(
                f"`{at}.loss_groups.{g}` is not a loss group (core, aux, long){did_you_mean(g, LOSS_GROUPS)}"
            )
            continue
        groups[g] = {}
        for k, v in (weights or {}).items():
            if k in DEPRECATED_KEYS:
                _warn_deprecated(k, v)
                continue
            if k not in LOSS_GROUPS[g]:
                owner = next((n for n, ks in LOSS_GROUPS.items() if k in ks), None)
                hint = f"; it belongs to `{owner}`" if owner else did_you_mean(k, LOSS_GROUPS[g])
                problems.append(f"`{at}.loss_groups.{g}.{k}` is not a `{g}` weight{hint}")
                continue
            groups[g][k] = _coerce(v, float, f"{at}.loss_groups.{g}.{k}", problems)
    label = raw.get("label", f"stage{i + 1}")
    return Stage(first=rng[0], last=rng[1], label=str(label), trainer=trainer, loss_groups=groups)


_warned: set[str] = set()


def _warn_deprecated(key: str, value: Any) -> None:
    if value not in (0, 0.0, None) and key not in _warned:
        _warned.add(key)
        warnings.warn(f"`{key}` is deprecated: {DEPRECATED_KEYS[key]} (it is {value}; set it to 0)", stacklevel=3)


def config_from_dict(raw: Any, where: str = "config") -> TrainConfig:
    """Flat seed-format dict -> validated ``TrainConfig``; unknown keys and bad values raise."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must hold a JSON object of config keys")
    problems: list[str] = []
    values: dict[str, dict[str, Any]] = {sec: {} for sec in SECTIONS}
    stages: list[Stage] = []
    aug_raw: dict[str, Any] = {}
    known = (*KEY_SECTION, STAGE_KEY, AUGMENT_KEY, *DEPRECATED_KEYS)
    for key, value in raw.items():
        if key == AUGMENT_KEY:
            if not isinstance(value, dict):
                problems.append(f"`{AUGMENT_KEY}` must be an object, e.g. {{\"mirror\": true, \"noise_std\": 0.01}}")
            else:
                aug_raw.update(value)
        elif key.startswith(AUGMENT_KEY + "."):
            aug_raw[key[len(AUGMENT_KEY) + 1 :]] = value
        elif key in DEPRECATED_KEYS:
            _warn_deprecated(key, value)
        elif key == STAGE_KEY:
            if not isinstance(value, list):
                problems.append(f"`{STAGE_KEY}` must be a list of stages")
                continue
            for i, s in enumerate(value):
                stage = _parse_stage(i, s, problems)
                if stage is not None:
                    stages.append(stage)
        elif key in KEY_SECTION:
            sec = KEY_SECTION[key]
            values[sec][key] = _coerce(value, _HINTS[sec][key], key, problems)
        else:
            problems.append(f"unknown key `{key}`{did_you_mean(key, known)}")
    raise_all(problems, ConfigError, where)
    aug = _parse_augmentation(aug_raw, problems)
    raise_all(problems, ConfigError, where)
    cfg = TrainConfig(**{sec: cls(**values[sec]) for sec, cls in SECTIONS.items()}, stages=stages, aug=aug)
    cfg.validate(where)
    return cfg


# A config whose run takes seconds: a small model, 4 short epochs, the default's 3-stage shape, 2 s long validation.
SMOKE_OVERRIDES: dict[str, Any] = {
    "hidden_dim": 64, "num_layers": 2, "batch": 8, "seq_len": 30, "steps_per_epoch": 8, "eval_freerun_horizon": 12,
    "eval_long_seconds": 2.0,
}  # fmt: skip
SMOKE_EPOCHS = 4


def smoke_config() -> TrainConfig:
    """The packaged default shrunk for smoke tests (``--smoke-test``)."""
    raw = load_config().with_epochs(SMOKE_EPOCHS).to_dict()
    return config_from_dict({**raw, **SMOKE_OVERRIDES}, "smoke-test config")


def default_config_path() -> Path:
    return Path(__file__).parent / "configs" / "exp_phase_mpl.json"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a config file (the packaged default when ``path`` is None), apply ``overrides``, type it."""
    path = Path(path) if path is not None else default_config_path()
    raw = read_json(path, ConfigError, comments=True)
    if isinstance(raw, dict) and overrides:
        raw = {**raw, **overrides}
    return config_from_dict(raw, str(path))


def parse_set_option(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from ``--set``: VALUE is read as JSON when it parses, else as a string."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: must be KEY=VALUE, e.g. --set lr=0.001")
    try:
        return key.strip(), json.loads(text)
    except json.JSONDecodeError:
        return key.strip(), text
