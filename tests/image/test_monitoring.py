"""Monitoring: a real Prometheus scrapes the session's pipglr through its published
metrics port (``pipglr up --metrics``), in both outer modes.

Debian's ``prometheus`` runs on a free loopback port of this machine
(:mod:`tests.harness.prometheus`) with the two jobs of
``examples/monitoring/prometheus.yml`` (pipglr's facts, the runner's relayed metrics)
and the shipped alert rules, their ``for:`` shortened to seconds (the expressions are
the shipped ones). What is asked is asked in PromQL, as an operator's dashboard would:
the storage usage against ``pipglr storage --json``; a job's containers in the running
series; an eviction in its counter; a job's refused LAN probe in the guard's drop
counter; the storage alert firing on a forced 1-byte cap. And the metrics port, which
answers root in the container, does not answer a job.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipglr import __version__, layout
from tests.fakegitlab.ctl import Client
from tests.harness import lan, prometheus
from tests.harness.joblog import JobLog, describe
from tests.harness.netns import TestHost
from tests.image.conftest import Pipglr, queue, trace_until
from tests.image.infra import unavailable
from tests.image.probes import PROBE, outcomes
from tests.image.test_egress import REFUSED_IN_JOB
from tests.image.test_storage import EVICTOR, KEEP, build, report, tune

pytestmark = [pytest.mark.image]

REPO = Path(__file__).resolve().parents[2]
ALERT_RULES = REPO / "examples" / "monitoring" / "pipglr-alerts.yml"
RECORD = REPO / "build" / "test-logs"
#: The LAN test host the job's probe is refused (its class in the guard's counters).
LAN_TARGET, LAN_CLASS = "private10", "private"


@pytest.fixture(scope="module")
def prom(
    pipglr: Pipglr, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[prometheus.Prometheus]:
    """Prometheus scraping the session container every second, the rules loaded."""
    if not prometheus.available():
        unavailable(prometheus.MISSING)
    assert pipglr.metrics_address, "the session container publishes its metrics port"
    workdir = tmp_path_factory.mktemp(f"prometheus-{pipglr.outer.mode}")
    rules = workdir / "pipglr-alerts.yml"
    rules.write_text(prometheus.hurried_rules(ALERT_RULES.read_text()))
    with prometheus.serve(workdir, pipglr.metrics_address, [rules]) as server:
        server.wait("both scrape jobs up", lambda: _all_up(server), timeout=90)
        yield server


def _all_up(server: prometheus.Prometheus) -> bool:
    health = server.targets_up()
    return len(health) == 2 and all(state.startswith("up") for state in health.values())


def scraped(pipglr: Pipglr, path: str = "/metrics") -> str:
    """What a scrape of the published port gets now."""
    url = f"http://{pipglr.metrics_address}{path}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


def value(prom: prometheus.Prometheus, expr: str) -> float:
    """``expr``'s value now; 0 when there is no series yet (a counter never touched)."""
    found = prom.value(expr)
    return 0.0 if found is None else found


def test_prometheus_scrapes_pipglr_and_the_runner(
    prom: prometheus.Prometheus, pipglr: Pipglr
) -> None:
    """Both scrape jobs are up; the facts say the runner, the nested API and the guard
    are up, and name this image; the runner's own metrics come through the same port."""
    assert prom.value("pipglr_runner_up") == 1
    assert prom.value("pipglr_nested_api_up") == 1
    assert prom.value(f'pipglr_unit_active{{unit="{layout.RUNNER_SERVICE_UNIT}"}}') == 1
    assert prom.value("pipglr_egress_guard_enabled") == 1
    info = prom.query("pipglr_image_info")
    assert [series["metric"].get("version") for series in info] == [__version__], info
    runner = prom.query('{job="gitlab-runner", __name__=~"gitlab_runner_.+"}')
    assert runner, "the runner's own metrics are scraped through /runner/metrics"
    own, relayed = scraped(pipglr), scraped(pipglr, "/runner/metrics")
    RECORD.mkdir(parents=True, exist_ok=True)
    (RECORD / f"monitoring-{pipglr.outer.mode}.txt").write_text(
        f"== GET /metrics\n{own}\n== GET /runner/metrics\n{relayed}\n"
    )


