"""The stand-in's pulls carry ``X-Registry-Auth`` as gitlab-runner v18.11.4's Go client
sends it (executors/docker/internal/pull/manager.go ``pullDockerImage``, auth.go
``EncodeConfig``, docker client v28.5.2 ``tryImageCreate``), checked against the
recording fake Docker API."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.standin.gitlab_runner import helper
from tests.standin.gitlab_runner.buildlog import BuildLogger
from tests.standin.gitlab_runner.dockerapi import DockerClient
from tests.standin.gitlab_runner.errors import BuildError
from tests.standin.gitlab_runner.images import ImageError, PullManager
from tests.standin.gitlab_runner.registryauth import Resolver
from tests.standin.gitlab_runner.trace import JobTrace
from tests.unit.standin_fakedocker import Call, FakeDocker, serving
from tests.unit.test_standin_executor import StubGitLab, payload, run_job, runner_config

REGISTRY = "reg.test:5000"
IMAGE = f"{REGISTRY}/team/app:1"
HELPER = f"{helper.REGISTRY_NAME}:{helper.tag('x86_64')}"


def docker_auth_config(registry: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"auth": auth}}})


def header_for(line: bytes) -> str:
    """The header value for one JSON line (base64url with padding, as Go encodes)."""
    return base64.urlsafe_b64encode(line).decode()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[FakeDocker]:
    """A fake engine whose pulls succeed; the helper image is present."""
    fake = FakeDocker(images={HELPER: "sha256:" + "c" * 64}, pull_fails=False)
    with serving(tmp_path / "docker.sock", fake):
        yield fake


def manager(tmp_path: Path, resolver: Resolver) -> tuple[PullManager, JobTrace]:
    """A pull manager on the fake engine (policy always) and the trace it writes."""
    trace = JobTrace(StubGitLab(), "http://127.0.0.1:1/", 7, "job-token")
    client = DockerClient(f"unix://{tmp_path / 'docker.sock'}")
    return PullManager(client, BuildLogger(trace), ["always"], resolver), trace


def pulls(fake: FakeDocker, image: str | None = None) -> list[Call]:
    """``POST /images/create`` calls (for ``fromImage`` ``image`` if given)."""
    return [
        c
        for c in fake.calls
        if c.path == "/images/create" and (image is None or c.query.get("fromImage") == [image])
    ]


def test_matching_credentials_are_sent_as_upstreams_bytes(
    tmp_path: Path, engine: FakeDocker
) -> None:
    """The header is base64url of ``json.Encoder``'s line: omitempty fields in struct
    order, HTML characters escaped, a trailing newline."""
    resolver = Resolver(docker_auth_config(REGISTRY, "ci", "p<w>&d"), [], home=lambda: "")
    pull, _ = manager(tmp_path, resolver)
    pull.get_image(IMAGE)
    (call,) = pulls(engine)
    expected = header_for(
        b'{"username":"ci","password":"p\\u003cw\\u003e\\u0026d","serveraddress":"reg.test:5000"}\n'
    )
    assert call.header("X-Registry-Auth") == [expected], call.headers
    assert call.query == {"fromImage": [f"{REGISTRY}/team/app"], "tag": ["1"]}


def test_payload_credentials_are_sent_with_their_url(tmp_path: Path, engine: FakeDocker) -> None:
    """GitLab's registry credentials (the job token) go out with the entry's ``url``."""
    credentials = [{"type": "registry", "url": REGISTRY, "username": "gitlab-ci-token",
                    "password": "glcbt-xyz"}]  # fmt: skip
    pull, trace = manager(tmp_path, Resolver("", credentials, home=lambda: ""))
    pull.get_image(IMAGE)
    expected = header_for(
        b'{"username":"gitlab-ci-token","password":"glcbt-xyz","serveraddress":"reg.test:5000"}\n'
    )
    assert pulls(engine)[0].header("X-Registry-Auth") == [expected]
    text = trace.buffer.read(0, 1 << 20).decode()
    assert "Authenticating with credentials from job payload (GitLab Registry)" in text, text


def test_without_matching_credentials_the_header_is_sent_empty(
    tmp_path: Path, engine: FakeDocker
) -> None:
    """No entry for the image's registry: ``RegistryAuth`` is "" and the v28 client still
    sets the header (an empty value); no "Authenticating" line. Positive control: the
    registry the credentials are for gets them in the same run."""
    resolver = Resolver(docker_auth_config("other.test", "u", "p"), [], home=lambda: "")
    pull, trace = manager(tmp_path, resolver)
    pull.get_image(IMAGE)
    pull.get_image("other.test/app:2")
    assert pulls(engine, f"{REGISTRY}/team/app")[0].header("X-Registry-Auth") == [""]
    control = pulls(engine, "other.test/app")[0].header("X-Registry-Auth")
    assert control is not None and control != [""], "the control pull carried no credentials"
    text = trace.buffer.read(0, 1 << 20).decode()
    assert text.count("Authenticating with credentials from $DOCKER_AUTH_CONFIG") == 1, text


@pytest.mark.parametrize(
    ("image", "query"),
    [
        ("alpine", {"fromImage": ["docker.io/library/alpine"], "tag": ["latest"]}),
        ("index.docker.io/x:2", {"fromImage": ["docker.io/library/x"], "tag": ["2"]}),
        ("reg.test:5000/app", {"fromImage": ["reg.test:5000/app"], "tag": ["latest"]}),
        ("reg.test/app:1@sha256:" + "a" * 64,
         {"fromImage": ["reg.test/app"], "tag": ["sha256:" + "a" * 64]}),
    ],
)  # fmt: skip
def test_pull_query_is_the_normalized_reference(
    tmp_path: Path, engine: FakeDocker, image: str, query: dict[str, list[str]]
) -> None:
    """``ImagePull``: ``fromImage`` is ``ParseNormalizedNamed(ref).Name()``, ``tag`` the
    digest, else the tag, else ``latest``."""
    engine.pull_fails = True
    pull, _ = manager(tmp_path, Resolver("", [], home=lambda: ""))
    with pytest.raises(BuildError, match="connection refused"):
        pull.get_image(image)
    assert pulls(engine)[0].query == query


def test_path_traversal_fails_the_pull_without_a_build_error(
    tmp_path: Path, engine: FakeDocker
) -> None:
    """auth.go returns errPathTraversal, which is no BuildError: the preparation is
    retried upstream (common/build.go retryCreateExecutor); nothing is pulled."""
    pull, _ = manager(tmp_path, Resolver('{"credsStore": "x/y"}', [], home=lambda: ""))
    with pytest.raises(ImageError, match="path traversal is not allowed$"):
        pull.get_image(IMAGE)
    assert not pulls(engine)


def job_with(variables: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A payload whose job image and one service are on the test registry."""
    job = payload(image={"name": IMAGE}, services=[{"name": f"{REGISTRY}/db:1", "alias": "db"}])
    job["variables"] = [*job["variables"], *variables]
    job.update(overrides)
    return job


