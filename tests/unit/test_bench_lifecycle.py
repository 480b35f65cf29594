"""pipglr.bench.lifecycle: the job lifecycle of both executors against host podman —
the driver's environment and command, the timed scripts (run with ``sh`` against a
fake driver and a fake docker CLI: no engine), the interleaved rounds and the report
rows. No timing is asserted."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipglr import customsection
from pipglr.bench import lifecycle
from pipglr.bench import report as benchreport
from pipglr.bench.container import BENCH_NAME
from pipglr.guest import executor, jobcontainer
from pipglr.ops.outer import DOCKER_CLI

IMAGE = "localhost/pipglr:test"


def _fake(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _driver(
    tmp_path: Path, prepare: str = "exit 0", run: str = "", cleanup: str = "exit 0"
) -> Path:
    """A stand-in driver: logs each verb, its arguments, the job's variables and the
    stage script it was given to ``calls``; each verb then does what the test says
    (``run`` by default executes the script it was given, as the real one does)."""
    log = tmp_path / "calls"
    return _fake(tmp_path / "driver", f"""
echo "$* job=$CUSTOM_ENV_CI_JOB_ID image=$CUSTOM_ENV_CI_JOB_IMAGE" >>{log}
case "$1" in
  prepare) {prepare} ;;
  run) cat "$2" >>{log}; {run or 'sh "$2"'} ;;
  cleanup) {cleanup} ;;
esac
""")  # fmt: skip


def _sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_the_driver_env_names_a_job_the_driver_accepts() -> None:
    """The variables the bench passes are those a runner sets that the driver reads:
    every naming variable (CUSTOM_ENV_ prefixed), the job image and the exit codes;
    the driver's own parsers take them."""
    env = lifecycle.driver_env(900007, IMAGE)
    assert {f"CUSTOM_ENV_{key}" for key in jobcontainer.NAME_VARIABLES} <= env.keys(), env
    job = jobcontainer.job_from_env(env)
    assert job.name == f"runner-{lifecycle.SHORT_TOKEN}-project-1-concurrent-0-900007", job
    assert env["CUSTOM_ENV_CI_JOB_IMAGE"] == IMAGE
    assert executor.exit_codes(env) == (1, 2)
    assert not job.protected, "the bench's jobs use the unprotected cache"


def test_the_driver_runs_as_the_runners_custom_section_runs_it() -> None:
    """``python3 -m pipglr.guest executor VERB`` exactly as ``[runners.custom]`` says
    (``<stage>_exec`` + ``<stage>_args``; the bench's jobs name their image)."""
    section = customsection.section()
    for verb in ("prepare", "run", "cleanup"):
        assert lifecycle.driver_command(verb) == [section[f"{verb}_exec"],
                                                  *section[f"{verb}_args"]]  # fmt: skip
    assert lifecycle.driver_command("run", "/tmp/s", "build_script")[-2:] == [
        "/tmp/s", "build_script"
    ]  # fmt: skip


