"""Egress guard: jobs cannot reach the host's LAN, loopback or cloud metadata.

Every packet a nested job sends leaves through the outer container's network
namespace: rootless nested podman connects its containers (default network and the
per-build networks of its rootless network namespace) with pasta, which opens an
ordinary socket *here*, owned by the ``podman`` user; a job run with
``--network host`` is itself a process of a ``podman`` sub-id here. So an nftables
table in this namespace's ``output`` hook, matching everything not sent by root or
the runner, catches all job traffic — and no job can undo it: the namespace belongs
to the outer container's user namespace, where the podman user and all its
sub-ids hold no capabilities.

What is refused: :data:`BLOCKED` (private, shared-address, link-local — which holds
169.254.169.254, the metadata address of the common clouds — loopback, IPv6 ULA and
link-local). What stays open in those ranges: the hosts of the GitLab URLs of
config.toml and of the image's ``GITLAB_URL`` (jobs clone from there), the
container's nameservers on port 53 only (the nested DNS forwards to them), and
what the operator lists in ``PIPGLR_EGRESS_ALLOW`` (addresses, CIDRs or host
names, comma- or space-separated; names are resolved when the guard starts, and one
that does not resolve is an error — a GitLab host that does not is only noted).
Public destinations are not touched. ``PIPGLR_EGRESS_GUARD=off`` turns it off.

The company-network settings open more, on their TCP port only
(:func:`pipglr.netboot.openings`): each registry mirror, the proxies in use and
each registry with a login — the nested podman and jobs must reach them even on a
private address. The guard gets them from the same inputs as the network unit
(:func:`pipglr.guest.netconfig.load`, reading the secrets, not the network unit's
files), resolves names once (one that does not resolve is a note, not an error:
nothing could reach it anyway), and records what it opened and why in
:data:`pipglr.layout.EGRESS_OPENED` for ``pipglr status``.

Runs as root before the nested API and the runner, which require it: a guard that
cannot be set up (bad allow-list entry, no nftables) keeps jobs from running.
Standard library only: this module runs in the image.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipglr import layout, netboot
from pipglr.errors import ConfigError

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], list[str]]

#: Destinations refused to jobs unless allowed (see the module docstring).
BLOCKED: tuple[Net, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918 private
        "100.64.0.0/10",  # RFC 6598 shared address space (carrier NAT, some clouds)
        "169.254.0.0/16",  # link-local, incl. cloud metadata 169.254.169.254
        "127.0.0.0/8", "::1/128",  # loopback
        "fc00::/7", "fe80::/10",  # IPv6 unique-local and link-local
    )
)  # fmt: skip
#: The nftables table the guard owns (replaced as a whole on every start).
TABLE = "pipglr_egress"
#: Owners whose traffic is never filtered: root (systemd, the outer's own services)
#: and the runner (it talks to GitLab). Jobs are neither.
EXEMPT_UIDS = (0, layout.RUNNER.uid)
#: Environment of the outer container (``--env``) read by the guard.
ALLOW_ENV = "PIPGLR_EGRESS_ALLOW"
SWITCH_ENV = "PIPGLR_EGRESS_GUARD"
#: How long allow-list names are retried at boot (GitLab URL hosts are tried once).
RESOLVE_PATIENCE = 30.0


@dataclass(frozen=True)
class Opened:
    """A host the guard opens on one TCP port, why, and the addresses it resolved to."""

    host: str
    port: int
    reason: str
    addresses: tuple[Net, ...]

    def as_json(self) -> dict[str, Any]:
        """The :data:`pipglr.layout.EGRESS_OPENED` entry (bare addresses)."""
        return {"host": self.host, "port": self.port, "reason": self.reason,
                "addresses": [str(a.network_address) for a in self.addresses]}  # fmt: skip

    def describe(self) -> str:
        """``10.1.2.3:5000 (mirror of docker.io)``; a name shows its addresses."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        bare = [str(a.network_address) for a in self.addresses]
        resolved = f" = {', '.join(bare)}" if bare != [self.host] else ""
        return f"{host}:{self.port}{resolved} ({self.reason})"

    def rules(self) -> list[str]:
        """One accept rule per address, on this port only."""
        return [
            f"{'ip' if a.version == 4 else 'ip6'} daddr {a} tcp dport {self.port} accept"
            for a in self.addresses
        ]


