"""Fixtures for the engine tests: build the image, run pipglr like a user does.

For each outer mode (rootful, rootless) one session-scoped pipglr container is set up
through the runlabels from a clean temporary directory: REGISTRATION_TOKEN secret,
``register``, the config.toml secret, ``setupstorage``, ``setupcache``, ``run`` (with
an egress allow-list, as an operator passes it).
Tests that break a container start their own (marker ``destructive``).

The image is built once per session with ``GITLAB_URL`` pointing at the fake GitLab
(``tests/fakegitlab``, served in a test network namespace by :mod:`tests.harness.gitlab`),
the gitlab-runner stand-in from ``tests/standin`` unless ``PIPGLR_RUNNER_BINARY``
points at a real binary (then the same tests run against it), and the stand-in
helper image baked in as the prebuilt helper archive, where any gitlab-runner
imports it from (the catalog: :mod:`tests.harness.images`). A missing engine skips,
except with ``PIPGLR_REQUIRE_ENGINE=1`` (CI), where it fails.

``scripts/invoke test`` runs this suite as three concurrent sets (rootful, rootless,
mode-independent: :mod:`tests.harness.sets`), which build the images and serve the
fake GitLab and the LAN test hosts once for all; a plain ``pytest tests/image`` does
all of it itself and runs every test in one process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testinfra.host import Host

from pipglr import layout
from pipglr.build import imagebuild, labels
from pipglr.guest import netguard
from pipglr.ops import metricsport
from pipglr.ops.lifecycle import resource_args, with_extra
from pipglr.ops.operate import Operator
from pipglr.ops.outer import DOCKER_CLI, Outer
from pipglr.settings import BuildSettings
from tests.fakegitlab.ctl import Client
from tests.harness import (
    authregistry,
    bridgepin,
    companynet,
    gitlab,
    images,
    lan,
    prometheus,
    registry,
    sets,
)
from tests.harness.joblog import JobLog, describe
from tests.harness.netns import TestHost
from tests.image import infra
from tests.image.infra import unavailable

REPO = Path(__file__).resolve().parents[2]
TEST_IMAGE = images.TEST_IMAGE
LOG_DIR = REPO / "build" / "test-logs"
#: A legacy registration token: the register label must handle both kinds.
TEST_TOKEN = gitlab.REGISTRATION_TOKEN
#: The environment the session's container runs with (``pipglr up --env``): the
#: egress allow-list naming one of the LAN test hosts (tests/harness/lan.py) and the
#: password-protected registry's test host (tests/harness/authregistry.py).
SESSION_ENV = (f"{netguard.ALLOW_ENV}={lan.ALLOW_LIST},{authregistry.ALLOW}",)
#: What the session's config.toml sets after registration, as an operator would.
CONCURRENT = 4
CHECK_INTERVAL = 1
#: How long the executor waits for a service to listen (default 30 s): the job tests'
#: services answer within seconds, and the control that never listens need not hold
#: its job for half a minute.
WAIT_FOR_SERVICES_TIMEOUT = 12

OUTER_MODES = [
    pytest.param("rootful", id="rootful"),
    pytest.param("rootless", id="rootless", marks=pytest.mark.rootless),
]


@pytest.fixture(scope="session")
def fake_gitlab() -> Iterator[Client]:
    """The fake GitLab every runner of the session registers with and polls (served by
    the coordinator when the suite runs as sets, :mod:`tests.harness.sets`); root
    podman's bridge is kept at one MAC meanwhile (:mod:`tests.harness.bridgepin`)."""
    if os.geteuid() != 0:
        unavailable("the fake GitLab's test network namespace needs root")
    if sets.shared():
        client = Client(gitlab.URL.rstrip("/"))
        client.jobs()  # the coordinator's fake GitLab answers
        yield client
        return
    with bridgepin.pinned(), gitlab.serving(LOG_DIR / "fake-gitlab.log") as client:
        yield client


@pytest.fixture(scope="session")
def built_image(fake_gitlab: Client) -> imagebuild.BuildResult:
    """The image under test, built once per session (layers are cached)."""
    return session_image(TEST_IMAGE)


