"""Jobs whose image is on a password-protected registry: the runner's credentials reach
the nested podman's pull, and without them the pull fails with the registry's refusal.

One registry per session (:mod:`tests.harness.authregistry`: Debian's docker-registry
with htpasswd auth in its own test network namespace, served as part of the company
network, :mod:`tests.harness.companynet`). The base image is pushed there
under one name per job, so no job can fall back to an image another job pulled (the
session's ``pull_policy`` is ``["always", "if-not-present"]``). The registry speaks
TLS with a throw-away CA; the nested podman trusts it through a ``certs.d/HOST:PORT/
ca.crt`` in the podman user's configuration (a tmpfs written at boot), which c/image
reads at every connection: no restart or reload of the API service. The three jobs run
side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipglr import layout
from pipglr.build.imagebuild import BuildResult
from tests.fakegitlab.ctl import Client
from tests.harness import companynet
from tests.harness.authregistry import AuthRegistry
from tests.harness.joblog import JobLog
from tests.image.conftest import Pipglr, queue

pytestmark = [pytest.mark.image]

#: One repository per job (see the module docstring).
REPOSITORIES = {
    "variable": "regauth/variable",
    "payload": "regauth/payload",
    "none": "regauth/none",
}
TAG = "1"
MARKER = "regauth-image-ran"
#: containers-certs.d(5) of the podman user (what the API service runs as).
CERTS_D = layout.PODMAN_CONFIG_DIR / "certs.d"


@pytest.fixture(scope="session")
def auth_registry(
    built_image: BuildResult, company_net: companynet.CompanyNet
) -> Iterator[AuthRegistry]:
    """The company network's login registry, holding the base image under every job's
    repository."""
    for repository in REPOSITORIES.values():
        company_net.push(built_image.settings.base_image, repository, TAG)
    yield company_net.registry


#: One anonymous ``POST /images/create`` on the inner API socket, as user runner: its
#: status and body (the docker CLI would prompt for a login after a 401).
PROBE = """import http.client, socket, sys
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sys.argv[1])
api = Unix("docker", timeout=60)
api.request("POST", "/images/create?fromImage=" + sys.argv[2] + "&tag=absent")
answer = api.getresponse()
print(answer.status, answer.read().decode())
"""


def refusal(pipglr: Pipglr, host: str) -> str:
    """What the inner API answers to a pull without credentials from ``host``."""
    probe = pipglr.outer.exec(
        pipglr.name, str(layout.PYTHON), "-c", PROBE, str(layout.SOCKET_PATH),
        f"{host}/regauth/probe", user=layout.RUNNER.name, check=False, input="",
    )  # fmt: skip
    return probe.stdout + probe.stderr


@pytest.fixture(scope="module")
def trusted(pipglr: Pipglr, auth_registry: AuthRegistry) -> Iterator[AuthRegistry]:
    """The nested podman trusts the registry's CA until the module ends (checked: an
    anonymous pull through the API is refused by the registry, not by TLS); the images
    the jobs pulled are removed afterwards."""
    certs = CERTS_D / auth_registry.host
    pipglr.outer.exec(pipglr.name, "sh", "-c", 'mkdir -p "$1" && cat > "$1/ca.crt"', "sh",
                      str(certs), user=layout.PODMAN.name,
                      input=auth_registry.ca_certificate)  # fmt: skip
    try:
        answer = refusal(pipglr, auth_registry.host)
        assert answer.startswith("401 ") and "authentication required" in answer, answer
        yield auth_registry
    finally:
        pipglr.outer.exec(pipglr.name, "rm", "-rf", str(certs), user=layout.PODMAN.name)
        images = [f"{auth_registry.host}/{r}:{TAG}" for r in REPOSITORIES.values()]
        pipglr.podman("rmi", "--ignore", *images, check=False)


@pytest.fixture(scope="module")
def jobs(fake_gitlab: Client, pipglr: Pipglr, trusted: AuthRegistry) -> dict[str, Any]:
    """Three jobs side by side, each on its own repository: credentials in
    DOCKER_AUTH_CONFIG, credentials in the payload, none. Their final records by name."""
    image = {name: f"{trusted.host}/{repo}:{TAG}" for name, repo in REPOSITORIES.items()}
    script = [f"echo {MARKER}"]
    variable = {"value": trusted.docker_auth_config(), "public": False}
    ids = {
        "variable": queue(fake_gitlab, pipglr, image=image["variable"], script=script,
                          variables={"DOCKER_AUTH_CONFIG": variable}),
        "payload": queue(fake_gitlab, pipglr, image=image["payload"], script=script,
                         credentials=[{"type": "registry", "url": trusted.host,
                                       "username": trusted.username,
                                       "password": trusted.password}]),
        "none": queue(fake_gitlab, pipglr, image=image["none"], script=script),
    }  # fmt: skip
    return {name: fake_gitlab.wait(job_id, timeout=300) for name, job_id in ids.items()}


def test_docker_auth_config_credentials_pull_the_job_image(
    jobs: dict[str, Any], trusted: AuthRegistry
) -> None:
    """DOCKER_AUTH_CONFIG holds the password: the pull authenticates and the script runs."""
    record = jobs["variable"]
    log = JobLog.of(record)
    assert record["state"] == "success", log.tail()
    assert log.has_line("Authenticating with credentials from $DOCKER_AUTH_CONFIG"), log.tail()
    assert log.has_line(MARKER), log.tail()
    assert not log.contains("Failed to pull image"), "the first pull should have worked"
    assert trusted.password not in log.raw, "the password is in the trace"


def test_payload_credentials_pull_the_job_image(jobs: dict[str, Any]) -> None:
    """GitLab's ``credentials`` entry for the registry: same, with the payload as source."""
    record = jobs["payload"]
    log = JobLog.of(record)
    assert record["state"] == "success", log.tail()
    source = "Authenticating with credentials from job payload (GitLab Registry)"
    assert log.has_line(source), log.tail()
    assert log.has_line(MARKER) and not log.contains("Failed to pull image"), log.tail()


def test_without_credentials_the_pull_fails_with_the_registrys_refusal(
    jobs: dict[str, Any],
) -> None:
    """No credentials: both pull attempts are refused (authentication required), the job
    fails before its script. Positive control: the credentialed job of the same run."""
    control = jobs["variable"]
    assert control["state"] == "success", JobLog.of(control).tail()
    record = jobs["none"]
    log = JobLog.of(record)
    assert record["state"] == "failed", log.tail()
    refused = r'Failed to pull image with policy "{}": .*authentication required'
    for policy in ("always", "if-not-present"):
        assert log.search(refused.format(policy)), log.tail()
    assert not log.contains("Authenticating with credentials"), log.tail()
    assert not log.has_line(MARKER), "the script ran without its image"