def test_a_custom_job_runs_prepare_run_cleanup_and_prints_nanoseconds(tmp_path: Path) -> None:
    """Success: one line of nanoseconds; the driver saw prepare, then run with a file
    holding the stage script as build_script, then cleanup, all with the job's id and
    image."""
    driver = _driver(tmp_path)
    done = _sh(lifecycle.custom_script(900003, IMAGE, driver=[str(driver)]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().isdigit() and int(done.stdout) > 0, done.stdout
    calls = _calls(tmp_path)
    verbs = [line.split()[0] for line in calls if " job=" in line]
    assert verbs == ["prepare", "run", "cleanup"], calls
    run = next(line for line in calls if line.startswith("run "))
    assert run.split()[2] == lifecycle.STAGE and f"job=900003 image={IMAGE}" in run, run
    assert lifecycle.STAGE_SCRIPT in calls, "run got the stage script"
    assert not Path(run.split()[1]).exists(), "the script's directory is removed"


@pytest.mark.parametrize(
    ("fake", "reason", "verbs"),
    [
        ({"prepare": "echo 'no such image' >&2; exit 2"}, "prepare: no such image",
         ["prepare", "cleanup"]),
        ({"run": "echo 'script failed' >&2; exit 1"}, "run exited 1: script failed",
         ["prepare", "run", "cleanup"]),
        ({"run": "echo bye"}, "the stage printed bye, not hi", ["prepare", "run", "cleanup"]),
        ({"cleanup": "echo 'network busy'; exit 2"}, "cleanup: network busy",
         ["prepare", "run", "cleanup"]),
    ],
)  # fmt: skip
def test_a_failed_step_is_no_sample_and_cleanup_still_runs(
    tmp_path: Path, fake: dict[str, str], reason: str, verbs: list[str]
) -> None:
    """A step that fails (or a stage that printed something else) makes the script
    exit 1 with the reason on stderr, which the measurement keeps; cleanup runs
    after a failed prepare or run, as the runner runs it."""
    driver = _driver(tmp_path, **fake)
    done = _sh(lifecycle.custom_script(900004, IMAGE, driver=[str(driver)]))
    assert done.returncode == 1 and done.stdout == "", (done.stdout, done.stderr)
    assert done.stderr.strip() == reason, done.stderr
    assert [line.split()[0] for line in _calls(tmp_path) if " job=" in line] == verbs
    m = benchreport.Measurement("custom", "rootful", "s")
    benchreport.sample_ns(m, done)
    assert m.samples == [] and m.problems == [reason], m.problems


def test_the_docker_side_runs_the_same_script_in_the_same_image(tmp_path: Path) -> None:
    """``docker run --rm --entrypoint sh IMAGE -c SCRIPT`` against the inner API; run
    with a fake docker CLI it prints nanoseconds, and fails when the job failed."""
    box = _Box()
    script = lifecycle.docker_script(box)  # type: ignore[arg-type]
    command = box.docker_cmd("run", "--rm", "--entrypoint", "sh", IMAGE, "-c", "echo hi")
    assert command in script and shlex.split(command)[-2:] == ["-c", lifecycle.STAGE_SCRIPT]
    docker = _fake(tmp_path / "docker", 'shift 2; echo "$*" >"$0.args"; exec sh -c "$7"\n')
    done = _sh(script.replace(DOCKER_CLI, str(docker)))
    assert done.returncode == 0 and done.stdout.strip().isdigit(), (done.stdout, done.stderr)
    failing = _fake(tmp_path / "failing", "echo 'Error: no such image' >&2; exit 125\n")
    done = _sh(script.replace(DOCKER_CLI, str(failing)))
    assert (done.returncode, done.stderr.strip()) == (
        1, "docker run exited 125: Error: no such image"
    )  # fmt: skip


def test_the_host_side_runs_the_same_script_in_the_same_image() -> None:
    assert lifecycle.host_args(IMAGE) == [
        "run", "--rm", "--entrypoint", "sh", IMAGE, "-c", lifecycle.STAGE_SCRIPT,
    ]  # fmt: skip


class _Outer:
    """Records execs and runs; answers as the scripted sides would."""

    mode = "rootful"

    def __init__(self, host_stdout: str = "hi\n") -> None:
        self.calls: list[tuple[str, ...]] = []
        self.host_stdout = host_stdout

    def exec(self, container: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        assert container == BENCH_NAME and kw["user"] == "runner", (container, kw)
        self.calls.append(("exec", args[-1]))
        return subprocess.CompletedProcess([], 0, "2000000000\n", "")

    def run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(("run", *args))
        return subprocess.CompletedProcess([], 0, self.host_stdout, "")


class _Box:
    image = IMAGE

    def __init__(self, outer: _Outer | None = None) -> None:
        self.outer = outer or _Outer()

    def docker_cmd(self, *args: str) -> str:
        return shlex.join([DOCKER_CLI, "-H", "unix:///x", *args])


def _side(call: tuple[str, ...]) -> str:
    if call[0] == "run":
        return "host"
    return "custom" if "executor prepare" in call[1] else "docker"


def test_rounds_interleave_the_three_sides_after_an_untimed_warm_up() -> None:
    """A warm-up job per nested side first; then each round runs every side once in a
    rotating order, each custom job under a fresh job id; one sample per side per round."""
    outer = _Outer()
    measured = lifecycle.LifecycleBench(_Box(outer)).run(3)  # type: ignore[arg-type]
    sides = [_side(call) for call in outer.calls]
    assert sides == ["custom", "docker", "custom", "docker", "host", "docker", "host",
                     "custom", "host", "custom", "docker"], sides  # fmt: skip
    ids = [c[1].split("CUSTOM_ENV_CI_JOB_ID=")[1].split()[0] for c in outer.calls
           if _side(c) == "custom"]  # fmt: skip
    assert ids == [str(lifecycle.WARM_UP_JOB_ID), *(str(lifecycle.FIRST_JOB_ID + n)
                                                    for n in range(3))], ids  # fmt: skip
    assert [len(measured[s].samples) for s in lifecycle.SIDES] == [3, 3, 3]
    assert measured["custom"].samples == [2.0, 2.0, 2.0]


def test_a_host_run_that_did_not_print_the_stage_output_is_no_sample() -> None:
    outer = _Outer(host_stdout="")
    measured = lifecycle.LifecycleBench(_Box(outer)).run(1)  # type: ignore[arg-type]
    assert measured["host"].samples == [] and measured["host"].failures == 1


def test_the_report_compares_both_executors_with_the_host_and_each_other() -> None:
    """Rows: custom lifecycle nested / host, docker-API run nested / host, custom /
    docker; all paired (interleaved rounds), so they carry the per-round spread."""
    report = benchreport.Report({})
    measured = {
        "custom": benchreport.Measurement("custom", "rootless", "s", [3.0, 3.2, 2.8, 3.0]),
        "docker": benchreport.Measurement("docker", "rootless", "s", [1.0, 1.1, 0.9, 1.0]),
        "host": benchreport.Measurement("host", "rootless", "s", [0.5, 0.5, 0.5, 0.5]),
    }
    lifecycle.report_lifecycle(report, "rootless", measured)
    assert [m.name for m in report.measurements] == ["custom", "docker", "host"]
    rows = {r.name: (r.numerator, r.denominator, r.value, r.rounds) for r in report.ratios}
    assert rows == {
        "custom-executor job lifecycle, nested / host": ("custom", "host", 6.0, 4),
        "docker-API job run, nested / host": ("docker", "host", 2.0, 4),
        "custom-executor lifecycle / docker-API run": ("custom", "docker", 3.0, 4),
    }, rows
    assert "| rootless | docker-API job run, nested / host (docker / host) | 2.00x | " in (
        report.to_markdown()
    )


def test_the_stage_script_runs_in_sh_and_prints_the_expected_line() -> None:
    """The check's premise: the stage script prints exactly STAGE_OUTPUT."""
    done = subprocess.run(["sh", "-c", lifecycle.STAGE_SCRIPT], capture_output=True, text=True,
                          env={"PATH": os.defpath})  # fmt: skip
    assert done.stdout.splitlines() == [lifecycle.STAGE_OUTPUT]
