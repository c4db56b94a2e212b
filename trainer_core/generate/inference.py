"""The inference model: a trained model with everything a rollout needs, exported and loaded again.

``motiontune export-model CHECKPOINT --out model.pt`` writes, in one file that
loads with ``torch.load(weights_only=True)`` (plain tensors, numbers, strings,
lists and dicts): the weights (no optimizer), the architecture, the normalizer,
the skeleton (bones, parents, offsets in metres, feet, groups), the frame rate
and the config. Loading it and rolling it out (the guide's Q6)::

    from trainer_core.data.clip import load_clip
    from trainer_core.generate.inference import load_model

    model = load_model("model.pt")                      # or a best_model.pt checkpoint
    start = load_clip("dataset-1_walk_normal_001.npz")  # a clip of the model's skeleton and frame rate
    clip = model.rollout(start, frames=600, control="1.2,30")   # or control="clip"
    # clip: the start frame and 600 generated frames (trainer_core.data.clip.Clip, the importer's conventions)

``motiontune generate`` runs exactly this, so its output and this function's agree frame for frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer_core.config_load import config_from_dict
from trainer_core.data.clip import Clip
from trainer_core.data.datasets import bundled_dataset_dir
from trainer_core.data.device_data import build_split
from trainer_core.data.skeleton import HIERARCHY_FILE, Skeleton, first_bone_mismatch
from trainer_core.device import resolve_device
from trainer_core.errors import CheckpointError, ConfigError, DataError
from trainer_core.generate.control import Control, control_sequence, parse_control
from trainer_core.generate.rollout import rollout_clip
from trainer_core.io_utils import atomic_write
from trainer_core.model.model import MotionModel
from trainer_core.model.rollout import Runtime
from trainer_core.train import checkpoint as ckpt
from trainer_core.train.build import model_from_state

FORMAT = ckpt.EXPORTED_FORMAT
VERSION = 1
FPS_TOLERANCE = 1e-3  # relative: 30 vs 30.00003 (a BVH frame time of 0.0333333 s) is one rate


def skeleton_to_dict(skeleton: Skeleton) -> dict[str, Any]:
    return {
        "bones": list(skeleton.bones),
        "parents": list(skeleton.parents),
        "offsets": skeleton.offsets.astype(np.float64).tolist(),
        "feet": {k: list(v) for k, v in skeleton.feet.items()},
        "groups": {k: list(v) for k, v in skeleton.groups.items()},
    }


def skeleton_from_dict(obj: dict[str, Any]) -> Skeleton:
    return Skeleton(
        bones=tuple(obj["bones"]),
        parents=tuple(int(p) for p in obj["parents"]),
        offsets=np.asarray(obj["offsets"], dtype=np.float32),
        feet={k: tuple(v) for k, v in obj["feet"].items()},
        groups={k: tuple(v) for k, v in obj["groups"].items()},
    )


START_FIX = "start from a clip of the model's skeleton (the same joint names in the same order)"
SKELETON_FIX = ("pass --skeleton a folder of the model's skeleton (FullHierarchy.json and FullOffsets.json with the "
                "same joint names in the same order)")  # fmt: skip


def check_bones(model_bones: list[str] | tuple[str, ...], skeleton: Skeleton, model_where: str, where: str,
                fix: str = START_FIX) -> None:  # fmt: skip
    """Raise ``DataError`` naming the first joint where ``skeleton`` differs from the model's bones, and ``fix``."""
    found = first_bone_mismatch(model_bones, skeleton.bones, model_where)
    if found is not None:
        raise DataError(f"{where}: {found}; {fix}")


