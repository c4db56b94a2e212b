"""The cluster guide's own path, `ray job submit`, and the `cluster` extra the cluster files install.

The rehearsal test runs the lines of cluster/README.md's rehearsal block as they are, in a fresh folder (so the
block's relative ``results/`` stays in the test's temp dir), with the real Ray Jobs CLI against a real 3-node
cluster from ``motiontune cluster up --dashboard``: the guide and the test cannot drift. Every other command of
the guide is checked by motiontune's and Ray's own command-line parsers.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import pandas as pd
import pytest
import yaml

from tests.cluster.guide import all_commands, argv, option, rehearsal_commands
from tests.conftest import REPO, run_cli
from tests.trainer_core.test_cli import assert_one_line_error
from tuner.cluster import STATE_FILE, LocalCluster, _pids_naming, dashboard_available

# "[  33.5s] trial   1/4 c897ffb6 done      epochs   2  FreeRun/GeoDeg 8.9012  best so far 8.1917" (TrialLines)
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray's CLI colours its lines, also into a pipe
TRIAL_LINE = re.compile(r"^\[\s*[\d.]+s\] trial +\d+/(\d+) (\S+) +(\w+) +epochs +(\d+) +(\S+) (\S+)")


def _parse_ray(words: list[str]) -> click.Context:
    """``ray WORDS`` through Ray's own click parser (no command runs)."""
    from ray.scripts.scripts import cli

    cmd: click.Command = cli
    name = "ray"
    while isinstance(cmd, click.Group):
        assert words, f"`ray {name}` needs a sub-command"
        name = words.pop(0)
        assert name in cmd.commands, f"`ray ... {name}`: no such Ray command"
        cmd = cmd.commands[name]
    return cmd.make_context(name, words)


def _motiontune_words(words: list[str]) -> list[str] | None:
    if words[:1] == ["motiontune"]:
        return words[1:]
    if words[:3] == ["python", "-m", "tuner.cli"]:
        return words[3:]
    return None


def test_every_command_of_the_guide_parses():
    """Each `motiontune ...` and `ray ...` line of the guide, and each job's entrypoint, is valid as written."""
    pytest.importorskip("aiohttp", reason="`ray job` needs the cluster extra: pip install -e '.[cluster]'")
    from tuner.cli import build_parser

    parsed: list[str] = []
    for command in all_commands():
        words = argv(command)
        if not words or words[0] not in ("ray", "motiontune", "python"):
            continue  # pip, source, export, kubectl, nvidia-smi
        if words[0] == "ray":
            ctx = _parse_ray(words[1:])
            entry = list(ctx.params.get("entrypoint") or ())
            words = entry if entry else []
        mt = _motiontune_words(words) if words else None
        if mt is not None:
            try:
                build_parser().parse_args(mt)
            except SystemExit as e:  # the parser's one-line error went to stderr
                pytest.fail(f"cluster/README.md: `{command}` does not parse (exit {e.code})")
        parsed.append(command)
    jobs = [c for c in parsed if c.startswith("ray job submit")]
    assert len(parsed) >= 20 and len(jobs) >= 6
    assert any("motiontune resume" in c for c in jobs) and any("tuner.cli sweep" in c for c in jobs)


