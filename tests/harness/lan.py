"""Stand-ins for a host's LAN: test hosts in private, shared, link-local and IPv6
unique-local ranges.

Each is a network namespace on this machine (:mod:`tests.harness.netns`) serving
HTTP on :data:`PORT` with a body naming the host, so a probe can tell which host
answered. The egress-guard tests point jobs at them; nothing leaves this machine.
:data:`ALLOWED` is the one the session's pipglr container lists in
``PIPGLR_EGRESS_ALLOW``; every other one is refused to jobs.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.harness.netns import TestHost

PORT = 8000
#: name → test host; the names are in the bodies the hosts serve.
BLOCKED = {
    "private10": TestHost("pglr-lan10", ipaddress.IPv4Network("10.199.78.0/30")),
    "private172": TestHost("pglr-lan172", ipaddress.IPv4Network("172.31.78.0/30")),
    "private192": TestHost("pglr-lan192", ipaddress.IPv4Network("192.168.78.0/30")),
    "shared100": TestHost("pglr-lan100", ipaddress.IPv4Network("100.64.78.0/30")),
    "linklocal": TestHost("pglr-lanlnk", ipaddress.IPv4Network("169.254.78.0/30")),
}
ALLOWED = {"allowed": TestHost("pglr-lanok", ipaddress.IPv4Network("10.199.78.4/30"))}
#: IPv6 test hosts (ULA): served with the others, but apart, as only an outer container
#: with an IPv6 route reaches them (rootless with slirp4netns or pasta; podman 4.3's
#: rootful default network has no IPv6). ``allowed6`` is in the allow-list.
BLOCKED6 = {"ula6": TestHost("pglr-lan6", ipaddress.IPv6Network("fd99:78::/64"))}
ALLOWED6 = {"allowed6": TestHost("pglr-lan6ok", ipaddress.IPv6Network("fd99:78:1::/64"))}
#: The ``PIPGLR_EGRESS_ALLOW`` value of the session's pipglr container.
ALLOW_LIST = ",".join(str(host.subnet) for host in (*ALLOWED.values(), *ALLOWED6.values()))


def url(host: TestHost) -> str:
    address = f"[{host.address}]" if host.subnet.version == 6 else host.address
    return f"http://{address}:{PORT}/"


def answers(host: TestHost, timeout: float = 5) -> str:
    """The body the host serves (raises OSError when it does not answer)."""
    with urllib.request.urlopen(url(host), timeout=timeout) as response:
        return str(response.read().decode().strip())


def attach() -> dict[str, TestHost]:
    """The LAN test hosts another process serves (:mod:`tests.harness.sets`), checked
    to answer."""
    hosts = {**BLOCKED, **ALLOWED}
    for name, host in {**hosts, **BLOCKED6, **ALLOWED6}.items():
        assert answers(host) == f"lan-host {name}", f"the shared LAN host {name} is not served"
    return hosts


@contextmanager
def serving() -> Iterator[dict[str, TestHost]]:
    """Create every LAN test host with its HTTP server; remove them afterwards. Yields
    the IPv4 ones (the IPv6 ones, :data:`BLOCKED6` and :data:`ALLOWED6`, are served too)."""
    hosts = {**BLOCKED, **ALLOWED, **BLOCKED6, **ALLOWED6}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pipglr-lan-") as tmp:
        for name, host in hosts.items():
            root = Path(tmp) / name
            root.mkdir()
            (root / "index.html").write_text(f"lan-host {name}\n")
            host.create()
            stack.callback(host.remove)
            argv = [sys.executable, "-m", "http.server", "--bind", host.address,
                    "--directory", str(root), str(PORT)]  # fmt: skip
            process = subprocess.Popen(
                host.command(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            stack.callback(process.kill)
        deadline = time.monotonic() + 20
        for name, host in hosts.items():
            while True:
                try:
                    assert answers(host, timeout=2) == f"lan-host {name}"
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        yield {name: hosts[name] for name in (*BLOCKED, *ALLOWED)}
