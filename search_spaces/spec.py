"""Search spaces as data: a small JSON file naming what is searched, its bounds and scale, what is fixed.

::

    {
      "name": "default",
      "description": "...",
      "params": {
        "lr": {"low": 1e-4, "high": 1e-3, "log": true},      searched on a log scale
        "batch": {"choices": [4, 8, 16]},                     searched among choices
        "n_stages": {"value": 3},                             fixed
        "freerun_rise": {"low": 0.0, "high": 1.0}             a family: one dimension per stage
      },
      "rules": {"freerun_step_max": 0.175, "freerun_final_min": 0.3, "freerun_first_max": 0.0}
    }

Parameters a space does not name keep the base config's value. Stage families
left out keep the base config's per-stage values, which needs ``n_stages``
fixed; a space that searches ``n_stages`` must name every stage parameter.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from search_spaces.catalog import CATALOG, FAMILIES, STAGE_PARAMS, family_indices, param_name
from trainer_core.errors import ConfigError, did_you_mean, raise_all
from trainer_core.io_utils import read_json

SHIPPED_DIR = Path(__file__).parent / "spaces"
_SPEC_KEYS = ("low", "high", "log", "choices", "value")
_TOP_KEYS = ("name", "description", "params", "rules")


@dataclass(frozen=True)
class Dim:
    """One parameter of a space: searched over ``[low, high]`` or ``choices``, or fixed at ``value``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    value: Any = None

    @property
    def searched(self) -> bool:
        return self.value is None

    def suggest(self, trial: Any, name: str) -> Any:
        """Ask an Optuna trial (or Ray's captor of one) for this dimension's value under ``name``."""
        if self.choices:
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)

    def contains(self, v: Any) -> bool:
        if not self.searched:
            return _close(v, self.value)
        if self.choices:
            return any(_close(v, c) for c in self.choices)
        return isinstance(v, (int, float)) and self.low - 1e-9 * abs(self.low) <= v <= self.high + 1e-9 * abs(self.high)

    def describe(self) -> str:
        if not self.searched:
            return f"= {self.value}"
        if self.choices:
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        return f"[{_fmt(self.low)}, {_fmt(self.high)}]"


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _fmt(v: float | None) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


@dataclass(frozen=True)
class Rules:
    """The seed's rules for the free-run weight across stages."""

    freerun_step_max: float = 0.175
    """Largest rise from one stage to the next (the seed's 3-stage config rises by 0.175)."""
    freerun_final_min: float = 0.3
    """The last stage's freerun_weight is at least this."""
    freerun_first_max: float = 0.0
    """The first stage is teacher-dominated: its freerun_weight is at most this."""
    freerun_cap: float = 1.0
    """No stage's freerun_weight exceeds this."""


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    dims: dict[str, Dim]
    rules: Rules = field(default_factory=Rules)
    source: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)  # the file's content, for provenance

    @property
    def searches_stages(self) -> bool:
        return "n_stages" in self.dims

    def n_stage_range(self) -> tuple[int, int]:
        d = self.dims["n_stages"]
        if not d.searched:
            return int(d.value), int(d.value)
        if d.choices:
            return int(min(d.choices)), int(max(d.choices))
        return int(d.low), int(d.high)

    def searched_names(self, n_stages: int | None) -> list[str]:
        """The Optuna parameter names sampled for ``n_stages`` stages, families expanded."""
        names = []
        for name, d in self.dims.items():
            if not d.searched:
                continue
            if name in FAMILIES:
                names += [param_name(name, k) for k in family_indices(name, n_stages or 0)]
            else:
                names.append(name)
        return names

    def dimension_count(self) -> str:
        """How many dimensions the sampler sees, e.g. ``"15"`` or ``"18-30 (n_stages 3-5)"``."""
        if not self.searches_stages:
            return str(len(self.searched_names(None)))
        lo, hi = self.n_stage_range()
        a, b = len(self.searched_names(lo)), len(self.searched_names(hi))
        return str(a) if a == b else f"{a}-{b} (n_stages {lo}-{hi})"


def shipped_spaces() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))


def load_space(name_or_path: str | Path | None = None) -> SearchSpace:
    """A shipped space by name (``default``, ``small``, ``wide``) or a space file by path."""
    ref = str(name_or_path or "default")
    path = Path(ref)
    if not path.suffix and not path.exists():
        path = SHIPPED_DIR / f"{ref}.json"
        if not path.is_file():
            raise ConfigError(
                f"space `{ref}`: not a shipped space ({', '.join(shipped_spaces())}) nor a file; "
                f"pass a name or a path to a .json space{did_you_mean(ref, shipped_spaces())}"
            )
    raw = read_json(path, ConfigError, comments=True)
    return space_from_dict(raw, str(path))


