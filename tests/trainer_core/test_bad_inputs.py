"""Bad input to the newer commands, as a user would give it (issue 26): a table of cases, each run through the
CLI in a subprocess.

Every case must end in exactly one line on stderr (``motiontune: error: ...``, no warning before it, no
traceback) naming the file or flag and the fix, exit code 2, and nothing written: the case's output folder
stays empty and every input file is unchanged. Each case of the issue failed before its fix (a traceback, an
exit 1 or 0, a second stderr line, a kill for memory, or a message that misled). No message may pass on torch's
or numpy's advice to load a file unsafely (``weights_only=False``, ``allow_pickle``).

One tiny model is trained per module (as ``test_eval.py``'s ``run``); the other inputs are made from it.
"""

from __future__ import annotations

import fractions
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import MOCAP_DIR, run_cli, tiny_overrides
from tests.trainer_core.conftest import without_toes
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.data.clip import ARRAY_KEYS, load_npz
from trainer_core.data.datasets import bundled_dataset_dir
from trainer_core.data.skeleton import HIERARCHY_FILE, OFFSETS_FILE, Skeleton
from trainer_core.generate.inference import InferenceModel
from trainer_core.train.loop import fit

BUNDLED = bundled_dataset_dir()
START = BUNDLED / "dataset-1_walk_normal_001.npz"  # 195 frames
UNSAFE_ADVICE = ("weights_only", "allow_pickle", "pickle")


def _skeleton_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in (HIERARCHY_FILE, OFFSETS_FILE):
        shutil.copy(BUNDLED / name, folder / name)
    return folder


