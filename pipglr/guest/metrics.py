"""``metrics``: the Prometheus exporter (``pipglr-metrics.service``, user podman).

Listens on ``0.0.0.0:layout.METRICS_PORT`` (``pipglr up --metrics`` publishes it):

``GET /metrics``
    pipglr's own metrics, computed from :func:`pipglr.guest.metricfacts.facts` at each
    scrape (the storage part is reused for :data:`metricfacts.STORAGE_TTL` seconds).
``GET /runner/metrics``
    the runner's own metrics, as root's collector last copied them
    (``layout.RUNNER_METRICS_COPY``; 503 when there is no fresh copy).

Names follow Prometheus' conventions; unknown facts are left out rather than guessed
(e.g. no ``pipglr_unit_*`` without the collector's file). Holds no secret, writes
nothing. Runs in the image: python3-prometheus-client is the Debian package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pipglr import layout
from pipglr.guest import metricfacts

#: What /metrics and /runner/metrics are: Prometheus's text format 0.0.4, which
#: ``generate_latest`` writes and the runner serves. Fixed, not prometheus_client's
#: CONTENT_TYPE_LATEST: from 0.22 on that names version 1.0.0 (Debian 12's Prometheus
#: 2.42 predates it), while the image's Debian library says 0.0.4.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"

Facts = Callable[[], dict[str, Any]]


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(name, doc, value=value)


def _storage(storage: dict[str, Any] | None) -> Iterator[Metric]:
    if storage is None:
        return
    usage = storage["usage"]
    used = GaugeMetricFamily(
        "pipglr_storage_used_bytes",
        "Bytes the nested storage's images, executor volumes and cache directories take",
        labels=["kind"],
    )
    for kind in ("images", "volumes", "cache", "total"):
        used.add_metric([kind], usage[kind])
    yield used
    cap = GaugeMetricFamily(
        "pipglr_storage_cap_bytes",
        "The evictor's cap on the nested storage (total) and on the cache directories",
        labels=["kind"],
    )
    cap.add_metric(["total"], storage["threshold"]["bytes"])
    if storage["cache_threshold"] is not None:
        cap.add_metric(["cache"], storage["cache_threshold"]["bytes"])
    yield cap
    yield GaugeMetricFamily(
        "pipglr_storage_filesystem_size_bytes",
        "Size of the file system holding the nested storage",
        value=usage["filesystem_size"],
    )
    yield GaugeMetricFamily(
        "pipglr_storage_filesystem_free_bytes",
        "Bytes free for the podman user on the nested storage's file system",
        value=usage["filesystem_free"],
    )
    yield GaugeMetricFamily(
        "pipglr_evictor_enabled", "1 when the evictor keeps the cap (PIPGLR_EVICTOR)",
        value=1 if storage["enabled"] else 0,
    )  # fmt: skip


def _evictor(stats: dict[str, Any]) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "pipglr_evictor_rounds_total", "Checks the evictor ran", value=stats["rounds"]
    )
    items = CounterMetricFamily(
        "pipglr_evicted_items_total", "Items the evictor removed", labels=["kind"]
    )
    size = CounterMetricFamily(
        "pipglr_evicted_bytes_total", "Bytes the evictor removed", labels=["kind"]
    )
    for kind, done in stats["evicted"].items():
        items.add_metric([kind], done["count"])
        size.add_metric([kind], done["bytes"])
    yield items
    yield size
    yield CounterMetricFamily(
        "pipglr_evictor_failures_total",
        "Items the evictor could not remove, and rounds that failed",
        value=stats["failures"],
    )
    yield from _gauge(
        "pipglr_evictor_last_run_timestamp_seconds",
        "When the evictor last ran a round",
        stats["last_run"],
    )


def _prune(stats: dict[str, Any]) -> Iterator[Metric]:
    yield CounterMetricFamily("pipglr_prune_runs_total", "Prune runs", value=stats["runs"])
    items = CounterMetricFamily(
        "pipglr_pruned_items_total", "What the prune removed", labels=["kind"]
    )
    for kind, count in stats["removed"].items():
        items.add_metric([kind], count)
    yield items
    yield CounterMetricFamily(
        "pipglr_pruned_bytes_total", "Bytes the prune reclaimed", value=stats["bytes"]
    )
    yield CounterMetricFamily(
        "pipglr_prune_failures_total", "Prune runs that failed", value=stats["failures"]
    )
    yield from _gauge(
        "pipglr_prune_last_run_timestamp_seconds", "When the prune last ran", stats["last_run"]
    )


def _collected(found: dict[str, Any], runner_up: bool | None) -> Iterator[Metric]:
    yield from _gauge(
        "pipglr_collector_last_run_timestamp_seconds",
        "When root's collector last wrote the units' and the guard's facts",
        found["last_run"],
    )
    if found["units"] is not None:
        active = GaugeMetricFamily(
            "pipglr_unit_active", "1 when the systemd unit is active", labels=["unit"]
        )
        restarts = CounterMetricFamily(
            "pipglr_unit_restarts_total",
            "Automatic restarts of the systemd unit (NRestarts)",
            labels=["unit"],
        )
        for unit, state in sorted(found["units"].items()):
            active.add_metric([unit], 1 if state["active"] == "active" else 0)
            restarts.add_metric([unit], state["restarts"])
        yield active
        yield restarts
    yield from _gauge(
        "pipglr_runner_up",
        "1 when the runner unit is running and has run for a few seconds without a restart",
        None if runner_up is None else int(runner_up),
    )
    runner = found["runner_metrics"]
    yield from _gauge(
        "pipglr_runner_metrics_up",
        "1 when the collector could read the runner's own metrics endpoint",
        None if runner is None else int(runner["ok"]),
    )
    guard = found["guard"]
    if guard is not None:
        yield GaugeMetricFamily(
            "pipglr_egress_guard_enabled",
            "1 when the nftables egress guard is in place",
            value=int(guard["enabled"]),
        )
        packets = CounterMetricFamily(
            "pipglr_egress_dropped_packets_total",
            "Packets the egress guard refused, per destination class",
            labels=["class"],
        )
        size = CounterMetricFamily(
            "pipglr_egress_dropped_bytes_total",
            "Bytes the egress guard refused, per destination class",
            labels=["class"],
        )
        for cls, drops in sorted(guard["drops"].items()):
            packets.add_metric([cls], drops["packets"])
            size.add_metric([cls], drops["bytes"])
        yield packets
        yield size


def _image(data: dict[str, Any]) -> Iterator[Metric]:
    info = InfoMetricFamily("pipglr_image", "The image's pipglr version and build arguments")
    labels = {"version": str(data["version"])}
    for key, value in sorted((data["image"] or {}).items()):
        if key != "version":
            labels[key] = str(value).lower() if isinstance(value, bool) else str(value)
    info.add_metric([], labels)
    yield info


def families(data: dict[str, Any]) -> Iterator[Metric]:
    """The metrics of one set of facts (:func:`metricfacts.facts`)."""
    yield from _storage(data["storage"])
    yield from _evictor(data["evictor"])
    yield from _prune(data["prune"])
    nested = data["nested"]
    yield from _gauge(
        "pipglr_nested_containers_running",
        "Nested containers (CI jobs and their services) running",
        nested["containers_running"],
    )
    yield GaugeMetricFamily(
        "pipglr_nested_api_up", "1 when the nested podman's API answers its ping",
        value=int(nested["api_up"]),
    )  # fmt: skip
    yield from _collected(data["collector"], data["runner"]["up"])
    expiry = GaugeMetricFamily(
        "pipglr_ca_certificate_expiry_timestamp_seconds",
        "When each CA certificate of the network settings expires",
        labels=["name", "subject"],
    )
    for cert in data["cas"]:
        expiry.add_metric([cert["name"], cert["subject"]], cert["not_after"])
    yield expiry
    yield from _image(data)


class FactsCollector(Collector):
    """A prometheus_client collector: the facts of each scrape as metrics."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts

    def collect(self) -> Iterator[Metric]:
        yield from families(self.facts())


