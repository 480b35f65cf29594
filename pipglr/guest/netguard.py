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
169.254.169.254, the metadata address of the common clouds — loopback, "this network",
IPv6 ULA, link-local, documentation and the NAT64 prefixes, through which a job
would reach IPv4 LAN hosts), and the outer container's own neighbourhood
(:func:`pipglr.guest.netroutes.local_networks`: its connected routes of both
families, its gateways — the host, rootful or with pasta — and its own addresses).
What stays open there: the GitLab URLs of config.toml (``url``, ``clone_url``) and of
the image's ``GITLAB_URL``, each on its own port only (jobs clone from there; SSH only
for an ssh ``clone_url``), the container's nameservers on port 53 only (the nested DNS
forwards to them), and what the operator lists in ``PIPGLR_EGRESS_ALLOW`` (addresses,
CIDRs without host bits, or host names, comma- or space-separated; names are
resolved when the guard starts, and one that does not resolve is an error — a GitLab
host that does not is only noted). A name's answers that are loopback, link-local or
unspecified are never opened (a DNS answer must not open 127.0.0.1 or
169.254.169.254): they are dropped and noted. Public destinations are not touched.
``PIPGLR_EGRESS_GUARD=off`` turns it off.

Refusals are counted per destination class (:data:`DROP_CLASSES`: the neighbourhood
first, then loopback, private, link_local, special), each by a named counter of the
table that the output and forward chains share; root's metrics collector reads them
with ``nft -j list counters`` (:func:`drop_counters`, :mod:`pipglr.guest.collector`).

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
import re
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
from pipglr.guest import netroutes

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], list[str]]

#: Destinations refused to jobs unless allowed (see the module docstring), by the
#: class whose named nftables counter counts the refusals (``pipglr_egress_dropped_*``
#: metrics; :func:`drop_counters`).
BLOCKED_CLASSES: dict[str, tuple[Net, ...]] = {
    name: tuple(ipaddress.ip_network(n) for n in nets)
    for name, nets in {
        "loopback": ("127.0.0.0/8", "::1/128"),
        "private": (
            "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918 private
            "100.64.0.0/10",  # RFC 6598 shared address space (carrier NAT, some clouds)
            "fc00::/7",  # IPv6 unique-local
        ),
        # link-local, incl. cloud metadata 169.254.169.254
        "link_local": ("169.254.0.0/16", "fe80::/10"),
        "special": (
            "0.0.0.0/8", "::/128",  # "this network", unspecified (the kernel sends to loopback)
            "2001:db8::/32",  # IPv6 documentation
            "64:ff9b::/96", "64:ff9b:1::/48",  # NAT64: IPv4 (the LAN too) through a translator
        ),
    }.items()
}  # fmt: skip
BLOCKED: tuple[Net, ...] = tuple(net for nets in BLOCKED_CLASSES.values() for net in nets)
#: The class of the container's own neighbourhood (:attr:`EgressPlan.refused`: its
#: routes, gateways and addresses). Its rules come first: a refused route inside a
#: fixed range (a podman bridge in 10/8) counts here, as "this container's host".
NEIGHBOURHOOD = "neighbourhood"
#: Every counter of the table, in rule order.
DROP_CLASSES = (NEIGHBOURHOOD, *BLOCKED_CLASSES)
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
#: The port opened for an ssh ``clone_url`` without one.
SSH_PORT = 22


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
    """What the guard lets through inside :data:`BLOCKED` and ``refused`` (the outer
    container's connected routes, gateways and own addresses)."""

    allowed: tuple[Net, ...]
    nameservers: tuple[Net, ...]
    notes: tuple[str, ...] = ()
    opened: tuple[Opened, ...] = ()
    refused: tuple[Net, ...] = ()

    def blocked(self) -> tuple[list[ipaddress.IPv4Network], list[ipaddress.IPv6Network]]:
        """Everything refused: :data:`BLOCKED` and ``refused``, per family, overlaps
        merged."""
        nets = (*BLOCKED, *self.refused)
        v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
        v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
        return list(ipaddress.collapse_addresses(v4)), list(ipaddress.collapse_addresses(v6))

    def classes(
        self,
    ) -> list[tuple[str, list[ipaddress.IPv4Network], list[ipaddress.IPv6Network]]]:
        """What each class of :data:`DROP_CLASSES` refuses, per family, in rule order;
        overlaps merged within a class (an interval set refuses overlapping elements;
        across sets they are fine: the first rule that matches counts)."""
        found = []
        for name in DROP_CLASSES:
            nets = self.refused if name == NEIGHBOURHOOD else BLOCKED_CLASSES[name]
            v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
            v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
            found.append((name, list(ipaddress.collapse_addresses(v4)),
                          list(ipaddress.collapse_addresses(v6))))  # fmt: skip
        return found

    def ruleset(self) -> str:
        """The ``nft -f`` script: replace table :data:`TABLE` with the rules. Each class
        of refused destinations has a set per family and one named counter, shared by
        the output and forward chains."""
        v4 = [n for n in self.allowed if n.version == 4]
        v6 = [n for n in self.allowed if n.version == 6]
        dns4 = [n for n in self.nameservers if n.version == 4]
        dns6 = [n for n in self.nameservers if n.version == 6]
        classes = self.classes()
        lines = [
            f"table inet {TABLE}",
            f"delete table inet {TABLE}",
            f"table inet {TABLE} {{",
            *(f"  counter {name} {{ }}" for name in DROP_CLASSES),
            _set("allowed4", "ipv4_addr", v4),
            _set("allowed6", "ipv6_addr", v6),
            _set("dns4", "ipv4_addr", dns4),
            _set("dns6", "ipv6_addr", dns6),
            *(_set(f"{name}4", "ipv4_addr", nets) for name, nets, _ in classes),
            *(_set(f"{name}6", "ipv6_addr", nets) for name, _, nets in classes),
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
        near = ", ".join(map(str, self.refused)) or "none"
        return (
            "egress guard on: LAN, loopback and metadata refused to jobs; "
            f"also this container's routes and addresses: {near}; "
            f"allowed {allowed}; DNS {dns}{opened}{notes}"
        )


#: What a refusal does: fail fast in the job (EACCES / "administratively prohibited").
REJECT = "reject with icmpx type admin-prohibited"


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
        *(
            f'{family} daddr @{name}{version} counter name "{name}" {REJECT}'
            for name in DROP_CLASSES
            for family, version in (("ip", 4), ("ip6", 6))
        ),
    ]
    body = "".join(f"    {rule}\n" for rule in rules)
    return f"  chain {name} {{\n{body}  }}"


