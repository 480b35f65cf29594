"""CI jobs the way GitLab Runner runs them: fake GitLab → runner service → nested jobs.

Every job here is handed out by the fake GitLab (``tests/fakegitlab``) to the runner
service of the running pipglr container, which runs it through the inner podman's
Docker API like gitlab-runner's docker executor (per-build network, helper and build
containers, cache, services) and reports trace and final state back. Jobs that can
run side by side are queued together (``concurrent = 4``) to keep the suite short.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakegitlab.ctl import Client
from tests.harness.joblog import JobLog, describe
from tests.image.conftest import (
    CONCURRENT,
    WAIT_FOR_SERVICES_TIMEOUT,
    Pipglr,
    queue,
    trace_until,
)

pytestmark = [pytest.mark.image, pytest.mark.slow]

#: The executor's label prefix (labels.go).
LABEL = "com.gitlab.gitlab-runner"
#: A script that serves HTTP on port 8000 (the job image has python3).
SERVE = ["python3", "-m", "http.server", "8000"]
#: Fetch http://db:8000/ from a job, retrying while the service starts.
FETCH_DB = (
    "python3 -c 'import time,urllib.request as u\n"
    "for i in range(30):\n"
    '  try: print("service answered", u.urlopen("http://db:8000/", timeout=2).status); break\n'
    "  except OSError: time.sleep(1)\n"
    'else: raise SystemExit("no answer from db")\''
)


#: services.go waitForServiceContainer's warning when a health check failed.
SERVICE_WARNING = r"WARNING: Service (\S+) probably didn't start properly\.$"


def finished(gitlab: Client, job_id: int, timeout: float = 240) -> dict[str, Any]:
    """Wait for a job's final state; the record with trace and updates."""
    return gitlab.wait(job_id, timeout=timeout)


@pytest.fixture(scope="module")
def batch(pipglr: Pipglr, fake_gitlab: Client) -> dict[str, dict[str, Any]]:
    """Jobs that run side by side, queued at once, by behaviour name."""
    ids = {
        "passing": queue(
            fake_gitlab, pipglr, name="passing", project_id=10,
            script=["echo hello from $CI_JOB_NAME", "test \"$CI_PROJECT_ID\" = 10"],
        ),
        "failing": queue(
            fake_gitlab, pipglr, name="failing", project_id=10,
            script=["echo before the failure", "exit 3", "echo never printed"],
            after_script=["echo after_script saw status $CI_JOB_STATUS"],
        ),
        "service": queue(
            fake_gitlab, pipglr, name="service", project_id=10,
            services=[{"name": pipglr.image, "alias": "db", "command": SERVE},
                      {"name": pipglr.image, "alias": "deaf", "command": ["sleep", "300"]}],
            variables={"HEALTHCHECK_TCP_PORT": "8000"},
            script=[FETCH_DB],
        ),
        "cache-writer": queue(
            fake_gitlab, pipglr, name="cache-writer", project_id=11,
            cache=[{"key": "deps", "paths": ["deps/"]}],
            script=["mkdir -p deps", "echo project-11-secret > deps/marker"],
        ),
    }  # fmt: skip
    return {name: finished(fake_gitlab, job_id) for name, job_id in ids.items()}


def test_passing_job_succeeds_with_its_output_in_the_trace(
    batch: dict[str, dict[str, Any]],
) -> None:
    """A job's commands and output reach GitLab's trace; the job ends success."""
    job = batch["passing"]
    assert job["state"] == "success", describe(job)
    log = JobLog.of(job)
    assert log.has_command("echo hello from $CI_JOB_NAME"), describe(job)
    assert log.has_line("hello from passing") and log.has_line("Job succeeded"), describe(job)


def test_the_runner_sends_a_trace_checksum_that_matches(
    batch: dict[str, dict[str, Any]],
) -> None:
    """With its final update the runner reports the trace's checksum
    (helpers/trace/buffer.go, network/gitlab.go UpdateJob); GitLab's own checksum of
    the trace it received is the same."""
    job = batch["passing"]
    assert str(job["reported_checksum"] or "").startswith("crc32:"), "the runner sent none"
    assert job["checksum_ok"] is True, (job["reported_checksum"], job["checksum"])