def test_the_storage_usage_is_what_pipglr_storage_reports(
    prom: prometheus.Prometheus, pipglr: Pipglr
) -> None:
    """``pipglr_storage_used_bytes`` per kind and the cap equal ``pipglr storage
    --json``'s, read while the storage stands still (the same usage before and after
    the query; a query from an older measurement that differs is asked again)."""
    last: tuple[Any, ...] = ()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        before = report(pipglr)
        queried = {
            kind: prom.value(f'pipglr_storage_used_bytes{{kind="{kind}"}}')
            for kind in ("images", "volumes", "cache", "total")
        }
        cap = prom.value('pipglr_storage_cap_bytes{kind="total"}')
        after = report(pipglr)
        expected = {kind: before["usage"][kind] for kind in queried}
        still = {kind: after["usage"][kind] for kind in queried}
        last = (queried, cap, expected, still, before["threshold"]["bytes"])
        if expected == still and queried == expected:
            assert cap == before["threshold"]["bytes"], last
            return
        time.sleep(1)  # the exporter measures at most every 10 s: the next scrapes catch up
    pytest.fail(f"Prometheus and `pipglr storage --json` never agreed: {last}")


@pytest.fixture(scope="module")
def probe_job(
    prom: prometheus.Prometheus, pipglr: Pipglr, fake_gitlab: Client, lan_hosts: dict[str, TestHost]
) -> dict[str, Any]:
    """One job that probes a LAN host and the container's own metrics port, then
    holds for a while; the series before, during and after it."""
    target = lan_hosts[LAN_TARGET]
    assert lan.answers(target) == f"lan-host {LAN_TARGET}", "the LAN host answers this machine"
    port = layout.METRICS_PORT
    # The container's own address, and the host as a job's podman names it (pasta
    # carries that to the outer container's namespace, where the exporter listens).
    ports = {"own": f"http://{own_address(pipglr)}:{port}/metrics",
             "host": f"http://host.containers.internal:{port}/metrics"}  # fmt: skip
    root_sees = pipglr.outer.exec(pipglr.name, str(layout.PYTHON), "-c", PROBE,
                                  f"own={ports['own']}").stdout  # fmt: skip
    drops = f'pipglr_egress_dropped_packets_total{{class="{LAN_CLASS}"}}'
    running = "pipglr_nested_containers_running"
    before = {"drops": value(prom, drops), "running": value(prom, running)}
    job_id = queue(fake_gitlab, pipglr, name="monitored", script=[
        "python3 -c \"$PROBE\" " + f"lan={lan.url(target)} "
        + " ".join(f"{name}={url}" for name, url in ports.items()),
        "echo probed", "sleep 8",
    ], variables={"PROBE": PROBE})  # fmt: skip
    trace_until(fake_gitlab, job_id, "probed", timeout=240)
    during = prom.wait("the job's containers in the running series",
                       lambda: (v := value(prom, running)) > before["running"] and v,
                       30)  # fmt: skip
    job = fake_gitlab.wait(job_id, timeout=120)
    assert job["state"] == "success", describe(job)
    after_job = prom.wait("the job's containers gone from the running series",
                          lambda: (v := value(prom, running)) <= before["running"] and str(v),
                          60)  # fmt: skip
    return {
        "mode": pipglr.outer.mode,
        "root": outcomes(root_sees.splitlines()),
        "job": outcomes(JobLog.of(job).output()),
        "before": before, "during": during, "after": float(after_job),
        "drops": prom.wait("the guard's drops counted",
                           lambda: (v := value(prom, drops)) > before["drops"] and v, 30),
    }  # fmt: skip


