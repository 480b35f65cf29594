"""What the egress guard reads of the outer container's own network: its routes and
addresses (``/proc/net``), refused to jobs on top of the fixed ranges.

- **Connected routes** of both families (``/proc/net/route``, ``/proc/net/ipv6_route``):
  every on-link destination but the default route, and the default routes' gateways.
  Rootful (a podman bridge) that is the bridge subnet, whose gateway is the *host*;
  rootless with pasta it is the host's own LAN (pasta copies the host's addresses and
  routes, and maps the gateway address to the host's loopback); with slirp4netns its
  ``10.0.2.0/24`` and ``fd00::/64``. A connected route with public addresses (a host
  with a public /24 or a global IPv6 /64) is the host's neighbourhood all the same.
- **Own addresses** (:func:`own_addresses`, also what the network unit keeps out of
  proxying): with pasta, the host's addresses.

Loopback routes, reject routes, local (own-address) entries and multicast are left out
of the routes: loopback is refused anyway, the addresses come from the address list.
Standard library only: this module runs in the image.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

Net = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Route flags (linux/route.h, linux/ipv6_route.h).
RTF_UP = 0x1
RTF_GATEWAY = 0x2
RTF_REJECT = 0x200
RTF_LOCAL = 0x80000000


def _v4(hex_le: str) -> ipaddress.IPv4Address:
    """An address of ``/proc/net/route`` (hex, host byte order: little-endian here)."""
    return ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(hex_le), "little"))


def connected_ipv4(route: str) -> list[Net]:
    """On-link destinations of ``/proc/net/route`` (Iface, Destination, Gateway, Flags,
    RefCnt, Use, Metric, Mask, ...) but the default route; plus each gateway (/32)."""
    found: list[Net] = []
    for line in route.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[0] == "lo":
            continue
        flags = int(fields[3], 16)
        if not flags & RTF_UP or flags & RTF_REJECT:
            continue
        if flags & RTF_GATEWAY:
            found.append(ipaddress.IPv4Network(_v4(fields[2])))
            continue
        prefix = bin(int(fields[7], 16)).count("1")
        if prefix:
            found.append(ipaddress.IPv4Network((_v4(fields[1]), prefix), strict=False))
    return list(dict.fromkeys(found))


def connected_ipv6(ipv6_route: str) -> list[Net]:
    """On-link destinations of ``/proc/net/ipv6_route`` (destination, prefix length,
    source, source prefix, next hop, metric, refcnt, use, flags, device; hex) but the
    default route; plus each next hop (/128)."""
    found: list[Net] = []
    for line in ipv6_route.splitlines():
        fields = line.split()
        if len(fields) < 10 or fields[9] == "lo" or len(fields[0]) != 32:
            continue
        flags = int(fields[8], 16)
        if not flags & RTF_UP or flags & (RTF_REJECT | RTF_LOCAL):
            continue
        hop = ipaddress.IPv6Address(int(fields[4], 16))
        if flags & RTF_GATEWAY or int(hop):
            found.append(ipaddress.IPv6Network(hop))
            continue
        destination = ipaddress.IPv6Address(int(fields[0], 16))
        prefix = int(fields[1], 16)
        if prefix and not destination.is_multicast:
            found.append(ipaddress.IPv6Network((destination, prefix), strict=False))
    return list(dict.fromkeys(found))


def host_networks(addresses: Iterable[str]) -> list[Net]:
    """Addresses as host networks (/32, /128)."""
    return [ipaddress.ip_network(address) for address in addresses]


def local_networks(proc_net: Path = Path("/proc/net")) -> list[Net]:
    """This network namespace's connected routes, gateways and own addresses (a file
    that cannot be read, e.g. ``ipv6_route`` without IPv6, contributes nothing)."""
    texts = []
    for name in ("route", "ipv6_route"):
        try:
            texts.append((proc_net / name).read_text())
        except OSError:
            texts.append("")
    own = host_networks(own_addresses(proc_net))
    return list(dict.fromkeys([*connected_ipv4(texts[0]), *connected_ipv6(texts[1]), *own]))


def local_ipv4(fib_trie: str) -> list[str]:
    """The local IPv4 addresses of ``/proc/net/fib_trie`` (each ``|-- ADDR`` followed by a
    ``/32 host LOCAL`` line), loopback left out (always excluded from proxying)."""
    found: list[str] = []
    last = ""
    for line in fib_trie.splitlines():
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif text.startswith("/32 host LOCAL") and last and not _loopback(last):
            found.append(last)
    return list(dict.fromkeys(found))


def _loopback(address: str) -> bool:
    return ipaddress.IPv4Address(address).is_loopback


def global_ipv6(if_inet6: str) -> list[str]:
    """The global-scope IPv6 addresses of ``/proc/net/if_inet6`` (32 hex digits, index,
    prefix length, scope, flags, name per line); loopback and link-local left out."""
    found: list[str] = []
    for line in if_inet6.splitlines():
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32 or fields[3] != "00":
            continue
        address = ipaddress.IPv6Address(int(fields[0], 16))
        if not (address.is_loopback or address.is_link_local):
            found.append(str(address))
    return found


def own_addresses(proc_net: Path = Path("/proc/net")) -> list[str]:
    """The container's own addresses (what ``hostname -I`` shows), from /proc/net."""
    texts = []
    for name in ("fib_trie", "if_inet6"):
        try:
            texts.append((proc_net / name).read_text())
        except OSError:
            texts.append("")  # no IPv6 (or no IPv4) in this namespace
    return local_ipv4(texts[0]) + global_ipv6(texts[1])
