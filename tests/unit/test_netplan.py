"""pipglr.guest.netplan and systemdrun: nested networks that work inside the image."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from pipglr.guest import netplan, register, systemdrun
from pipglr.settings import BuildSettings

#: /proc/net/route of a rootful outer container on podman's default network
#: (10.88.0.0/16, gateway 10.88.0.1), as measured on the CI host.
ROOTFUL_ROUTES = """Iface	Destination	Gateway	Flags	RefCnt	Use	Metric	Mask	MTU	Window
eth0	00000000	0100580A	0003	0	0	100	00000000	0	0	0
eth0	0000580A	00000000	0001	0	0	0	0000FFFF	0	0	0
"""


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def test_outer_routes_are_read_without_the_default_route() -> None:
    """The connected /16 and the gateway are taken; 0.0.0.0/0 is not."""
    taken = netplan.outer_networks(ROOTFUL_ROUTES)
    assert taken == [net("10.88.0.1/32"), net("10.88.0.0/16")], taken


def test_rootful_outer_network_moves_the_nested_default_off_10_88() -> None:
    """The collision that made DNS in jobs time out is avoided."""
    plan = netplan.plan(netplan.outer_networks(ROOTFUL_ROUTES))
    assert plan.default == net("10.89.0.0/16") and plan.pool == net("10.90.0.0/16"), plan


def test_podman_defaults_stay_where_nothing_collides() -> None:
    """A rootless outer (slirp4netns 10.0.2.0/24) keeps podman's own subnets."""
    routes = ROOTFUL_ROUTES.replace("0100580A", "0202000A").replace("0000580A", "0002000A")
    routes = routes.replace("0000FFFF", "00FFFFFF")
    plan = netplan.plan(netplan.outer_networks(routes))
    assert (plan.default, plan.pool) == (net("10.88.0.0/16"), net("10.89.0.0/16")), plan


def test_nameservers_are_avoided() -> None:
    """A resolver inside a candidate subnet rules that subnet out."""
    taken = netplan.nameservers("nameserver 10.88.7.7\nnameserver fd00::1\nsearch x\n")
    assert taken == [net("10.88.7.7/32")]
    assert netplan.plan(taken).default == net("10.89.0.0/16")


def test_no_free_subnet_is_a_clear_error() -> None:
    """When every candidate collides, the error names the routes and the way out."""
    with pytest.raises(netplan.PipglrError, match="10.0.0.0/8"):
        netplan.plan([net("10.0.0.0/8"), net("172.16.0.0/12")])


def test_containers_conf_network_table() -> None:
    """The [network] table podman reads for the default and per-build networks."""
    text = netplan.SubnetPlan(net("10.89.0.0/16"), net("10.90.0.0/16")).containers_conf()
    assert 'default_subnet = "10.89.0.0/16"' in text
    assert 'default_subnet_pools = [{ base = "10.90.0.0/16", size = 24 }]' in text


def test_plan_for_this_container_reads_routes_and_resolvers(tmp_path: Path) -> None:
    """Both files feed the plan."""
    (tmp_path / "route").write_text(ROOTFUL_ROUTES)
    (tmp_path / "resolv").write_text("nameserver 10.89.0.53\n")
    plan = netplan.plan_for_this_container(tmp_path / "route", tmp_path / "resolv")
    assert plan.default == net("10.90.0.0/16"), plan


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["-q", "--scope", "--user", "/usr/lib/podman/aardvark-dns", "-p", "53", "run"],
         ["/usr/lib/podman/aardvark-dns", "-p", "53", "run"]),
        (["--unit=x", "-p", "Delegate=yes", "--", "cmd", "-q"], ["cmd", "-q"]),
    ],
)  # fmt: skip
def test_systemd_run_shim_finds_the_command(argv: list[str], command: list[str]) -> None:
    """The options netavark passes are skipped; the command's own options are kept."""
    assert systemdrun.command_of(argv) == command


def test_systemd_run_shim_refuses_unknown_options() -> None:
    """An option it does not know is an error, not a guess."""
    with pytest.raises(systemdrun.ShimError, match="--machine"):
        systemdrun.command_of(["--machine", "x", "cmd"])


def test_systemd_run_shim_hands_over_when_a_user_bus_exists(tmp_path: Path) -> None:
    """With a session bus the real systemd-run is used."""
    assert not systemdrun.user_bus_available({"XDG_RUNTIME_DIR": str(tmp_path)})
    (tmp_path / "bus").touch()
    assert systemdrun.user_bus_available({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert systemdrun.user_bus_available({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"})


def test_register_defaults_fit_podman_and_shared_hosts(tmp_path: Path) -> None:
    """Per-project cache dir, pull policy with local fallback, per-build networks."""
    args, _ = register.register_command(tmp_path, "glrt-x", BuildSettings().image_facts())
    joined = " ".join(args)
    assert "--docker-cache-dir /cache" in joined
    assert "--docker-pull-policy always --docker-pull-policy if-not-present" in joined
    assert "--feature-flags FF_NETWORK_PER_BUILD:true" in joined
    assert "FF_NETWORK_PER_BUILD=true" not in joined, "not as an environment entry"
    assert "--docker-volumes" not in args, "one /cache shared by every project"
