"""The stand-in's docker executor replays gitlab-runner's Docker API calls (no engine:
a recording fake API on a temporary unix socket, and a stub coordinator)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.joblog import JobLog
from tests.standin.gitlab_runner import helper
from tests.standin.gitlab_runner.build import Build
from tests.standin.gitlab_runner.buildinfo import BuildInfo
from tests.standin.gitlab_runner.buildlog import BuildLogger
from tests.standin.gitlab_runner.config import RunnerConfig
from tests.standin.gitlab_runner.context import Context
from tests.standin.gitlab_runner.executor import DockerExecutor
from tests.standin.gitlab_runner.jobspec import Job
from tests.standin.gitlab_runner.network import Answer, Canceller, GitLabClient
from tests.standin.gitlab_runner.scripts import ANSI_BOLD_CYAN, ANSI_BOLD_GREEN, ANSI_BOLD_RED
from tests.standin.gitlab_runner.trace import JobTrace
from tests.unit.standin_fakedocker import Call, FakeDocker, serving

BASE = "localhost/pipglr-base:trixie"
HELPER = f"{helper.REGISTRY_NAME}:{helper.tag('x86_64')}"
TOKEN = "glrt-unit-test-token"


class StubGitLab(GitLabClient):
    """Records coordinator calls; answers like GitLab with ``job_status``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, Any, dict[str, str]]] = []
        self.job_status = "running"

    def request(
        self,
        base_url: str,
        method: str,
        uri: str,
        payload: object = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        cancel: Canceller | None = None,
        timeout: float | None = None,
    ) -> Answer:
        self.calls.append((method, uri, payload if data is None else data, dict(headers or {})))
        state = {"job-status": self.job_status}
        if uri.startswith("jobs/") and uri.endswith("/trace?debug_trace=false"):
            return Answer(202, {**state, "x-gitlab-trace-update-interval": "1"}, b"")
        if uri.startswith("jobs/"):
            return Answer(200, state, b"")
        if uri == "runners/verify":
            return Answer(200, {}, b'{"id": 42, "token": "%s"}' % TOKEN.encode())
        if uri == "runners":
            return Answer(201, {}, b'{"id": 43, "token": "glrt-issued-by-legacy"}')
        return Answer(404, {}, b"")


def payload(**overrides: Any) -> dict[str, Any]:
    """A job payload as GitLab sends it (common/spec/spec.go Job)."""
    job: dict[str, Any] = {
        "id": 7,
        "token": "glcbt-job-token",
        "allow_git_fetch": False,
        "job_info": {"name": "test", "stage": "test", "project_id": 3, "project_name": "p"},
        "git_info": {
            "repo_url": "http://gitlab-ci-token:x@127.0.0.1/group/p.git",
            "ref": "main",
            "sha": "a" * 40,
            "before_sha": "0" * 40,
            "refspecs": [],
            "depth": 0,
        },
        "runner_info": {"timeout": 600},
        "variables": [
            {"key": "GIT_STRATEGY", "value": "none", "public": True},
            {"key": "CI_PIPELINE_ID", "value": "99", "public": True},
        ],
        "steps": [{"name": "script", "script": ["echo hi"], "when": "on_success"}],
        "image": {"name": BASE},
        "services": [],
        "features": {"trace_sections": True, "failure_reasons": ["script_failure"]},
    }
    job.update(overrides)
    return job


def runner_config(socket: Path, **docker: Any) -> RunnerConfig:
    """A ``[[runners]]`` entry pointing at the fake engine."""
    environment = docker.pop("environment", [])
    section = {
        "host": f"unix://{socket}",
        "image": BASE,
        "volumes": ["/cache"],
        "pull_policy": ["if-not-present"],
        **docker,
    }
    raw = {
        "name": "unit",
        "url": "http://127.0.0.1:1/",
        "token": TOKEN,
        "executor": "docker",
        "environment": environment,
        "docker": section,
    }
    return RunnerConfig.from_dict(raw)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeDocker]:
    """A fake engine with the job image and the default helper image present."""
    engine = FakeDocker(images={BASE: "sha256:" + "b" * 64, HELPER: "sha256:" + "c" * 64})
    with serving(tmp_path / "docker.sock", engine):
        yield engine


