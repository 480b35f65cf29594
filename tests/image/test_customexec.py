"""The custom executor: jobs handed out by the fake GitLab run through pipglr's driver
(``python3 -m pipglr.guest executor``) against the real nested podman, in both outer
modes.

A runner entry with ``executor = "custom"`` and the section ``pipglr executor toml``
prints (:func:`pipglr.customsection.section`) is added to the session's working
config (the runner reloads it, as an operator's second runner would be); its jobs run
beside the docker runner's. The stand-in runner plays gitlab-runner's side of the
contract (tests/standin/gitlab_runner/custom.py, from upstream's executors/custom/).

Scenarios, each with what the job record says (GitLab's view): a passing job; a
failing step (the build failure and its exit code); a missing image (a system
failure); a server started in the script still answering in after_script (one
container for all stages); two jobs at once in distinct containers; a service by its
alias; a job cancelled mid-stage; the driver's prepare killed with SIGKILL, after
which cleanup leaves nothing behind; after every job, no container, network or volume
of it is left. And maintained job images (`pipglr images`): a job of each executor on
one selected by name, and the weekly unit rebuilding it under a running job, which
still succeeds on the old one.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipglr import __version__, customsection, layout
from pipglr.settings import DEFAULT_JOB_IMAGE
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab
from tests.harness.joblog import JobLog, describe
from tests.image.conftest import Pipglr, queue, trace_until
from tests.image.probes import PROBE, outcomes
from tests.image.test_hostconfig import reloads, wait_reload, write_config
from tests.image.test_security import WAIT_DB
from tests.image.test_storage import report

pytestmark = [pytest.mark.image]

#: The project the custom runner's jobs belong to (its cache volume is named after it).
PROJECT = 61
HOST_LINE = re.compile(r"^HOST=(\S+)$")
#: podman's default capabilities (containers.conf ``default_capabilities``: CHOWN,
#: DAC_OVERRIDE, FOWNER, FSETID, KILL, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP,
#: SETUID, SYS_CHROOT) as a CapEff mask.
PODMAN_DEFAULT_CAPS = sum(1 << bit for bit in (0, 1, 3, 4, 5, 10, 31, 6, 8, 7, 18))


def custom_entry(base: dict[str, Any], token: str) -> dict[str, Any]:
    """The session runner's entry as a custom-executor runner of ``token``."""
    keep = ("url", "name", "limit", "request_concurrency")
    entry = {k: v for k, v in base.items() if k in keep}
    return entry | {
        "name": "custom-driver",
        "token": token,
        "executor": "custom",
        "custom": customsection.section(DEFAULT_JOB_IMAGE),
    }


@pytest.fixture(scope="module")
def custom_token(pipglr: Pipglr) -> Iterator[str]:
    """The custom runner added to the working config; the config restored after."""
    original = pipglr.config_text
    document = tomllib.loads(original)
    token = gitlab.token("custom", pipglr.outer.mode)
    runners = [*document["runners"], custom_entry(document["runners"][0], token)]
    before = reloads(pipglr)
    write_config(pipglr, _dumps(document | {"runners": runners}))
    wait_reload(pipglr, before)
    try:
        yield token
    finally:
        before = reloads(pipglr)
        write_config(pipglr, original)
        wait_reload(pipglr, before)


def _dumps(document: dict[str, Any]) -> str:
    import tomlkit

    return tomlkit.dumps(document)


def submit(gitlab_: Client, pipglr: Pipglr, token: str, **spec: Any) -> int:
    """Queue a job only the custom runner may take (image: the test image)."""
    spec.setdefault("image", pipglr.image)
    spec.setdefault("variables", {})
    return gitlab_.add_job(spec | {"runner": token, "project_id": PROJECT})


def leftovers(pipglr: Pipglr, job_id: int) -> list[str]:
    """Containers, networks and volumes of the nested podman named after ``job_id``."""
    mine = re.compile(rf"-concurrent-\d+-{job_id}(-|$)")
    found = []
    for kind in ("ps --all", "network ls", "volume ls"):
        listing = pipglr.podman(*kind.split(), "--format", "{{.Names}}" if kind.startswith("ps")
                                else "{{.Name}}").stdout.split()  # fmt: skip
        found += [f"{kind.split()[0]}:{n}" for n in listing if mine.search(n)]
    return found