def test_failing_script_fails_the_job_with_its_exit_code(
    batch: dict[str, dict[str, Any]],
) -> None:
    """exit 3 stops the script: the job is failed, script_failure, exit code 3."""
    job = batch["failing"]
    assert job["state"] == "failed", describe(job)
    assert (job["exit_code"], job["failure_reason"]) == (3, "script_failure"), describe(job)
    log = JobLog.of(job)
    assert log.has_line("before the failure") and log.contains("exit code 3"), describe(job)
    assert not log.contains("never printed"), describe(job)


def test_after_script_runs_after_a_failure(batch: dict[str, dict[str, Any]]) -> None:
    """after_script runs after the failed script and sees CI_JOB_STATUS=failed."""
    job = batch["failing"]
    log = JobLog.of(job)
    assert log.has_line("after_script saw status failed"), describe(job)
    assert log.index("before the failure") < log.index("after_script saw status"), describe(job)


def test_service_answers_by_its_alias(batch: dict[str, dict[str, Any]]) -> None:
    """A service on the job's per-build network answers at its alias."""
    job = batch["service"]
    assert job["state"] == "success", describe(job)
    assert JobLog.of(job).has_line("service answered 200"), describe(job)


def health_checks(pipglr: Pipglr, job_id: int) -> dict[str, int]:
    """The exit codes of a job's wait-for-service containers (services.go
    ``runServiceHealthCheckContainer``: ``gitlab-runner-helper health-check``), by the
    name of the service container each checked, from the nested podman's events."""
    events = pipglr.podman("events", "--stream=false", "--format", "json",
                           "--filter", "event=died").stdout  # fmt: skip
    found = {}
    for line in events.splitlines():
        event = json.loads(line)
        attributes = event.get("Attributes") or {}
        if (attributes.get(f"{LABEL}.job.id"), attributes.get(f"{LABEL}.type")) == (
            str(job_id),
            "wait",
        ):
            service = str(event["Name"]).removesuffix("-wait-for-service")
            found[service] = int(event.get("ContainerExitCode") or 0)
    return found


def test_the_health_check_waits_for_a_service_and_warns_about_a_deaf_one(
    batch: dict[str, dict[str, Any]], pipglr: Pipglr
) -> None:
    """Before the script, a health-check container dials each service's port
    (HEALTHCHECK_TCP_PORT): ``db`` listens, its check exits 0 and the log has no
    warning about it; ``deaf`` (same image, never listens; the positive control in
    the same job) fails its check and gets services.go's warning, by its name."""
    job = batch["service"]
    log = JobLog.of(job)
    waiting = f"(timeout {WAIT_FOR_SERVICES_TIMEOUT} seconds)..."
    assert log.has_line(f"Waiting for services to be up and running {waiting}"), describe(job)
    checks = health_checks(pipglr, job["id"])
    assert len(checks) == 2, f"one health check per service: {checks}"
    # Services are created in order and numbered so (services.go createServices).
    db, deaf = (next(name for name in checks if name.endswith(f"-{n}")) for n in (0, 1))
    assert checks[db] == 0 and checks[deaf] != 0, checks
    warned = [match[1] for match in log.matches(SERVICE_WARNING)]
    assert warned == [deaf], f"warnings for {warned}, expected only for {deaf}: {log.tail()}"


@pytest.fixture(scope="module")
def cache_readers(
    batch: dict[str, dict[str, Any]], pipglr: Pipglr, fake_gitlab: Client
) -> dict[str, dict[str, Any]]:
    """After the writer: a job of the same project and one of another project."""
    assert batch["cache-writer"]["state"] == "success", describe(batch["cache-writer"])
    cache = [{"key": "deps", "paths": ["deps/"], "policy": "pull"}]
    ids = {
        "same-project": queue(
            fake_gitlab, pipglr, name="cache-reader", project_id=11, cache=cache,
            script=["cat deps/marker"],
        ),
        "other-project": queue(
            fake_gitlab, pipglr, name="cache-reader", project_id=12, cache=cache,
            script=["test ! -e deps/marker", "! grep -rs project-11-secret /cache /builds",
                    "echo nothing of project 11 here"],
        ),
    }  # fmt: skip
    return {name: finished(fake_gitlab, job_id) for name, job_id in ids.items()}


def test_jobs_of_one_project_share_their_cache(cache_readers: dict[str, dict[str, Any]]) -> None:
    """The second job of project 11 gets the cache the first one archived."""
    job = cache_readers["same-project"]
    assert job["state"] == "success", describe(job)
    log = JobLog.of(job)
    assert log.contains("Successfully extracted cache"), describe(job)
    assert log.has_line("project-11-secret"), describe(job)