def run_job(
    tmp_path: Path,
    job: dict[str, Any],
    runner: RunnerConfig,
    gitlab: StubGitLab | None = None,
    during: Callable[[Build], None] | None = None,
    factory: Callable[[BuildInfo, BuildLogger, Context], DockerExecutor] = DockerExecutor,
) -> tuple[JobLog, StubGitLab]:
    """Run one job through :class:`Build`; return its trace (read as GitLab shows it) and
    the coordinator stub."""
    gitlab = gitlab or StubGitLab()
    trace = JobTrace(gitlab, runner.url, job["id"], job["token"])
    build = Build(BuildInfo(runner, Job.from_dict(job), "s_0123456789ab"), trace, factory)
    if during is not None:
        threading.Thread(target=during, args=(build,), daemon=True).start()
    build.run()
    return JobLog(trace.buffer.read(0, 1 << 20).decode(errors="replace")), gitlab


def creates(fake: FakeDocker, kind: str) -> list[Call]:
    """``POST /containers/create`` calls for containers of label type ``kind``."""
    return [
        c
        for c in fake.calls
        if c.path == "/containers/create"
        and c.body["Labels"].get("com.gitlab.gitlab-runner.type") == kind
    ]


def test_passing_job_replays_the_docker_executor_sequence(tmp_path: Path, fake: FakeDocker) -> None:
    """connectDocker, volumes (+ permission container), helper + build image, stages with
    attach before start and a not-running wait, then cleanup with v=1&force=1."""
    log, _ = run_job(tmp_path, payload(), runner_config(tmp_path / "docker.sock"))
    paths = fake.paths()
    assert paths[:3] == ["HEAD /_ping", "GET /info", "GET /version"], paths[:5]
    assert not any(p.startswith("POST /networks/create") for p in paths), "no FF: no network"
    volume = [c for c in fake.calls if c.path == "/volumes/create"]
    assert [c.body["Labels"]["com.gitlab.gitlab-runner.destination"] for c in volume] == [
        "/cache",
        "/builds",
    ], "config volumes first, then the build volume"
    permission = creates(fake, "cache-init")
    assert len(permission) == 2 and permission[0].body["Cmd"] == [
        "gitlab-runner-helper",
        "cache-init",
        "/gitlab-runner-cache-init",
    ], permission
    for kind, cmd in (("predefined", ["gitlab-runner-build"]), ("build", None)):
        (create,) = creates(fake, kind)
        body = create.body
        assert (body["OpenStdin"], body["StdinOnce"], body["AttachStdin"], body["Tty"]) == (
            True,
            True,
            True,
            False,
        ), f"{kind}: stdin open once, no tty"
        assert body["HostConfig"]["RestartPolicy"]["Name"] == "no", body["HostConfig"]
        assert body["HostConfig"]["LogConfig"]["Type"] == "json-file", body["HostConfig"]
        assert cmd is None or body["Cmd"] == cmd, body["Cmd"]
        assert create.query["name"][0].endswith(f"-{kind}"), create.query
    build_cmd = creates(fake, "build")[0].body["Cmd"]
    assert build_cmd[:2] == ["sh", "-c"] and "exec /usr/bin/bash" in build_cmd[2], build_cmd
    assert len(fake.stdin) >= 2, f"stage containers attached: {list(fake.stdin)}"
    for cid in fake.stdin:
        attach = paths.index(f"POST /containers/{cid}/attach?stderr=1&stdin=1&stdout=1&stream=1")
        assert paths[attach + 1] == f"POST /containers/{cid}/start", "attach before start"
        wait = f"POST /containers/{cid}/wait?condition=not-running"
        assert wait in paths[attach + 2 :], f"{cid} started but never waited for: {paths}"
    deletes = [p for p in paths if p.startswith("DELETE /containers/") and "v=1" in p]
    assert any(p.endswith("?force=1&v=1") for p in deletes), deletes
    assert not fake.containers, f"containers left: {fake.containers}"
    last = log.lines[-1]
    assert last.text == "Job succeeded" and last.raw.startswith(ANSI_BOLD_GREEN), log.tail()


def test_stage_order_and_predefined_containers(tmp_path: Path, fake: FakeDocker) -> None:
    """prepare_script and get_sources in the helper, step_script and after_script in the
    build container, cleanup_file_variables in the helper (common/build.go)."""
    job = payload(
        steps=[
            {"name": "script", "script": ["echo hi"]},
            {"name": "after_script", "script": ["echo bye"]},
        ]
    )
    log, _ = run_job(tmp_path, job, runner_config(tmp_path / "docker.sock"))
    order = [line.text for line in log.lines if ANSI_BOLD_CYAN in line.raw]
    assert order == [
        'Preparing the "docker" executor',
        "Preparing environment",
        "Getting source from Git repository",
        'Executing "step_script" stage of the job script',
        "Running after_script",
        "Cleaning up project directory and file based variables",
    ], order
    runs = sorted(fake.kinds[cid] for cid in fake.stdin for _ in fake.stdin[cid])
    assert runs == ["build", "build", "predefined", "predefined", "predefined"], runs


