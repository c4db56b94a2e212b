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
        if not isinstance(pattern, str):
            raise ConfigError(f"`{key}.pattern` is {pattern!r}, but must be a regular expression string")
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"`{key}.pattern` {pattern!r} is not a valid regular expression ({e})") from None
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