def exposition(data: dict[str, Any]) -> bytes:
    """The text format (0.0.4) of one set of facts."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FactsCollector(lambda: data))
    return generate_latest(registry)


INDEX = (
    b"pipglr exporter\n"
    b"/metrics         pipglr's own metrics\n"
    b"/runner/metrics  the runner's own metrics (its listen_address, relayed)\n"
)


def handler(facts: Facts, runner_copy: Path) -> type[BaseHTTPRequestHandler]:
    """The request handler: ``/metrics``, ``/runner/metrics``, ``/``; 404 otherwise."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FactsCollector(facts))

    class Handler(BaseHTTPRequestHandler):
        server_version = "pipglr-metrics"
        timeout = 30  # seconds a connection may idle before it is closed

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            text = "text/plain; charset=utf-8"
            if path == "/metrics":
                self._reply(200, generate_latest(registry), TEXT_FORMAT)
            elif path == "/runner/metrics":
                try:
                    body = runner_copy.read_bytes()
                except OSError:
                    self._reply(503, b"no fresh copy of the runner's metrics\n", text)
                else:
                    self._reply(200, body, TEXT_FORMAT)
            elif path == "/":
                self._reply(200, INDEX, text)
            else:
                self._reply(404, b"not found: try /metrics or /runner/metrics\n", text)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base's name
            """No line per request (Prometheus scrapes every few seconds)."""

    return Handler


def server(
    facts: Facts,
    address: tuple[str, int] = ("0.0.0.0", layout.METRICS_PORT),  # noqa: S104 - see the module
    runner_copy: Path = Path(str(layout.RUNNER_METRICS_COPY)),
) -> ThreadingHTTPServer:
    """The exporter's HTTP server, bound (port 0: any free one), not yet serving."""
    httpd = ThreadingHTTPServer(address, handler(facts, runner_copy))
    httpd.daemon_threads = True
    return httpd


def serve(log: Callable[[str], None]) -> None:
    """The service: serve until stopped."""
    cache = metricfacts.StorageCache()
    httpd = server(lambda: metricfacts.facts(cache=cache))
    host, port = httpd.server_address[:2]
    log(f"metrics exporter on {host!s}:{port}: /metrics, /runner/metrics")
    httpd.serve_forever()