def test_failing_script_runs_after_script_and_fails_the_job(
    tmp_path: Path, fake: FakeDocker
) -> None:
    """A non-zero step exits the job with "exit code N", after_script still runs and its
    failure does not change the result; the final update says failed/script_failure."""
    fake.exit_codes["build"] = 3
    job = payload(
        steps=[
            {"name": "script", "script": ["false"]},
            {"name": "after_script", "script": ["echo bye"]},
        ]
    )
    log, gitlab = run_job(tmp_path, job, runner_config(tmp_path / "docker.sock"))
    assert log.has_line("Running after_script"), "after_script runs after a failed script"
    assert log.has_line(
        "WARNING: after_script failed, but job will continue unaffected: exit code 3"
    ), log.tail()
    last = log.lines[-1]
    assert last.text == "ERROR: Job failed: exit code 3", log.tail()
    assert last.raw.startswith(ANSI_BOLD_RED), "the error line is bold red"
    final = [c for c in gitlab.calls if c[0] == "PUT"][-1][2]
    assert (final["state"], final["failure_reason"], final["exit_code"]) == (
        "failed",
        "script_failure",
        3,
    ), final
    assert not fake.containers, "cleaned up"


def test_network_per_build_from_runner_environment(tmp_path: Path, fake: FakeDocker) -> None:
    """FF_NETWORK_PER_BUILD in ``environment``: a labelled network named
    ProjectUniqueShortName, containers on it with aliases, removed at cleanup."""
    runner = runner_config(tmp_path / "docker.sock", environment=["FF_NETWORK_PER_BUILD=true"])
    run_job(tmp_path, payload(), runner)
    (create,) = [c for c in fake.calls if c.path == "/networks/create"]
    assert create.body["Name"] == "runner-unit-test-3-0-7", create.body
    assert create.body["Labels"]["com.gitlab.gitlab-runner.job.id"] == "7", create.body
    paths = fake.paths()
    assert paths[paths.index("POST /networks/create") + 1].startswith("GET /networks/"), paths
    (build,) = creates(fake, "build")
    assert build.body["HostConfig"]["NetworkMode"] == "runner-unit-test-3-0-7"
    aliases = build.body["NetworkingConfig"]["EndpointsConfig"]["runner-unit-test-3-0-7"]
    assert aliases["Aliases"][0] == "build", aliases
    assert any(p.startswith("DELETE /networks/") for p in paths) and not fake.networks, paths


def test_pull_policy_list_falls_back_to_the_local_image(tmp_path: Path, fake: FakeDocker) -> None:
    """["always", "if-not-present"]: the failed pull is followed by the local image."""
    runner = runner_config(tmp_path / "docker.sock", pull_policy=["always", "if-not-present"])
    log, _ = run_job(tmp_path, payload(), runner)
    pulls = [c for c in fake.calls if c.path == "/images/create"]
    assert pulls and pulls[0].query == {"fromImage": ["localhost/pipglr-base"], "tag": ["trixie"]}
    assert log.contains('WARNING: Failed to pull image with policy "always"'), log.tail()
    assert log.has_line('Attempt #2: Trying "if-not-present" pull policy'), log.tail()
    assert log.has_line("Job succeeded"), log.tail()


def test_pull_policy_always_alone_fails_without_registry(tmp_path: Path, fake: FakeDocker) -> None:
    """Only "always" and no registry: the job fails before any stage (image pull)."""
    runner = runner_config(tmp_path / "docker.sock", pull_policy="always")
    log, gitlab = run_job(tmp_path, payload(), runner)
    assert log.contains('failed to pull image "localhost/pipglr-base:trixie"'), log.tail()
    final = [c for c in gitlab.calls if c[0] == "PUT"][-1][2]
    assert final["failure_reason"] == "runner_system_failure", "image_pull_failure unsupported"
    assert not creates(fake, "build"), "no build container"