@dataclass
class InferenceModel:
    """A trained model ready to roll out: weights, runtime (normalizer, fps), skeleton, control window."""

    model: MotionModel
    runtime: Runtime
    skeleton: Skeleton
    cond_window_s: float
    config: dict[str, Any]
    epoch: int
    source: str  # the file it came from

    @property
    def fps(self) -> float:
        return self.runtime.fps

    @property
    def device(self) -> torch.device:
        return self.runtime.phase_basis.device

    @classmethod
    def _build(cls, state: dict[str, Any], skeleton: Skeleton, config: dict[str, Any], fps: float, where: str,
               device: str) -> InferenceModel:  # fmt: skip
        cfg = config_from_dict(config, f"{where} (stored config)")
        dev = resolve_device(device)
        model, norm = model_from_state(state, where, dev)
        rt = Runtime.create(norm, fps, cfg.model.phase_bins, dev, cfg.run.amp)
        return cls(model, rt, skeleton, cfg.data.cond_window_s, config, int(state.get("epoch", 0)), where)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", skeleton: Skeleton | None = None,
                        skeleton_where: str = "", fix: str = START_FIX) -> InferenceModel:  # fmt: skip
        """A training checkpoint's model. The skeleton: ``skeleton`` if given (its bones checked against
        the model's; ``fix`` says what to do when they differ), else the one beside the clips the model
        trained on."""
        where = str(path)
        state = ckpt.load(Path(path))
        cfg = config_from_dict(state["config"], f"{where} (stored config)")
        bones = state.get("skeleton_bones")
        if skeleton is None:
            folder = Path(cfg.data.data) if cfg.data.data else bundled_dataset_dir()
            if not (folder / HIERARCHY_FILE).is_file():
                raise DataError(
                    f"{folder / HIERARCHY_FILE}: the skeleton the model in {where} trained on is not there; "
                    + ("put FullHierarchy.json and FullOffsets.json beside the start clip" if fix == START_FIX
                       else fix)
                )
            skeleton, skeleton_where = Skeleton.from_files(folder), str(folder / HIERARCHY_FILE)
        if bones is None:
            bones = list(skeleton.bones)[: int(state["arch"]["n_joints"])]
            if len(skeleton.bones) != int(state["arch"]["n_joints"]):
                bones += ["?"]  # an older checkpoint knows only its joint count: a different count fails the check
        check_bones(bones, skeleton, where, skeleton_where or "skeleton", fix)
        fps = float(state.get("fps") or 0.0)
        if not fps > 0:
            raise CheckpointError(f"{where}: stores no frame rate (`fps`); re-train it with this version")
        return cls._build(state, skeleton, state["config"], fps, where, device)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", state: dict[str, Any] | None = None) -> InferenceModel:
        """An exported model (``export-model``); ``state``: the file's contents, when already read."""
        path = Path(path)
        if state is None:
            state = ckpt.read_file(path, "model file")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not an exported motiontune model; write one with `motiontune export-model`")
        if state.get("version") != VERSION:
            raise CheckpointError(f"{path}: exported model version {state.get('version')}, but this reads {VERSION}")
        try:
            skeleton = skeleton_from_dict(state["skeleton"])
        except (KeyError, TypeError, ValueError, DataError) as e:
            raise CheckpointError(f"{path}: malformed `skeleton` ({e})") from None
        return cls._build(state, skeleton, state["config"], float(state["fps"]), str(path), device)

    def to_dict(self) -> dict[str, Any]:
        """What ``export`` writes: weights and what inference needs, nothing that needs unpickling."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "model_state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "arch": self.model.arch.to_dict(),
            "normalizer": self.runtime.norm.to_dict(),
            "skeleton": skeleton_to_dict(self.skeleton),
            "fps": float(self.fps),
            "config": self.config,
            "epoch": self.epoch,
            "source": self.source,
        }

    def export(self, path: str | Path) -> None:
        """Write the model file atomically (``torch.save``; reads back with ``weights_only=True``)."""
        state = self.to_dict()
        atomic_write(Path(path), lambda f: torch.save(state, f))

    def check_start(self, clip: Clip, skeleton: Skeleton | None, where: str) -> None:
        """Raise ``DataError`` when ``clip`` (and its ``skeleton``) cannot start a rollout of this model."""
        if skeleton is not None:
            check_bones(self.skeleton.bones, skeleton, self.source, where)
        if clip.n_joints != self.skeleton.n_joints:
            raise DataError(
                f"{where}: the clip has {clip.n_joints} joints, but the model in {self.source} has "
                f"{self.skeleton.n_joints}; start from a clip of the model's skeleton"
            )
        if abs(clip.fps - self.fps) > FPS_TOLERANCE * self.fps:
            raise DataError(
                f"{where}: the clip runs at {clip.fps:g} fps, but the model at {self.fps:g}; "
                f"re-import it with --fps {self.fps:g}"
            )

    @torch.no_grad()
    def rollout(self, start: Clip, frames: int, control: str | Control = "clip", start_frame: int = 1,
                skeleton: Skeleton | None = None, where: str | None = None) -> Clip:  # fmt: skip
        """The start frame of ``start`` and ``frames`` generated frames after it, as a clip of ``frames + 1``.

        Args:
            start: a clip of the model's skeleton and frame rate (``T >= 3`` frames).
            frames: how many frames to generate, >= 1; any number, well past the training horizon.
            control: ``"clip"`` (the start clip's own controls, the last whole one held past its end),
                ``"SPEED,TURN_DEG_S"`` or a ``Control`` (see ``generate.control``).
            start_frame: the real frame to start from, in ``[1, T - 1]`` (frame 0 is never an input).
            skeleton: ``start``'s skeleton, checked against the model's; None: the model's.
            where: the start clip's file, for messages.
        """
        where = where or f"start clip `{start.name}`"
        ctrl = parse_control(control) if isinstance(control, str) else control
        if frames < 1:
            raise ConfigError(f"--frames is {frames}, but must be >= 1 (frames to generate after the start frame)")
        if start.n_frames < 3:
            raise DataError(f"{where}: the clip has {start.n_frames} frames, but a rollout needs at least 3")
        if not 1 <= start_frame <= start.n_frames - 1:
            raise ConfigError(
                f"--start-frame is {start_frame}, but must be in [1, {start.n_frames - 1}] for {where} "
                f"({start.n_frames} frames; frame 0 is never an input)"
            )
        self.check_start(start, skeleton, where)
        skel = skeleton or self.skeleton
        norm = self.runtime.norm
        split = build_split([start], skel, norm, 1, self.cond_window_s, self.device)
        controls = control_sequence(ctrl, split, start_frame, frames, norm)
        name = f"{start.name}_generated"
        return rollout_clip(
            self.model, self.runtime, split, float(start.root_yaw[start_frame]), skel, start_frame, controls, name
        )


def exported_state(path: str | Path) -> dict[str, Any] | None:
    """The contents of an exported model file, or None for a training checkpoint; an unreadable file (missing,
    truncated, foreign) is one ``CheckpointError``."""
    state = ckpt.read_file(Path(path), "model file or checkpoint")
    return state if isinstance(state, dict) and state.get("format") == FORMAT else None


def load_model(path: str | Path, device: str = "cpu", skeleton: Skeleton | None = None,
               skeleton_where: str = "") -> InferenceModel:  # fmt: skip
    """An exported model (``motiontune export-model``) or a training checkpoint (``best_model.pt``), ready to
    roll out with ``.rollout(start_clip, frames, control)``. ``skeleton``: for a checkpoint, the skeleton to
    pose it on (its bones checked against the model's); default: the one the model trained on."""
    state = exported_state(path)
    if state is not None:
        return InferenceModel.load(path, device, state)
    return InferenceModel.from_checkpoint(path, device, skeleton, skeleton_where)