@dataclass(frozen=True)
class EgressPlan:
    """What the guard lets through inside :data:`BLOCKED`."""

    allowed: tuple[Net, ...]
    nameservers: tuple[Net, ...]
    notes: tuple[str, ...] = ()
    opened: tuple[Opened, ...] = ()

    def ruleset(self) -> str:
        """The ``nft -f`` script: replace table :data:`TABLE` with the rules."""
        v4 = [n for n in self.allowed if n.version == 4]
        v6 = [n for n in self.allowed if n.version == 6]
        dns4 = [n for n in self.nameservers if n.version == 4]
        dns6 = [n for n in self.nameservers if n.version == 6]
        blocked4 = [n for n in BLOCKED if n.version == 4]
        blocked6 = [n for n in BLOCKED if n.version == 6]
        lines = [
            f"table inet {TABLE}",
            f"delete table inet {TABLE}",
            f"table inet {TABLE} {{",
            _set("allowed4", "ipv4_addr", v4),
            _set("allowed6", "ipv6_addr", v6),
            _set("dns4", "ipv4_addr", dns4),
            _set("dns6", "ipv6_addr", dns6),
            _set("blocked4", "ipv4_addr", blocked4),
            _set("blocked6", "ipv6_addr", blocked6),
            _chain(
                "output",
                "output",
                f"meta skuid {{ {', '.join(map(str, EXEMPT_UIDS))} }} accept",
                self.opened,
            ),
            _chain("forward", "forward", None, self.opened),
            "}",
        ]
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """The guard's journal line: what it refuses, allows and opens."""
        allowed = ", ".join(map(str, self.allowed)) or "nothing"
        dns = ", ".join(map(str, self.nameservers)) or "none"
        opened = "".join(f"; opened {item.describe()}" for item in self.opened)
        notes = "".join(f"; {note}" for note in self.notes)
        return (
            "egress guard on: LAN, loopback and metadata refused to jobs; "
            f"allowed {allowed}; DNS {dns}{opened}{notes}"
        )


def _set(name: str, kind: str, nets: Iterable[Net]) -> str:
    elements = ", ".join(str(n) for n in nets)
    body = f" elements = {{ {elements} }};" if elements else ""
    return f"  set {name} {{ type {kind}; flags interval;{body} }}"


def _chain(name: str, hook: str, exempt: str | None, opened: Sequence[Opened] = ()) -> str:
    rules = [
        f"type filter hook {hook} priority filter; policy accept;",
        "ct state established,related accept",
        # IPv6 neighbour discovery is link-local by nature and sent by the kernel.
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, "
        "nd-router-advert } accept",
        *([exempt] if exempt else []),
        "ip daddr @allowed4 accept",
        "ip6 daddr @allowed6 accept",
        "ip daddr @dns4 meta l4proto { tcp, udp } th dport 53 accept",
        "ip6 daddr @dns6 meta l4proto { tcp, udp } th dport 53 accept",
        *(rule for item in opened for rule in item.rules()),
        "ip daddr @blocked4 counter reject with icmpx type admin-prohibited",
        "ip6 daddr @blocked6 counter reject with icmpx type admin-prohibited",
    ]
    body = "".join(f"    {rule}\n" for rule in rules)
    return f"  chain {name} {{\n{body}  }}"


def container_environment(raw: bytes) -> dict[str, str]:
    """The environment of ``/proc/1/environ`` (what ``--env`` gave the container)."""
    pairs = (item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if item)
    return {key: value for key, *rest in pairs for value in rest}


def nameservers(resolv_conf: str) -> tuple[Net, ...]:
    """The ``nameserver`` addresses of a resolv.conf, as host networks."""
    found: list[Net] = []
    for line in resolv_conf.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                found.append(ipaddress.ip_network(fields[1].split("%")[0]))
            except ValueError:
                continue
    return tuple(found)


