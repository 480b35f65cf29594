"""pipglr.guest.metricfacts and pipglr.guest.metrics: the exporter's facts from fake
sources, their exposition parsed back, and the HTTP server on a loopback port."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipglr import __version__, layout
from pipglr.errors import PipglrError
from pipglr.guest import cli, evictor, metricfacts, metrics, storagereport
from pipglr.guest.inventory import Inventory
from pipglr.guest.lastuse import LastUse
from pipglr.settings import BuildSettings

NOW = 1_700_000_000.0
RUNNER = layout.RUNNER_SERVICE_UNIT


class FakeContainers:
    def __init__(self, running: int) -> None:
        self.running = running
        self.asked: list[dict[str, Any]] = []

    def list(self, **kw: Any) -> list[object]:
        self.asked.append(kw)
        if kw.get("filters") == {"status": "running"}:
            return [object() for _ in range(self.running)]
        return []  # every container (the report's uses): none


class FakeList:
    def list(self, **kw: Any) -> list[object]:
        return []


class FakeClient:
    """What the facts ask the nested API: running containers and ``system df``."""

    def __init__(self, running: int = 2) -> None:
        self.containers = FakeContainers(running)
        self.images = self.volumes = FakeList()
        self.df_calls = 0

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def df(self) -> dict[str, Any]:
        self.df_calls += 1
        return {
            "ImagesSize": 7000,
            "Volumes": [{"VolumeName": "runner-abc-cache-1", "Size": 500},
                        {"VolumeName": "someone-elses", "Size": 99}],
        }  # fmt: skip


def _du(tmp_path: Path) -> Any:
    def run(argv: Any) -> Any:
        import subprocess

        out = f"300\t{int(NOW)}\t{tmp_path / 'cache' / 'group-project'}\n"
        return subprocess.CompletedProcess(list(argv), 0, out, "")

    return run


def _settings(threshold: str) -> evictor.Settings:
    return evictor.Settings.from_env({"PIPGLR_CACHE_THRESHOLD": "250"}, threshold)


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


COLLECTED = {
    "time": NOW - 5,
    "units": {
        RUNNER: {"active": "active", "sub": "running", "restarts": 3, "since": NOW - 60},
        layout.PODMAN_SERVICE_UNIT: {"active": "failed", "sub": "failed", "restarts": 1,
                                     "since": None},
    },
    "guard": {"enabled": True, "drops": {"loopback": {"packets": 4, "bytes": 240},
                                         "private": {"packets": 1, "bytes": 60}}},
    "runner_metrics": {"ok": True, "error": None, "address": "127.0.0.1:9252"},
}  # fmt: skip
EVICTOR = {
    "rounds": 5, "evicted": {"image": {"count": 2, "bytes": 2048}, "cache": {"count": 1}},
    "failures": 1, "last_run": NOW - 100, "last_failure": NOW - 200, "last_error": "busy",
}  # fmt: skip
PRUNE = {
    "runs": 3, "removed": {"containers": 4, "images": 1, "networks": 0, "volumes": 2},
    "bytes": 12345, "failures": 0, "last_run": NOW - 3600, "last_failure": None,
}  # fmt: skip
CAS = [
    {"name": "company-root", "subject": "CN=Company Root", "not_after": NOW + 86400,
     "fingerprint": "ab:cd"},
    {"name": "broken", "subject": "CN=x"},  # no expiry: left out
]  # fmt: skip


def sources(tmp_path: Path, fake: FakeClient | None = None, **over: Any) -> metricfacts.Sources:
    """Every source in tmp_path, filled with the samples above unless ``over`` says."""
    (tmp_path / "cache" / "group-project").mkdir(parents=True, exist_ok=True)
    files = {
        "collected": COLLECTED, "evictor_stats": EVICTOR, "prune_stats": PRUNE, "cas": CAS,
        "image_facts": BuildSettings(storage_threshold="8000", runner_version="v17.5.0")
        .image_facts(),
    }  # fmt: skip
    paths = {name: _write(tmp_path / f"{name}.json", data) for name, data in files.items()}
    client = fake or FakeClient()
    values: dict[str, Any] = {
        "client": lambda: client,
        "inventory": lambda c: Inventory(c, tmp_path / "cache", tmp_path, _du(tmp_path)),
        "settings": _settings,
        "ping": lambda: None,
        "clock": lambda: NOW,
        **paths,
    }
    values.update(over)
    return metricfacts.Sources(**values)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def types(text: bytes) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text.decode())}


def test_storage_facts_are_what_the_storage_report_shows(tmp_path: Path) -> None:
    """The exporter's usage and caps are the head of ``storage-report --json`` on the
    same nested API, cache directories and settings (executor volumes only)."""
    src = sources(tmp_path)
    data = metricfacts.facts(src)
    assert data["storage"]["usage"] == {
        "images": 7000, "volumes": 500, "cache": 300, "total": 7800,
        "filesystem_size": data["storage"]["usage"]["filesystem_size"],
        "filesystem_free": data["storage"]["usage"]["filesystem_free"],
    }  # fmt: skip
    assert data["storage"]["usage"]["filesystem_size"] > 0
    inventory = src.inventory(src.client())
    report = storagereport.report(inventory, LastUse(tmp_path / "b.json"), _settings("8000"), NOW)
    for key in ("enabled", "threshold", "cache_threshold"):
        assert data["storage"][key] == report[key]
    assert {k: v for k, v in data["storage"]["usage"].items() if not k.startswith("filesystem")} \
        == {k: v for k, v in report["usage"].items() if not k.startswith("filesystem")}  # fmt: skip
    assert data["storage"]["threshold"]["bytes"] == 8000
    assert data["storage"]["cache_threshold"]["bytes"] == 250
    json.dumps(data)  # JSON-able, as metrics-facts --json prints it


def test_facts_from_every_source(tmp_path: Path) -> None:
    client = FakeClient(running=3)
    data = metricfacts.facts(sources(tmp_path, client))
    assert data["nested"] == {"api_up": True, "error": None, "containers_running": 3}
    assert client.containers.asked[0] == {"filters": {"status": "running"}}
    assert data["runner"] == {"up": True}
    assert data["collector"]["units"][RUNNER]["restarts"] == 3
    assert data["collector"]["guard"]["drops"]["loopback"] == {"packets": 4, "bytes": 240}
    assert data["evictor"]["evicted"]["cache"] == {"count": 1, "bytes": 0}
    assert data["evictor"]["evicted"]["volume"] == {"count": 0, "bytes": 0}
    assert data["evictor"]["last_error"] == "busy"
    assert data["prune"]["removed"]["volumes"] == 2 and data["prune"]["last_failure"] is None
    assert [c["name"] for c in data["cas"]] == ["company-root"]
    assert data["image"]["runner_version"] == "v17.5.0" and data["version"] == __version__


def test_exposition_names_labels_and_values(tmp_path: Path) -> None:
    text = metrics.exposition(metricfacts.facts(sources(tmp_path)))
    got = samples(text)
    expected = {
        ("pipglr_storage_used_bytes", (("kind", "images"),)): 7000,
        ("pipglr_storage_used_bytes", (("kind", "volumes"),)): 500,
        ("pipglr_storage_used_bytes", (("kind", "cache"),)): 300,
        ("pipglr_storage_used_bytes", (("kind", "total"),)): 7800,
        ("pipglr_storage_cap_bytes", (("kind", "total"),)): 8000,
        ("pipglr_storage_cap_bytes", (("kind", "cache"),)): 250,
        ("pipglr_evictor_enabled", ()): 1,
        ("pipglr_evictor_rounds_total", ()): 5,
        ("pipglr_evicted_items_total", (("kind", "image"),)): 2,
        ("pipglr_evicted_bytes_total", (("kind", "image"),)): 2048,
        ("pipglr_evicted_items_total", (("kind", "cache"),)): 1,
        ("pipglr_evicted_items_total", (("kind", "volume"),)): 0,
        ("pipglr_evictor_failures_total", ()): 1,
        ("pipglr_evictor_last_run_timestamp_seconds", ()): NOW - 100,
        ("pipglr_prune_runs_total", ()): 3,
        ("pipglr_pruned_items_total", (("kind", "containers"),)): 4,
        ("pipglr_pruned_items_total", (("kind", "networks"),)): 0,
        ("pipglr_pruned_bytes_total", ()): 12345,
        ("pipglr_prune_failures_total", ()): 0,
        ("pipglr_prune_last_run_timestamp_seconds", ()): NOW - 3600,
        ("pipglr_nested_containers_running", ()): 2,
        ("pipglr_nested_api_up", ()): 1,
        ("pipglr_unit_active", (("unit", RUNNER),)): 1,
        ("pipglr_unit_active", (("unit", layout.PODMAN_SERVICE_UNIT),)): 0,
        ("pipglr_unit_restarts_total", (("unit", RUNNER),)): 3,
        ("pipglr_runner_up", ()): 1,
        ("pipglr_runner_metrics_up", ()): 1,
        ("pipglr_egress_guard_enabled", ()): 1,
        ("pipglr_egress_dropped_packets_total", (("class", "loopback"),)): 4,
        ("pipglr_egress_dropped_bytes_total", (("class", "private"),)): 60,
        ("pipglr_ca_certificate_expiry_timestamp_seconds",
         (("name", "company-root"), ("subject", "CN=Company Root"))): NOW + 86400,
        ("pipglr_collector_last_run_timestamp_seconds", ()): NOW - 5,
    }  # fmt: skip
    for key, value in expected.items():
        assert got.get(key) == value, key
    assert got[("pipglr_storage_filesystem_size_bytes", ())] > 0
    assert ("pipglr_storage_filesystem_free_bytes", ()) in got
    info = [labels for (name, labels) in got if name == "pipglr_image_info"]
    assert len(info) == 1 and got[("pipglr_image_info", info[0])] == 1
    labels = dict(info[0])
    assert labels["version"] == __version__ and labels["runner_version"] == "v17.5.0"
    assert labels["build_type"] == "prod" and labels["nested_privileged"] == "false"
    assert "base_image" in labels and "storage_threshold" in labels
    kinds = types(text)
    assert kinds["pipglr_evictor_rounds"] == "counter"
    assert kinds["pipglr_image_info"] == "gauge"  # 0.0.4 has no info type
    assert kinds["pipglr_storage_used_bytes"] == kinds["pipglr_runner_up"] == "gauge"
    assert kinds["pipglr_egress_dropped_packets"] == kinds["pipglr_unit_restarts"] == "counter"


def test_without_the_collectors_file_unit_metrics_are_absent(tmp_path: Path) -> None:
    """No collected.json (or a malformed or stale one): the unit, runner and guard
    metrics are unknown, so left out; the rest is served."""
    absent = sources(tmp_path, collected=tmp_path / "missing.json")
    malformed = sources(tmp_path, collected=_write(tmp_path / "bad.json", "{not json"))
    stale = sources(tmp_path, clock=lambda: NOW + metricfacts.COLLECTOR_STALE_SECONDS + 10)
    gone = ("pipglr_unit_active", "pipglr_unit_restarts_total", "pipglr_runner_up",
            "pipglr_runner_metrics_up", "pipglr_egress_guard_enabled",
            "pipglr_egress_dropped_packets_total")  # fmt: skip
    for src in (absent, malformed, stale):
        names = {name for name, _ in samples(metrics.exposition(metricfacts.facts(src)))}
        assert not names & set(gone), names & set(gone)
        assert {"pipglr_storage_used_bytes", "pipglr_nested_api_up", "pipglr_image_info",
                "pipglr_evictor_rounds_total"} <= names  # fmt: skip
    stale_names = {n for n, _ in samples(metrics.exposition(metricfacts.facts(stale)))}
    assert "pipglr_collector_last_run_timestamp_seconds" in stale_names


def test_absent_stats_files_are_zeros(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.json"
    src = sources(tmp_path, evictor_stats=missing, prune_stats=missing, cas=missing)
    got = samples(metrics.exposition(metricfacts.facts(src)))
    assert got[("pipglr_evictor_rounds_total", ())] == 0
    assert got[("pipglr_evicted_bytes_total", (("kind", "cache"),))] == 0
    assert got[("pipglr_pruned_items_total", (("kind", "images"),))] == 0
    assert ("pipglr_evictor_last_run_timestamp_seconds", ()) not in got
    assert not [n for n, _ in got if n.startswith("pipglr_ca_")]


@pytest.mark.parametrize(
    ("unit", "up"),
    [
        ({"active": "active", "sub": "running", "restarts": 0, "since": NOW - 60}, True),
        ({"active": "active", "sub": "running", "restarts": 0, "since": NOW - 1}, False),
        ({"active": "activating", "sub": "auto-restart", "restarts": 9, "since": None}, False),
        ({"active": "active", "sub": "running", "restarts": 0, "since": None}, False),
    ],
)
def test_runner_up_means_running_and_settled(
    tmp_path: Path, unit: dict[str, Any], up: bool
) -> None:
    collected = _write(tmp_path / "c.json", {**COLLECTED, "units": {RUNNER: unit}})
    data = metricfacts.facts(sources(tmp_path, collected=collected))
    assert data["runner"]["up"] is up


def test_api_down_leaves_storage_and_containers_unknown(tmp_path: Path) -> None:
    def down() -> None:
        raise PipglrError("podman API socket /run/pipglr/podman.sock: No such file")

    def no_client() -> Any:
        raise AssertionError("the API is not asked when its ping failed")

    data = metricfacts.facts(sources(tmp_path, ping=down, client=no_client))
    assert data["nested"]["api_up"] is False and "No such file" in data["nested"]["error"]
    assert data["storage"] is None and data["storage_error"].startswith("nested API")
    got = samples(metrics.exposition(data))
    assert got[("pipglr_nested_api_up", ())] == 0
    assert ("pipglr_nested_containers_running", ()) not in got
    assert not [n for n, _ in got if n.startswith("pipglr_storage_")]
    assert got[("pipglr_runner_up", ())] == 1  # the rest is served


def test_a_failing_storage_measurement_is_unknown_not_an_error(tmp_path: Path) -> None:
    class BrokenDf(FakeClient):
        def df(self) -> dict[str, Any]:
            raise OSError("connection reset")

    data = metricfacts.facts(sources(tmp_path, BrokenDf()))
    assert data["storage"] is None and data["storage_error"] == "storage: connection reset"
    assert data["nested"]["containers_running"] == 2


def test_the_storage_part_is_cached_for_a_while(tmp_path: Path) -> None:
    client = FakeClient()
    clock = [0.0]
    cache = metricfacts.StorageCache(ttl=10.0, clock=lambda: clock[0])
    src = sources(tmp_path, client)
    for when in (0.0, 5.0, 9.9):
        clock[0] = when
        metricfacts.facts(src, cache)
    assert client.df_calls == 1
    clock[0] = 10.0
    metricfacts.facts(src, cache)
    assert client.df_calls == 2
    assert len(client.containers.asked) == 4  # the count is asked at each scrape


def test_metrics_facts_prints_json_or_the_exposition(tmp_path: Path) -> None:
    src = sources(tmp_path)
    data = json.loads(metricfacts.main(["--json"], src))
    assert data["nested"]["containers_running"] == 2 and data["runner"]["up"] is True
    assert "pipglr_nested_api_up 1.0" in metricfacts.main([], src).splitlines()


def test_the_guest_cli_dispatches_the_metrics_verbs(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []
    monkeypatch.setattr(metricfacts, "main", lambda args: asked.append(args) or "{}")
    monkeypatch.setattr(metrics, "serve", lambda log: asked.append(["serve"]))
    assert cli.main(["metrics-facts", "--json"]) == 0
    assert cli.main(["metrics"]) == 0
    assert asked == [["--json"], ["serve"]]


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The exporter on an ephemeral loopback port, with the sample facts."""
    src = sources(tmp_path)
    copy = tmp_path / "runner.prom"
    httpd = metrics.server(lambda: metricfacts.facts(src), ("127.0.0.1", 0), copy)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", copy
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_the_server_answers_metrics(exporter: tuple[str, Path]) -> None:
    base, _ = exporter
    status, content_type, body = _get(f"{base}/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert samples(body)[("pipglr_nested_containers_running", ())] == 2


def test_the_server_relays_the_runners_metrics_copy(exporter: tuple[str, Path]) -> None:
    base, copy = exporter
    status, _, body = _get(f"{base}/runner/metrics")
    assert status == 503 and body.count(b"\n") == 1
    copy.write_bytes(b"# TYPE gitlab_runner_jobs gauge\ngitlab_runner_jobs 2\n")
    status, content_type, body = _get(f"{base}/runner/metrics")
    assert status == 200 and body == copy.read_bytes() and "version=0.0.4" in content_type


def test_the_server_has_an_index_and_404s_the_rest(exporter: tuple[str, Path]) -> None:
    base, _ = exporter
    status, _, body = _get(f"{base}/")
    assert status == 200 and b"/runner/metrics" in body
    assert _get(f"{base}/secrets")[0] == 404
    assert _get(f"{base}/metrics/../etc/passwd")[0] == 404


def test_a_client_that_cannot_be_made_is_an_error_line_not_a_crash(tmp_path: Path) -> None:
    def refused() -> Any:
        raise ValueError("bad base_url")

    data = metricfacts.facts(sources(tmp_path, client=refused))
    assert data["nested"]["error"] == "nested API: bad base_url"
    assert data["nested"]["containers_running"] is None and data["storage"] is None
