"""Job lifecycle of both executors, nested, against host podman, in interleaved rounds.

Three sides run the same trivial stage script (:data:`STAGE_SCRIPT`) in the same image
(the image under test, loaded into the nested storage), each timed end to end:

- ``custom``: the custom executor's driver as the runner runs it (user runner, in the
  bench container): ``executor prepare`` → ``executor run SCRIPT build_script`` →
  ``executor cleanup`` (:mod:`pipglr.guest.executor`) with the ``CUSTOM_ENV_*``
  variables a runner sets (:func:`driver_env`; upstream executors/custom/custom.go
  ``Prepare``/``Run``/``Cleanup``, the variables of common/build.go
  ``GetAllVariables`` prefixed ``CUSTOM_ENV_`` by executors/custom/command/command.go
  ``New``). That is a per-job network, a builds volume, a helper and a job container,
  one exec, and their removal; three driver processes.
- ``docker``: ``docker run --rm IMAGE sh -c SCRIPT`` with the docker CLI against the
  inner API (the compat API a docker-executor runner drives): one container created,
  attached, started, waited for and removed. This is the docker-executor job's floor,
  not its whole lifecycle (the runner's helper container and per-build network are
  not made here; the fake-GitLab rows, ``--jobs``, time whole jobs through a runner).
- ``host``: ``podman run --rm IMAGE sh -c SCRIPT`` with the mode's outer podman.

The nested sides are timed inside the bench container (``date +%s%N``, so the
``podman exec`` that reaches it is not counted), the host side around the podman
command. A sample counts only when the stage printed what the script prints.
Each round runs every side once, in an order that rotates per round
(:func:`pipglr.bench.jobs.rotated`), so the ratios carry the per-round spread.
Nothing here asserts a timing.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Sequence

from pipglr import customsection, layout
from pipglr.bench.container import BENCH_NAME, BenchContainer
from pipglr.bench.jobs import rotated
from pipglr.bench.report import Measurement, Report, sample, sample_ns

#: The stage script every side runs, and the one line it prints.
STAGE_SCRIPT = "echo hi"
STAGE_OUTPUT = "hi"
#: The stage the driver runs it as (upstream's ``step_script`` arrives as this).
STAGE = "build_script"
#: What names the bench's made-up jobs (common/build.go ``ProjectUniqueName`` parts).
SHORT_TOKEN = "pipglrbench"
PROJECT_ID = "1"
#: Job ids of the timed rounds start here (one fresh id per sample, as per job).
FIRST_JOB_ID = 900001
#: Job id of the untimed warm-up (loads the helper image, makes the project's cache).
WARM_UP_JOB_ID = 900000
#: Rounds of a full run (a quick run: the bench's repeat).
LIFECYCLE_ROUNDS = 11
SIDES = ("custom", "docker", "host")
NAMES = {
    "custom": "custom-executor job lifecycle (prepare, run, cleanup; nested)",
    "docker": "docker-API job run (docker run --rm; nested)",
    "host": "job run (host podman run --rm)",
}
Done = subprocess.CompletedProcess[str]
#: ``python3 -m pipglr.guest executor`` as the ``[runners.custom]`` section names it.
DRIVER = (str(layout.PYTHON), *customsection.DRIVER_ARGS)


def driver_env(job_id: int, image: str) -> dict[str, str]:
    """What the runner sets for the driver, the minimum :mod:`pipglr.guest.executor`
    reads: the job's naming variables (``jobcontainer.NAME_VARIABLES``), its image and
    the exit codes (executors/custom/command/command.go ``New``:
    ``BUILD_FAILURE_EXIT_CODE``, ``SYSTEM_FAILURE_EXIT_CODE``)."""
    return {
        "CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN": SHORT_TOKEN,
        "CUSTOM_ENV_CI_PROJECT_ID": PROJECT_ID,
        "CUSTOM_ENV_CI_CONCURRENT_PROJECT_ID": "0",
        "CUSTOM_ENV_CI_JOB_ID": str(job_id),
        "CUSTOM_ENV_CI_JOB_IMAGE": image,
        "BUILD_FAILURE_EXIT_CODE": "1",
        "SYSTEM_FAILURE_EXIT_CODE": "2",
    }


def driver_command(verb: str, *args: str, driver: Sequence[str] = DRIVER) -> list[str]:
    """The driver as the ``[runners.custom]`` section runs it (``pipglr executor toml``)."""
    return [*driver, verb, *args]


def custom_script(job_id: int, image: str, driver: Sequence[str] = DRIVER) -> str:
    """``sh`` script (user runner, bench container): one timed custom-executor job.

    Prints the nanoseconds prepare → run → cleanup took; on failure the failing
    step's last line on stderr and exit 1. Cleanup runs whatever went before, as the
    runner runs it (custom.go ``Cleanup`` after any prepare)."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in driver_env(job_id, image).items())
    prepare, cleanup = (
        shlex.join(driver_command(v, driver=driver)) for v in ("prepare", "cleanup")
    )
    run = shlex.join(driver_command("run", "$f", STAGE, driver=driver)).replace("'$f'", '"$f"')
    return f"""set -u
export {env}
d=$(mktemp -d) && f=$d/script.sh && printf '%s\\n' {shlex.quote(STAGE_SCRIPT)} >"$f" || exit 1
why=
s=$(date +%s%N)
if {prepare} >"$d/prepare" 2>&1; then
  out=$({run} 2>"$d/run") || why="run exited $?: $(tail -n1 "$d/run")"
else
  why="prepare: $(tail -n1 "$d/prepare")"
fi
{cleanup} >"$d/cleanup" 2>&1 || why="${{why:-cleanup: $(tail -n1 "$d/cleanup")}}"
e=$(date +%s%N)
{_checked()}"""