def nothing_left(pipglr: Pipglr, job_id: int, timeout: float = 30) -> list[str]:
    """Poll until nothing of ``job_id`` is left (cleanup runs after the job's state is
    sent); what is left at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := leftovers(pipglr, job_id)) and time.monotonic() < deadline:
        time.sleep(1)
    return left


@pytest.fixture(scope="module")
def records(pipglr: Pipglr, fake_gitlab: Client, custom_token: str) -> dict[str, dict[str, Any]]:
    """The scenario jobs queued at once, by name, once all are final; the "cancel" job
    (queued first, so it runs among the first) is cancelled once its step has begun,
    with how long the cancel took and whether its container existed before."""
    token = custom_token
    hold = ["echo HOST=$(cat /proc/sys/kernel/hostname)", "sleep 6"]
    ids = {
        "cancel": submit(fake_gitlab, pipglr, token, name="cancel",
                         script=["echo started", "sleep 300"]),
        "pass-a": submit(fake_gitlab, pipglr, token, name="pass-a",
                         script=["echo hello from the custom executor",
                                 "grep -E '^(Seccomp|CapEff):' /proc/self/status", *hold]),
        "pass-b": submit(fake_gitlab, pipglr, token, name="pass-b", script=hold),
        "fail": submit(fake_gitlab, pipglr, token, name="fail",
                       script=["echo before the failure", "exit 3", "echo never"]),
        "missing": submit(fake_gitlab, pipglr, token, name="missing",
                          image="localhost/pipglr-no-such-image:latest", script=["true"]),
        "state": submit(fake_gitlab, pipglr, token, name="state", variables={"PROBE": PROBE},
                        script=["(python3 -m http.server 8000 >/dev/null 2>&1 &)",
                                "sleep 2", "echo server started"],
                        after_script=['python3 -c "$PROBE" srv=http://127.0.0.1:8000/']),
        "service": submit(fake_gitlab, pipglr, token, name="service",
                          services=[{"name": pipglr.image, "alias": "db",
                                     "command": ["python3", "-m", "http.server", "8000"]}],
                          variables={"PROBE": PROBE},
                          script=[WAIT_DB, 'python3 -c "$PROBE" db=http://db:8000/']),
    }  # fmt: skip
    trace_until(fake_gitlab, ids["cancel"], "started")
    running = leftovers(pipglr, ids["cancel"])
    began = time.monotonic()
    fake_gitlab.cancel(ids["cancel"])
    cancelled = fake_gitlab.wait(ids["cancel"], timeout=120)
    took = time.monotonic() - began
    done = {name: fake_gitlab.wait(job, timeout=300) | {"id": job} for name, job in ids.items()}
    done["cancel"] = cancelled | {"id": ids["cancel"], "took": took, "running": running}
    return done


def test_a_passing_job_runs_through_the_driver(records: dict[str, dict[str, Any]]) -> None:
    """The trace names pipglr's driver and holds the script's output; success."""
    job = records["pass-a"]
    assert job["state"] == "success", describe(job)
    log = JobLog.of(job)
    assert log.has_line("hello from the custom executor"), describe(job)
    assert log.contains(f"driver pipglr {__version__}"), describe(job)


def test_the_job_runs_unprivileged_under_seccomp(records: dict[str, dict[str, Any]]) -> None:
    """As docker-executor jobs of an unprivileged runner: podman's seccomp filter on
    (mode 2) and podman's default capability set, not all of them (a privileged
    container's CapEff is 000001ffffffffff or more)."""
    log = JobLog.of(records["pass-a"])
    seccomp, caps = log.search(r"^Seccomp:\s+(\d+)$"), log.search(r"^CapEff:\s+([0-9a-f]+)$")
    assert seccomp and seccomp[1] == "2", describe(records["pass-a"])
    assert caps and int(caps[1], 16) == PODMAN_DEFAULT_CAPS, caps and caps[1]


def test_a_failing_step_is_a_build_failure_with_its_exit_code(
    records: dict[str, dict[str, Any]],
) -> None:
    """``exit 3``: the job fails as a script failure with exit code 3 (the code the
    driver wrote to $BUILD_EXIT_CODE_FILE); the later line never ran."""
    job = records["fail"]
    assert (job["state"], job["failure_reason"], job["exit_code"]) == (
        "failed", "script_failure", 3), describe(job)  # fmt: skip
    log = JobLog.of(job)
    assert log.has_line("before the failure") and not log.has_line("never"), describe(job)


