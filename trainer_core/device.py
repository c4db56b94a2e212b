"""The torch device a run, an evaluation or a rollout uses, from a config or CLI name.

A leaf: it imports only torch, so every sub-package may use it.
"""

from __future__ import annotations

import warnings

import torch

_device_warned = False


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it falls back to CPU, said once."""
    global _device_warned
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        if not _device_warned:
            warnings.warn(f"device `{name}` requested but CUDA is not available; training on CPU", stacklevel=2)
            _device_warned = True
        return torch.device("cpu")
    return torch.device(name)