def gitlab_hosts(config_text: str | None, image_url: str) -> list[str]:
    """Host names of the image's GITLAB_URL and of every runner's url / clone_url."""
    urls = [image_url]
    if config_text:
        try:
            runners = tomllib.loads(config_text).get("runners", [])
        except tomllib.TOMLDecodeError:
            runners = []  # the runner unit reports a malformed config
        for runner in runners if isinstance(runners, list) else []:
            urls += [str(runner[key]) for key in ("url", "clone_url") if runner.get(key)]
    hosts = [urlsplit(url).hostname for url in urls]
    return list(dict.fromkeys(h for h in hosts if h))


def resolve(name: str) -> list[str]:
    """Every address ``name`` resolves to (raises OSError when it does not)."""
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _networks(entry: str, lookup: Resolver, patience: float) -> list[Net]:
    try:
        return [ipaddress.ip_network(entry, strict=False)]
    except ValueError:
        pass
    deadline = time.monotonic() + patience
    while True:
        try:
            return [ipaddress.ip_network(a) for a in lookup(entry)]
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"{ALLOW_ENV} names {entry!r}, which does not resolve "
                    f"({exc.strerror or exc}): fix the name or give its address"
                ) from exc
            time.sleep(1)


def plan(
    env: Mapping[str, str],
    resolv_conf: str,
    config_text: str | None,
    image_url: str,
    lookup: Resolver = resolve,
    patience: float = RESOLVE_PATIENCE,
    openings: Sequence[netboot.Opening] = (),
) -> EgressPlan | None:
    """The guard's plan, or None when the operator turned it off. ``openings`` (of the
    network settings) are resolved once; one that does not resolve is a note."""
    switch = env.get(SWITCH_ENV, "on").strip().lower()
    if switch in ("off", "false", "0", "no"):
        return None
    if switch not in ("on", "true", "1", "yes", ""):
        raise ConfigError(f"{SWITCH_ENV}={switch!r}: use on or off")
    allowed: list[Net] = []
    notes: list[str] = []
    for host in gitlab_hosts(config_text, image_url):
        # Needed only where GitLab lives in a blocked range; one that does not
        # resolve now is unreachable for the runner too: say so, but guard anyway.
        try:
            allowed += _networks(host, lookup, 0)
        except ConfigError:
            notes.append(f"GitLab host {host!r} does not resolve now: not allowed")
    for entry in env.get(ALLOW_ENV, "").replace(",", " ").split():
        allowed += _networks(entry, lookup, patience)
    opened: list[Opened] = []
    for item in openings:
        try:
            addresses = _networks(item.host, lookup, 0)
        except ConfigError:
            notes.append(f"{item.host} ({item.reason}) does not resolve now: not opened")
            continue
        opened.append(Opened(item.host, item.port, item.reason, tuple(addresses)))
    return EgressPlan(
        tuple(dict.fromkeys(allowed)), nameservers(resolv_conf), tuple(notes), tuple(opened)
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def write_opened(opened: Sequence[Opened], path: Path) -> None:
    """Record what was opened and why (:data:`pipglr.layout.EGRESS_OPENED`, 0644 JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = path.with_name(f".{path.name}.new")
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o644)
        json.dump([item.as_json() for item in opened], handle, indent=1)
        handle.write("\n")
    os.replace(new, path)


def guard(
    image_url: str,
    openings: Sequence[netboot.Opening] = (),
    opened_path: Path = Path(str(layout.EGRESS_OPENED)),
) -> str:
    """Compute the plan from this container and install it; say what was done.
    ``openings``: those of the network settings (:meth:`netconfig.Inputs.openings`)."""
    env = container_environment(Path("/proc/1/environ").read_bytes())
    config = _read(Path(str(layout.CONFIG_PATH)))
    chosen = plan(env, _read(Path("/etc/resolv.conf")) or "", config, image_url, openings=openings)
    if chosen is None:
        subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)
        write_opened([], opened_path)  # nothing is refused, so nothing needed opening
        return f"egress guard off ({SWITCH_ENV}): jobs may reach the LAN and loopback"
    result = subprocess.run(
        ["nft", "-f", "-"], input=chosen.ruleset(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise ConfigError(f"nft refused the egress rules ({detail}): is CAP_NET_ADMIN granted?")
    write_opened(chosen.opened, opened_path)
    return chosen.summary()