def drop_counters(listing: str) -> dict[str, dict[str, int]]:
    """The named counters of table :data:`TABLE` in ``nft -j list counters table inet
    pipglr_egress`` output: ``{class: {"packets": n, "bytes": n}}``. Raises ValueError
    when ``listing`` is not such JSON."""
    try:
        data = json.loads(listing)
        entries = data["nftables"]
        if not isinstance(entries, list):
            raise TypeError("nftables is not a list")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not nft JSON ({exc})") from None
    found: dict[str, dict[str, int]] = {}
    for entry in entries:
        counter = entry.get("counter") if isinstance(entry, dict) else None
        if not isinstance(counter, dict) or counter.get("table") != TABLE:
            continue
        if counter.get("family", "inet") != "inet" or not isinstance(counter.get("name"), str):
            continue
        found[counter["name"]] = {
            "packets": int(counter.get("packets") or 0),
            "bytes": int(counter.get("bytes") or 0),
        }
    return found


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


#: ``git@host:group/project.git``: git's scp-like SSH syntax (no scheme).
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(\[[^\]]+\]|[^:/\[]+):(?!//)")


def _endpoint(url: str, reason: str, clone: bool) -> netboot.Opening | None:
    """Host and port of a GitLab URL: an http(s) URL's port (default 443/80); for a
    ``clone_url`` only, an ``ssh://`` URL's port (default 22) or an scp-like
    ``git@host:path``'s 22. None for anything else (the runner refuses it)."""
    if clone and (match := _SCP_LIKE.match(url)) and "://" not in url:
        return netboot.Opening(match[1].strip("[]"), SSH_PORT, f"{reason}, SSH")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    defaults = {"https": 443, "http": 80, **({"ssh": SSH_PORT} if clone else {})}
    if parts.scheme not in defaults or not parts.hostname:
        return None
    ssh = ", SSH" if parts.scheme == "ssh" else ""
    return netboot.Opening(parts.hostname, port or defaults[parts.scheme], reason + ssh)


def gitlab_endpoints(config_text: str | None, image_url: str) -> list[netboot.Opening]:
    """Host and port of the image's GITLAB_URL and of every runner's url / clone_url."""
    urls = [(image_url, "GitLab (GITLAB_URL)", False)]
    if config_text:
        try:
            runners = tomllib.loads(config_text).get("runners", [])
        except tomllib.TOMLDecodeError:
            runners = []  # the runner unit reports a malformed config
        for runner in runners if isinstance(runners, list) else []:
            urls += [(str(runner[key]), f"GitLab ({key})", key == "clone_url")
                     for key in ("url", "clone_url") if runner.get(key)]  # fmt: skip
    found = [_endpoint(url, reason, clone) for url, reason, clone in urls]
    unique: dict[tuple[str, int], netboot.Opening] = {}
    for item in found:
        if item:
            unique.setdefault((item.host, item.port), item)
    return list(unique.values())


def resolve(name: str) -> list[str]:
    """Every address ``name`` resolves to (raises OSError when it does not)."""
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _unsafe(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, link-local or unspecified (an IPv4-mapped IPv6 answer by its IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_link_local or address.is_unspecified


def _literal(entry: str) -> list[Net] | None:
    """An address or a CIDR as written (None: a name). A CIDR with host bits set
    (``10.1.2.3/8``) is a ConfigError naming the network it probably meant."""
    if "/" not in entry:
        try:
            return [ipaddress.ip_network(entry)]
        except ValueError:
            return None
    try:
        return [ipaddress.ip_network(entry)]
    except ValueError:
        pass
    try:
        meant = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ConfigError(f"{ALLOW_ENV} entry {entry!r} is not an address or a CIDR") from None
    single = entry.split("/")[0]
    raise ConfigError(
        f"{ALLOW_ENV} entry {entry!r} has host bits set: write {meant} for the network "
        f"(or {single} for the one address)"
    )


def _networks(entry: str, lookup: Resolver, patience: float, notes: list[str]) -> list[Net]:
    """``entry``'s networks: an address or CIDR as written, a name's answers (those
    :func:`_unsafe` dropped, and said in ``notes``); ConfigError when it does not
    resolve within ``patience``."""
    if (literal := _literal(entry)) is not None:
        return literal
    deadline = time.monotonic() + patience
    while True:
        try:
            answers = [ipaddress.ip_address(a) for a in lookup(entry)]
            break
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"{ALLOW_ENV} names {entry!r}, which does not resolve "
                    f"({exc.strerror or exc}): fix the name or give its address"
                ) from exc
            time.sleep(1)
    if dropped := [str(a) for a in answers if _unsafe(a)]:
        notes.append(f"{entry} resolves to {', '.join(dropped)}: never opened")
    return [ipaddress.ip_network(a) for a in answers if not _unsafe(a)]


def plan(
    env: Mapping[str, str],
    resolv_conf: str,
    config_text: str | None,
    image_url: str,
    lookup: Resolver = resolve,
    patience: float = RESOLVE_PATIENCE,
    openings: Sequence[netboot.Opening] = (),
    refused: Sequence[Net] = (),
) -> EgressPlan | None:
    """The guard's plan, or None when the operator turned it off. The GitLab URLs and
    ``openings`` (of the network settings) are resolved once; one that does not
    resolve is a note. ``refused``: the container's own routes and addresses
    (:func:`pipglr.guest.netroutes.local_networks`)."""
    switch = env.get(SWITCH_ENV, "on").strip().lower()
    if switch in ("off", "false", "0", "no"):
        return None
    if switch not in ("on", "true", "1", "yes", ""):
        raise ConfigError(f"{SWITCH_ENV}={switch!r}: use on or off")
    allowed: list[Net] = []
    notes: list[str] = []
    for entry in env.get(ALLOW_ENV, "").replace(",", " ").split():
        allowed += _networks(entry, lookup, patience, notes)
    opened: list[Opened] = []
    # GitLab matters only where it lives in a refused range; one that does not resolve
    # now is unreachable for the runner too: say so, but guard anyway.
    for item in [*gitlab_endpoints(config_text, image_url), *openings]:
        try:
            addresses = _networks(item.host, lookup, 0, notes)
        except ConfigError:
            notes.append(f"{item.host} ({item.reason}) does not resolve now: not opened")
            continue
        if addresses:
            opened.append(Opened(item.host, item.port, item.reason, tuple(addresses)))
    return EgressPlan(
        tuple(dict.fromkeys(allowed)), nameservers(resolv_conf), tuple(dict.fromkeys(notes)),
        tuple(opened), tuple(dict.fromkeys(refused)),
    )  # fmt: skip


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
    resolv = _read(Path("/etc/resolv.conf")) or ""
    near = netroutes.local_networks()
    chosen = plan(env, resolv, config, image_url, openings=openings, refused=near)
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