def test_the_cluster_files_install_the_cluster_extra():
    from ray.autoscaler._private.util import prepare_config, validate_config

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["cluster"]
    assert any(r.startswith("ray[default]") for r in extra) and any(r.startswith("boto3") for r in extra)

    raw = yaml.safe_load((REPO / "cluster" / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(raw)))  # still Ray's schema
    installs = [c for c in raw["setup_commands"] if "pip install" in c and "motiontune" in c]
    assert installs and all("motiontune[cluster]" in c for c in installs)  # on every node, head included

    doc = yaml.safe_load((REPO / "cluster" / "kuberay-raycluster.yaml").read_text())
    images = [c["image"] for c in doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"]]
    images += [c["image"] for g in doc["spec"]["workerGroupSpecs"] for c in g["template"]["spec"]["containers"]]
    assert all(i.startswith("rayproject/ray:") for i in images)  # the images with ray[default]

    # KubeRay's job installs the project's own dependencies, torch pinned to the CUDA build.
    k8s_job = next(c for c in all_commands() if "--runtime-env-json" in c)
    pip = json.loads(option(argv(k8s_job), "--runtime-env-json"))["pip"]
    deps = [d for d in project["dependencies"] if not d.startswith(("ray", "torch"))]
    assert sorted(pip) == sorted(["torch==2.13.0", *deps])


def test_dashboard_port_in_use_fails_in_one_line_and_starts_nothing(tmp_path):
    pytest.importorskip("aiohttp", reason="--dashboard needs the cluster extra")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli("cluster", "up", "--dashboard", "--dashboard-port", str(port), "--dir", str(tmp_path / "c"))
    assert_one_line_error(proc, f"--dashboard-port {port} is in use")
    assert not (tmp_path / "c").exists()
    proc = run_cli("cluster", "up", "--dashboard-port", "8300", "--dir", str(tmp_path / "c"))
    assert_one_line_error(proc, "--dashboard-port needs --dashboard")
    assert not (tmp_path / "c").exists()


# --- the rehearsal -------------------------------------------------------------------------------


@dataclass
class Ran:
    command: str
    t0: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    rc: int | None = None

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def trial_lines(self) -> list[tuple[float, tuple[str, ...]]]:
        return [(t, m.groups()) for t, line in self.lines if (m := TRIAL_LINE.match(line))]


def _run(command: str, env: dict[str, str], cwd: Path, timeout: float = 600) -> Ran:
    """``bash -c COMMAND``, each output line timestamped; its process group is killed if it overruns."""
    ran = Ran(command, time.monotonic())
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            ran.lines.append((time.monotonic(), ANSI.sub("", line.rstrip("\n"))))
            if time.monotonic() - ran.t0 > timeout:
                raise TimeoutError(f"`{command}` ran past {timeout}s:\n{ran.text[-3000:]}")
        ran.rc = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - ran.t0)))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return ran


def _source(command: str, env: dict[str, str], cwd: Path) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f"{command} >/dev/null && env -0"], cwd=cwd, env=env, capture_output=True,
                         check=True)  # fmt: skip
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


def _finished(ran: Ran) -> dict[str, tuple[int, str, float]]:
    """Trial id -> (epochs, objective, its value) for each trial line."""
    return {g[1]: (int(g[3]), g[4], float(g[5])) for _, g in ran.trial_lines()}


def _result_lines(experiment: Path, trial_id: str) -> int:
    (trial_dir,) = experiment.glob(f"*_{trial_id}_*")
    return len((trial_dir / "result.json").read_text().splitlines())


