"""``val_split`` / ``test_split`` as written in a config: by hash, by a group of the clip names, or by name.

Only the parsing and checking of the config value lives here (the config's
bottom layer needs it); which clips a spec selects is ``data/splits.py``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from trainer_core.errors import ConfigError

# Clip names like the bundled ``dataset-1_walk_happy_001``: content, style and take.
DEFAULT_GROUP_PATTERN = r"(?P<content>[^_]+)_(?P<style>[^_]+)_(?P<take>\d+)$"


def _compile_pattern(pattern: Any, key: str) -> re.Pattern[str]:
    """``key.pattern`` compiled; ConfigError naming the key when it is not a valid regular expression."""
    if not isinstance(pattern, str):
        raise ConfigError(f"`{key}.pattern` is {pattern!r}, but must be a regular expression string")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"`{key}.pattern` {pattern!r} is not a valid regular expression ({e})") from None


@dataclass(frozen=True)
class SplitSpec:
    """A parsed ``val_split`` / ``test_split``: by hash, by a group field of the clip names, or by clip names."""

    kind: str  # "hash" | "group" | "clips"
    field: str | None = None
    values: tuple[str, ...] = ()
    """The group values held out; empty: ``fraction`` of the values, chosen by a hash of each value."""
    fraction: float = 0.0
    pattern: str = DEFAULT_GROUP_PATTERN
    clips: tuple[str, ...] = ()
    pattern_written: bool = dataclasses.field(default=False, compare=False, repr=False)
    """Whether the config wrote ``pattern``: ``to_json`` leaves out the default pattern unless it was written,
    so a config round-trips unchanged."""

    @classmethod
    def parse(cls, value: Any, key: str) -> SplitSpec:
        """The spec a config value writes (a SplitSpec is already one); ConfigError naming ``key`` if malformed."""
        if isinstance(value, SplitSpec):
            return value
        form = (
            f'`{key}` must be "hash", {{"group": FIELD, "values": [..] or "fraction": F, "pattern": REGEX}} '
            f'or {{"clips": [NAME, ..]}}'
        )
        if value == "hash":
            return cls("hash")
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` is {value!r}, but {form[len(key) + 3 :]}")
        if "clips" in value:
            clips = value["clips"]
            extra = set(value) - {"clips"}
            if extra or not isinstance(clips, list) or not clips or not all(isinstance(c, str) for c in clips):
                raise ConfigError(f"`{key}.clips` must be a non-empty list of clip names and stand alone; {form}")
            return cls("clips", clips=tuple(clips))
        unknown = set(value) - {"group", "values", "fraction", "pattern"}
        if unknown:
            raise ConfigError(f"`{key}` has unknown key(s) {', '.join(sorted(unknown))}; {form}")
        field_, values, fraction = value.get("group"), value.get("values"), value.get("fraction")
        pattern = value.get("pattern", DEFAULT_GROUP_PATTERN)
        if not isinstance(field_, str) or not field_:
            raise ConfigError(f"`{key}.group` is {field_!r}, but must name a group of the pattern; {form}")
        if (values is None) == (fraction is None):
            raise ConfigError(f"`{key}` needs exactly one of `values` (the groups to hold out) or `fraction`")
        if values is not None and (
            not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values)
        ):
            raise ConfigError(f"`{key}.values` is {values!r}, but must be a non-empty list of strings")
        if fraction is not None and not (
            isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction < 1
        ):
            raise ConfigError(f"`{key}.fraction` is {fraction!r}, but must be in (0, 1)")
        rx = _compile_pattern(pattern, key)
        if field_ not in rx.groupindex:
            names = ", ".join(rx.groupindex) or "none"
            raise ConfigError(f"`{key}.group` is {field_!r}, but the pattern's named groups are: {names}")
        return cls(
            "group",
            field=field_,
            values=tuple(values or ()),
            fraction=float(fraction or 0.0),
            pattern=pattern,
            pattern_written="pattern" in value,
        )

    def to_json(self) -> str | dict[str, Any]:
        """The value a config file writes for this spec, as it wrote it (``parse`` reads it back)."""
        if self.kind == "hash":
            return "hash"
        if self.kind == "clips":
            return {"clips": list(self.clips)}
        out: dict[str, Any] = {"group": self.field}
        out.update({"values": list(self.values)} if self.values else {"fraction": self.fraction})
        if self.pattern_written or self.pattern != DEFAULT_GROUP_PATTERN:
            out["pattern"] = self.pattern
        return out

    def describe(self) -> dict[str, Any]:
        if self.kind == "group":
            held = {"values": list(self.values)} if self.values else {"fraction": self.fraction}
            return {"group": self.field, **held, "pattern": self.pattern}
        if self.kind == "clips":
            return {"clips": list(self.clips)}
        return {"hash": True}


SPEED_GROUPS = ("locomotion", "in-place")
IN_PLACE = "in-place"
DEFAULT_STILL_SPEED_MS = 0.3


@dataclass(frozen=True)
class GroupSpec:
    """A parsed ``motion_groups``: how clips are grouped for reporting (and ``inplace_share``).

    ``"speed"`` (or ``{"speed": V}``): a clip whose mean root speed is below V m/s (default 0.3) is
    ``in-place``, the rest ``locomotion``; it reads the motion, so it works on clips named any way.
    ``{"group": FIELD, "sets": {NAME: [VALUE, ..]}, "pattern": REGEX}``: by a label of the clip names
    (clips whose value is in no set are ``other``). ``None``: no groups.
    """

    kind: str  # "speed" | "names"
    still_speed_ms: float = DEFAULT_STILL_SPEED_MS
    field: str | None = None
    sets: tuple[tuple[str, tuple[str, ...]], ...] = ()
    pattern: str = DEFAULT_GROUP_PATTERN

    @classmethod
    def parse(cls, value: Any, key: str = "motion_groups") -> GroupSpec | None:
        if value is None or isinstance(value, GroupSpec):
            return value
        form = (
            f'`{key}` must be "speed", {{"speed": M_PER_S}}, {{"group": FIELD, "sets": {{NAME: [VALUE, ..]}}}} '
            "or null"
        )
        if value == "speed":
            return cls("speed")
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` is {value!r}, but {form[len(key) + 3 :]}")
        if "speed" in value:
            v = value["speed"]
            if set(value) != {"speed"} or not (
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 10
            ):
                raise ConfigError(f"`{key}.speed` is {v!r}, but must be a speed in (0, 10) m/s and stand alone; {form}")
            return cls("speed", still_speed_ms=float(v))
        unknown = set(value) - {"group", "sets", "pattern"}
        if unknown:
            raise ConfigError(f"`{key}` has unknown key(s) {', '.join(sorted(unknown))}; {form}")
        field_, sets, pattern = value.get("group"), value.get("sets"), value.get("pattern", DEFAULT_GROUP_PATTERN)
        rx = _compile_pattern(pattern, key)
        if not isinstance(field_, str) or field_ not in rx.groupindex:
            names = ", ".join(rx.groupindex) or "none"
            raise ConfigError(f"`{key}.group` is {field_!r}, but must be a named group of the pattern: {names}")
        if not (
            isinstance(sets, dict)
            and sets
            and all(isinstance(n, str) and n for n in sets)
            and all(isinstance(v, list) and v and all(isinstance(x, str) for x in v) for v in sets.values())
        ):
            raise ConfigError(f"`{key}.sets` is {sets!r}, but must map each group name to a non-empty list of values")
        return cls("names", field=field_, sets=tuple((n, tuple(v)) for n, v in sets.items()), pattern=pattern)

    def to_json(self) -> str | dict[str, Any]:
        if self.kind == "speed":
            return "speed" if self.still_speed_ms == DEFAULT_STILL_SPEED_MS else {"speed": self.still_speed_ms}
        out: dict[str, Any] = {"group": self.field, "sets": {n: list(v) for n, v in self.sets}}
        if self.pattern != DEFAULT_GROUP_PATTERN:
            out["pattern"] = self.pattern
        return out
