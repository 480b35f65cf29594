"""The egress guard: real jobs cannot reach the LAN, link-local (cloud metadata) or
shared-address ranges, while the configured GitLab, an allow-listed host and a
public destination keep answering (pipglr/guest/netguard.py).

Targets are only test hosts this module creates on this machine
(:mod:`tests.harness.lan`) and the Debian mirror (the one outside name a control may
touch). Each refusal has its positive control: the same host answers the test
process and the outer container's root, from the very network namespace the job's
packets leave through; and the guard's reject counter rises with the job's tries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from pipglr import layout
from pipglr.guest import netguard
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab, lan, sets
from tests.harness.netns import TestHost
from tests.image.conftest import Pipglr, queue

pytestmark = [pytest.mark.image, pytest.mark.security]

#: Fetch each NAME=URL argument (HEAD, 5 s timeout); one line per target.
FETCH = (
    "import sys,urllib.request as u\n"
    "for arg in sys.argv[1:]:\n"
    "  name, url = arg.split('=', 1)\n"
    "  try:\n"
    "    with u.urlopen(u.Request(url), timeout=5) as r: body = r.read(200)\n"
    "    print('egress', name, 'answered', r.status, body.decode(errors='replace').strip())\n"
    "  except u.HTTPError as e: print('egress', name, 'answered', e.code)\n"
    "  except Exception as e: print('egress', name, 'refused:', e)\n"
)
#: A public destination: the Debian mirror (through the container's nameserver).
MIRROR = "http://deb.debian.org/debian/dists/trixie/Release.gpg"


@pytest.fixture(scope="module")
def lan_hosts() -> Iterator[dict[str, TestHost]]:
    """The LAN test hosts, each answering the test process (the first control); served
    by the coordinator when the suite runs as sets."""
    if sets.shared():
        yield lan.attach()
        return
    with lan.serving() as hosts:
        yield hosts


def targets(hosts: dict[str, TestHost]) -> list[str]:
    return [f"{name}={lan.url(host)}" for name, host in hosts.items()]


def results(text: str) -> dict[str, str]:
    """``name → answered ...|refused: ...`` from the probe's output."""
    return dict(re.findall(r"(?m)^egress (\S+) ((?:answered|refused:).*)$", text))


def rejected(pipglr: Pipglr) -> int:
    """Packets the guard has refused so far (both reject counters of the output hook)."""
    table = pipglr.outer.exec(pipglr.name, "nft", "list", "table", "inet", netguard.TABLE)
    output = table.stdout.split("chain output", 1)[1].split("chain forward", 1)[0]
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", output))


def probe_as(pipglr: Pipglr, user: str, hosts: dict[str, TestHost]) -> dict[str, str]:
    result = pipglr.outer.exec(pipglr.name, str(layout.PYTHON), "-c", FETCH, *targets(hosts),
                               user=user)  # fmt: skip
    return results(result.stdout)


def test_guard_is_on_and_says_what_it_allows(pipglr: Pipglr) -> None:
    """The unit is active and its journal line names the allow-list and the GitLab host."""
    journal = pipglr.journal(layout.EGRESS_UNIT)
    assert "egress guard on" in journal, journal[-2000:]
    assert gitlab.HOST.address in journal and lan.ALLOW_LIST in journal, journal[-2000:]


def test_outer_root_and_runner_reach_the_lan(
    pipglr: Pipglr, lan_hosts: dict[str, TestHost]
) -> None:
    """Positive control from the outer network namespace: root and the runner (exempt)
    get an answer from every LAN test host."""
    for user in ("root", layout.RUNNER.name):
        seen = probe_as(pipglr, user, lan_hosts)
        assert seen.keys() == lan_hosts.keys(), seen
        wrong = {n: r for n, r in seen.items() if r != f"answered 200 lan-host {n}"}
        assert not wrong, f"as {user}: {wrong}"


def test_podman_user_is_refused_the_lan(pipglr: Pipglr, lan_hosts: dict[str, TestHost]) -> None:
    """What a job becomes in the outer namespace (the podman user, e.g. a job with host
    networking, or pasta carrying a job's connection) is refused every blocked host
    but reaches the allow-listed one."""
    seen = probe_as(pipglr, layout.PODMAN.name, lan_hosts)
    assert seen.keys() == lan_hosts.keys(), seen
    for name in lan.BLOCKED:
        assert seen[name].startswith("refused:"), (name, seen[name])
    assert seen["allowed"] == "answered 200 lan-host allowed", seen


def test_jobs_reach_gitlab_allowed_and_public_hosts_but_not_the_lan(
    pipglr: Pipglr, fake_gitlab: Client, lan_hosts: dict[str, TestHost]
) -> None:
    """A real job tries every LAN test host, the GitLab URL and the Debian mirror:
    blocked ranges are refused (and the guard counted the refusals), the allow-listed
    host, GitLab and the mirror answer."""
    before = rejected(pipglr)
    probes = [*targets(lan_hosts), f"gitlab={gitlab.URL}", f"mirror={MIRROR}"]
    job_id = queue(fake_gitlab, pipglr, name="egress", script=[
        "python3 -c \"$FETCH\" " + " ".join(probes),
    ], variables={"FETCH": FETCH})  # fmt: skip
    job = fake_gitlab.wait(job_id, timeout=240)
    trace = job.get("trace", "")
    assert job["state"] == "success", trace[-2000:]
    seen = results(trace)
    assert seen.keys() == {*lan_hosts, "gitlab", "mirror"}, trace[-3000:]
    for name in lan.BLOCKED:
        assert seen[name].startswith("refused:"), (name, seen[name])
    assert seen["allowed"] == "answered 200 lan-host allowed", seen
    assert seen["gitlab"].startswith("answered"), seen["gitlab"]
    assert seen["mirror"].startswith("answered 200"), seen["mirror"]
    assert rejected(pipglr) >= before + len(lan.BLOCKED), "the guard refused the tries"


def test_a_privileged_job_cannot_remove_the_guard(
    pipglr: Pipglr, fake_gitlab: Client, lan_hosts: dict[str, TestHost]
) -> None:
    """A privileged job flushes every nftables rule it can see — its own namespace's —
    then tries the LAN again: still refused, and the outer table is intact."""
    blocked = lan.BLOCKED["private10"]
    job_id = queue(fake_gitlab, pipglr, name="unguard", script=[
        "nft flush ruleset && echo flushed",
        f"nft delete table inet {netguard.TABLE} || echo no-such-table-here",
        f"python3 -c \"$FETCH\" private10={lan.url(blocked)}",
    ], variables={"FETCH": FETCH})  # fmt: skip
    job = fake_gitlab.wait(job_id, timeout=240)
    trace = job.get("trace", "")
    assert job["state"] == "success", trace[-2000:]
    assert "\nflushed" in trace and "no-such-table-here" in trace, trace[-2000:]
    assert results(trace)["private10"].startswith("refused:"), trace[-2000:]
    table = pipglr.outer.exec(pipglr.name, "nft", "list", "table", "inet", netguard.TABLE)
    assert "@blocked4 counter" in table.stdout, table.stdout