def test_a_missing_image_is_a_system_failure(records: dict[str, dict[str, Any]]) -> None:
    """An image no registry has: prepare fails, the job is the system's failure."""
    job = records["missing"]
    assert job["state"] == "failed", describe(job)
    assert job["failure_reason"] == "runner_system_failure", describe(job)
    assert "pipglr-no-such-image" in JobLog.of(job).text, describe(job)


def test_state_persists_between_stages(records: dict[str, dict[str, Any]]) -> None:
    """A server the script started answers after_script (another stage, the same
    container)."""
    job = records["state"]
    assert job["state"] == "success", describe(job)
    seen = outcomes(JobLog.of(job).output())
    assert seen["srv"].kind == "answered" and seen["srv"].detail.startswith("200"), describe(job)


def test_two_jobs_at_once_run_in_distinct_containers(records: dict[str, dict[str, Any]]) -> None:
    """Both succeed; each ran in its own container, named after its runner, project,
    concurrency slot and job."""
    hosts = {}
    for name in ("pass-a", "pass-b"):
        job = records[name]
        assert job["state"] == "success", describe(job)
        found = JobLog.of(job).search(HOST_LINE.pattern)
        assert found, describe(job)
        hosts[name] = found[1]
    assert hosts["pass-a"] != hosts["pass-b"], hosts
    for name, host in hosts.items():
        pattern = rf"runner-[\w-]+-project-{PROJECT}-concurrent-\d+-{records[name]['id']}"
        assert re.fullmatch(pattern, host), (name, host)


def test_a_service_answers_by_its_alias(records: dict[str, dict[str, Any]]) -> None:
    job = records["service"]
    assert job["state"] == "success", describe(job)
    seen = outcomes(JobLog.of(job).output())
    assert seen["db"].kind == "answered" and seen["db"].detail.startswith("200"), describe(job)


def test_nothing_of_the_jobs_is_left(pipglr: Pipglr, records: dict[str, dict[str, Any]]) -> None:
    """Cleanup removed every job's containers, network and volumes (the per-project
    cache volume is not the job's: it stays for the next job)."""
    for name, job in records.items():
        assert nothing_left(pipglr, job["id"]) == [], name


def test_a_cancelled_job_stops_promptly_and_is_cleaned_up(
    pipglr: Pipglr, records: dict[str, dict[str, Any]]
) -> None:
    """Cancelled mid-step (a 300 s sleep): canceled within the grace, nothing left."""
    job = records["cancel"]
    assert job["running"], "the job's container existed while it ran"
    assert job["state"] == "canceled", describe(job)
    assert job["took"] < customsection.GRACEFUL_KILL_TIMEOUT + 30, job["took"]
    assert nothing_left(pipglr, job["id"]) == []


def driver_env(job_id: int, image: str) -> list[str]:
    """The driver's environment for a job the test makes up (what the runner sets)."""
    return ["CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN=killtest", f"CUSTOM_ENV_CI_PROJECT_ID={PROJECT}",
            "CUSTOM_ENV_CI_CONCURRENT_PROJECT_ID=0", f"CUSTOM_ENV_CI_JOB_ID={job_id}",
            f"CUSTOM_ENV_CI_JOB_IMAGE={image}", "BUILD_FAILURE_EXIT_CODE=1",
            "SYSTEM_FAILURE_EXIT_CODE=2"]  # fmt: skip


def test_cleanup_after_a_killed_prepare_leaves_nothing(pipglr: Pipglr) -> None:
    """The driver's prepare, run as the runner runs it, killed with SIGKILL once its
    container exists; cleanup then removes everything of that job."""
    job_id = 990001
    env = driver_env(job_id, pipglr.image)
    driver = f"{layout.PYTHON} -m {layout.GUEST_MODULE} executor"
    start = f"env {' '.join(env)} {driver} prepare >/tmp/killed-prepare.log 2>&1 & echo $!"
    pid = pipglr.outer.exec(pipglr.name, "sh", "-c", start, user=layout.RUNNER.name).stdout.strip()
    deadline = time.monotonic() + 120
    while not leftovers(pipglr, job_id):
        assert time.monotonic() < deadline, "prepare made no container"
        time.sleep(0.2)
    pipglr.outer.exec(pipglr.name, "kill", "-KILL", pid, user=layout.RUNNER.name, check=False)
    cleanup = pipglr.outer.exec(
        pipglr.name, "env", *env, *driver.split(), "cleanup", user=layout.RUNNER.name,
        check=False,
    )  # fmt: skip
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert nothing_left(pipglr, job_id, timeout=10) == []


# --- maintained job images ------------------------------------------------------------