def own_address(pipglr: Pipglr) -> str:
    """The outer container's first own IPv4 address (its eth0 or tap)."""
    code = "from pipglr.guest import netroutes; print(netroutes.own_addresses()[0])"
    found = pipglr.outer.exec(pipglr.name, str(layout.PYTHON), "-c", code).stdout.strip()
    assert found and ":" not in found, found
    return found


def test_a_job_shows_in_the_running_containers_series(probe_job: dict[str, Any]) -> None:
    """While the job runs the series is above what it was before, and back after."""
    assert probe_job["during"] > probe_job["before"]["running"], probe_job
    assert probe_job["after"] <= probe_job["before"]["running"], probe_job
    RECORD.mkdir(parents=True, exist_ok=True)


def test_a_refused_lan_probe_from_a_job_is_counted_by_class(probe_job: dict[str, Any]) -> None:
    """The LAN host (which answers this machine: the fixture's control) is refused to
    the job, and the guard's drop counter of its class rose."""
    assert probe_job["job"]["lan"].kind == REFUSED_IN_JOB, probe_job["job"]
    assert probe_job["drops"] > probe_job["before"]["drops"], probe_job


def test_the_metrics_port_is_not_reachable_from_a_job(probe_job: dict[str, Any]) -> None:
    """Root in the container gets the metrics at the container's own address (the
    control: the exporter listens there); the job, trying that address and the host
    its podman names, gets no answer from either."""
    root = probe_job["root"]["own"]
    assert root.kind == "answered" and root.detail.startswith("200"), root
    seen = probe_job["job"]
    (RECORD / f"monitoring-probes-{probe_job['mode']}.txt").write_text(
        "".join(f"{name}: {outcome}\n" for name, outcome in seen.items())
    )
    assert seen.keys() >= {"own", "host"}, seen
    for name in ("own", "host"):
        assert seen[name].kind != "answered", f"{name}: {seen[name]}"
        assert seen[name].kind in ("refused", "unreachable", "timed-out"), f"{name}: {seen[name]}"


def test_an_eviction_is_counted_and_the_storage_alert_fires(
    prom: prometheus.Prometheus, pipglr: Pipglr
) -> None:
    """With the default cap no storage alert is pending or firing (the control); a
    1-byte cap evicts an unused image (its counter rises) while the kept images hold
    the storage over the cap, and PipglrStorageOverCap fires."""
    assert not _alert(prom, "PipglrStorageOverCap"), prom.alerts()
    evicted = 'sum(pipglr_evicted_items_total{kind="image"})'
    before = value(prom, evicted)
    image = build(pipglr, "monitor-evict", size=100_000)
    assert image in {i["names"][0] for i in report(pipglr)["items"] if i["names"]}
    tune(pipglr, EVICTOR, {"PIPGLR_STORAGE_THRESHOLD": "1", "PIPGLR_EVICT_MIN_AGE": "0",
                           "PIPGLR_EVICT_KEEP": KEEP, "PIPGLR_EVICT_INTERVAL": "5s"})  # fmt: skip
    try:
        prom.wait("the eviction counted", lambda: value(prom, evicted) > before, 90)
        names = {n for i in report(pipglr)["items"] for n in i["names"]}
        assert image not in names, sorted(names)
        fired = prom.wait("PipglrStorageOverCap firing",
                          lambda: _alert(prom, "PipglrStorageOverCap", "firing"), 90)  # fmt: skip
        (RECORD / f"monitoring-alert-{pipglr.outer.mode}.txt").write_text(
            json.dumps(fired, indent=1) + "\n"
        )
    finally:
        tune(pipglr, EVICTOR, None)


def _alert(
    prom: prometheus.Prometheus, name: str, state: str | None = None
) -> list[dict[str, Any]]:
    return [a for a in prom.alerts() if a["labels"].get("alertname") == name
            and (state is None or a["state"] == state)]  # fmt: skip