@pytest.mark.slow
def test_the_guides_job_path_rehearsed_on_localhost(tmp_path):
    if not dashboard_available():
        pytest.skip("the job path needs the cluster extra: pip install -e '.[cluster]'")
    work = tmp_path / "repo"  # the guide's commands run "in the repository root": its results/ lands here
    work.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    if not (env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH")):
        env["RAY_AUTH_TOKEN_PATH"] = str(tmp_path / "auth_token")  # not ~/.ray/auth_token
    home_ray = sorted((Path.home() / ".ray").glob("*"))
    state = work / "results" / "local-cluster"
    temp_dirs: list[str] = []
    ran: list[Ran] = []
    stopped_run: tuple[Ran, str] | None = None
    try:
        for command in rehearsal_commands():
            words = argv(command, str(work))
            if words[:2] == ["pip", "install"]:
                assert '".[cluster]"' in command  # installed already: dashboard_available()
                continue
            if words[0] == "source":
                env = _source(command, env, work)
                continue
            stopped_later = [argv(r.command) for r in ran if "--no-wait" in r.command]
            if words[:3] == ["ray", "job", "logs"] and any(option(w, "--submission-id") == words[3]
                                                           for w in stopped_later):  # fmt: skip
                # "again, until a trial line or two show"
                deadline = time.monotonic() + 400
                while len((r := _run(command, env, work)).trial_lines()) < 2:
                    assert time.monotonic() < deadline, f"no 2 trial lines in 400s of `{command}`:\n{r.text[-3000:]}"
                    time.sleep(3)
            else:
                r = _run(command, env, work)
            ran.append(r)
            assert r.rc == 0, f"`{command}` exited {r.rc}:\n{r.text[-3000:]}"
            if words[:3] == ["motiontune", "cluster", "up"]:
                temp_dirs = [n.temp_dir for n in LocalCluster.from_state(state).nodes]
            if words[:3] == ["ray", "job", "stop"]:
                after_stop = _run(f"ray job logs {words[3]}", env, work)
                status = _run(f"ray job status {words[3]}", env, work)
                assert f"Job '{words[3]}' was stopped" in status.text, status.text
                stopped_run = (after_stop, words[3])
    finally:
        if (state / STATE_FILE).exists():  # the guide's `cluster down` did not run
            LocalCluster.from_state(state).stop()
    cmd = {r.command: r for r in ran}

    def job(pred) -> tuple[Ran, list[str]]:  # noqa: ANN001
        r = next(r for r in ran if r.command.startswith("ray job submit") and pred(r.command))
        return r, argv(r.command, str(work))

    # ray status: 3 active nodes
    status = next(r for r in ran if r.command == "ray status").text
    assert len(re.findall(r"node_[0-9a-f]+", status.split("Pending:")[0])) == 3, status

    # the sweep job: a line per trial in the submit's tail and in `ray job logs`, SUCCEEDED, trials on >= 2 nodes
    sweep, words = job(lambda c: "motiontune sweep" in c and "--no-wait" not in c)
    samples, sid = int(option(words, "--samples")), option(words, "--submission-id")
    lines = sweep.trial_lines()
    assert len(lines) == samples and {g[0] for _, g in lines} == {str(samples)}, sweep.text[-3000:]
    assert f"Job '{sid}' succeeded" in sweep.text
    assert _finished(cmd[f"ray job logs {sid}"]) == _finished(sweep)
    assert f"Job '{sid}' succeeded" in cmd[f"ray job status {sid}"].text  # Ray's words for SUCCEEDED
    trials = pd.read_parquet(Path(option(words, "--storage")) / option(words, "--name") / "trials.parquet")
    assert len(trials) == samples and set(trials["status"]) <= {"COMPLETED", "STOPPED"}
    assert trials["node"].nunique() >= 2
    first_line_s = lines[0][0] - sweep.t0

    # the stopped sweep, resumed: every trial that had finished before `ray job stop` is kept as it was
    assert stopped_run is not None, "the rehearsal stops a job"
    after_stop, _ = stopped_run
    _, words = job(lambda c: "--no-wait" in c)
    experiment = Path(option(words, "--storage")) / option(words, "--name")
    kept = _finished(after_stop)
    samples = int(option(words, "--samples"))
    assert 2 <= len(kept) < samples, after_stop.text[-3000:]  # stopped mid-way
    # the driver took the stop's SIGTERM as Ctrl+C: it saved the state of every trial its log called done
    assert f"motiontune: stopped by SIGTERM; the experiment's state is saved: `motiontune resume {experiment}`" \
        in after_stop.text, after_stop.text[-3000:]
    kept_lines = {t: _result_lines(experiment, t) for t in kept}
    resumed, words = job(lambda c: "motiontune resume" in c)
    assert Path(words[words.index("resume") + 1]) == experiment
    assert f"Job '{option(words, '--submission-id')}' succeeded" in resumed.text, resumed.text[-3000:]
    again = _finished(resumed)
    assert not set(again) & set(kept)  # none of them ran again
    trials = pd.read_parquet(experiment / "trials.parquet").set_index("trial_id")
    assert len(trials) == samples and set(trials["status"]) <= {"COMPLETED", "STOPPED"}
    assert set(kept) | set(again) == set(trials.index)
    for t, (epochs, metric, value) in kept.items():  # as the stopped job's log said, and not trained further
        assert trials.loc[t, "epochs"] == epochs and round(trials.loc[t, f"final/{metric}"], 4) == value
        assert _result_lines(experiment, t) == kept_lines[t]

    # `cluster down` stopped it all, and nothing was left outside the temp dirs
    assert temp_dirs and _pids_naming(temp_dirs) == [] and not any(Path(d).exists() for d in temp_dirs)
    assert sorted((Path.home() / ".ray").glob("*")) == home_ray
    print(f"\nfirst trial line {first_line_s:.1f}s after `ray job submit`; stop kept {len(kept)} finished "
          f"trial(s) {sorted(kept)} of {samples}; resume ran {len(again)} more: {sorted(again)}")  # fmt: skip
