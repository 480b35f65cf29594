"""The egress guard: real jobs cannot reach the LAN, link-local (cloud metadata) or
shared-address ranges, while the configured GitLab, an allow-listed host and a
public destination keep answering (pipglr/guest/netguard.py).

Targets are only test hosts this module creates on this machine
(:mod:`tests.harness.lan`) and the Debian mirror (the one outside name a control may
touch). Each refusal has its positive control: the same host answers the test
process and the outer container's root, from the very network namespace the job's
packets leave through; and the guard's reject counter rises with the job's tries.
A refusal must be the kind the guard gives (:mod:`tests.image.probes`): its ICMP
admin-prohibited reaches a prober in the outer namespace as "unreachable", and a job
(through pasta) as "refused" — never a timeout or another error.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipglr import layout
from pipglr.guest import netguard
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab, lan
from tests.harness.joblog import JobLog, describe
from tests.harness.netns import TestHost
from tests.image.conftest import Pipglr, queue
from tests.image.probes import PROBE, Outcome, outcomes

pytestmark = [pytest.mark.image, pytest.mark.security]

#: A public destination: the Debian mirror (through the container's nameserver).
MIRROR = "http://deb.debian.org/debian/dists/trixie/Release.gpg"


def targets(hosts: dict[str, TestHost]) -> list[str]:
    return [f"{name}={lan.url(host)}" for name, host in hosts.items()]


#: How a blocked host's refusal reaches a prober in the outer network namespace
#: (the podman user): the guard's ICMP admin-prohibited, EHOSTUNREACH.
REFUSED_OUTSIDE = "unreachable"
#: ... and to a job: pasta carries the job's connection through its own socket in the
#: outer namespace, gets that EHOSTUNREACH, and resets the job's connection (seen on
#: both outer modes: ECONNREFUSED, at once, not a timeout).
REFUSED_IN_JOB = "refused"


def job_results(job: dict[str, Any]) -> dict[str, Outcome]:
    """The probe's outcomes from a job's log."""
    return outcomes(JobLog.of(job).output())


def answered(outcome: Outcome, name: str) -> bool:
    """The LAN test host ``name`` itself answered (its body names it)."""
    return outcome.kind == "answered" and outcome.detail == f"200 lan-host {name}"


def rejected(pipglr: Pipglr) -> int:
    """Packets the guard has refused so far (its named counters, one per destination
    class, shared by the output and forward hooks)."""
    listing = pipglr.outer.exec(pipglr.name, "nft", "-j", "list", "counters", "table", "inet",
                                netguard.TABLE)  # fmt: skip
    return sum(c["packets"] for c in netguard.drop_counters(listing.stdout).values())


def probe_as(pipglr: Pipglr, user: str, hosts: dict[str, TestHost]) -> dict[str, Outcome]:
    result = pipglr.outer.exec(pipglr.name, str(layout.PYTHON), "-c", PROBE, *targets(hosts),
                               user=user)  # fmt: skip
    return outcomes(result.stdout.splitlines())


def test_guard_is_on_and_says_what_it_allows(pipglr: Pipglr) -> None:
    """The unit is active and its journal line names the allow-list and the GitLab host."""
    journal = pipglr.journal(layout.EGRESS_UNIT)
    assert "egress guard on" in journal, journal[-2000:]
    assert gitlab.HOST.address in journal, journal[-2000:]
    for entry in lan.ALLOW_LIST.split(","):
        assert entry in journal, journal[-2000:]


def test_outer_root_and_runner_reach_the_lan(
    pipglr: Pipglr, lan_hosts: dict[str, TestHost]
) -> None:
    """Positive control from the outer network namespace: root and the runner (exempt)
    get an answer from every LAN test host."""
    for user in ("root", layout.RUNNER.name):
        seen = probe_as(pipglr, user, lan_hosts)
        assert seen.keys() == lan_hosts.keys(), seen
        wrong = {n: str(r) for n, r in seen.items() if not answered(r, n)}
        assert not wrong, f"as {user}: {wrong}"


def test_podman_user_is_refused_the_lan(pipglr: Pipglr, lan_hosts: dict[str, TestHost]) -> None:
    """What a job becomes in the outer namespace (the podman user, e.g. a job with host
    networking, or pasta carrying a job's connection) is refused every blocked host
    but reaches the allow-listed one."""
    seen = probe_as(pipglr, layout.PODMAN.name, lan_hosts)
    assert seen.keys() == lan_hosts.keys(), seen
    for name in lan.BLOCKED:
        assert seen[name].kind == REFUSED_OUTSIDE, f"{name}: {seen[name]}"
    assert answered(seen["allowed"], "allowed"), seen


def test_jobs_reach_gitlab_allowed_and_public_hosts_but_not_the_lan(
    pipglr: Pipglr, fake_gitlab: Client, lan_hosts: dict[str, TestHost]
) -> None:
    """A real job tries every LAN test host, the GitLab URL and the Debian mirror:
    blocked ranges are refused (and the guard counted the refusals), the allow-listed
    host, GitLab and the mirror answer."""
    before = rejected(pipglr)
    probes = [*targets(lan_hosts), f"gitlab={gitlab.URL}", f"mirror={MIRROR}"]
    job_id = queue(fake_gitlab, pipglr, name="egress", script=[
        "python3 -c \"$PROBE\" " + " ".join(probes),
    ], variables={"PROBE": PROBE})  # fmt: skip
    job = fake_gitlab.wait(job_id, timeout=240)
    assert job["state"] == "success", describe(job)
    seen = job_results(job)
    assert seen.keys() == {*lan_hosts, "gitlab", "mirror"}, describe(job, 3000)
    for name in lan.BLOCKED:
        assert seen[name].kind == REFUSED_IN_JOB, f"{name}: {seen[name]}"
    assert answered(seen["allowed"], "allowed"), seen
    assert seen["gitlab"].kind == "answered", seen["gitlab"]
    assert str(seen["mirror"]).startswith("answered 200"), seen["mirror"]
    assert rejected(pipglr) >= before + len(lan.BLOCKED), "the guard refused the tries"


def outer_has_ipv6(pipglr: Pipglr) -> bool:
    """The outer container has an IPv6 default route (rootless: slirp4netns and pasta
    give one; podman 4.3's rootful default network is IPv4 only)."""
    routes = pipglr.outer.exec(pipglr.name, "cat", "/proc/net/ipv6_route").stdout
    return any(
        line.split()[:2] == ["0" * 32, "00"] and not line.rstrip().endswith(" lo")
        for line in routes.splitlines()
    )


def test_podman_user_is_refused_the_ipv6_lan(
    pipglr: Pipglr, lan_hosts: dict[str, TestHost]
) -> None:
    """IPv6: the podman user (a job with host networking, pasta carrying a job) is
    refused the unique-local test host but reaches the allow-listed one; controls:
    the test process and the outer container's root reach both, from the same
    namespace. Skipped where the outer container has no IPv6 route (rootful here)."""
    del lan_hosts  # served (with the IPv6 hosts) by the fixture
    hosts = {**lan.BLOCKED6, **lan.ALLOWED6}
    for name, host in hosts.items():
        assert lan.answers(host) == f"lan-host {name}", "control: the test reaches it"
    if not outer_has_ipv6(pipglr):
        pytest.skip("the outer container has no IPv6 route (rootful default network)")
    root = probe_as(pipglr, "root", hosts)
    assert all(answered(root[n], n) for n in hosts), f"control: root {root}"
    before = rejected(pipglr)
    seen = probe_as(pipglr, layout.PODMAN.name, hosts)
    assert seen["ula6"].kind == REFUSED_OUTSIDE, seen
    assert answered(seen["allowed6"], "allowed6"), seen
    assert rejected(pipglr) > before, "the guard refused the try"


def test_a_job_cannot_reach_the_ipv6_lan(
    pipglr: Pipglr, fake_gitlab: Client, lan_hosts: dict[str, TestHost]
) -> None:
    """A real job tries the IPv6 test hosts: whatever path it has (none on a per-build
    IPv4 network, pasta's where IPv6 reaches the outer container), the unique-local host
    never answers it, while the test process reaches it (control). Where the job has
    IPv6 at all, the allow-listed IPv6 host answers it (the guard, not a missing
    route, made the difference); the log says which (``ipv6-path``)."""
    del lan_hosts
    hosts = {**lan.BLOCKED6, **lan.ALLOWED6}
    for name, host in hosts.items():
        assert lan.answers(host) == f"lan-host {name}", "control: the test reaches it"
    job_id = queue(fake_gitlab, pipglr, name="egress-ipv6", script=[
        "python3 -c \"$PROBE\" " + " ".join(targets(hosts)),
    ], variables={"PROBE": PROBE})  # fmt: skip
    job = fake_gitlab.wait(job_id, timeout=240)
    assert job["state"] == "success", describe(job)
    seen = job_results(job)
    assert seen.keys() == hosts.keys(), describe(job, 3000)
    assert seen["ula6"].kind != "answered", seen
    if seen["allowed6"].kind == "answered":
        assert answered(seen["allowed6"], "allowed6"), seen
        assert seen["ula6"].kind == REFUSED_IN_JOB, seen
    else:  # no IPv6 route in the job: both fail alike, before the guard
        assert seen["allowed6"].kind == seen["ula6"].kind == "unreachable", seen