def test_job_image_service_and_helper_pulls_all_use_the_credentials(
    tmp_path: Path, engine: FakeDocker
) -> None:
    """A masked DOCKER_AUTH_CONFIG job variable: every pull through the pull manager (the
    configured helper image, the service, the job image) carries it; the trace names the
    source and never the value."""
    value = docker_auth_config(REGISTRY, "ci", "s3cret-pw")
    variable = {"key": "DOCKER_AUTH_CONFIG", "value": value, "public": False, "masked": True}
    runner = runner_config(tmp_path / "docker.sock", pull_policy="always",
                           helper_image=f"{REGISTRY}/helper:x",
                           environment=["FF_NETWORK_PER_BUILD=true"])  # fmt: skip
    port = {"key": "HEALTHCHECK_TCP_PORT", "value": "5432", "public": True}
    log, _ = run_job(tmp_path, job_with([variable, port]), runner)
    text = log.text
    names = [f"{REGISTRY}/helper", f"{REGISTRY}/db", f"{REGISTRY}/team/app"]
    sent = {name: [c.header("X-Registry-Auth") for c in pulls(engine, name)] for name in names}
    expected = header_for(
        b'{"username":"ci","password":"s3cret-pw","serveraddress":"reg.test:5000"}\n'
    )
    assert sent == {name: [[expected]] for name in names}, sent
    assert text.count("Authenticating with credentials from $DOCKER_AUTH_CONFIG") == 3, text
    assert "s3cret" not in text and "Job succeeded" in text, text[-500:]


def test_runner_environment_setting_applies_unless_the_job_sets_its_own(
    tmp_path: Path, engine: FakeDocker
) -> None:
    """DOCKER_AUTH_CONFIG in ``[[runners]] environment`` is used; a job variable of the
    same name replaces it (the later definition wins)."""
    runner_value = docker_auth_config(REGISTRY, "from-runner", "pw")
    runner = runner_config(tmp_path / "docker.sock", pull_policy="always",
                           environment=[f"DOCKER_AUTH_CONFIG={runner_value}"])  # fmt: skip
    run_job(tmp_path, job_with([], services=[]), runner)
    job_value = docker_auth_config(REGISTRY, "from-job", "pw")
    variable = {"key": "DOCKER_AUTH_CONFIG", "value": job_value, "public": False}
    run_job(tmp_path, job_with([variable], services=[], id=8), runner)
    users = [
        json.loads(base64.urlsafe_b64decode(c.header("X-Registry-Auth")[0]))["username"]  # type: ignore[index]
        for c in pulls(engine, f"{REGISTRY}/team/app")
    ]
    assert users == ["from-runner", "from-job"], users
