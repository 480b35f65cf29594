"""Subnets for the nested podman's networks that do not collide with the outer ones.

The inner podman's default bridge (``10.88.0.0/16``) and its pool for user-defined
networks (``10.89.0.0/16`` onwards) are podman's defaults — and so, very often, the
subnet of the *outer* container: a rootful outer container on podman's default
network is itself in ``10.88.0.0/16``. Inside, the rootless network namespace then
holds the outer address and route *and* the inner bridge in the same subnet, and a
job's packets towards its gateway never leave (measured: DNS in jobs timed out after
~40 s, ``apt-get update`` took two minutes). :func:`plan` picks, at every boot, the
first candidate subnets that overlap no route, gateway or nameserver the outer
container has. Standard library only: this module runs in the image.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipglr.errors import PipglrError

Network = ipaddress.IPv4Network

#: Candidates in order of preference: podman's own defaults first (they stay in use
#: wherever they do not collide), then the rest of 10/8 and 172.16/12.
CANDIDATES: tuple[Network, ...] = tuple(
    ipaddress.IPv4Network(f"10.{n}.0.0/16") for n in (*range(88, 128), *range(200, 255))
) + tuple(ipaddress.IPv4Network(f"172.{n}.0.0/16") for n in range(16, 32))
#: Prefix length of each user-defined (per-build) network carved from the pool.
POOL_PREFIX = 24


@dataclass(frozen=True)
class SubnetPlan:
    """The inner default network and the pool per-build networks are taken from."""

    default: Network
    pool: Network
    pool_prefix: int = POOL_PREFIX

    def containers_conf(self) -> str:
        """The ``[network]`` table of the podman user's ``containers.conf``."""
        return (
            "[network]\n"
            f'default_subnet = "{self.default}"\n'
            f'default_subnet_pools = [{{ base = "{self.pool}", size = {self.pool_prefix} }}]\n'
        )


def _hex_ip(value: str) -> ipaddress.IPv4Address:
    """An address as /proc/net/route writes it (little-endian hex)."""
    return ipaddress.IPv4Address(socket.inet_ntoa(struct.pack("<I", int(value, 16))))


def outer_networks(route_table: str) -> list[Network]:
    """Destinations (except the default route) and gateways of ``/proc/net/route``."""
    taken: list[Network] = []
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination, gateway, mask = _hex_ip(fields[1]), _hex_ip(fields[2]), _hex_ip(fields[7])
        prefix = bin(int(mask)).count("1")
        if prefix:
            taken.append(ipaddress.IPv4Network(f"{destination}/{prefix}", strict=False))
        if int(gateway):
            taken.append(ipaddress.IPv4Network(f"{gateway}/32"))
    return taken


def nameservers(resolv_conf: str) -> list[Network]:
    """IPv4 nameservers of a ``resolv.conf`` as /32 networks."""
    found = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                found.append(ipaddress.IPv4Network(f"{parts[1]}/32"))
            except ValueError:
                continue  # IPv6 nameservers do not collide with IPv4 subnets
    return found


def plan(taken: Iterable[Network], candidates: Sequence[Network] = CANDIDATES) -> SubnetPlan:
    """The first two candidates overlapping nothing in ``taken``."""
    used = list(taken)
    free = [c for c in candidates if not any(c.overlaps(t) for t in used)]
    if len(free) < 2:
        raise PipglrError(
            "every candidate subnet for nested networks overlaps the outer container's "
            f"routes ({', '.join(str(t) for t in used)}): run the container on a network "
            "that leaves part of 10.0.0.0/8 or 172.16.0.0/12 free"
        )
    return SubnetPlan(free[0], free[1])


def plan_for_this_container(
    route: Path = Path("/proc/net/route"), resolv: Path = Path("/etc/resolv.conf")
) -> SubnetPlan:
    """Plan the nested subnets from this network namespace's routes and resolvers."""
    taken = outer_networks(route.read_text())
    if resolv.exists():
        taken += nameservers(resolv.read_text())
    return plan(taken)
