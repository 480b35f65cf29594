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
from pipglr.guest import netguard

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


def test_plan_allows_gitlab_hosts_and_listed_entries() -> None:
    """URL hosts of config.toml and the image, then the allow-list, resolved; DNS apart."""
    env = {netguard.ALLOW_ENV: "registry.lan, 10.9.0.0/16 192.168.7.7"}
    plan = netguard.plan(env, RESOLV, CONFIG, "https://gitlab.com/", lookup=lookup, patience=0)
    assert plan is not None
    assert [str(n) for n in plan.allowed] == [
        "172.65.251.78/32", "192.168.1.20/32", "192.168.1.21/32", "fd00::21/128",
        "10.1.2.3/32", "10.9.0.0/16", "192.168.7.7/32",
    ]  # fmt: skip
    assert [str(n) for n in plan.nameservers] == ["10.255.255.53/32", "fe80::1/128"]


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
    assert plan is not None and plan.allowed == ()
    assert plan.notes == ("GitLab host 'gitlab.nowhere' does not resolve now: not allowed",)


def test_malformed_config_still_guards_with_the_image_url() -> None:
    """A config the runner will reject anyway does not leave the guard off."""
    plan = netguard.plan({}, "", "[[runners]\n", "https://gitlab.com/", lookup=lookup, patience=0)
    assert plan is not None and [str(n) for n in plan.allowed] == ["172.65.251.78/32"]


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
        assert chain.index("@allowed4 accept") < chain.index("@blocked4 counter reject")
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
        ("10.199.79.1", 5001, ["10.199.79.1/32"]),
        ("registry.lan", 5000, ["10.1.2.3/32"]),
        ("git.lan", 3128, ["192.168.1.21/32", "fd00::21/128"]),
    ]
    assert plan.notes == ("mirror.nowhere (mirror of quay.io) does not resolve now: not opened",)
    assert [str(n) for n in plan.allowed] == ["172.65.251.78/32"], "not opened on every port"


def test_ruleset_opens_each_port_before_the_rejects_in_both_chains() -> None:
    text = opened_plan().ruleset()
    output, forward = text.split("chain output", 1)[1].split("chain forward", 1)
    for chain in (output, forward):
        for rule in (
            "ip daddr 10.199.79.1/32 tcp dport 5001 accept",
            "ip daddr 10.1.2.3/32 tcp dport 5000 accept",
            "ip6 daddr fd00::21/128 tcp dport 3128 accept",
        ):
            assert chain.index(rule) < chain.index("@blocked4 counter reject"), rule
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
    assert entries[2] == {"host": "git.lan", "port": 3128, "reason": "proxy (HTTP_PROXY)",
                          "addresses": ["192.168.1.21", "fd00::21"]}  # fmt: skip
    assert len(entries) == 3


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