def session_image(tag: str) -> imagebuild.BuildResult:
    """An image of the catalog (:mod:`tests.harness.images`): as the coordinator built
    it, or built now."""
    try:
        if sets.shared():
            return images.prebuilt(tag)
        return images.build_test_image(images.CATALOG[tag], tag)
    except images.Unavailable as exc:
        unavailable(str(exc))
        raise


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only the tests of this process's set (``PIPGLR_OUTER_SET``), if any."""
    wanted = sets.wanted_set()
    if wanted is None:
        return
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        (keep if sets.set_of(params.params if params else {}) == wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", params=OUTER_MODES)
def outer(request: pytest.FixtureRequest, built_image: imagebuild.BuildResult) -> Outer:
    """The outer podman of one mode, holding the image under test."""
    engine = Outer.for_mode(request.param)
    reason = engine.available()
    if reason:
        unavailable(reason)
    ensure_image(engine, built_image)
    return engine


def ensure_image(engine: Outer, built: imagebuild.BuildResult) -> None:
    """Copy a root-built image into the rootless user's storage when it differs."""
    engine.copy_image_from_root(built.tag)


@dataclass
class Pipglr:
    """A running pipglr container and what it was set up with."""

    outer: Outer
    image: str
    workdir: Path
    name: str
    settings: BuildSettings
    #: ``127.0.0.1:PORT`` where the metrics port is published (``pipglr up --metrics``).
    metrics_address: str | None = None

    def docker(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI as user runner against the inner API (as the executor does)."""
        return self.outer.exec(
            self.name,
            DOCKER_CLI,
            "-H",
            layout.DOCKER_HOST,
            *args,
            user=layout.RUNNER.name,
            check=check,
            input=input,
        )

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The nested podman's CLI as user podman (what the API service runs as)."""
        return self.outer.exec(
            self.name, "env", f"XDG_RUNTIME_DIR={layout.PODMAN_RUNTIME_DIR}", "podman", *args,
            user=layout.PODMAN.name, check=check,
        )  # fmt: skip

    def host(self, user: str | None = None) -> Host:
        """A testinfra host inside this container."""
        return infra.host(self.outer, self.name, user)

    def runner_tokens(self) -> list[str]:
        """The authentication tokens of the runners this container runs."""
        return [r["token"] for r in tomllib.loads(self.config_text)["runners"]]

    @property
    def config_text(self) -> str:
        """The configuration the runner uses (its working copy)."""
        return self.outer.exec(
            self.name, "cat", str(layout.RUNNER_STATE_CONFIG), user=layout.RUNNER.name
        ).stdout

    def journal(self, unit: str) -> str:
        """The journal of one unit in this boot."""
        return self.outer.exec(
            self.name, "journalctl", "-b", "--no-pager", "-o", "cat", "-u", unit
        ).stdout


def clean_slate(engine: Outer, container: str = layout.CONTAINER_NAME) -> None:
    """Remove what a previous run may have left: container, secrets, volumes."""
    engine.run("rm", "--force", "--ignore", container, check=False)
    secrets = (layout.TOKEN_SECRET, layout.CONFIG_SECRET, *labels.OPTIONAL_SECRETS)
    for secret in secrets:
        engine.run("secret", "rm", secret, check=False)
    for volume in (layout.STORAGE_VOLUME, layout.CACHE_VOLUME, layout.RUNNER_VOLUME):
        engine.run("volume", "rm", "--force", volume, check=False)


def make_workdir(prefix: str) -> Path:
    """An empty directory both root and the rootless test user can write."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o777)
    return path


def dump_logs(engine: Outer, container: str) -> Path:
    """Save ``podman logs`` and the journal of a container under build/test-logs."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    target = LOG_DIR / f"{engine.mode}-{container}.log"
    logs = engine.run("logs", container, check=False)
    journal = engine.exec(container, "journalctl", "-b", "--no-pager", check=False)
    target.write_text(f"== podman logs\n{logs.stdout}{logs.stderr}\n== journal\n{journal.stdout}\n")
    return target


@pytest.fixture(scope="session")
def pipglr(outer: Outer, built_image: imagebuild.BuildResult) -> Iterator[Pipglr]:
    """pipglr set up through its runlabels, running, with a job image loaded."""
    clean_slate(outer)
    workdir = make_workdir(f"pipglr-{outer.mode}-")
    outer.run("secret", "create", layout.TOKEN_SECRET, "-", input=TEST_TOKEN)
    outer.touch(workdir / "config.toml")
    outer.run("container", "runlabel", "register", TEST_IMAGE, cwd=workdir)
    tune_config(outer, workdir / "config.toml")
    outer.run("secret", "create", layout.CONFIG_SECRET, str(workdir / "config.toml"))
    for label in ("setupstorage", "setupcache"):
        outer.run("container", "runlabel", label, TEST_IMAGE, cwd=workdir)
    # The run label as stored in the image, plus the allow-list an operator would pass
    # (`pipglr up --env`): one of the LAN test hosts (tests/harness/lan.py) is allowed.
    # And the metrics port published on loopback, as `pipglr up --metrics` does (the
    # monitoring tests' Prometheus scrapes it).
    run = Operator(outer, TEST_IMAGE).label_args("run")
    metrics = metricsport.parse(str(prometheus.free_port()))
    extra = resource_args(env=session_env(outer), metrics=metrics)
    outer.run(*with_extra(run, TEST_IMAGE, extra))
    handle = Pipglr(outer, TEST_IMAGE, workdir, layout.CONTAINER_NAME, built_image.settings,
                    str(metrics))  # fmt: skip
    try:
        wait_ready(outer, handle.name)
        load_job_image(outer, handle.name, TEST_IMAGE)
        yield handle
    finally:
        print(f"\npipglr logs ({outer.mode}): {dump_logs(outer, handle.name)}")
        clean_slate(outer)
        shutil.rmtree(workdir, ignore_errors=True)


def session_env(outer: Outer) -> tuple[str, ...]:
    """The session container's ``--env``: the allow-list, and root's consent to the
    host's ids in rootful mode (the image refuses to start without it)."""
    return (*SESSION_ENV, layout.HOST_IDS_CONSENT) if outer.mode == "rootful" else SESSION_ENV


def tune_config(outer: Outer, path: Path) -> None:
    """Set ``concurrent``, ``check_interval`` and the service wait as an operator edits
    config.toml."""
    text = (
        outer.run("unshare", "cat", str(path)).stdout
        if outer.mode == "rootless"
        else (path.read_text())
    )
    lines = [
        f"concurrent = {CONCURRENT}" if line.startswith("concurrent =") else
        f"check_interval = {CHECK_INTERVAL}" if line.startswith("check_interval =") else
        f"{line}\n    wait_for_services_timeout = {WAIT_FOR_SERVICES_TIMEOUT}"
        if line.strip() == "[runners.docker]" else line
        for line in text.splitlines()
    ]  # fmt: skip
    outer.write_file(path, "\n".join(lines) + "\n")


def wait_ready(outer: Outer, name: str) -> None:
    """Wait for the runner unit and the API socket, and add the test's docker CLI."""
    outer.wait_for(name, ["systemctl", "is-active", layout.RUNNER_SERVICE_UNIT])
    # The docker CLI stands in for the docker executor's API calls (test only).
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("the docker CLI is needed as the test's Docker-API client", pytrace=False)
    outer.install_docker_cli(name, docker)
    outer.wait_for(name, [DOCKER_CLI, "-H", layout.DOCKER_HOST, "version"], user=layout.RUNNER.name)


def load_job_image(outer: Outer, name: str, image: str) -> None:
    """Load ``image`` into the nested storage (jobs use it; it has podman for builds)."""
    outer.load_nested_image(name, image)


@pytest.fixture(scope="session")
def podman_job_image(pipglr: Pipglr, built_image: imagebuild.BuildResult) -> str:
    """``examples/podman-job`` (as the coordinator built it, or built now on the base
    of the image under test), loaded into the session container's nested storage."""
    if not sets.shared():
        images.build_job_image(built_image.settings.base_image)
    pipglr.outer.load_nested_image(pipglr.name, images.JOB_IMAGE, from_root=True)
    return images.JOB_IMAGE


@pytest.fixture(scope="module")
def lan_hosts() -> Iterator[dict[str, TestHost]]:
    """The LAN test hosts, each answering the test process (the first control); served
    by the coordinator when the suite runs as sets."""
    if sets.shared():
        yield lan.attach()
        return
    with lan.serving() as hosts:
        yield hosts


@pytest.fixture(scope="session")
def company_net() -> Iterator[companynet.CompanyNet]:
    """The company network's test host (:mod:`tests.harness.companynet`: the login
    registry, the mirror, the proxies, the control port), served by the coordinator when
    the suite runs as sets (its namespace is one per machine), else here."""
    if not registry.available():
        unavailable(registry.MISSING)
    if shutil.which("openssl") is None:
        unavailable("openssl is not installed (apt-get install openssl)")
    if sets.shared():
        yield companynet.attach()
        return
    with (
        tempfile.TemporaryDirectory(prefix="pipglr-companynet-", dir="/var/tmp") as tmp,
        companynet.serving(Path(tmp)) as served,
    ):
        yield served


#: The privileged variant's container (:func:`privileged_pipglr`).
PRIVILEGED_NAME = "pipglr-privileged"


@pytest.fixture(scope="module")
def privileged_pipglr(pipglr: Pipglr) -> Iterator[Pipglr]:
    """The privileged variant (dev build, ``NESTED_PRIVILEGED=true``: its run label
    starts the outer container ``--privileged``) beside the session's container, with
    the session's config.toml for a runner of its own whose jobs are privileged, the
    session's egress allow-list, and its own image loaded as the job image. The
    positive control of everything a default (unprivileged) job is refused."""
    built = session_image(images.VARIANT_IMAGE)
    ensure_image(pipglr.outer, built)
    # A token of its own: no other second container of the set takes its jobs.
    token = gitlab.token("variant", pipglr.outer.mode)
    config = pipglr.config_text.replace(pipglr.runner_tokens()[0], token)
    config = config.replace("privileged = false", "privileged = true")
    assert "privileged = true" in config, config
    with second_pipglr(pipglr, PRIVILEGED_NAME, image=images.VARIANT_IMAGE,
                       settings=built.settings, env=SESSION_ENV) as second:  # fmt: skip
        handle = second.start(config)
        load_job_image(pipglr.outer, PRIVILEGED_NAME, images.VARIANT_IMAGE)
        yield handle


def queue(gitlab: Client, pipglr: Pipglr, **spec: Any) -> int:
    """Queue a job for this container's runner (image: the test image)."""
    spec.setdefault("image", pipglr.image)
    spec.setdefault("variables", {})
    spec["runner"] = pipglr.runner_tokens()[0]
    return gitlab.add_job(spec)


def trace_until(gitlab: Client, job_id: int, marker: str, timeout: float = 180) -> JobLog:
    """A running job's log once one of its output lines is ``marker`` (an ``echo
    marker``'s output, not the echoed ``$ echo marker`` command line)."""
    deadline = time.monotonic() + timeout
    while True:
        job = gitlab.job(job_id)
        log = JobLog.of(job)
        if log.has_line(marker):
            return log
        assert job["state"] in ("pending", "running"), describe(job)
        assert time.monotonic() < deadline, f"no {marker!r} line: {describe(job)}"
        time.sleep(0.5)


class SecondPipglr:
    """A pipglr container beside the session's, from its run label
    (:func:`pipglr.build.labels.second_instance`): container ``NAME``, volumes
    ``NAME-pipglr-*``, and its own config secret ``NAME-config`` once one is written.
    Made by :func:`second_pipglr`, which removes all of it afterwards."""

    def __init__(
        self,
        session: Pipglr,
        name: str,
        image: str,
        settings: BuildSettings,
        allow_host_ids: bool,
        storage: Path | None = None,
        env: tuple[str, ...] = (),
        extra: tuple[str, ...] = (),
    ) -> None:
        self.outer, self.workdir = session.outer, session.workdir
        #: ``--env`` values its run command gets (as ``pipglr up --env``).
        self.env = env
        #: Further ``podman run`` options (e.g. the optional secrets ``pipglr up`` mounts).
        self.extra = extra
        self.name, self.image, self.settings = name, image, settings
        self.allow_host_ids = allow_host_ids
        #: A directory bound as the nested storage instead of the storage volume.
        self.storage = storage
        self.secret = f"{name}-config"
        self.has_secret = False
        volumes = (layout.STORAGE_VOLUME, layout.CACHE_VOLUME, layout.RUNNER_VOLUME)
        self.volumes = [f"{name}-{volume}" for volume in volumes]

    def write_config(self, config: str) -> None:
        """(Re)write the config secret; later starts mount it as config.toml."""
        self.outer.run("secret", "rm", self.secret, check=False)
        self.outer.run("secret", "create", self.secret, "-", input=config)
        self.has_secret = True

    def start(self, config: str | None = None, ready: bool = True) -> Pipglr:
        """(Re-)create the container (volumes and secret stay); with ``config``, first
        write the config secret; without any secret none is mounted. ``ready``: wait
        for the runner unit and the API socket (:func:`wait_ready`)."""
        self.outer.run("rm", "--force", "--ignore", self.name)
        if config is not None:
            self.write_config(config)
        args = labels.second_instance(
            self.settings, self.image, self.name,
            self.secret if self.has_secret else None, self.allow_host_ids,
        )[1:]  # fmt: skip
        at = args.index(self.image)
        args[at:at] = [*(arg for value in self.env for arg in ("--env", value)), *self.extra]
        if self.storage is not None:
            volume = f"{self.name}-{layout.STORAGE_VOLUME}:"
            args = [f"{self.storage}:{a[len(volume):]}" if a.startswith(volume) else a
                    for a in args]  # fmt: skip
        self.outer.run(*args)
        handle = Pipglr(self.outer, self.image, self.workdir, self.name, self.settings)
        if ready:
            wait_ready(self.outer, self.name)
        return handle

    def wait(self, timeout: float = 180) -> int:
        """The container's exit status, once it has stopped."""
        return int(self.outer.run("wait", self.name, timeout=timeout).stdout.strip())

    def logs(self) -> str:
        """``podman logs`` (both streams)."""
        result = self.outer.run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        """Save its logs (:func:`dump_logs`), then remove container, volumes, secret."""
        dump_logs(self.outer, self.name)
        self.outer.run("rm", "--force", "--ignore", self.name, check=False)
        for volume in self.volumes:
            self.outer.run("volume", "rm", "--force", volume, check=False)
        self.outer.run("secret", "rm", self.secret, check=False)


@contextmanager
def second_pipglr(
    pipglr: Pipglr,
    name: str,
    image: str | None = None,
    settings: BuildSettings | None = None,
    allow_host_ids: bool | None = None,
    storage: Path | None = None,
    env: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> Iterator[SecondPipglr]:
    """A :class:`SecondPipglr` named ``name`` beside the session's container (its image
    and settings unless given; root's consent to the host's ids in rootful mode unless
    ``allow_host_ids`` says otherwise). Leftovers of an earlier run are removed first;
    logs are saved and everything removed afterwards."""
    outer = pipglr.outer
    second = SecondPipglr(
        pipglr, name, image or pipglr.image, settings or pipglr.settings,
        outer.mode == "rootful" if allow_host_ids is None else allow_host_ids, storage, env,
        extra,
    )  # fmt: skip
    outer.run("rm", "--force", "--ignore", name, check=False)
    for volume in second.volumes:
        outer.run("volume", "rm", "--force", volume, check=False)
    outer.run("secret", "rm", second.secret, check=False)
    try:
        yield second
    finally:
        second.remove()
