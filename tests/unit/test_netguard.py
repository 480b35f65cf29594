"""pipglr.guest.netguard: what the egress guard allows, and the rules it writes."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipglr import netboot
from pipglr.errors import ConfigError
from pipglr.guest import netguard, netroutes

RESOLV = "# generated\nsearch example\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\n"
CONFIG = """
concurrent = 2
[[runners]]
url = "https://gitlab.lan:8443/"
clone_url = "http://git.lan/"
[[runners]]
url = "https://gitlab.lan:8443/"
"""
NAMES = {"gitlab.lan": ["192.168.1.20"], "git.lan": ["192.168.1.21", "fd00::21"],
         "registry.lan": ["10.1.2.3"], "gitlab.com": ["172.65.251.78"]}  # fmt: skip


#: The first refusal of a chain: the neighbourhood's, before the fixed classes.
FIRST_REJECT = 'ip daddr @neighbourhood4 counter name "neighbourhood" reject'


def lookup(name: str) -> list[str]:
    if name not in NAMES:
        raise OSError(-2, "Name or service not known")
    return NAMES[name]


def test_blocked_ranges_cover_lan_loopback_and_metadata() -> None:
    """Every range of the promise is blocked; a public address is not."""
    blocked = [
        "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "127.0.0.1", "::1", "fd00::1", "fe80::1",
    ]  # fmt: skip
    for text in blocked:
        address = ipaddress.ip_address(text)
        assert any(address in net for net in netguard.BLOCKED), text
    public = ipaddress.ip_address("203.0.113.80")
    assert not any(public in net for net in netguard.BLOCKED)


def test_plan_allows_listed_entries_and_opens_gitlab_on_its_ports_only() -> None:
    """The allow-list, resolved, on every port; the GitLab URLs of config.toml and the
    image each on its own port (fails on the old guard, which allowed every port of
    the GitLab hosts: control, the allow-list entries still are); DNS apart."""
    env = {netguard.ALLOW_ENV: "registry.lan, 10.9.0.0/16 192.168.7.7"}
    plan = netguard.plan(env, RESOLV, CONFIG, "https://gitlab.com/", lookup=lookup, patience=0)
    assert plan is not None
    assert [str(n) for n in plan.allowed] == ["10.1.2.3/32", "10.9.0.0/16", "192.168.7.7/32"]
    assert [(o.host, o.port, o.reason, [str(a) for a in o.addresses]) for o in plan.opened] == [
        ("gitlab.com", 443, "GitLab (GITLAB_URL)", ["172.65.251.78/32"]),
        ("gitlab.lan", 8443, "GitLab (url)", ["192.168.1.20/32"]),
        ("git.lan", 80, "GitLab (clone_url)", ["192.168.1.21/32", "fd00::21/128"]),
    ]
    assert [str(n) for n in plan.nameservers] == ["10.255.255.53/32", "fe80::1/128"]
    text = plan.ruleset()
    assert "ip daddr 192.168.1.20/32 tcp dport 8443 accept" in text
    assert "192.168.1.20" not in text.split("set allowed4", 1)[1].split("}", 1)[0]


@pytest.mark.parametrize(
    ("clone_url", "expected"),
    [
        ("ssh://git@git.lan:2222/group/project.git", ("git.lan", 2222, "GitLab (clone_url), SSH")),
        ("ssh://git.lan/group/project.git", ("git.lan", 22, "GitLab (clone_url), SSH")),
        ("git@git.lan:group/project.git", ("git.lan", 22, "GitLab (clone_url), SSH")),
        ("git@[fd00::21]:group/project.git", ("fd00::21", 22, "GitLab (clone_url), SSH")),
        ("https://git.lan/", ("git.lan", 443, "GitLab (clone_url)")),
    ],
)
def test_ssh_is_opened_only_for_an_ssh_clone_url(
    clone_url: str, expected: tuple[str, int, str]
) -> None:
    """Port 22 (or the ssh URL's port) only when a ``clone_url`` asks for SSH; an ssh
    ``url`` or GITLAB_URL opens nothing (the runner speaks HTTP(S) to it)."""
    config = f'[[runners]]\nurl = "ssh://gitlab.lan/"\nclone_url = "{clone_url}"\n'
    found = [(o.host, o.port, o.reason) for o in netguard.gitlab_endpoints(config, "ssh://x/")]
    assert found == [expected]


def test_gitlab_exception_without_ssh_has_no_port_22() -> None:
    """An http(s) clone_url: port 22 of the GitLab host stays refused (the old guard
    opened every port)."""
    plan = netguard.plan({}, "", CONFIG, "https://gitlab.com/", lookup=lookup, patience=0)
    assert plan is not None
    assert "dport 22 " not in plan.ruleset() and plan.allowed == ()


def test_loopback_and_link_local_answers_open_nothing() -> None:
    """A name that resolves to 127.0.0.1, 169.254.169.254, fe80::1, :: or
    ::ffff:127.0.0.1 opens none of them (fails on the old guard, which opened every
    answer); its other answers are opened (control), and the drop is noted."""
    names = {**NAMES, "gitlab.lan": ["127.0.0.1", "192.168.1.20", "::ffff:127.0.0.1"],
             "evil.lan": ["169.254.169.254", "fe80::1", "::", "0.0.0.0"]}  # fmt: skip
    config = '[[runners]]\nurl = "https://gitlab.lan/"\n'
    openings = [netboot.Opening("evil.lan", 5000, "mirror of docker.io")]
    plan = netguard.plan({netguard.ALLOW_ENV: "evil.lan"}, "", config, "https://gitlab.lan/",
                         lookup=names.__getitem__, patience=0, openings=openings)  # fmt: skip
    assert plan is not None
    assert plan.allowed == ()
    assert [(o.host, [str(a) for a in o.addresses]) for o in plan.opened] == [
        ("gitlab.lan", ["192.168.1.20/32"])
    ]
    text = plan.ruleset()
    for address in ("127.0.0.1", "169.254.169.254", "fe80::1", "::ffff:7f00:1"):
        assert f"{address}/" not in text.split("set neighbourhood4", 1)[0], address
        assert f"daddr {address}" not in text, address
    assert "gitlab.lan resolves to 127.0.0.1, ::ffff:7f00:1: never opened" in plan.notes
    assert "evil.lan resolves to 169.254.169.254, fe80::1, ::, 0.0.0.0: never opened" in (
        plan.notes
    )
    literal = netguard.plan({netguard.ALLOW_ENV: "169.254.169.254"}, "", None, "https://x.y/",
                            lookup=lookup, patience=0)  # fmt: skip
    assert literal is not None and [str(n) for n in literal.allowed] == ["169.254.169.254/32"], (
        "an address the operator writes is theirs to open"
    )


@pytest.mark.parametrize(
    ("entry", "meant"),
    [("10.1.2.3/8", "10.0.0.0/8"), ("192.168.1.7/24", "192.168.1.0/24"),
     ("fd00::5/64", "fd00::/64")],
)  # fmt: skip
def test_allow_entry_with_host_bits_is_refused_naming_the_network(entry: str, meant: str) -> None:
    """``10.1.2.3/8`` stops the guard with one line naming the entry and ``10.0.0.0/8``
    (fails on the old guard, which silently opened all of 10/8); a proper CIDR in the
    same list is accepted (control)."""
    good = netguard.plan({netguard.ALLOW_ENV: meant}, "", None, "https://x.y/", lookup=lookup)
    assert good is not None and [str(n) for n in good.allowed] == [meant]
    with pytest.raises(ConfigError) as caught:
        netguard.plan({netguard.ALLOW_ENV: f"{meant},{entry}"}, "", None, "https://x.y/",
                      lookup=lookup, patience=0)  # fmt: skip
    message = str(caught.value)
    assert "\n" not in message and repr(entry) in message and f"write {meant} " in message


def test_allow_entry_that_is_no_cidr_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'10.1.2/33' is not an address or a CIDR"):
        netguard.plan({netguard.ALLOW_ENV: "10.1.2/33"}, "", None, "https://x.y/", lookup=lookup)


def test_plan_is_off_only_when_asked() -> None:
    """``off`` disables the guard; an unknown value is a one-line error."""
    assert netguard.plan({netguard.SWITCH_ENV: "off"}, "", None, "https://gitlab.com/") is None
    with pytest.raises(ConfigError, match="PIPGLR_EGRESS_GUARD='maybe': use on or off"):
        netguard.plan({netguard.SWITCH_ENV: "maybe"}, "", None, "https://gitlab.com/")


def test_unresolvable_allow_entry_names_itself() -> None:
    """A typo in the allow-list stops the guard (and with it the jobs) with its name."""
    env = {netguard.ALLOW_ENV: "registy.lan"}
    with pytest.raises(ConfigError, match=r"'registy.lan', which does not resolve.*give its"):
        netguard.plan(env, RESOLV, None, "https://gitlab.com/", lookup=lookup, patience=0)


def test_unresolvable_gitlab_host_is_noted_not_fatal() -> None:
    """The runner cannot reach such a GitLab either; the guard still goes up."""
    plan = netguard.plan({}, "", None, "https://gitlab.nowhere/", lookup=lookup, patience=0)
    assert plan is not None and plan.allowed == () and plan.opened == ()
    assert plan.notes == ("gitlab.nowhere (GitLab (GITLAB_URL)) does not resolve now: not opened",)


def test_malformed_config_still_guards_with_the_image_url() -> None:
    """A config the runner will reject anyway does not leave the guard off."""
    plan = netguard.plan({}, "", "[[runners]\n", "https://gitlab.com/", lookup=lookup, patience=0)
    assert plan is not None and [(o.host, o.port) for o in plan.opened] == [("gitlab.com", 443)]


def test_container_environment_parses_proc_environ() -> None:
    raw = b"container=podman\0PIPGLR_EGRESS_ALLOW=10.0.0.1,a=b\0EMPTY=\0"
    env = netguard.container_environment(raw)
    assert env == {"container": "podman", netguard.ALLOW_ENV: "10.0.0.1,a=b", "EMPTY": ""}


def test_ruleset_exempts_root_and_runner_only_in_output() -> None:
    """The output chain lets root and the runner through; forwarded packets get no
    exemption; refusals are rejects (fast failure in jobs), after the allows."""
    plan = netguard.EgressPlan((ipaddress.ip_network("10.1.2.3/32"),), ())
    text = plan.ruleset()
    output, forward = text.split("chain output", 1)[1].split("chain forward", 1)
    assert "meta skuid { 0, 1000 } accept" in output
    assert "skuid" not in forward
    for chain in (output, forward):
        assert chain.index("@allowed4 accept") < chain.index(FIRST_REJECT)
    assert "elements = { 10.1.2.3/32 }" in text


@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root")
def test_ruleset_is_valid_nftables() -> None:
    """``nft --check`` (in a throw-away network namespace) accepts the rules."""
    plan = netguard.plan(
        {netguard.ALLOW_ENV: "registry.lan"}, RESOLV, CONFIG, "https://gitlab.com/",
        lookup=lookup, patience=0,
    )  # fmt: skip
    assert plan is not None
    result = subprocess.run(
        ["unshare", "-n", "nft", "--check", "-f", "-"],
        input=plan.ruleset(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


OPENINGS = [
    netboot.Opening("10.199.79.1", 5001, "mirror of docker.io"),
    netboot.Opening("registry.lan", 5000, "registry login registry.lan:5000"),
    netboot.Opening("git.lan", 3128, "proxy (HTTP_PROXY)"),
    netboot.Opening("mirror.nowhere", 443, "mirror of quay.io"),
]


def opened_plan() -> netguard.EgressPlan:
    plan = netguard.plan(
        {}, RESOLV, None, "https://gitlab.com/", lookup=lookup, patience=0, openings=OPENINGS
    )
    assert plan is not None
    return plan


def test_openings_are_resolved_and_port_limited() -> None:
    """Each opening: its addresses, its port; one that does not resolve is a note."""
    plan = opened_plan()
    assert [(o.host, o.port, [str(a) for a in o.addresses]) for o in plan.opened] == [
        ("gitlab.com", 443, ["172.65.251.78/32"]),
        ("10.199.79.1", 5001, ["10.199.79.1/32"]),
        ("registry.lan", 5000, ["10.1.2.3/32"]),
        ("git.lan", 3128, ["192.168.1.21/32", "fd00::21/128"]),
    ]
    assert plan.notes == ("mirror.nowhere (mirror of quay.io) does not resolve now: not opened",)
    assert plan.allowed == (), "not opened on every port"


def test_ruleset_opens_each_port_before_the_rejects_in_both_chains() -> None:
    text = opened_plan().ruleset()
    output, forward = text.split("chain output", 1)[1].split("chain forward", 1)
    for chain in (output, forward):
        for rule in (
            "ip daddr 10.199.79.1/32 tcp dport 5001 accept",
            "ip daddr 10.1.2.3/32 tcp dport 5000 accept",
            "ip6 daddr fd00::21/128 tcp dport 3128 accept",
        ):
            assert chain.index(rule) < chain.index(FIRST_REJECT), rule
    plain = netguard.EgressPlan((), ()).ruleset()
    assert "tcp dport" not in plain, "nothing opened without settings"


def test_summary_names_what_was_opened_and_why() -> None:
    line = opened_plan().summary()
    assert "; opened 10.199.79.1:5001 (mirror of docker.io)" in line
    assert "; opened registry.lan:5000 = 10.1.2.3 (registry login registry.lan:5000)" in line
    assert line.endswith("mirror.nowhere (mirror of quay.io) does not resolve now: not opened")


def test_write_opened_is_world_readable_json(tmp_path: Path) -> None:
    path = tmp_path / "run" / "egress-opened.json"
    netguard.write_opened(opened_plan().opened, path)
    assert path.stat().st_mode & 0o777 == 0o644
    entries = json.loads(path.read_text())
    assert entries[3] == {"host": "git.lan", "port": 3128, "reason": "proxy (HTTP_PROXY)",
                          "addresses": ["192.168.1.21", "fd00::21"]}  # fmt: skip
    assert len(entries) == 4


@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root")
def test_ruleset_with_openings_is_valid_nftables() -> None:
    """``nft --check`` accepts the port-limited accept rules too."""
    result = subprocess.run(
        ["unshare", "-n", "nft", "--check", "-f", "-"],
        input=opened_plan().ruleset(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    broken = opened_plan().ruleset().replace("tcp dport 5001", "tcp dport 99999")
    bad = subprocess.run(["unshare", "-n", "nft", "--check", "-f", "-"], input=broken,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert bad.returncode != 0, "the check can fail"


#: /proc/net/route of a rootless outer whose pasta copied the host's public LAN
#: 203.0.113.0/24 (gateway .1), with a podman bridge 10.88.0.0/16 beside it.
ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t017100CB\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t007100CB\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
podman0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""
#: /proc/net/ipv6_route (seen in a rootless outer: slirp4netns's fd00::/64 learnt by RA,
#: default via fe80::2), plus a pasta-copied global /64 and a reject route on lo.
IPV6_ROUTE = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000001 00000000 004c0001     tap0
2a0104f8000100020000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000001 00000000 00000001     tap0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000002 00000000 00000001     tap0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
fe800000000000000000000000000002 00000400 00000001 00000000 00450003     tap0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd000000000000004c0410fffeabed66 80 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000000 00000002 00000000 80200001     tap0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000004 00000000 00000001     tap0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
"""
FIB_TRIE = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 203.0.113.45\n        /32 host LOCAL\n"
IF_INET6 = "2a0104f8000100020000000000000045 02 40 00 00     tap0\n"


def test_connected_routes_of_both_families_and_gateways() -> None:
    """Every on-link destination but the default route, and the gateways; local,
    multicast, loopback and reject routes left out."""
    assert [str(n) for n in netroutes.connected_ipv4(ROUTE)] == [
        "203.0.113.1/32", "203.0.113.0/24", "10.88.0.0/16",
    ]  # fmt: skip
    assert [str(n) for n in netroutes.connected_ipv6(IPV6_ROUTE)] == [
        "fd00::/64", "2a01:4f8:1:2::/64", "fe80::/64", "fe80::2/128",
    ]  # fmt: skip


def test_local_networks_reads_proc_net_and_own_addresses(tmp_path: Path) -> None:
    """Routes of both families plus the own addresses (netroutes.own_addresses); a
    namespace without IPv6 (no ipv6_route, no if_inet6) gives the IPv4 part."""
    for name, text in (("route", ROUTE), ("ipv6_route", IPV6_ROUTE), ("fib_trie", FIB_TRIE),
                       ("if_inet6", IF_INET6)):  # fmt: skip
        (tmp_path / name).write_text(text)
    found = [str(n) for n in netroutes.local_networks(tmp_path)]
    assert "203.0.113.45/32" in found and "2a01:4f8:1:2::45/128" in found
    assert "2a01:4f8:1:2::/64" in found and "203.0.113.0/24" in found
    (tmp_path / "ipv6_route").unlink()
    (tmp_path / "if_inet6").unlink()
    assert all(ipaddress.ip_network(n).version == 4 for n in map(str, netroutes.local_networks(
        tmp_path)))  # fmt: skip


def near_plan() -> netguard.EgressPlan:
    """A plan for the container of :data:`ROUTE`/:data:`IPV6_ROUTE`: its nameserver
    and its GitLab are in its own connected routes."""
    names = {"gitlab.near": ["203.0.113.10", "2a01:4f8:1:2::10"]}
    refused = [*netroutes.connected_ipv4(ROUTE), *netroutes.connected_ipv6(IPV6_ROUTE),
               *netroutes.host_networks(["203.0.113.45", "2a01:4f8:1:2::45"])]  # fmt: skip
    plan = netguard.plan({}, "nameserver 203.0.113.1\n", None, "https://gitlab.near/",
                         lookup=names.__getitem__, patience=0, refused=refused)  # fmt: skip
    assert plan is not None
    return plan


def test_connected_routes_own_addresses_and_nat64_are_refused() -> None:
    """The container's connected routes (both families), its gateway (the host) and
    its own addresses are in the blocked sets, merged with the fixed ranges (fails on
    the old guard: it refused only fixed ranges); NAT64 and the documentation prefix
    too. Control: a public address outside them is in no set."""
    v4, v6 = near_plan().blocked()
    assert ipaddress.ip_network("203.0.113.0/24") in v4
    assert ipaddress.ip_network("2a01:4f8:1:2::/64") in v6
    for text in ("64:ff9b::a01:203", "64:ff9b:1::1", "2001:db8::1", "::", "0.1.2.3"):
        assert any(ipaddress.ip_address(text) in n for n in (*v4, *v6)), text
    assert ipaddress.ip_network("10.88.0.0/16") not in v4, "merged into 10.0.0.0/8"
    public = ipaddress.ip_address("198.51.100.7")
    assert not any(public in n for n in v4)
    line = near_plan().summary()
    assert "also this container's routes and addresses: 203.0.113.1/32, 203.0.113.0/24" in line


def test_dns_and_gitlab_stay_open_inside_a_connected_route() -> None:
    """Port-limited accepts (DNS on 53, GitLab on 443) come before the rejects in both
    chains, so a nameserver and a GitLab in the container's own LAN still answer."""
    text = near_plan().ruleset()
    output, forward = text.split("chain output", 1)[1].split("chain forward", 1)
    for chain in (output, forward):
        reject = chain.index(FIRST_REJECT)
        assert " reject " not in chain[:reject]
        for rule in ("ip daddr @dns4 meta l4proto { tcp, udp } th dport 53 accept",
                     "ip daddr 203.0.113.10/32 tcp dport 443 accept",
                     "ip6 daddr 2a01:4f8:1:2::10/128 tcp dport 443 accept"):  # fmt: skip
            assert chain.index(rule) < reject, rule


@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root")
def test_ruleset_with_routes_is_valid_nftables() -> None:
    """``nft --check`` accepts the merged sets (overlapping interval elements would be
    refused: the control feeds it an unmerged set)."""
    plan = near_plan()
    check = ["unshare", "-n", "nft", "--check", "-f", "-"]
    good = subprocess.run(check, input=plan.ruleset(), capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    name, near4, _ = plan.classes()[0]
    assert name == "neighbourhood" and len(near4) > 1
    merged = ", ".join(map(str, near4))
    broken = plan.ruleset().replace(merged, merged + ", 203.0.113.7/32")
    assert broken != plan.ruleset()
    bad = subprocess.run(check, input=broken, capture_output=True, text=True)
    assert bad.returncode != 0, "overlaps are refused"


# -- drop classes and their named counters -------------------------------------------------
#: One destination of each class, the class whose counter must count it, for the
#: container of :func:`near_plan` (its LANs 203.0.113.0/24 and fd00::/64 and its bridge
#: 10.88.0.0/16 are its neighbourhood: inside a fixed range, they count there first).
SAMPLES = {
    "203.0.113.9": "neighbourhood", "10.88.0.5": "neighbourhood",
    "2a01:4f8:1:2::99": "neighbourhood", "fd00::1": "neighbourhood",
    "127.0.0.1": "loopback", "127.1.2.3": "loopback", "::1": "loopback",
    "10.1.2.3": "private", "172.20.0.1": "private", "192.168.1.1": "private",
    "100.64.0.1": "private", "fd12::1": "private",
    "169.254.169.254": "link_local", "febf::1": "link_local",
    "0.1.2.3": "special", "64:ff9b::a01:203": "special", "64:ff9b:1::1": "special",
    "2001:db8::1": "special",
}  # fmt: skip
PUBLIC = ("198.51.100.7", "2a00:1450::1")


def first_class(plan: netguard.EgressPlan, text: str) -> str | None:
    """The class whose rule refuses ``text`` first (the rules' order), or None."""
    address = ipaddress.ip_address(text)
    for name, v4, v6 in plan.classes():
        if any(address in net for net in (v4 if address.version == 4 else v6)):
            return name
    return None


def test_every_class_has_a_named_counter_and_a_rule_per_family_in_both_chains() -> None:
    """One counter object per class (fails on the old guard: two anonymous counters),
    referenced by its own two rules in each chain; the neighbourhood's rules first."""
    text = near_plan().ruleset()
    head, chains = text.split("chain output", 1)
    output, forward = chains.split("chain forward", 1)
    assert netguard.DROP_CLASSES == ("neighbourhood", "loopback", "private", "link_local",
                                     "special")  # fmt: skip
    for name in netguard.DROP_CLASSES:
        assert head.count(f"  counter {name} {{ }}\n") == 1, name
        for chain in (output, forward):
            for family, version in (("ip", 4), ("ip6", 6)):
                rule = (f'{family} daddr @{name}{version} counter name "{name}" '
                        "reject with icmpx type admin-prohibited")  # fmt: skip
                assert chain.count(rule) == 1, (name, rule)
    for chain in (output, forward):
        rejects = [line.split("@", 1)[1].split()[0] for line in chain.splitlines()
                   if " reject " in line]  # fmt: skip
        assert rejects[:2] == ["neighbourhood4", "neighbourhood6"], rejects
        assert len(rejects) == 2 * len(netguard.DROP_CLASSES)
    assert "counter reject" not in text, "no anonymous counter is left"


def test_fixed_classes_split_blocked_without_overlap() -> None:
    """The fixed classes hold exactly :data:`BLOCKED`, and no two of them overlap (a
    destination counts in one class whatever the rule order)."""
    flat = [net for nets in netguard.BLOCKED_CLASSES.values() for net in nets]
    assert sorted(map(str, flat)) == sorted(map(str, netguard.BLOCKED))
    names = list(netguard.BLOCKED_CLASSES)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for x in netguard.BLOCKED_CLASSES[a]:
                for y in netguard.BLOCKED_CLASSES[b]:
                    assert x.version != y.version or not x.overlaps(y), (a, x, b, y)


def test_each_destination_meets_its_own_class_first() -> None:
    """By the rules' order, each sample destination is refused by its own class; a
    public address by none. Without a neighbourhood, the bridge address falls back to
    its fixed class."""
    plan = near_plan()
    for text, expected in SAMPLES.items():
        assert first_class(plan, text) == expected, text
    for text in PUBLIC:
        assert first_class(plan, text) is None, text
    bare = netguard.EgressPlan((), ())
    assert first_class(bare, "10.88.0.5") == "private"
    assert first_class(bare, "203.0.113.9") is None
    assert bare.classes()[0] == ("neighbourhood", [], [])


#: Run as root in a throw-away network namespace: every destination routed to lo,
#: the ruleset loaded, then a child with an unprivileged uid sends one UDP datagram
#: to each argument; prints the child's results and the counters as JSON.
KERNEL_PROBE = r"""
import json, os, socket, subprocess, sys
run = lambda *a: subprocess.run(a, check=True, capture_output=True, text=True)
run("ip", "link", "set", "lo", "up")
run("ip", "route", "add", "default", "dev", "lo")
run("ip", "-6", "route", "add", "default", "dev", "lo")
subprocess.run(["nft", "-f", "-"], input=sys.stdin.read(), check=True, text=True)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
    seen = {}
    for address in sys.argv[1:]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(b"x", (address, 9)); seen[address] = "sent"
            except OSError as exc:
                seen[address] = exc.strerror
    os.write(write, json.dumps(seen).encode()); os._exit(0)
os.close(write)
os.waitpid(pid, 0)
seen = json.loads(os.read(read, 65536))
counters = run("nft", "-j", "list", "counters", "table", "inet", "pipglr_egress").stdout
print(json.dumps({"seen": seen, "counters": counters}))
"""


@pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("nft", "ip", "unshare")) or os.geteuid() != 0,
    reason="needs nft, ip, unshare and root",
)
def test_refusals_are_counted_by_their_class_in_the_kernel() -> None:
    """Real packets of an unprivileged uid: each sample destination is refused and
    counted by its class's named counter only (neighbourhood first, so 10.88.0.5
    is not "private"); public addresses pass and are counted nowhere (control)."""
    import sys

    plan = near_plan()
    targets = [*SAMPLES, *PUBLIC]
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", KERNEL_PROBE, *targets],
        input=plan.ruleset(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    for text in SAMPLES:
        assert found["seen"][text] == "Operation not permitted", (text, found["seen"][text])
    for text in PUBLIC:
        assert found["seen"][text] == "sent", text
    drops = netguard.drop_counters(found["counters"])
    expected = {name: sum(1 for c in SAMPLES.values() if c == name)
                for name in netguard.DROP_CLASSES}  # fmt: skip
    assert {name: drops[name]["packets"] for name in drops} == expected
    assert all(drops[name]["bytes"] > 0 for name in netguard.DROP_CLASSES)


#: ``nft -j list counters table inet pipglr_egress`` as nftables 1.0.6 prints it.
COUNTERS_JSON = json.dumps({"nftables": [
    {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5",
                  "json_schema_version": 1}},
    {"counter": {"family": "inet", "name": "neighbourhood", "table": "pipglr_egress",
                 "handle": 3, "packets": 4, "bytes": 240}},
    {"counter": {"family": "inet", "name": "loopback", "table": "pipglr_egress",
                 "handle": 4, "packets": 0, "bytes": 0}},
    {"counter": {"family": "inet", "name": "private", "table": "pipglr_egress",
                 "handle": 5, "packets": 17, "bytes": 1020}},
    {"counter": {"family": "ip", "name": "private", "table": "other", "handle": 2,
                 "packets": 99, "bytes": 99}},
]})  # fmt: skip


def test_drop_counters_reads_nft_json() -> None:
    """Each named counter of the guard's table by name; another table's is left out."""
    assert netguard.drop_counters(COUNTERS_JSON) == {
        "neighbourhood": {"packets": 4, "bytes": 240},
        "loopback": {"packets": 0, "bytes": 0},
        "private": {"packets": 17, "bytes": 1020},
    }
    assert netguard.drop_counters('{"nftables": [{"metainfo": {}}]}') == {}
    for bad in ("", "nft: No such file", '{"nftables": 3}', "[]"):
        with pytest.raises(ValueError):
            netguard.drop_counters(bad)