@pytest.mark.security
def test_another_project_cannot_see_that_cache(cache_readers: dict[str, dict[str, Any]]) -> None:
    """Project 12, same cache key: no archive, nothing of project 11 under /cache."""
    job = cache_readers["other-project"]
    assert job["state"] == "success", describe(job)
    assert JobLog.of(job).has_line("nothing of project 11 here"), describe(job)


def test_concurrent_jobs_run_at_once(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """concurrent = 4: four queued jobs are running at the same time."""
    ids = [
        queue(fake_gitlab, pipglr, name=f"parallel-{n}", project_id=20 + n,
              script=["sleep 8"])
        for n in range(CONCURRENT)
    ]  # fmt: skip
    jobs = [finished(fake_gitlab, job_id) for job_id in ids]
    assert all(j["state"] == "success" for j in jobs), [describe(j) for j in jobs]
    starts = [j["stamps"]["picked"]["mono"] for j in jobs]
    ends = [j["stamps"]["final_update"]["mono"] for j in jobs]
    assert max(starts) < min(ends), f"not all {CONCURRENT} overlapped: {starts} {ends}"


def leftovers(pipglr: Pipglr, job_id: int) -> dict[str, list[str]]:
    """Containers, networks and volumes the executor labelled with ``job_id``."""
    label = f"label=com.gitlab.gitlab-runner.job.id={job_id}"
    found = {}
    for kind, args in (
        ("containers", ("ps", "-a", "-q", "--filter", label)),
        ("networks", ("network", "ls", "-q", "--filter", label)),
        ("volumes", ("volume", "ls", "-q", "--filter", label)),
    ):
        found[kind] = pipglr.docker(*args).stdout.split()
    return found


@pytest.fixture
def running_job(pipglr: Pipglr, fake_gitlab: Client) -> Iterator[int]:
    """A long job with a service, waited for until its script is running. It prints a
    line every second: a runner learns of a cancel from the answer to its next trace
    update, and one with nothing to send only touches the job every 30 s
    (network/trace.go ``touchJob``)."""
    job_id = queue(
        fake_gitlab, pipglr, name="to-cancel", project_id=30,
        services=[{"name": pipglr.image, "alias": "db", "command": SERVE}],
        variables={"HEALTHCHECK_TCP_PORT": "8000"},
        script=["echo script started", "for i in $(seq 300); do echo tick; sleep 1; done"],
    )  # fmt: skip
    trace_until(fake_gitlab, job_id, "script started")
    yield job_id
    fake_gitlab.cancel(job_id, force=True)


def test_cancelled_job_leaves_nothing_behind(
    pipglr: Pipglr, fake_gitlab: Client, running_job: int
) -> None:
    """Cancel a running job: it ends canceled, its containers and network are gone."""
    during = leftovers(pipglr, running_job)
    assert during["containers"] and during["networks"], f"positive control: {during}"
    fake_gitlab.cancel(running_job)
    job = finished(fake_gitlab, running_job, timeout=120)
    assert job["state"] == "canceled", describe(job)
    deadline = time.monotonic() + 30
    while any(leftovers(pipglr, running_job).values()) and time.monotonic() < deadline:
        time.sleep(1)
    assert leftovers(pipglr, running_job) == {"containers": [], "networks": [], "volumes": []}


#: A two-step Containerfile on a base the job makes from its own binaries (no registry).
MAKE_CONTEXT = [
    "mkdir -p /tmp/base /tmp/ctx",
    "for f in /bin/sh /usr/bin/cat $(ldd /bin/sh /usr/bin/cat | grep -o '/[^ :]*');"
    ' do cp --parents -L "$f" /tmp/base/; done',
    "printf 'FROM localhost/job-base\\nRUN echo built-in-a-job > /proof\\n"
    "RUN cat /proof > /copy\\n' > /tmp/ctx/Containerfile",
    "chmod -R a+rX /tmp/base /tmp/ctx",
]
#: Import the base, build, run the result, list the images. A job variable, so that
#: the user's shell expands it; no ``$1`` in it (the runner expands variables in
#: variable values, and ``$1`` is one), the caller prefixes the lines.
BUILD = """set -e
tar -C /tmp/base -c . | podman import -q - localhost/job-base >/dev/null
echo "driver=$(podman info --format '{{.Store.GraphDriverName}}')"
podman build -q -t localhost/built /tmp/ctx >/dev/null
podman run --rm localhost/built cat /copy | sed "s/^/run:/"
podman images --format "image {{.Repository}}"
"""
#: The job image's non-root user (examples/podman-job) and how the job becomes it.
AS_USER = "runuser -u build -- env HOME=/home/build sh -c"
#: Every image a job's podman has, as root and as the user.
LIST_IMAGES = [
    "podman images --format 'seen {{.Repository}}'",
    f"{AS_USER} \"podman images --format 'seen {{{{.Repository}}}}'\"",
    "echo images-listed",
]


@pytest.fixture(scope="module")
def build_jobs(pipglr: Pipglr, fake_gitlab: Client, podman_job_image: str) -> dict[str, Any]:
    """A default (unprivileged) job of project 20 that builds with podman as root and
    as a user and with buildah; then a job of project 21 listing what it can see."""
    script = [
        "grep -E '^(Seccomp|CapEff|NoNewPrivs):' /proc/self/status",
        *MAKE_CONTEXT,
        'sh -c "$BUILD" | sed "s/^/root-/"',
        f'{AS_USER} "$BUILD" | sed "s/^/user-/"',
        f'{AS_USER} "buildah bud -q -t localhost/by-buildah /tmp/ctx >/dev/null'
        " && podman run --rm localhost/by-buildah cat /proof | sed 's/^/buildah-run:/'\"",
    ]
    volumes = set(pipglr.docker("volume", "ls", "--quiet").stdout.split())
    builder = finished(fake_gitlab, queue(fake_gitlab, pipglr, name="build", project_id=20,
                                          image=podman_job_image, script=script,
                                          variables={"BUILD": BUILD}))  # fmt: skip
    other = finished(fake_gitlab, queue(fake_gitlab, pipglr, name="look", project_id=21,
                                        image=podman_job_image, script=LIST_IMAGES))  # fmt: skip
    after = set(pipglr.docker("volume", "ls", "--quiet").stdout.split())
    return {"builder": builder, "other": other, "new_volumes": sorted(after - volumes)}


def test_a_default_job_builds_images_as_root_and_as_a_user(build_jobs: dict[str, Any]) -> None:
    """The job runs as registered (unprivileged, under seccomp), and builds a
    two-step Containerfile with podman as root and as the image's user and with
    buildah, on overlay storage (not vfs), and runs the results."""
    job = build_jobs["builder"]
    assert job["state"] == "success", describe(job, 4000)
    log = JobLog.of(job)
    assert log.has_line("Seccomp:\t2") and log.has_line("NoNewPrivs:\t0"), describe(job)
    cap = log.search(r"^CapEff:\t([0-9a-f]+)$")
    assert cap and not int(cap[1], 16) & 1 << 21, f"CAP_SYS_ADMIN in the job: {describe(job)}"
    for who in ("root", "user"):
        assert log.has_line(f"{who}-driver=overlay"), describe(job, 4000)
        assert log.has_line(f"{who}-run:built-in-a-job"), describe(job, 4000)
        assert log.has_line(f"{who}-image localhost/built"), describe(job, 4000)
    assert log.has_line("buildah-run:built-in-a-job"), describe(job, 4000)


def test_another_project_sees_none_of_the_build(build_jobs: dict[str, Any]) -> None:
    """The next job (another project, same image) sees no image the builder made,
    as root or as the user (the builder listed them with the same command: the
    control above); the builder's build storage (the image's volumes) went with its
    containers, only the executor's cache volumes stay."""
    job = build_jobs["other"]
    assert job["state"] == "success", describe(job)
    log = JobLog.of(job)
    assert log.has_line("images-listed"), describe(job)
    seen = [m[1] for m in log.matches(r"^seen (\S+)$")]
    assert not [name for name in seen if name.startswith("localhost/")], seen
    stray = [v for v in build_jobs["new_volumes"] if not v.startswith("runner-")]
    assert not stray, f"volumes left by the jobs: {stray}"


def test_runner_requests_follow_the_protocol(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """The runner asked for jobs with its token and system id, as gitlab-runner does."""
    token = pipglr.runner_tokens()[0]
    requests = fake_gitlab.requests(path="/api/v4/jobs/request")
    mine = [r for r in requests if (r.get("body") or {}).get("token") == token]
    assert mine, json.dumps(requests[-3:])[:2000]
    body = mine[-1]["body"]
    assert body["system_id"].startswith(("s_", "r_")), body
    assert body["info"]["executor"] == "docker", body