def _other_skeleton(folder: Path) -> Path:
    """The bundled skeleton without its toes: another skeleton (the same as ``test_generate``'s)."""
    other, _ = without_toes(Skeleton.from_files(BUNDLED))
    folder.mkdir(parents=True)
    other.to_files(folder)
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Every input file of the table, by name (see ``CASES``)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    cfg = config_from_dict({**load_config().to_dict(), **tiny_overrides(epochs=2)}, "tiny test config")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(cfg, root / "run", log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    ckpt = root / "run" / "best_model.pt"
    InferenceModel.from_checkpoint(ckpt).export(root / "model.pt")
    (root / "truncated.pt").write_bytes(ckpt.read_bytes()[:20_000])  # the first 20 kB of a best_model.pt
    torch.save({"note": fractions.Fraction(1, 3)}, root / "unsafe.pt")  # torch's safe load refuses it
    one = _skeleton_files(root / "one_clip")
    shutil.copy(START, one / "walk.npz")  # a name without a style: the split falls back, with a warning
    clip = load_npz(START)
    objects = _skeleton_files(root / "object_npz")
    arrays = {k: np.asarray(getattr(clip, k), dtype=np.float32) for k in ARRAY_KEYS}
    arrays["rot6d"] = np.array([{"a": 1}] * 3, dtype=object)  # numpy's safe load refuses object arrays
    np.savez(objects / "dataset-1_walk_normal_001.npz", fps=np.float32(30), **arrays)
    truncated = _skeleton_files(root / "truncated_npz")
    (truncated / "dataset-1_walk_normal_001.npz").write_bytes(START.read_bytes()[:3000])
    _other_skeleton(root / "other_skeleton")
    (root / "a_file").write_text("a file where a folder is expected\n")
    (root / "a_folder").mkdir()
    # the stored config of a run trained with --epochs 1: the rescale keeps only the mixed stage
    (root / "epochs1.json").write_text(json.dumps(load_config().with_epochs(1).to_dict()))
    paths = {
        "ckpt": ckpt,
        "metrics": root / "run" / "metrics",
        "run_config": root / "run" / "config.json",
        "model": root / "model.pt",
        "truncated": root / "truncated.pt",
        "unsafe": root / "unsafe.pt",
        "one_clip": one,
        "object_npz": objects,
        "truncated_npz": truncated,
        "truncated_clip": truncated / "dataset-1_walk_normal_001.npz",
        "other_skeleton": root / "other_skeleton",
        "a_file": root / "a_file",
        "a_folder": root / "a_folder",
        "epochs1": root / "epochs1.json",
        "start": START,
        "bundled": BUNDLED,
        "bvh": MOCAP_DIR / "dataset-1_walk_normal_001.bvh",
        "root": root,
    }
    return {k: str(v) for k, v in paths.items()}


# (case, argv with {placeholders} from ``inputs`` and {out}: an empty folder of the case's own, fragments of the line)
CASES = [
    # a truncated .pt (the first 20 kB of a best_model.pt): OSError traceback, exit 1
    ("truncated-pt-eval", "eval {truncated} --data {one_clip}", ["{truncated}", "truncated", "re-train"]),
    ("truncated-pt-generate", "generate {truncated} --start {start} --frames 10 --out {out}/m.bvh",
     ["{truncated}", "truncated"]),
    ("truncated-pt-export-model", "export-model {truncated} --out {out}/m.pt", ["{truncated}", "truncated"]),
    ("truncated-pt-resume", "train --resume {truncated} --out {out}/run", ["{truncated}", "truncated"]),
    ("truncated-pt-encoder", "train --smoke-test --encoder {truncated} --out {out}/run",
     ["--encoder {truncated}", "truncated"]),
    # device strings: RuntimeError tracebacks, exit 1
    ("device-eval", "eval {ckpt} --data {bundled} --device gpu7", ["--device", "'gpu7'", "cuda:N"]),
    ("device-generate", "generate {ckpt} --start {start} --frames 10 --out {out}/m.bvh --device gpu",
     ["--device", "'gpu'", "auto, cpu, cuda or cuda:N"]),
    ("device-pretrain", "pretrain --out {out}/enc --epochs 1 --device tpu", ["--device", "'tpu'", "cuda:N"]),
    ("device-export-model", "export-model {ckpt} --out {out}/m.pt --device gpu", ["--device", "'gpu'"]),
    ("device-train", "train --smoke-test --device gpu --out {out}/run", ["`device` is 'gpu'", "cuda:N"]),
    # an existing file or folder where the output goes: FileExistsError / IsADirectoryError tracebacks
    ("import-bvh-out-is-a-file", "data import-bvh {bvh} --out {a_file}", ["--out {a_file}", "is a file", "folder"]),
    ("pretrain-out-is-a-file", "pretrain --out {a_file} --epochs 1", ["--out {a_file}", "is a file", "folder"]),
    ("suggest-out-is-a-folder", "suggest --metrics-root {metrics} --config {run_config} --out {a_folder}",
     ["--out {a_folder}", "is a folder"]),
    ("eval-out-parent-is-a-file", "eval {ckpt} --data {bundled} --out {a_file}/x.json",
     ["--out {a_file}/x.json", "is a file, not a folder"]),
    # bounds: PIL OverflowError; killed for memory after 20 s
    ("preview-stride", "preview {start} --skeleton {bundled} --out {out}/p.gif --stride 100000",
     ["--stride is 100000", "[1, 195]"]),
    ("generate-frames", "generate {ckpt} --start {start} --frames 100000000 --out {out}/m.npz",
     ["--frames is 100000000", "GB", "at most"]),
    # two lines: a warning before the error
    ("preview-mp4-without-ffmpeg", "preview {start} --skeleton {bundled} --out {out}/p.mp4", ["--out", "ffmpeg"]),
    ("train-encoder-one-clip", "train --encoder {truncated} --data {one_clip} --out {out}/run",
     ["{one_clip}", "1 clip", "at least 2"]),
    # a suffix that does not fit: exit 0, JSON in a .txt, a torch file named .json
    ("eval-out-txt", "eval {ckpt} --data {bundled} --out {out}/e.txt", ["--out {out}/e.txt", ".json"]),
    ("export-model-out-json", "export-model {ckpt} --out {out}/x.json", ["--out {out}/x.json", ".pt"]),
    # messages that held the form but misled
    ("generate-start-frame", "generate {ckpt} --start {start} --frames 10 --start-frame 5000 --out {out}/m.bvh",
     ["--start-frame is 5000", "{start}", "195 frames"]),
    ("export-model-other-skeleton", "export-model {ckpt} --skeleton {other_skeleton} --out {out}/m.pt",
     ["{other_skeleton}", "--skeleton"]),
    ("unsafe-pt-eval", "eval {unsafe} --data {bundled}", ["{unsafe}", "Python objects"]),
    ("unsafe-pt-generate", "generate {unsafe} --start {start} --frames 10 --out {out}/m.bvh", ["{unsafe}"]),
    ("object-npz-eval", "eval {ckpt} --data {object_npz}", ["{object_npz}", "object arrays"]),
    ("truncated-npz-generate", "generate {ckpt} --start {truncated_clip} --frames 10 --out {out}/m.bvh",
     ["{truncated_clip}", "truncated"]),
    ("pretrain-hidden-dim", "pretrain --out {out}/enc --hidden-dim 0", ["--hidden-dim is 0", "[8, 8192]"]),
    ("generate-out-without-suffix", "generate {ckpt} --start {start} --frames 10 --out {out}/motion",
     ["--out {out}/motion", "no suffix", ".bvh, .npz or .json"]),
    ("eval-exported-model", "eval {model} --data {bundled}", ["{model}", "exported model", "{ckpt}"]),
    ("suggest-epochs-1-config", "suggest --metrics-root {metrics} --config {epochs1} --out {out}/c2.json",
     ["--config {epochs1}", "already breaks", "freerun_first_max"]),
]  # fmt: skip


def _snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")}


@pytest.mark.parametrize("case, argv, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(inputs, tmp_path, monkeypatch, case, argv, fragments):
    out = tmp_path / "out"
    out.mkdir()
    names = {**inputs, "out": str(out)}
    if case == "preview-mp4-without-ffmpeg":  # the Python of the venv alone on PATH: no ffmpeg
        monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    before = _snapshot(Path(inputs["root"]))
    proc = run_cli(*[a.format(**names) for a in argv.split()], cwd=out)
    assert_refused(proc, *[f.format(**names) for f in fragments])
    assert list(out.iterdir()) == [], f"{case} wrote {sorted(p.name for p in out.iterdir())}"
    assert _snapshot(Path(inputs["root"])) == before, f"{case} changed its inputs"


def assert_refused(proc, *fragments: str) -> None:
    """Exit 2 and exactly one stderr line, the error (``test_cli.assert_one_line_error`` lets warnings through;
    here a warning before the error is a failure), with each fragment and no advice to load a file unsafely."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("motiontune: error: "), lines[0]
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"
    assert not any(word in lines[0] for word in UNSAFE_ADVICE), lines[0]
