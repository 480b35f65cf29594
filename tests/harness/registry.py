"""A real registry for tests: Debian's ``docker-registry`` serving a temporary directory.

Used by the publish, auto-update and local-pipeline tests. It listens on a free port of
an address of this machine (loopback, or the podman bridge's gateway when a container
must reach it), over plain HTTP, so clients need ``--tls-verify=false`` or an
``insecure`` entry in ``registries.conf`` (:func:`insecure_entry`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: What to install when the registry is missing.
MISSING = "docker-registry is not installed (apt-get install docker-registry)"


def available() -> bool:
    """Whether Debian's registry binary is on PATH."""
    return shutil.which("docker-registry") is not None


@contextmanager
def serve(root: Path, address: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``root/data`` on a free port of ``address``; yield ``HOST:PORT``."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        port = probe.getsockname()[1]
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: {address}:{port}\n"
    )
    server = subprocess.Popen(["docker-registry", "serve", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    host = f"{address}:{port}"
    try:
        wait_http(f"http://{host}/v2/", server)
        yield host
    finally:
        server.terminate()
        server.wait(10)


def wait_http(url: str, server: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Wait until ``url`` answers while ``server`` runs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, f"no answer at {url}"
            time.sleep(0.2)


def insecure_entry(host: str) -> str:
    """A ``registries.conf`` entry letting podman and skopeo use ``host`` over HTTP."""
    return f'[[registry]]\nlocation = "{host}"\ninsecure = true\n'
