"""Skeleton animations: one motion, or several side by side (a rollout beside the ground truth).

Each panel draws one clip's world motion (``trajectory.clip_world``: the root
integrated from its velocities, the lowest joint on the floor) as bones in an
orthographic view from a fixed direction, 3/4 from the front of the first
clip's start heading, tilted ``ELEVATION_DEG`` down. The camera follows the
root over the ground, so the floor grid (``GRID_M`` squares) scrolls past as
the character travels and the root's path so far is drawn on the floor. Left
joints are blue, right joints red, the rest black. A counter gives the frame
and the time.

Every ``stride``-th frame is drawn (frames ``0, stride, 2 stride ...`` below
the shortest panel's length, so ``ceil(T / stride)`` frames) and played at
``fps / stride``, real time. Small figures at a low dpi keep a 600-frame
preview to seconds. GIF through Pillow; MP4 through ffmpeg, where installed.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import animation  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from trainer_core.data.clip import Clip  # noqa: E402
from trainer_core.data.skeleton import Skeleton, side_of  # noqa: E402
from trainer_core.data.trajectory import clip_world  # noqa: E402
from trainer_core.errors import ConfigError  # noqa: E402

PANEL_INCHES = 3.2
DPI = 60
ELEVATION_DEG = 15.0
VIEW_FROM_FRONT_DEG = 40.0  # the camera looks at the start heading's front, turned this far to its right
GRID_M = 0.5
HALF_WIDTH_M = 1.2  # the view: this far left and right of the root
FLOOR_BELOW_M = 0.3
HEAD_ROOM_M = 2.0
SIDE_COLORS = {"L": "tab:blue", "R": "tab:red", None: "black"}
FORMATS = (".gif", ".mp4")


def frame_indices(n_frames: int, stride: int) -> list[int]:
    """The frames a preview draws: ``0, stride, 2 stride, ...`` below ``n_frames`` (``ceil(n_frames / stride)``)."""
    return list(range(0, n_frames, stride))


def _camera(yaw0: float) -> tuple[np.ndarray, np.ndarray]:
    """Screen right and screen up ``(3,)`` of a camera looking back at heading ``yaw0``, turned and tilted."""
    theta = yaw0 + math.pi - math.radians(VIEW_FROM_FRONT_DEG)
    f = np.array([math.sin(theta), 0.0, math.cos(theta)])  # the camera looks along f
    up = np.array([0.0, 1.0, 0.0])
    right = np.cross(f, up)
    phi = math.radians(ELEVATION_DEG)
    return right, up * math.cos(phi) + f * math.sin(phi)


class _Panel:
    """One clip's animation in one axes."""

    def __init__(self, ax: plt.Axes, label: str, clip: Clip, skeleton: Skeleton, right: np.ndarray,
                 up: np.ndarray) -> None:  # fmt: skip
        world = clip_world(clip, skeleton)
        self.pos = world.positions.numpy()  # (T, J, 3)
        self.ground = world.root_pos.numpy().copy()
        self.ground[:, 1] = 0.0
        self.right, self.up = right, up
        self.parents = skeleton.parents
        self.bones = [j for j in range(1, skeleton.n_joints)]
        colors = [SIDE_COLORS[side_of(skeleton.bones[j])] for j in self.bones]
        ax.set_xlim(-HALF_WIDTH_M, HALF_WIDTH_M)
        ax.set_ylim(-FLOOR_BELOW_M, HEAD_ROOM_M)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=9)
        self.grid = LineCollection([], colors="0.82", linewidths=0.6)
        self.trail = ax.plot([], [], color="tab:green", lw=0.8, alpha=0.7)[0]
        self.skel = LineCollection([], colors=colors, linewidths=1.6)
        ax.add_collection(self.grid)
        ax.add_collection(self.skel)
        self.n_frames = self.pos.shape[0]

    def _project(self, p: np.ndarray, centre: np.ndarray) -> np.ndarray:
        q = p - centre
        return np.stack([q @ self.right, q @ self.up], axis=-1)

    def _grid_lines(self, centre: np.ndarray) -> np.ndarray:
        reach = 3 * HALF_WIDTH_M
        ticks = np.arange(math.floor((-reach) / GRID_M), math.ceil(reach / GRID_M) + 1) * GRID_M
        segs = []
        for axis in (0, 2):
            other = 2 - axis
            base = math.floor(centre[axis] / GRID_M) * GRID_M
            for t in ticks:
                a, b = np.zeros(3), np.zeros(3)
                a[axis] = b[axis] = base + t
                a[other], b[other] = centre[other] - reach, centre[other] + reach
                segs.append([a, b])
        return self._project(np.asarray(segs), centre)

    def draw(self, t: int) -> None:
        t = min(t, self.n_frames - 1)
        centre = self.ground[t]
        xy = self._project(self.pos[t], centre)
        self.skel.set_segments([[xy[self.parents[j]], xy[j]] for j in self.bones])
        self.grid.set_segments(list(self._grid_lines(centre)))
        path = self._project(self.ground[: t + 1], centre)
        self.trail.set_data(path[:, 0], path[:, 1])


