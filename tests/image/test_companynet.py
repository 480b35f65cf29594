"""Company networks: a private CA, a docker.io mirror, a forward proxy and a registry
login, set with the `pipglr` command and taken by a restarted container.

The company is a test host in its own network namespace (:mod:`tests.harness.companynet`):
Debian's docker-registry twice over one storage, with TLS from a CA the test made — on
:5000 with a password (the login registry), on :5001 without (the docker.io mirror) —,
a forward proxy on :3128 that logs every request, and a listener on :5002 that answers
but is configured nowhere. The session's container (same image, no network secrets)
is the "before"; a second container, started like `pipglr up` starts one once the
secrets exist, is the "after". Its egress guard has no allow-list: what it opens, it
opens for the settings.
"""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipglr import layout
from pipglr.build import labels
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab, images, sets
from tests.harness.companynet import CompanyNet
from tests.harness.joblog import JobLog
from tests.image.conftest import LOG_DIR, Pipglr, queue, second_pipglr
from tests.unit.certmaker import make_cert

pytestmark = [pytest.mark.image]

NAME = "pipglr-corpnet"
#: The curl job image on the company registry: under the name the mirror serves for
#: docker.io, and behind the login; tagged per outer mode (the sets run side by side).
MIRRORED_REPOSITORY = "library/pipglr-curl"
LOGIN_REPOSITORY = "corpnet/login"


@dataclass(frozen=True)
class Company:
    """The company network as one outer mode sees it."""

    net: CompanyNet
    mode: str

    @property
    def mirrored_image(self) -> str:
        """How a job names the mirrored image."""
        return f"docker.io/{MIRRORED_REPOSITORY}:{self.mode}"

    @property
    def login_image(self) -> str:
        return f"{self.net.registry_host}/{LOGIN_REPOSITORY}:{self.mode}"

    @property
    def proxy_url(self) -> str:
        return self.net.proxies[self.mode].url

    def proxy_lines(self) -> list[str]:
        return self.net.proxy_requests(self.mode)


def record(company: Company, title: str, lines: list[str]) -> None:
    """Add what a test saw to ``build/test-logs/companynet-MODE.txt`` (for the reader)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / f"companynet-{company.mode}.txt").open("a") as out:
        out.write(f"== {title}\n" + "".join(f"{line}\n" for line in lines))


def pipglr_cli(
    pipglr: Pipglr, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`pipglr ARGS` as the outer mode's user (never raises: the tests read the result)."""
    argv = [sys.executable, "-m", "pipglr.ops.cli", "--image", pipglr.image,
            "--podman", shlex.join(pipglr.outer.podman), *args]  # fmt: skip
    return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=300)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{shlex.join(result.args[6:])}: {result.stderr}"
    return result.stdout


def secret_ids(pipglr: Pipglr) -> dict[str, str]:
    """Name → id of the optional secrets that exist (an id changes with the content)."""
    listed = pipglr.outer.run("secret", "ls", "--format", "{{.Name}} {{.ID}}").stdout
    pairs = (line.split() for line in listed.splitlines() if line.strip())
    return {name: ident for name, ident in pairs if name in labels.OPTIONAL_SECRETS}


def remove_secrets(pipglr: Pipglr) -> None:
    for name in labels.OPTIONAL_SECRETS:
        pipglr.outer.run("secret", "rm", name, check=False)


def expired_ca() -> str:
    """A self-signed CA certificate that expired yesterday (PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    return make_cert("pipglr expired test CA", now - datetime.timedelta(days=30),
                     now - datetime.timedelta(days=1))  # fmt: skip


@pytest.fixture(scope="module")
def company(pipglr: Pipglr, company_net: CompanyNet) -> Company:
    """The company network, with the curl job image pushed under this mode's tag."""
    if not sets.shared():
        subprocess.run(images.curl_job_image_argv(pipglr.settings.base_image), check=True,
                       capture_output=True)  # fmt: skip
    mode = pipglr.outer.mode
    (LOG_DIR / f"companynet-{mode}.txt").unlink(missing_ok=True)
    company_net.push(images.CURL_JOB_IMAGE, MIRRORED_REPOSITORY, mode)
    company_net.push(images.CURL_JOB_IMAGE, LOGIN_REPOSITORY, mode)
    return Company(company_net, mode)


