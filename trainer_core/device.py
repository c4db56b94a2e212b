"""The torch device a run, an evaluation or a rollout uses, from a config or CLI name.

A leaf: it imports only torch and the errors, so every sub-package may use it. ``check_device`` is the one
check of a device name every command makes before any work (``eval``, ``generate``, ``export-model``,
``pretrain``; ``train`` through the config's ``device``, which allows the same forms).
"""

from __future__ import annotations

import re
import warnings

import torch

from trainer_core.errors import ConfigError

_device_warned = False
DEVICE_FORMS = "auto, cpu, cuda or cuda:N"
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(name: str, flag: str = "--device") -> None:
    """Raise ``ConfigError`` (naming ``flag``) unless ``name`` is one of ``DEVICE_FORMS``."""
    if not isinstance(name, str) or not _DEVICE_RE.fullmatch(name):
        raise ConfigError(f"{flag} is {name!r}, but must be {DEVICE_FORMS} (e.g. cuda:0)")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it falls back to CPU, said once."""
    global _device_warned
    check_device(name, "device")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        if not _device_warned:
            warnings.warn(f"device `{name}` requested but CUDA is not available; training on CPU", stacklevel=2)
            _device_warned = True
        return torch.device("cpu")
    return torch.device(name)