def test_cache_dir_binds_a_per_project_directory(tmp_path: Path, fake: FakeDocker) -> None:
    """[runners.docker] cache_dir: /cache is <cache_dir>/<ProjectRealUniqueName>/<md5>,
    no cache volume is created for it."""
    runner = runner_config(tmp_path / "docker.sock", cache_dir="/srv/cache")
    run_job(tmp_path, payload(), runner)
    volumes = [c.body["Name"] for c in fake.calls if c.path == "/volumes/create"]
    assert len(volumes) == 1 and "/cache" not in str(volumes), volumes
    binds = creates(fake, "build")[0].body["HostConfig"]["Binds"]
    cache = [b for b in binds if b.endswith(":/cache")]
    assert len(cache) == 1 and cache[0].startswith("/srv/cache/runner-"), binds
    assert cache[0].split(":")[0].endswith("/3c3f060a0374fc8bc39395164f415a70"), "md5(/cache)"


def test_prebuilt_helper_archive_is_imported(tmp_path: Path, fake: FakeDocker) -> None:
    """No helper image: prebuilt-alpine-x86_64.tar.xz is imported (fromSrc=-) with the
    helper name, tag and the ENTRYPOINT change, then inspected."""
    del fake.images[HELPER]
    archives = tmp_path / "helper-images"
    archives.mkdir()
    (archives / "prebuilt-alpine-x86_64.tar.xz").write_bytes(b"\xfd7zXZ fake rootfs")

    def factory(info: BuildInfo, logger: BuildLogger, ctx: Context) -> DockerExecutor:
        executor = DockerExecutor(info, logger, ctx)
        executor.prebuilt_dirs = [archives]
        return executor

    log, _ = run_job(tmp_path, payload(), runner_config(tmp_path / "docker.sock"), factory=factory)
    (imported,) = [c for c in fake.calls if "fromSrc" in c.query]
    assert imported.query == {
        "fromSrc": ["-"],
        "repo": [helper.REGISTRY_NAME],
        "tag": ["x86_64-v0.0.0"],
        "changes": [helper.ENTRYPOINT_CHANGE],
    }
    assert log.has_line("Job succeeded"), log.tail()


def test_abort_stops_the_stage_and_cleans_everything(tmp_path: Path, fake: FakeDocker) -> None:
    """GitLab answers "canceled": the running step stops, no after_script or later stage
    runs, every container and the network are removed, the job fails as canceled."""
    fake.hold_build = threading.Event()
    runner = runner_config(tmp_path / "docker.sock", environment=["FF_NETWORK_PER_BUILD=true"])
    job = payload(
        steps=[
            {"name": "script", "script": ["sleep 300"]},
            {"name": "after_script", "script": ["echo bye"]},
        ]
    )

    def abort_when_building(build: Build) -> None:
        for _ in range(200):
            if creates(fake, "build") and any(c.path.endswith("/attach") for c in fake.calls[-3:]):
                break
            threading.Event().wait(0.05)
        build.trace.abort()
        fake.hold_build.set()  # type: ignore[union-attr]

    log, gitlab = run_job(tmp_path, job, runner, during=abort_when_building)
    assert not log.contains("Running after_script"), "nothing runs after an abort"
    assert log.has_line("ERROR: Job failed: canceled"), log.tail()
    assert not fake.containers and not fake.networks, (fake.containers, fake.networks)
    final = [c for c in gitlab.calls if c[0] == "PUT"][-1][2]
    assert final["state"] == "failed", final


def test_services_get_aliases_and_a_health_check(tmp_path: Path, fake: FakeDocker) -> None:
    """A service: image pulled, created with its aliases on the per-build network, then a
    wait-for-service container of the helper image runs health-check."""
    fake.images["localhost/db:1"] = "sha256:" + "d" * 64
    runner = runner_config(tmp_path / "docker.sock", environment=["FF_NETWORK_PER_BUILD=true"])
    job = payload(
        services=[{"name": "localhost/db:1", "alias": "db"}],
        variables=[
            {"key": "GIT_STRATEGY", "value": "none"},
            {"key": "HEALTHCHECK_TCP_PORT", "value": "5432", "public": True},
        ],
    )
    run_job(tmp_path, job, runner)
    (service,) = creates(fake, "service")
    endpoint = next(iter(service.body["NetworkingConfig"]["EndpointsConfig"].values()))
    assert endpoint["Aliases"] == ["localhost__db", "localhost-db", "db"], endpoint
    assert service.query["name"][0].endswith("-localhost__db-0"), service.query
    (wait,) = creates(fake, "wait")
    assert wait.body["Cmd"] == ["gitlab-runner-helper", "health-check"], wait.body
    assert "WAIT_FOR_SERVICE_5432_TCP_PORT=5432" in wait.body["Env"], wait.body["Env"]
    assert not fake.containers, "services removed at cleanup"