def test_bad_input_is_one_line_and_writes_nothing(pipglr: Pipglr, company: Company) -> None:
    """A damaged PEM, an expired CA, a mirror given as a URL, a proxy without scheme:
    exit status 2, one `pipglr: ...` line, no secret written. Control: a good CA then
    writes the secret (removed again)."""
    remove_secrets(pipglr)
    net = company.net
    with tempfile.TemporaryDirectory() as tmp:
        damaged = Path(tmp, "damaged.pem")
        damaged.write_text(net.ca_certificate.replace("M", "*", 3))
        expired = Path(tmp, "expired.pem")
        expired.write_text(expired_ca())
        good = Path(tmp, "company.pem")
        good.write_text(net.ca_certificate)
        attempts = [
            ("ca", "add", str(damaged)),
            ("ca", "add", str(expired)),
            ("mirror", "add", "docker.io", f"https://{net.mirror}/v2"),
            ("proxy", "set", company.proxy_url.split("://", 1)[1]),
        ]
        for args in attempts:
            result = pipglr_cli(pipglr, *args)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2, (args, result.stdout, result.stderr)
            assert len(lines) == 1 and lines[0].startswith("pipglr: "), (args, result.stderr)
            assert secret_ids(pipglr) == {}, args
        ok(pipglr_cli(pipglr, "ca", "add", str(good), "--name", "company"))
    try:
        assert list(secret_ids(pipglr)) == [layout.NETWORK_SECRET]
    finally:
        remove_secrets(pipglr)


def mirror_pull(pipglr: Pipglr, company: Company) -> subprocess.CompletedProcess[str]:
    """The nested podman (as its user, without the services' proxy) pulls the image from
    the mirror host by its own name."""
    image = f"{company.net.mirror}/{MIRRORED_REPOSITORY}:{company.mode}"
    return pipglr.podman("pull", "--quiet", image, check=False)


def test_without_the_ca_a_nested_pull_fails_with_a_certificate_error(
    pipglr: Pipglr, company: Company
) -> None:
    """The session's container (no CA configured; its allow-list lets it reach the
    host) pulls from the mirror: TLS refuses the certificate."""
    pulled = mirror_pull(pipglr, company)
    record(company, "before: nested pull without the CA (session container)",
           [f"exit {pulled.returncode}", *pulled.stderr.strip().splitlines()[-2:]])  # fmt: skip
    assert pulled.returncode != 0, pulled.stdout
    assert "certificate signed by unknown authority" in pulled.stderr, pulled.stderr


@pytest.fixture(scope="module")
def corpnet(fake_gitlab: Client, pipglr: Pipglr, company: Company) -> Iterator[Pipglr]:
    """CA, mirror, proxy and login set with `pipglr`, then a container started with the
    secrets as `pipglr up` mounts them (and no egress allow-list); all removed after."""
    remove_secrets(pipglr)
    net = company.net
    try:
        ok(pipglr_cli(pipglr, "ca", "add", str(net.ca_file), "--name", "company-root"))
        ok(pipglr_cli(pipglr, "mirror", "add", "docker.io", net.mirror))
        ok(pipglr_cli(pipglr, "proxy", "set", company.proxy_url))
        ok(pipglr_cli(pipglr, "registry", "login", net.registry_host, "--username",
                      net.username, input=net.password + "\n"))  # fmt: skip
        token = gitlab.token("corpnet", pipglr.outer.mode)
        config = pipglr.config_text.replace(pipglr.runner_tokens()[0], token)
        extra = tuple(labels.optional_secret_args(secret_ids(pipglr)))
        assert len(extra) == 4, extra
        with second_pipglr(pipglr, NAME, extra=extra) as second:
            yield second.start(config)
    finally:
        remove_secrets(pipglr)


