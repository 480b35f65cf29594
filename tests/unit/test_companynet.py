"""The company-network harness (tests/harness/companynet.py) on this machine: an image
pushed once to the login registry is pulled through the mirror (and the mirror's access
log shows it), the proxy tunnels to the mirror and logs it, refuses 10.200.0.1, and the
control port answers from the root namespace.

Needs root (a network namespace), docker-registry, podman, openssl and curl; skipped
otherwise, and when the test host's namespace exists already (the engine suite may be
using it: this test would replace it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import companynet
from tests.harness.companynet import CompanyNet

PROBE_IMAGE = "localhost/pipglr-companynet-probe:test"
REPOSITORY = "library/companynet-probe"
TAG = "1"


def missing() -> str | None:
    """Why this machine cannot run the harness, or None."""
    if os.geteuid() != 0:
        return "needs root (a network namespace)"
    for tool in ("docker-registry", "podman", "openssl", "curl", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if any(line.split(" ")[0] == companynet.HOST.name for line in namespaces.stdout.splitlines()):
        return f"the namespace {companynet.HOST.name} is in use (the engine suite?)"
    return None


pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl without the environment's proxies, printing the status code last."""
    argv = ["curl", "-sS", "--noproxy", "", "--max-time", "20", "-w", "\n%{http_code}", *args]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the services are described for :func:`companynet.attach`."""
    return tmp_path_factory.mktemp("companynet") / "state.json"


@pytest.fixture(scope="module")
def net(state: Path) -> Iterator[CompanyNet]:
    """The services, and a one-file image (made with ``podman import``) pushed once to
    the login registry; afterwards the namespace and local images are gone."""
    with tempfile.TemporaryDirectory(prefix="pipglr-companynet-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        (root / "probe").write_text("companynet probe\n")
        with tarfile.open(root / "probe.tar", "w") as tar:
            tar.add(root / "probe", arcname="probe")
        subprocess.run(["podman", "import", "--quiet", str(root / "probe.tar"), PROBE_IMAGE],
                       check=True, capture_output=True)  # fmt: skip
        try:
            with companynet.serving(root / "net", state=state) as served:
                served.push(PROBE_IMAGE, REPOSITORY, TAG)
                yield served
        finally:
            mirrored = f"{companynet.ADDRESS}:{companynet.MIRROR_PORT}/{REPOSITORY}:{TAG}"
            subprocess.run(["podman", "rmi", "--ignore", PROBE_IMAGE, mirrored],
                           capture_output=True, check=False)  # fmt: skip
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    assert companynet.HOST.name not in namespaces.stdout, "the namespace was left behind"
    assert not state.exists(), "the state file was left behind"


def test_an_image_pushed_once_is_pulled_through_the_mirror(net: CompanyNet) -> None:
    """The mirror serves what was pushed to the login registry (shared storage), needs
    no credentials, and its access log records the manifest GET of the pull."""
    assert net.mirror_pulls(REPOSITORY, TAG) == [], "pulled before the pull"
    pulled = subprocess.run(
        ["podman", "pull", "--quiet", "--cert-dir", str(net.cert_dir),
         f"{net.mirror}/{REPOSITORY}:{TAG}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    lines = net.mirror_pulls(REPOSITORY, TAG)
    assert lines and all('" 200 ' in line for line in lines), lines
    assert lines[0].startswith(f"{companynet.HOST.gateway} "), lines  # from the root namespace


def test_the_login_registry_wants_credentials_the_mirror_does_not(net: CompanyNet) -> None:
    """The same storage behind two doors: 401 at the login registry, 200 at the mirror."""
    ca = str(net.ca_file)
    assert curl("--cacert", ca, f"https://{net.registry_host}/v2/").stdout.endswith("\n401")
    assert curl("--cacert", ca, f"https://{net.mirror}/v2/").stdout.endswith("\n200")


def test_the_proxy_tunnels_to_the_mirror_and_logs_it(net: CompanyNet) -> None:
    """curl through the proxy reaches the mirror over TLS; the proxy's log has the
    CONNECT with this machine's address, the mirror's log the proxy's."""
    answer = curl("--proxy", net.proxies["rootful"].url, "--cacert", str(net.ca_file),
                  f"https://{net.mirror}/v2/_catalog")  # fmt: skip
    assert answer.stdout.endswith("\n200") and REPOSITORY in answer.stdout, answer
    [line] = net.proxy_requests("rootful", net.mirror)
    assert net.proxy_requests("rootless") == [], "the other proxy logged it"
    client, method, _, verdict = line.split(" ")
    assert client.startswith(f"{companynet.HOST.gateway}:"), line
    assert (method, verdict) == ("CONNECT", "allowed"), line
    catalog = [x for x in net.log_lines(net.mirror_log) if "GET /v2/_catalog " in x]
    assert catalog and catalog[-1].startswith(f"{companynet.ADDRESS} "), catalog


def test_the_proxy_refuses_an_address_outside(net: CompanyNet) -> None:
    """10.200.0.1 is answered 403, plain and CONNECT, and logged as refused; control:
    plain HTTP to the control port through the same proxy answers."""
    proxy = net.proxies["rootless"].url
    control = curl("--proxy", proxy, f"http://{net.control}/")
    assert control.stdout == f"{companynet.CONTROL_BODY}\n\n200", control
    assert curl("--proxy", proxy, "http://10.200.0.1/").stdout.endswith("\n403")
    tunnel = curl("--proxy", proxy, "https://10.200.0.1/")
    assert "CONNECT tunnel failed, response 403" in tunnel.stderr, tunnel
    verdicts = [line.split(" ")[1:4] for line in net.proxy_requests("rootless")]
    assert ["GET", "http://10.200.0.1/", "refused"] in verdicts, verdicts
    assert ["CONNECT", "10.200.0.1:443", "refused"] in verdicts, verdicts


def test_another_process_attaches_through_the_state_file(net: CompanyNet, state: Path) -> None:
    """What a set's fixture sees is what the coordinator served (password included),
    in a file only its owner reads."""
    assert state.stat().st_mode & 0o077 == 0, oct(state.stat().st_mode)
    assert companynet.attach(state) == net


def test_the_control_port_answers_from_the_root_namespace(net: CompanyNet) -> None:
    """The port an egress-guard test shows refused to jobs does answer on its own."""
    answer = curl(f"http://{net.control}/")
    assert answer.stdout == f"{companynet.CONTROL_BODY}\n\n200", answer
