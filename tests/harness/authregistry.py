"""A password-protected registry on its own test host, for registry-credential tests.

Debian's ``docker-registry`` (distribution 2.8) with ``htpasswd`` auth and TLS, in the
network namespace :data:`HOST` (:mod:`tests.harness.netns`), so nested podman of both
outer modes reaches it the way it reaches the fake GitLab. The session's pipglr
container allows :data:`ALLOW` in its egress guard (tests/image/conftest.py).

The htpasswd line is bcrypt, made with the system's libcrypt (what ``htpasswd -B``
writes; no apache2-utils needed). The certificate is signed by a throw-away CA made with
``openssl``; clients trust it per registry (containers-certs.d(5): a ``ca.crt`` in
``certs.d/HOST:PORT/``, read at every connection, or ``podman push --cert-dir``).
TLS rather than plain HTTP: an ``insecure`` registries.conf entry only reaches a running
``podman system service`` after a restart (its SIGHUP reload, podman 5.4's
``Runtime.Reload``, replaces the runtime's configuration with a fresh one and loses the
volume path: nested volume creation then fails with "read-only file system").
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import ipaddress
import json
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness.netns import TestHost

#: Apart from the fake GitLab (10.199.77.0/30) and the LAN hosts (tests/harness/lan.py).
HOST = TestHost("pglr-regauth", ipaddress.IPv4Network("10.199.79.0/30"))
PORT = 5000
#: The ``PIPGLR_EGRESS_ALLOW`` entry that lets jobs' pulls reach the registry.
ALLOW = str(HOST.subnet)
USERNAME = "pipglr-ci"
_BCRYPT64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class AuthRegistry:
    """A running registry: ``HOST:PORT``, the one account it accepts, and the directory
    holding its CA certificate (``ca.crt``, a certs.d directory for ``--cert-dir``)."""

    host: str
    username: str
    password: str
    cert_dir: Path

    @property
    def ca_certificate(self) -> str:
        """The CA certificate (PEM) that signed the registry's certificate."""
        return (self.cert_dir / "ca.crt").read_text()

    def docker_auth_config(self) -> str:
        """A ``DOCKER_AUTH_CONFIG`` value as ``docker login`` writes it (``auths`` with
        base64 ``user:password``), compact as a masked variable must be."""
        auth = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return json.dumps({"auths": {self.host: {"auth": auth}}}, separators=(",", ":"))


def bcrypt_line(username: str, password: str, cost: int = 5) -> str:
    """One htpasswd line ``user:$2b$...`` hashed by libcrypt's ``crypt``."""
    path = ctypes.util.find_library("crypt")
    if path is None:
        raise RuntimeError("libcrypt is not installed (it ships with every Debian system)")
    libcrypt = ctypes.CDLL(path)
    libcrypt.crypt.restype = ctypes.c_char_p
    libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = "".join(secrets.choice(_BCRYPT64) for _ in range(21)) + secrets.choice(".Oeu")
    hashed = libcrypt.crypt(password.encode(), f"$2b${cost:02d}${salt}".encode())
    if not hashed or not hashed.startswith(b"$2b$"):
        raise RuntimeError(f"libcrypt made no bcrypt hash: {hashed!r}")
    return f"{username}:{hashed.decode()}\n"


def make_certificates(root: Path, address: str) -> Path:
    """A CA (``certs/ca.crt``) and a server certificate for ``address`` signed by it
    (``server.crt``/``server.key``); returns the certs.d-style directory."""
    certs = root / "certs"
    certs.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=root)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "certs/ca.crt",
            "-subj", "/CN=pipglr test registry CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    openssl("req", "-new", *ec[:-2], "-keyout", "server.key", "-out", "server.csr",
            "-subj", f"/CN={address}")  # fmt: skip
    (root / "server.ext").write_text(
        f"subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth\n"
        "basicConstraints=critical,CA:FALSE\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "certs/ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext",
            "-out", "server.crt")  # fmt: skip
    return certs


def _config(root: Path) -> str:
    return (
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: {HOST.address}:{PORT}\n"
        f"  tls:\n    certificate: {root / 'server.crt'}\n    key: {root / 'server.key'}\n"
        f"auth:\n  htpasswd:\n    realm: pipglr-test\n    path: {root / 'htpasswd'}\n"
    )


def _wait_for_challenge(
    url: str, ca: Path, server: subprocess.Popen[bytes], timeout: float = 20
) -> None:
    """Wait until ``url`` answers 401 over TLS verified with ``ca`` (the registry is up
    and wants credentials)."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1, context=context).close()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
            raise AssertionError(f"{url} answered {exc.code}, expected 401") from exc
        except ssl.SSLError:
            raise
        except OSError:
            pass
        else:
            raise AssertionError(f"{url} answered without credentials")
        assert server.poll() is None, f"docker-registry exited with {server.returncode}"
        assert time.monotonic() < deadline, f"no answer at {url}"
        time.sleep(0.2)


@contextmanager
def serving(root: Path) -> Iterator[AuthRegistry]:
    """Create the test host, serve a registry with one random password in it over TLS;
    remove both afterwards."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is not installed (apt-get install openssl)")
    root.mkdir(parents=True, exist_ok=True)
    certs = make_certificates(root, HOST.address)
    password = secrets.token_urlsafe(18)
    (root / "htpasswd").write_text(bcrypt_line(USERNAME, password))
    (root / "config.yml").write_text(_config(root))
    HOST.create()
    try:
        argv = HOST.command(["docker-registry", "serve", str(root / "config.yml")])
        with (root / "registry.log").open("wb") as log:
            server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            host = f"{HOST.address}:{PORT}"
            _wait_for_challenge(f"https://{host}/v2/", certs / "ca.crt", server)
            yield AuthRegistry(host, USERNAME, password, certs)
        finally:
            server.terminate()
            server.wait(10)
    finally:
        HOST.remove()