@pytest.fixture(scope="module")
def jobs(fake_gitlab: Client, corpnet: Pipglr, company: Company) -> dict[str, Any]:
    """Two jobs side by side: the mirrored curl image probing the company's hosts, and
    the login image. Their final records by name."""
    mirror = f"https://{company.net.mirror}/v2/"
    script = [
        f"curl -fsS -o /dev/null -w 'via-proxy=%{{http_code}}\\n' {mirror}",
        f"curl -fsS --noproxy '*' -o /dev/null -w 'direct=%{{http_code}}\\n' {mirror}",
        # The job script stops at a failing command (errexit): test them in an if.
        f"if env -u SSL_CERT_FILE -u CURL_CA_BUNDLE curl -sS --noproxy '*' -o /dev/null "
        f"{mirror}; then echo without-ca=0; else echo without-ca=$?; fi",
        f"if curl -sS --noproxy '*' --max-time 5 -o /dev/null http://{company.net.control}/; "
        "then echo unlisted=0; else echo unlisted=$?; fi",
        'cmp -s "$CI_SERVER_TLS_CA_FILE" "$SSL_CERT_FILE" && echo runner-announced-the-ca',
        "env | sort",
    ]
    ids = {
        "mirrored": queue(fake_gitlab, corpnet, image=company.mirrored_image, script=script),
        "login": queue(fake_gitlab, corpnet, image=company.login_image,
                       script=["echo login-image-ran", "env | sort"]),
    }  # fmt: skip
    return {name: fake_gitlab.wait(job_id, timeout=300) for name, job_id in ids.items()}


def test_the_restarted_container_trusts_the_ca(corpnet: Pipglr, company: Company) -> None:
    """After `pipglr ca add` and a (re)start the same pull works."""
    pulled = mirror_pull(corpnet, company)
    record(company, "after: the same pull after `pipglr ca add` and a restart",
           [f"exit {pulled.returncode}", *pulled.stdout.strip().splitlines()[-1:]])  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr


def test_a_docker_io_job_image_comes_from_the_mirror(
    jobs: dict[str, Any], company: Company
) -> None:
    """``image: docker.io/library/pipglr-curl:MODE`` runs (nothing of docker.io is
    reachable here); the mirror's access log shows its manifest request."""
    job = jobs["mirrored"]
    log = JobLog.of(job)
    assert job["state"] == "success", log.tail()
    requested = company.net.mirror_pulls(MIRRORED_REPOSITORY, company.mode)
    record(company, "mirror access log: the job image's manifest", requested)
    assert requested, company.net.log_lines(company.net.mirror_log)[-20:]


def test_a_job_trusts_the_ca_without_installing_anything(jobs: dict[str, Any]) -> None:
    """curl in the job reaches the mirror over TLS with the announced bundle, through
    the proxy and directly; the control, with the announcing variables unset, fails
    with curl's certificate error (60). ``CI_SERVER_TLS_CA_FILE`` is the runner's file
    variable holding the same bundle."""
    log = JobLog.of(jobs["mirrored"])
    assert log.has_line("via-proxy=200") and log.has_line("direct=200"), log.tail()
    assert log.has_line("without-ca=60"), log.tail()
    for variable in ("SSL_CERT_FILE", "GIT_SSL_CAINFO", "CURL_CA_BUNDLE"):
        assert log.has_line(f"{variable}={layout.JOB_CA_BUNDLE}"), log.tail()
    # The runner's own announcement (tls-ca-file → the file variable), the same bundle.
    assert log.has_line("runner-announced-the-ca"), log.tail()