def test_stage_output_goes_to_stream_one_by_type_and_is_masked(
    tmp_path: Path, fake: FakeDocker
) -> None:
    """The build container's stdout and stderr frames land on stream 01 as O and E
    (docker.go startAndWatchContainer), masked (a masked variable, a default token
    prefix); a last line without newline is flushed when the stage ends; runner lines
    are on stream 00."""
    fake.frames["build"] = [
        (1, b"out line\n"),
        (2, b"err glrt-abc123\n"),
        (1, b"secret: hun"),
        (1, b"ter2\n"),
        (1, b"no newline"),
    ]
    job = payload(
        variables=[
            {"key": "GIT_STRATEGY", "value": "none", "public": True},
            {"key": "SECRET", "value": "hunter2", "masked": True},
        ]
    )
    log, _ = run_job(tmp_path, job, runner_config(tmp_path / "docker.sock"))
    assert log.timestamped, log.raw[:300]
    shown = [(line.stream, line.kind, line.text) for line in log.lines]
    start = shown.index((0, "O", 'Executing "step_script" stage of the job script'))
    stage = [entry for entry in shown[start:] if entry[0] == 1]
    assert stage[:4] == [
        (1, "O", "out line"),
        (1, "E", "err glrt-[MASKED]"),
        (1, "O", "secret: [MASKED]"),
        (1, "O", "no newline"),
    ], shown[start:]
    assert "hunter2" not in log.raw and "abc123" not in log.raw, "secrets reach the trace"
    assert shown[-1] == (0, "O", "Job succeeded"), shown[-3:]


def test_ff_timestamps_false_writes_no_headers(tmp_path: Path, fake: FakeDocker) -> None:
    """FF_TIMESTAMPS=false in the job's variables: the same job's trace has no headers
    (and still masks); with the default it has them."""
    runner = runner_config(tmp_path / "docker.sock")
    stamped, _ = run_job(tmp_path, payload(), runner)
    assert stamped.timestamped, "default: every line has a header"
    off = [
        {"key": "GIT_STRATEGY", "value": "none", "public": True},
        {"key": "FF_TIMESTAMPS", "value": "false", "public": True},
    ]
    plain, _ = run_job(tmp_path, payload(id=8, variables=off), runner)
    assert all(line.time is None for line in plain.lines), plain.raw[:300]
    assert plain.has_line("Job succeeded") and plain.has_line(
        "  feature flags: FF_TIMESTAMPS:false"
    )


def test_failed_service_health_check_block_goes_to_executor_stderr(
    tmp_path: Path, fake: FakeDocker
) -> None:
    """waitForServiceContainer: the "probably didn't start properly" block is written to
    a stream of its own, executor level (00) stderr (E)."""
    fake.images["localhost/db:1"] = "sha256:" + "d" * 64
    fake.exit_codes["wait"] = 1
    runner = runner_config(
        tmp_path / "docker.sock",
        environment=["FF_NETWORK_PER_BUILD=true"],
        wait_for_services_timeout=1,
    )
    job = payload(
        services=[{"name": "localhost/db:1", "alias": "db"}],
        variables=[
            {"key": "GIT_STRATEGY", "value": "none"},
            {"key": "HEALTHCHECK_TCP_PORT", "value": "5432", "public": True},
        ],
    )
    log, _ = run_job(tmp_path, job, runner)
    (warning,) = [line for line in log.lines if "probably didn't start properly" in line.text]
    assert (warning.stream, warning.kind) == (0, "E"), warning
    assert log.has_line("Job succeeded"), "a failed health check does not fail the job"


def test_final_error_line_is_masked_too(tmp_path: Path, fake: FakeDocker) -> None:
    """setTraceStatus writes through a masking logger as well (common/buildtest/
    masking.go "can mask error message"): a masked variable holding the error text
    leaves ``ERROR: [MASKED]``."""
    fake.exit_codes["build"] = 3
    job = payload(
        variables=[
            {"key": "GIT_STRATEGY", "value": "none", "public": True},
            {"key": "MASK_ERROR", "value": "Job failed: exit code 3", "masked": True},
        ],
        steps=[{"name": "script", "script": ["exit 3"]}],
    )
    log, gitlab = run_job(tmp_path, job, runner_config(tmp_path / "docker.sock"))
    final = [c for c in gitlab.calls if c[0] == "PUT"][-1][2]
    assert (final["state"], final["exit_code"]) == ("failed", 3), "the job did fail"
    assert log.lines[-1].text == "ERROR: [MASKED]", log.tail()