def _parse_dim(name: str, spec: Any, problems: list[str]) -> Dim | None:
    if name not in CATALOG:
        problems.append(f"unknown dimension `{name}`{did_you_mean(name, CATALOG)}")
        return None
    d = CATALOG[name]
    if not isinstance(spec, dict):
        problems.append(f"`{name}` must be an object: {{low, high[, log]}}, {{choices}} or {{value}}")
        return None
    for k in spec:
        if k not in _SPEC_KEYS:
            problems.append(f"`{name}.{k}` is not a dimension key{did_you_mean(k, _SPEC_KEYS)}")
            return None
    kinds = [("low" in spec or "high" in spec), "choices" in spec, "value" in spec]
    if sum(kinds) != 1:
        problems.append(f"`{name}` must give exactly one of low/high, choices or value")
        return None
    if "value" in spec:
        v = spec["value"]
        if not _valid_value(d, v):
            problems.append(f"`{name}.value` is {v!r}, but must be {_limits(d)}")
            return None
        return Dim(name, d.kind, value=v)
    if "choices" in spec:
        ch = spec["choices"]
        if not isinstance(ch, list) or not ch:
            problems.append(f"`{name}.choices` must be a non-empty list")
            return None
        bad = [c for c in ch if not _valid_value(d, c)]
        if bad:
            problems.append(f"`{name}.choices` holds {bad[0]!r}, but each must be {_limits(d)}")
            return None
        return Dim(name, d.kind, choices=tuple(ch))
    if d.kind == "categorical":
        problems.append(f"`{name}` is categorical: give choices or a value, not low/high")
        return None
    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    if not all(_is_number(x) for x in (low, high)):
        problems.append(f"`{name}` needs numeric low and high (got {low!r}, {high!r})")
        return None
    if d.kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        problems.append(f"`{name}` is an integer dimension, but low/high are {low}, {high}")
        return None
    if low > high:
        problems.append(f"`{name}` has low {low} > high {high}; swap them")
        return None
    if not isinstance(log, bool):
        problems.append(f"`{name}.log` must be true or false")
        return None
    if log and low <= 0:
        problems.append(f"`{name}` is on a log scale, so low must be > 0 (got {low})")
        return None
    if not (_valid_value(d, low) and _valid_value(d, high)):
        problems.append(f"`{name}` bounds [{low}, {high}] must lie within {_limits(d)}")
        return None
    return Dim(name, d.kind, low=low, high=high, log=log)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _valid_value(d: Any, v: Any) -> bool:
    if d.kind == "categorical":  # strict: 1 is not true
        return any(type(v) is type(c) and v == c for c in d.choices)
    if not _is_number(v) or (d.kind == "int" and not float(v).is_integer()):
        return False
    return d.low <= v <= d.high


def _limits(d: Any) -> str:
    if d.kind == "categorical":
        return "one of " + ", ".join(json.dumps(c) if isinstance(c, bool) else str(c) for c in d.choices)
    return f"{'an integer' if d.kind == 'int' else 'a number'} in [{_fmt(d.low)}, {_fmt(d.high)}]"


def space_from_dict(raw: Any, source: str) -> SearchSpace:
    """Validate a space file's content; every problem is reported in one error naming the file."""
    where = f"space {source}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must hold a JSON object with `params`")
    problems: list[str] = []
    for k in raw:
        if k not in _TOP_KEYS:
            problems.append(f"unknown key `{k}`{did_you_mean(k, _TOP_KEYS)}")
    params = raw.get("params")
    if not isinstance(params, dict) or not params:
        problems.append("`params` must be a non-empty object of dimensions")
        params = {}
    dims = {name: d for name, spec in params.items() if (d := _parse_dim(name, spec, problems)) is not None}
    rules_raw = raw.get("rules", {})
    rule_names = [f.name for f in fields(Rules)]
    rules = Rules()
    if not isinstance(rules_raw, dict):
        problems.append("`rules` must be an object")
    else:
        for k, v in rules_raw.items():
            if k not in rule_names:
                problems.append(f"unknown rule `{k}`{did_you_mean(k, rule_names)}")
            elif not _is_number(v) or v < 0:
                problems.append(f"rule `{k}` is {v!r}, but must be a number >= 0")
        if not problems:
            rules = Rules(**rules_raw)
    if not problems:
        problems += _structure_problems(dims, rules)
    raise_all(problems, ConfigError, where)
    name = str(raw.get("name", Path(source).stem))
    return SearchSpace(name, str(raw.get("description", "")), dims, rules, source, raw)


def _upper(d: Dim) -> float:
    return d.value if not d.searched else (max(d.choices) if d.choices else d.high)


def _lower(d: Dim) -> float:
    return d.value if not d.searched else (min(d.choices) if d.choices else d.low)


def _structure_problems(dims: dict[str, Dim], rules: Rules) -> list[str]:
    p: list[str] = []
    if "inplace_balance" in dims and "inplace_share" not in dims:
        p.append("`inplace_balance` sets `inplace_share`, so `inplace_share` must be given too")
    stage_named = [k for k in dims if k in STAGE_PARAMS and k != "n_stages"]
    if stage_named and "n_stages" not in dims:
        p.append(f"`{stage_named[0]}` shapes the stage schedule, so `n_stages` must be given too")
        return p
    if "n_stages" not in dims:
        return p
    n_dim = dims["n_stages"]
    if n_dim.searched:
        missing = [k for k in STAGE_PARAMS if k not in dims]
        if missing:
            p.append(
                "`n_stages` is searched, so every stage parameter must be searched or fixed; missing "
                + ", ".join(f"`{k}`" for k in missing)
            )
    n_min = int(_lower(n_dim))
    if rules.freerun_step_max <= 0:
        p.append("rule `freerun_step_max` must be > 0")
    if rules.freerun_cap < rules.freerun_final_min:
        p.append(
            f"rule `freerun_cap` ({rules.freerun_cap}) is below `freerun_final_min` ({rules.freerun_final_min}); "
            "no schedule can meet both"
        )
    first = dims.get("freerun_first")
    if first is not None and _upper(first) > rules.freerun_first_max + 1e-12:
        p.append(
            f"`freerun_first` reaches {_upper(first)}, but rule `freerun_first_max` is {rules.freerun_first_max} "
            "(the first stage is teacher-dominated)"
        )
    first_low = _lower(first) if first is not None else 0.0
    reach = first_low + (n_min - 1) * rules.freerun_step_max
    if reach < rules.freerun_final_min - 1e-12:
        p.append(
            f"rules cannot be met: with {n_min} stage(s) and rises of at most {rules.freerun_step_max}, "
            f"freerun_weight reaches {reach:g} < freerun_final_min {rules.freerun_final_min}; "
            "allow more stages or a larger freerun_step_max"
        )
    return p