def docker_script(box: BenchContainer) -> str:
    """``sh`` script (user runner, bench container): one timed ``docker run --rm``."""
    run = box.docker_cmd("run", "--rm", "--entrypoint", "sh", box.image, "-c", STAGE_SCRIPT)
    return f"""set -u
d=$(mktemp -d) || exit 1
why=
s=$(date +%s%N)
out=$({run} 2>"$d/run") || why="docker run exited $?: $(tail -n1 "$d/run")"
e=$(date +%s%N)
{_checked()}"""


def _checked() -> str:
    """The scripts' common end: a failure's reason, else the stage's output checked."""
    return f"""rm -rf "$d"
if [ -z "$why" ] && ! printf '%s\\n' "${{out:-}}" | grep -qx {shlex.quote(STAGE_OUTPUT)}; then
  why="the stage printed $(printf '%s' "${{out:-nothing}}" | tail -n1), not {STAGE_OUTPUT}"
fi
[ -z "$why" ] || {{ echo "$why" >&2; exit 1; }}
echo $((e - s))
"""


def host_args(image: str) -> list[str]:
    """The host side's podman arguments: the same script in the same image."""
    return ["run", "--rm", "--entrypoint", "sh", image, "-c", STAGE_SCRIPT]


class LifecycleBench:
    """Interleaved rounds of the three sides (module docstring) in one outer mode."""

    def __init__(self, box: BenchContainer) -> None:
        self.box = box
        self.mode = box.outer.mode

    def nested(self, script: str) -> Done:
        return self.box.outer.exec(BENCH_NAME, "sh", "-c", script, user=layout.RUNNER.name,
                                   check=False, timeout=600)  # fmt: skip

    def custom(self, job_id: int) -> Done:
        return self.nested(custom_script(job_id, self.box.image))

    def host(self, m: Measurement) -> None:
        s = time.monotonic()
        result = self.box.outer.run(*host_args(self.box.image), check=False, timeout=600)
        took = time.monotonic() - s
        ok = result.returncode == 0 and STAGE_OUTPUT in result.stdout.splitlines()
        why = (result.stderr.strip().splitlines() or [f"printed {result.stdout.strip()!r}"])[-1]
        sample(m, ok, took, why[:120])

    def warm_up(self) -> str:
        """One untimed job per nested side (the helper image loaded into the nested
        storage, the project's cache volume made); the reasons of those that failed."""
        problems = []
        for side, result in (("custom", self.custom(WARM_UP_JOB_ID)),
                             ("docker", self.nested(docker_script(self.box)))):  # fmt: skip
            if result.returncode != 0:
                problems.append(f"{side}: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
        return "; ".join(problems)

    def run(self, rounds: int) -> dict[str, Measurement]:
        """``rounds`` interleaved rounds; the measurement of each side."""
        measured = {side: Measurement(NAMES[side], self.mode, "s") for side in SIDES}
        takes: dict[str, Callable[[int], None]] = {
            "custom": lambda n: sample_ns(measured["custom"], self.custom(FIRST_JOB_ID + n)),
            "docker": lambda n: sample_ns(measured["docker"],
                                          self.nested(docker_script(self.box))),
            "host": lambda n: self.host(measured["host"]),
        }  # fmt: skip
        if failed := self.warm_up():
            print(f"  {self.mode:8} lifecycle warm-up failed: {failed}", flush=True)
        for n in range(rounds):
            took = []
            for side in rotated(list(SIDES), n):
                m = measured[side]
                before = len(m.samples)
                takes[side](n)
                took.append(f"{side} {m.samples[-1]:.2f} s" if len(m.samples) > before
                            else f"{side} failed")  # fmt: skip
            print(f"  {self.mode:8} lifecycle round {n + 1}/{rounds}: {', '.join(took)}",
                  flush=True)  # fmt: skip
        return measured


def report_lifecycle(report: Report, mode: str, measured: dict[str, Measurement]) -> None:
    """The three measurements and their ratios: each executor's job nested against
    host podman, and the custom executor's lifecycle against the docker-API run."""
    custom, docker, host = (report.add(measured[side]) for side in SIDES)
    report.ratio("custom-executor job lifecycle, nested / host", mode, custom, host, paired=True)
    report.ratio("docker-API job run, nested / host", mode, docker, host, paired=True)
    report.ratio("custom-executor lifecycle / docker-API run", mode, custom, docker, paired=True)


NOTE = (
    "Job lifecycle of both executors (pipglr/bench/lifecycle.py), interleaved rounds, "
    f"the same image and stage script ({STAGE_SCRIPT}): the custom executor's driver "
    "prepare -> run build_script -> cleanup as user runner (network, builds volume, "
    "helper and job container, one exec, their removal; three driver processes) against "
    "`docker run --rm` through the inner API (one container: the floor of a "
    "docker-executor job, not its helper container or per-build network) and host "
    "`podman run --rm`. A real job runs the driver once per stage (about ten times), "
    "which this single-stage job does not show."
)
