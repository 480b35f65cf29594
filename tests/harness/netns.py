"""A test host: a network namespace joined to this machine by a veth pair.

Containers of both outer modes reach it through the host's routing (rootful:
bridge + forwarding; rootless: slirp4netns/pasta open host sockets), and the test
process reaches it directly — so a service in it (the fake GitLab) is reachable
from the register label's throw-away container, from the running pipglr container
and from the tests, while all traffic stays on this machine. Needs root.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass(frozen=True)
class TestHost:
    """A namespace ``name`` whose address is ``address`` (the host side is ``gateway``)."""

    __test__ = False  # a harness class, not a pytest test class despite its name
    name: str
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network

    @property
    def gateway(self) -> str:
        """The host side of the veth pair."""
        return str(self.subnet.network_address + 1)

    @property
    def address(self) -> str:
        """The test host's address."""
        return str(self.subnet.network_address + 2)

    @property
    def veth(self) -> str:
        """Host-side interface name (interface names have at most 15 characters, so
        only the first 12 of the namespace name count: keep them distinct)."""
        return f"{self.name[:12]}-h"

    @property
    def peer(self) -> str:
        """The interface inside the namespace."""
        return f"{self.name[:12]}-n"

    def create(self) -> None:
        """Create the namespace and the link; replaces a leftover of an earlier run."""
        self.remove()
        prefix = self.subnet.prefixlen
        peer = self.peer
        nodad = ("nodad",) if self.subnet.version == 6 else ()  # usable at once
        _ip("netns", "add", self.name)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", self.name)
        _ip("addr", "add", f"{self.gateway}/{prefix}", "dev", self.veth, *nodad)
        _ip("link", "set", self.veth, "up")
        inside = ("netns", "exec", self.name, "ip")
        _ip(*inside, "addr", "add", f"{self.address}/{prefix}", "dev", peer, *nodad)
        _ip(*inside, "link", "set", peer, "up")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "route", "add", "default", "via", self.gateway)
        route = _ip("route", "get", self.address).stdout
        if f" dev {self.veth} " not in route:
            self.remove()
            raise AssertionError(f"{self.address} is not routed to {self.veth}: {route.strip()}")

    def remove(self) -> None:
        """Delete the namespace and the link (no error when absent)."""
        _ip("link", "del", self.veth, check=False)
        _ip("netns", "del", self.name, check=False)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]
