"""A company network on one test host: a login registry, a mirror, a proxy, a control port.

Everything runs in the namespace of :data:`tests.harness.authregistry.HOST` (address
:data:`ADDRESS`, a subnet the session's pipglr container already allows:
``authregistry.ALLOW``), so nothing leaves this machine:

- ``ADDRESS:5000``: the password-protected TLS registry (:func:`authregistry.serving`);
- ``ADDRESS:5001`` (:data:`MIRROR_PORT`): a second ``docker-registry`` without auth, TLS
  with the same throw-away CA, read-only, on the SAME storage directory: an image pushed
  once to the first (:meth:`CompanyNet.push`) is served by both. It plays the company's
  docker.io mirror; its access log (distribution's combined-format lines on stdout,
  ``"GET /v2/NAME/manifests/TAG HTTP/1.1" 200 ...``, on even at level warn) is
  :attr:`CompanyNet.mirror_log`;
- ``ADDRESS:3128`` and ``ADDRESS:3129`` (:data:`PROXY_PORTS`): forward proxies of
  :mod:`tests.harness.proxy` (CONNECT and absolute-form HTTP; they refuse destinations
  outside 10.199.0.0/16 and loopback), one per outer mode so that the concurrent sets'
  requests are told apart by log (:attr:`CompanyNet.proxies`: URL and request log);
- ``ADDRESS:5002`` (:data:`CONTROL_PORT`): a plain HTTP server answering
  :data:`CONTROL_BODY`, a port that DOES answer (from the root namespace) but that no
  mirror, proxy or login names: the egress guard must keep refusing it to jobs.

When the engine suite runs as sets (:mod:`tests.harness.sets`), the coordinator serves
this once for all (the namespace is one per machine: a second :func:`serving` would
replace the first's) with ``state=SHARED_STATE``; the sets' fixtures :func:`attach`.

The registry's certificate names the address only (no host name), so clients trust
``ca.crt`` per ``HOST:PORT`` (``--cert-dir``, certs.d) or as a CA bundle (curl
``--cacert``).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tests.harness import authregistry
from tests.harness.authregistry import AuthRegistry

REPO = Path(__file__).resolve().parents[2]
HOST = authregistry.HOST
ADDRESS = HOST.address
MIRROR_PORT = 5001
#: One proxy per outer mode (name → port).
PROXY_PORTS = {"rootful": 3128, "rootless": 3129}
CONTROL_PORT = 5002
#: Where the coordinator's :func:`serving` describes the services for :func:`attach`
#: (the password is a throw-away one; build/ is not committed).
SHARED_STATE = REPO / "build" / "test-logs" / "companynet.json"
#: What the control port serves.
CONTROL_BODY = "companynet control port"
#: The control port's server (``ADDRESS PORT BODY``): each connection gets one HTTP
#: answer with BODY (no name lookups, unlike http.server's ``getfqdn`` at start).
CONTROL_SERVER = """import socketserver, sys
class Answer(socketserver.StreamRequestHandler):
    def handle(self):
        while self.rfile.readline() not in (b"\\r\\n", b"\\n", b""):
            pass
        body = sys.argv[3].encode() + b"\\n"
        self.wfile.write(b"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n"
                         b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer((sys.argv[1], int(sys.argv[2])), Answer).serve_forever()
"""
#: The ``PIPGLR_EGRESS_ALLOW`` entry covering the host (the same as the login registry's).
ALLOW = authregistry.ALLOW


@dataclass(frozen=True)
class Proxy:
    """A running proxy: its URL (``http://ADDRESS:PORT``) and its request log."""

    url: str
    log: Path


@dataclass(frozen=True)
class CompanyNet:
    """The running services, and where their logs are."""

    registry: AuthRegistry
    mirror: str
    proxies: dict[str, Proxy]
    control: str
    mirror_log: Path

    @property
    def registry_host(self) -> str:
        """``ADDRESS:5000``, the password-protected registry."""
        return self.registry.host

    @property
    def cert_dir(self) -> Path:
        """The certs.d-style directory holding ``ca.crt`` (valid for both registries)."""
        return self.registry.cert_dir

    @property
    def ca_file(self) -> Path:
        """The throw-away CA certificate file (PEM)."""
        return self.registry.cert_dir / "ca.crt"

    @property
    def ca_certificate(self) -> str:
        """The CA certificate (PEM)."""
        return self.registry.ca_certificate

    @property
    def username(self) -> str:
        return self.registry.username

    @property
    def password(self) -> str:
        return self.registry.password

    @staticmethod
    def log_lines(path: Path) -> list[str]:
        """The lines of a log so far (none when it does not exist yet)."""
        try:
            return path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def mirror_pulls(self, repository: str, reference: str) -> list[str]:
        """The mirror's access-log lines of ``GET /v2/REPOSITORY/manifests/REFERENCE``
        (a pull of that image; HEAD requests are not counted)."""
        wanted = f'"GET /v2/{repository}/manifests/{reference} '
        return [line for line in self.log_lines(self.mirror_log) if wanted in line]

    def proxy_requests(self, name: str, target: str | None = None) -> list[str]:
        """The request-log lines of proxy ``name`` (``CLIENT METHOD TARGET VERDICT
        [REASON]``, e.g. ``10.199.79.1:40312 CONNECT 10.199.79.2:5001 allowed``), only
        those for ``target`` (``HOST:PORT`` of a CONNECT, or an absolute URL) if given."""
        lines = self.log_lines(self.proxies[name].log)
        if target is None:
            return lines
        return [line for line in lines if line.split(" ")[2:3] == [target]]

    def to_json(self) -> str:
        """What :func:`attach` reads (the password included)."""
        registry = self.registry
        return json.dumps({
            "registry": {"host": registry.host, "username": registry.username,
                         "password": registry.password, "cert_dir": str(registry.cert_dir)},
            "mirror": self.mirror, "control": self.control, "mirror_log": str(self.mirror_log),
            "proxies": {name: {"url": p.url, "log": str(p.log)}
                        for name, p in self.proxies.items()},
        }, indent=1)  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> CompanyNet:
        data = json.loads(text)
        reg = data["registry"]
        return cls(
            registry=AuthRegistry(reg["host"], reg["username"], reg["password"],
                                  Path(reg["cert_dir"])),
            mirror=data["mirror"], control=data["control"],
            mirror_log=Path(data["mirror_log"]),
            proxies={name: Proxy(p["url"], Path(p["log"])) for name, p in data["proxies"].items()},
        )  # fmt: skip

    def push(self, image: str, repository: str, tag: str) -> str:
        """Push the local ``image`` to the login registry as ``REPOSITORY:TAG`` (with
        the credentials, TLS verified); returns the mirror's reference to it
        (``ADDRESS:5001/REPOSITORY:TAG``). For docker.io images pulled through the
        mirror, ``repository`` is ``library/NAME`` or ``USER/NAME``."""
        subprocess.run(
            ["podman", "push", "--quiet", "--cert-dir", str(self.cert_dir), "--creds",
             f"{self.username}:{self.password}", image,
             f"{self.registry_host}/{repository}:{tag}"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return f"{self.mirror}/{repository}:{tag}"


def _mirror_config(auth_root: Path) -> str:
    """The mirror: the login registry's storage and certificate, no auth, read-only."""
    return (
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {auth_root / 'data'}\n"
        "  maintenance:\n    readonly:\n      enabled: true\n"
        f"http:\n  addr: {ADDRESS}:{MIRROR_PORT}\n"
        f"  tls:\n    certificate: {auth_root / 'server.crt'}\n"
        f"    key: {auth_root / 'server.key'}\n"
    )


#: urllib without the environment's proxies: the waits talk to the services directly.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _wait(what: str, answers: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    """Wait until ``answers()`` is true while ``process`` runs (20 s at most)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            if answers():
                return
        except OSError:
            pass
        assert process.poll() is None, f"{what} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{what} does not answer"
        time.sleep(0.2)


def _mirror_answers(ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with opener.open(f"https://{ADDRESS}:{MIRROR_PORT}/v2/", timeout=2) as response:
        return bool(response.status == 200)


def _proxy_answers(port: int) -> bool:
    with socket.create_connection((ADDRESS, port), timeout=2):
        return True


def _control_answers() -> bool:
    with _DIRECT.open(f"http://{ADDRESS}:{CONTROL_PORT}/", timeout=2) as response:
        return bool(response.read().decode().strip() == CONTROL_BODY)


def attach(state: Path = SHARED_STATE) -> CompanyNet:
    """The services another process serves (:func:`serving` with ``state``), checked to
    answer."""
    try:
        net = CompanyNet.from_json(state.read_text())
    except FileNotFoundError:
        raise AssertionError(f"no {state}: the coordinator serves no company network") from None
    assert _mirror_answers(net.ca_file), f"the shared mirror {net.mirror} does not answer"
    return net


@contextmanager
def serving(root: Path, state: Path | None = None) -> Iterator[CompanyNet]:
    """Create the test host and serve the login registry, the mirror, the proxies and
    the control port (logs, certificates and the registry's storage under ``root``);
    describe them in ``state`` for :func:`attach` if given; stop them, remove the host
    and ``state`` afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    auth_root = root / "auth"
    with ExitStack() as stack:
        registry = stack.enter_context(authregistry.serving(auth_root))

        def start(name: str, argv: list[str], stdout: Path) -> subprocess.Popen[bytes]:
            with stdout.open("ab") as out, (root / f"{name}.log").open("ab") as err:
                process = subprocess.Popen(HOST.command(argv), cwd=REPO, stdout=out, stderr=err)
            stack.callback(_stop, process)
            return process

        (root / "mirror.yml").write_text(_mirror_config(auth_root))
        mirror_log = root / "mirror-access.log"
        mirror = start("mirror", ["docker-registry", "serve", str(root / "mirror.yml")],
                       mirror_log)  # fmt: skip
        proxies: dict[str, Proxy] = {}
        waiting: dict[str, subprocess.Popen[bytes]] = {}
        for name, port in PROXY_PORTS.items():
            log = root / f"proxy-{name}-requests.log"
            process = start(f"proxy-{name}", [sys.executable, "-m", "tests.harness.proxy",
                                              "--listen", f"{ADDRESS}:{port}", "--log", str(log)],
                            root / f"proxy-{name}.out")  # fmt: skip
            proxies[name] = Proxy(f"http://{ADDRESS}:{port}", log)
            waiting[name] = process
        control = start("control", [sys.executable, "-c", CONTROL_SERVER, ADDRESS,
                                    str(CONTROL_PORT), CONTROL_BODY],
                        root / "control.out")  # fmt: skip
        ca = registry.cert_dir / "ca.crt"
        _wait("the mirror registry", lambda: _mirror_answers(ca), mirror)
        for name, port in PROXY_PORTS.items():
            _wait(f"the proxy {name}", partial(_proxy_answers, port), waiting[name])
        _wait("the control port", _control_answers, control)
        net = CompanyNet(
            registry=registry,
            mirror=f"{ADDRESS}:{MIRROR_PORT}",
            proxies=proxies,
            control=f"{ADDRESS}:{CONTROL_PORT}",
            mirror_log=mirror_log,
        )
        if state is not None:
            state.parent.mkdir(parents=True, exist_ok=True)
            state.unlink(missing_ok=True)
            state.touch(mode=0o600)
            state.write_text(net.to_json())
            stack.callback(state.unlink, missing_ok=True)
        yield net


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