def _writer(suffix: str, fps: float) -> animation.AbstractMovieWriter:
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    return animation.FFMpegWriter(fps=fps, codec="libx264", extra_args=["-pix_fmt", "yuv420p"])


def check_preview_path(out: Path) -> str:
    """The file type of ``out`` (``.gif`` or ``.mp4``, the latter only with ffmpeg installed); raise
    ``ConfigError`` for anything else, before any figure or animation exists (one that is never saved makes
    matplotlib warn)."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--out {out}: unknown preview type `{suffix}`; use .gif or .mp4")
    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        raise ConfigError(f"--out {out}: an .mp4 needs ffmpeg, which is not installed here; write a .gif instead")
    return suffix


def render_preview(panels: list[tuple[str, Clip, Skeleton]], out: Path, stride: int = 2, dpi: int = DPI,
                   title: str = "") -> int:  # fmt: skip
    """Animate ``(label, clip, skeleton)`` panels side by side into ``out`` (.gif or .mp4), atomically.

    Returns the number of frames written: ``ceil(T / stride)`` for the shortest clip's ``T``.
    """
    out = Path(out)
    suffix = check_preview_path(out)
    if stride < 1:
        raise ConfigError(f"--stride is {stride}, but must be >= 1")
    if not panels:
        raise ConfigError("preview: no motion to draw")
    fps = panels[0][1].fps
    frames = frame_indices(min(c.n_frames for _, c, _ in panels), stride)
    right, up = _camera(float(panels[0][1].root_yaw[0]))
    fig, axes = plt.subplots(1, len(panels), figsize=(PANEL_INCHES * len(panels), PANEL_INCHES), squeeze=False)
    try:
        drawn = [_Panel(ax, label, clip, skel, right, up) for ax, (label, clip, skel) in zip(axes[0], panels)]
        counter = fig.text(0.01, 0.01, "", fontsize=8, family="monospace")
        if title:
            fig.suptitle(title, fontsize=9)
        fig.tight_layout()

        def update(t: int) -> list:
            for p in drawn:
                p.draw(t)
            counter.set_text(f"frame {t:>4}/{frames[-1]}  {t / fps:5.2f} s")
            return []

        anim = animation.FuncAnimation(fig, update, frames=frames, blit=False, repeat=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=suffix, dir=out.parent)
        os.close(fd)
        try:
            anim.save(tmp, writer=_writer(suffix, fps / stride), dpi=dpi)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        plt.close(fig)
    return len(frames)


def render_frame(panels: list[tuple[str, Clip, Skeleton]], t: int, out: Path, dpi: int = 100) -> None:
    """One frame ``t`` of the preview as a PNG (a still to look at)."""
    right, up = _camera(float(panels[0][1].root_yaw[0]))
    fig, axes = plt.subplots(1, len(panels), figsize=(PANEL_INCHES * len(panels), PANEL_INCHES), squeeze=False)
    try:
        for ax, (label, clip, skel) in zip(axes[0], panels):
            _Panel(ax, label, clip, skel, right, up).draw(t)
        fig.text(0.01, 0.01, f"frame {t}", fontsize=8, family="monospace")
        fig.tight_layout()
        fig.savefig(out, dpi=dpi)
    finally:
        plt.close(fig)