def test_pulls_and_job_requests_go_through_the_proxy(
    jobs: dict[str, Any], company: Company
) -> None:
    """The proxy's log: the runner's GitLab requests, the nested pulls and the job's
    curl (CONNECT to the mirror and the login registry); nothing else (the inner API
    is a unix socket)."""
    assert jobs["mirrored"]["state"] == "success", JobLog.of(jobs["mirrored"]).tail()
    lines = company.proxy_lines()
    mirror = company.net.proxy_requests(company.mode, company.net.mirror)
    assert len(mirror) >= 2, lines[-20:]  # the image pull and the job's curl
    login = company.net.proxy_requests(company.mode, company.net.registry_host)
    record(company, f"proxy log ({company.proxy_url}), CONNECTs and the last lines",
           [*mirror, *login, "...", *lines[-6:]])  # fmt: skip
    assert login, lines[-20:]
    polls = [line for line in lines if f"{gitlab.URL}api/v4/jobs/request " in line]
    assert polls, lines[-20:]
    known = (company.net.mirror, company.net.registry_host, gitlab.URL)
    strangers = [line for line in lines if not any(f" {k}" in line for k in known)]
    assert strangers == [], strangers


def test_the_guard_opens_the_configured_hosts_on_their_ports_only(
    corpnet: Pipglr, jobs: dict[str, Any], company: Company
) -> None:
    """Without an allow-list, the guard opened the mirror, the proxy and the login
    registry, each on its port, and says why; a port of the same host that answers
    (control: the test reaches it) stays refused to jobs."""
    opened = json.loads(corpnet.outer.exec(corpnet.name, "cat", str(layout.EGRESS_OPENED)).stdout)
    found = {f"{entry['host']}:{entry['port']}": entry["reason"] for entry in opened}
    record(company, "egress guard: opened", [json.dumps(entry) for entry in opened])
    assert found.get(company.net.mirror) == "mirror of docker.io", opened
    assert found.get(company.proxy_url.split("://")[1], "").startswith("proxy"), opened
    assert found.get(company.net.registry_host, "").startswith("registry login"), opened
    assert company.net.control not in found, opened
    answer = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        f"http://{company.net.control}/", timeout=5
    )
    assert answer.status == 200, "control: the unlisted port answers the test"
    log = JobLog.of(jobs["mirrored"])
    assert log.has_line("unlisted=7"), log.tail()  # curl: could not connect


def test_a_registry_login_pulls_the_job_image_and_stays_hidden(
    corpnet: Pipglr, jobs: dict[str, Any], company: Company
) -> None:
    """The login image pulls with the runner's credentials; the podman user (whose
    jobs run) can neither read them nor pull without them; the password is in no job
    trace or environment, no container log and no inspect output."""
    job = jobs["login"]
    log = JobLog.of(job)
    assert job["state"] == "success", log.tail()
    source = f"Authenticating with credentials from {layout.RUNNER_DOCKER_CONFIG}"
    assert log.has_line(source), log.tail()
    assert log.has_line("login-image-ran"), log.tail()
    refused = corpnet.podman("pull", "--quiet", company.login_image, check=False)
    assert refused.returncode != 0 and "authentication required" in refused.stderr, refused
    unreadable = corpnet.outer.exec(corpnet.name, "cat", str(layout.REGISTRY_AUTH_PATH),
                                    user=layout.PODMAN.name, check=False)  # fmt: skip
    assert unreadable.returncode != 0 and "Permission denied" in unreadable.stderr
    readable = corpnet.outer.exec(corpnet.name, "test", "-r", str(layout.RUNNER_DOCKER_CONFIG),
                                  user=layout.RUNNER.name, check=False)  # fmt: skip
    assert readable.returncode == 0, "control: the runner reads its credentials"
    password = company.net.password
    outputs = {
        "login job": log.raw,
        "mirrored job": JobLog.of(jobs["mirrored"]).raw,
        "podman logs": corpnet.outer.run("logs", corpnet.name).stdout,
        "inspect": corpnet.outer.run("container", "inspect", corpnet.name).stdout,
        "secret inspect": corpnet.outer.run("secret", "inspect",
                                            layout.REGISTRY_AUTH_SECRET).stdout,
    }  # fmt: skip
    for where, text in outputs.items():
        assert text, where
        assert password not in text, f"the password is in the {where}"