def pipglr_cli(pipglr: Pipglr, *args: str) -> subprocess.CompletedProcess[str]:
    """``pipglr ARGS`` against this mode's podman (as an operator runs it)."""
    argv = [sys.executable, "-m", "pipglr.ops.cli", "--image", pipglr.image,
            "--podman", shlex.join(pipglr.outer.podman), *args]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, f"pipglr {shlex.join(args)}: {done.stdout}{done.stderr}"
    return done


def define_tools(pipglr: Pipglr, version: str, workdir: Path) -> None:
    """``pipglr images add`` of a definition ``tools``: the test image (in the nested
    storage already: nothing is pulled) with ``/etc/tools-version`` = ``version``."""
    tools = workdir / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    (tools / "Containerfile").write_text(
        f"FROM {pipglr.image}\nRUN echo {version} > /etc/tools-version\n"
    )
    pipglr_cli(pipglr, "images", "add", str(workdir))


@pytest.fixture(scope="module")
def tools(pipglr: Pipglr, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The maintained image ``tools`` (v1), built by ``pipglr images build``; removed
    after (``pipglr images remove``)."""
    workdir = tmp_path_factory.mktemp(f"maintained-{pipglr.outer.mode}")
    define_tools(pipglr, "v1", workdir)
    built = pipglr_cli(pipglr, "images", "build").stdout
    assert "built tools" in built, built
    try:
        yield workdir
    finally:
        pipglr_cli(pipglr, "images", "remove", "tools")


VERSION = re.compile(r"^VERSION=(\S+)$")


def versions(job: dict[str, Any]) -> list[str]:
    return [m[1] for m in JobLog.of(job).matches(VERSION.pattern)]


def test_jobs_of_both_executors_select_a_maintained_image_by_name(
    pipglr: Pipglr, fake_gitlab: Client, custom_token: str, tools: Path
) -> None:
    """``image: tools`` (custom executor) and ``image: localhost/tools`` (docker
    executor) run on the maintained image; `pipglr images list` and `pipglr storage`
    show it, kept from eviction as "maintained"."""
    show = ["echo VERSION=$(cat /etc/tools-version)"]
    custom = submit(fake_gitlab, pipglr, custom_token, name="on-tools", image="tools",
                    script=show)  # fmt: skip
    docker = queue(fake_gitlab, pipglr, name="on-tools-docker", image="localhost/tools",
                   script=show)  # fmt: skip
    for job_id in (custom, docker):
        job = fake_gitlab.wait(job_id, timeout=240)
        assert job["state"] == "success", describe(job)
        assert versions(job) == ["v1"], describe(job)
    listing = json.loads(pipglr_cli(pipglr, "images", "list", "--json").stdout)
    entry = {i["name"]: i for i in listing["images"]}["tools"]
    assert entry["image"] == "localhost/tools:latest" and entry["built"], entry
    stored = {n: i for i in report(pipglr)["items"] for n in i["names"]}
    assert stored["localhost/tools:latest"]["protected"] == "maintained", stored


def test_the_timer_rebuilds_a_maintained_image_under_a_running_job(
    pipglr: Pipglr, fake_gitlab: Client, custom_token: str, tools: Path
) -> None:
    """A job runs on ``tools`` v1; meanwhile the definition becomes v2 and the weekly
    unit (`pipglr-images.service`, what the timer starts) rebuilds it. The running job
    still sees v1 at its end and succeeds; the next job gets v2."""
    show = "echo VERSION=$(cat /etc/tools-version)"
    running = submit(fake_gitlab, pipglr, custom_token, name="during-rebuild", image="tools",
                     script=[show, "echo started", "sleep 15", show])  # fmt: skip
    trace_until(fake_gitlab, running, "started", timeout=240)
    define_tools(pipglr, "v2", tools)
    pipglr.outer.exec(pipglr.name, "systemctl", "start", layout.IMAGES_SERVICE_UNIT, timeout=600)
    journal = pipglr.journal(layout.IMAGES_SERVICE_UNIT)
    assert "built tools" in journal, journal[-2000:]
    job = fake_gitlab.wait(running, timeout=240)
    assert job["state"] == "success", describe(job)
    assert versions(job) == ["v1", "v1"], describe(job)
    after = submit(fake_gitlab, pipglr, custom_token, name="after-rebuild", image="tools",
                   script=[show])  # fmt: skip
    job = fake_gitlab.wait(after, timeout=240)
    assert job["state"] == "success" and versions(job) == ["v2"], describe(job)
