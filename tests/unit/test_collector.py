"""pipglr.guest.collector: root's round for the metrics exporter, on injected inputs."""

from __future__ import annotations

import http.server
import json
import stat
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pipglr import layout
from pipglr.build import units
from pipglr.guest import cli, collector, netguard
from pipglr.settings import BuildSettings

#: ``systemctl show --timestamp=unix --property=... UNIT...`` of systemd 257: one
#: block per unit, the Service interface's properties before the Unit's.
SHOW = """\
NRestarts=0
Id=pipglr-runner.service
ActiveState=active
SubState=running
ActiveEnterTimestamp=@1764787152
ActiveEnterTimestampMonotonic=8123456

NRestarts=3
Id=pipglr-podman.service
ActiveState=activating
SubState=auto-restart
ActiveEnterTimestamp=
ActiveEnterTimestampMonotonic=0

NRestarts=0
Id=pipglr-egress.service
ActiveState=active
SubState=exited
ActiveEnterTimestamp=Wed 2025-12-03 18:19:12 UTC
ActiveEnterTimestampMonotonic=2000000
"""
UNITS = ["pipglr-egress.service", "pipglr-runner.service", "pipglr-podman.service",
         "pipglr-gone.service"]  # fmt: skip


def test_parse_show_gives_each_unit_its_state_by_id() -> None:
    """Blocks are matched by Id, not by order; ``@SECONDS`` is the start; another
    format falls back to the monotonic stamp (now - (monotonic now - stamp)); never
    active: null; a unit without a block is unknown."""
    found = collector.parse_show(SHOW, UNITS, now=1_000_000.0, monotonic_now=12.0)
    assert found["pipglr-runner.service"] == {"active": "active", "sub": "running",
                                              "restarts": 0, "since": 1764787152.0}  # fmt: skip
    assert found["pipglr-podman.service"] == {"active": "activating", "sub": "auto-restart",
                                              "restarts": 3, "since": None}  # fmt: skip
    assert found["pipglr-egress.service"]["since"] == pytest.approx(1_000_000.0 - 10.0)
    assert found["pipglr-gone.service"] == {"active": "unknown", "sub": "unknown",
                                            "restarts": 0, "since": None}  # fmt: skip
    assert list(found) == UNITS


def test_service_units_are_the_layouts_services() -> None:
    services = collector.service_units()
    assert layout.RUNNER_SERVICE_UNIT in services and layout.COLLECTOR_UNIT in services
    assert layout.PRUNE_TIMER_UNIT not in services and layout.PODMAN_SOCKET_UNIT not in services
    assert set(services) == {u for u in layout.ALL_UNITS if u.endswith(".service")}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, layout.RUNNER_LISTEN_ADDRESS),
        ("concurrent = 2\n", layout.RUNNER_LISTEN_ADDRESS),
        ('listen_address = "127.0.0.1:9300"\n', "127.0.0.1:9300"),
        ('listen_address = "0.0.0.0:9252"\n', "127.0.0.1:9252"),
        ('listen_address = "[::]:9252"\n', "127.0.0.1:9252"),
        ('listen_address = ":9400"\n', "127.0.0.1:9400"),
        ('listen_address = "[::1]:9252"\n', "[::1]:9252"),
        ('listen_address = ""\n', layout.RUNNER_LISTEN_ADDRESS),
        ("[[runners]\n", layout.RUNNER_LISTEN_ADDRESS),
        ('[[runners]]\nlisten_address = "10.0.0.1:1"\n', layout.RUNNER_LISTEN_ADDRESS),
    ],
)
def test_listen_address_from_the_working_copy(config: str | None, expected: str) -> None:
    """The global key only (a runner's table does not count); wildcards and an empty
    host on loopback; malformed or absent: the default."""
    assert collector.listen_address(config) == expected


class Metrics(http.server.BaseHTTPRequestHandler):
    body = b"# HELP gitlab_runner_version_info x\ngitlab_runner_version_info 1\n"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path != "/metrics":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_reads_the_body_within_the_limit(metrics_server: str) -> None:
    """The body as served; over the limit is refused (control: the same body passes
    at its own size); nothing listening is an OSError."""
    size = len(Metrics.body)
    assert collector.fetch(metrics_server, limit=size) == Metrics.body
    with pytest.raises(ValueError, match=f"exceed {size - 1} bytes"):
        collector.fetch(metrics_server, limit=size - 1)
    host, port = metrics_server.rsplit(":", 1)
    with pytest.raises(OSError):
        collector.fetch(f"{host}:1", timeout=2)


def test_runner_metrics_copy_is_replaced_or_removed(tmp_path: Path, metrics_server: str) -> None:
    """A fetch writes the copy (0644); a failed one removes the old copy and says why
    in one line."""
    copy = tmp_path / "runner.prom"
    assert collector.runner_metrics(metrics_server, copy) == {
        "ok": True, "error": None, "address": metrics_server}  # fmt: skip
    assert copy.read_bytes() == Metrics.body and stat.S_IMODE(copy.stat().st_mode) == 0o644
    failed = collector.runner_metrics("127.0.0.1:1", copy)
    assert failed["ok"] is False and not copy.exists()
    assert "\n" not in failed["error"] and "refused" in failed["error"].lower(), failed


class FakeSystem:
    """``systemctl`` and ``nft`` of a container; ``table`` False: no guard table."""

    def __init__(self, table: bool = True) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if argv[0] == "systemctl":
            return subprocess.CompletedProcess(argv, 0, SHOW, "")
        if argv[0] == "nft" and self.table:
            counters = [{"counter": {"family": "inet", "name": name, "table": netguard.TABLE,
                                     "handle": 3 + i, "packets": i, "bytes": 60 * i}}
                        for i, name in enumerate(netguard.DROP_CLASSES)]  # fmt: skip
            return subprocess.CompletedProcess(argv, 0, json.dumps({"nftables": counters}), "")
        return subprocess.CompletedProcess(argv, 1, "", "Error: No such file or directory")


def sources(tmp_path: Path, system: FakeSystem, body: bytes | Exception) -> collector.Sources:
    def fetcher(address: str) -> bytes:
        if isinstance(body, Exception):
            raise body
        return body

    return collector.Sources(runner=system, fetcher=fetcher, state_config=tmp_path / "config.toml",
                             run_dir=tmp_path / "run", units=tuple(UNITS[:3]))  # fmt: skip


def test_a_round_writes_collected_json_and_the_runner_copy(tmp_path: Path) -> None:
    """One systemctl call for all units, the guard's counters by class, the runner's
    metrics from the working copy's address; both files 0644."""
    (tmp_path / "config.toml").write_text('listen_address = "0.0.0.0:9555"\n')
    system = FakeSystem()
    facts = collector.collect(sources(tmp_path, system, b"up 1\n"), now=1234.5)
    written = json.loads((tmp_path / "run" / "collected.json").read_text())
    assert written == facts
    assert written["time"] == 1234.5
    assert written["units"]["pipglr-runner.service"]["since"] == 1764787152.0
    assert set(written["units"]) == set(UNITS[:3])
    assert written["guard"] == {
        "enabled": True,
        "drops": {
            name: {"packets": i, "bytes": 60 * i} for i, name in enumerate(netguard.DROP_CLASSES)
        },
    }
    assert written["runner_metrics"] == {"ok": True, "error": None, "address": "127.0.0.1:9555"}
    assert (tmp_path / "run" / "runner.prom").read_bytes() == b"up 1\n"
    systemctl = [c for c in system.calls if c[0] == "systemctl"]
    assert len(systemctl) == 1 and systemctl[0][-3:] == UNITS[:3]
    assert "--timestamp=unix" in systemctl[0]
    for name in ("collected.json", "runner.prom"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["collected.json",
                                                                    "runner.prom"]  # fmt: skip


def test_a_round_without_guard_or_runner(tmp_path: Path) -> None:
    """No guard table: not enabled, no drops; the runner not answering: the old copy
    goes, the error is recorded, and the round still writes collected.json."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "runner.prom").write_text("stale 1\n")
    facts = collector.collect(
        sources(tmp_path, FakeSystem(table=False), ConnectionRefusedError(111, "refused")), 9.0
    )
    assert facts["guard"] == {"enabled": False, "drops": {}}
    assert facts["runner_metrics"]["ok"] is False
    assert facts["runner_metrics"]["address"] == layout.RUNNER_LISTEN_ADDRESS
    assert facts["runner_metrics"]["error"] == "ConnectionRefusedError: [Errno 111] refused"
    assert not (run_dir / "runner.prom").exists()
    assert json.loads((run_dir / "collected.json").read_text()) == facts


def test_news_says_only_what_changed(tmp_path: Path) -> None:
    first = collector.collect(sources(tmp_path, FakeSystem(), b"x"), 1.0)
    assert collector.news(None, first) == [
        "egress guard counters: read", "runner metrics from 127.0.0.1:9252: fetched"]  # fmt: skip
    second = collector.collect(sources(tmp_path, FakeSystem(), b"y"), 2.0)
    assert collector.news(first, second) == []
    third = collector.collect(sources(tmp_path, FakeSystem(table=False), TimeoutError("slow")), 3)
    assert collector.news(second, third) == [
        "egress guard counters: no guard table",
        "runner metrics from 127.0.0.1:9252: not fetched (TimeoutError: slow)",
    ]


def test_the_collector_unit_is_root_with_two_capabilities() -> None:
    """Root (no User=), only CAP_NET_ADMIN and CAP_DAC_READ_SEARCH, no new privileges,
    restarted always, after the guard and the network unit, enabled; the verb exists."""
    text = units.render(units.Templates.METRICS_COLLECT,
                        units.UnitContext.from_settings(BuildSettings()))  # fmt: skip
    settings = dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line and not line.startswith("#"))  # fmt: skip
    assert "User" not in settings
    assert settings["CapabilityBoundingSet"] == "CAP_NET_ADMIN CAP_DAC_READ_SEARCH"
    assert settings["NoNewPrivileges"] == "yes" and settings["Restart"] == "always"
    assert {layout.EGRESS_UNIT, layout.NETWORK_UNIT} <= set(settings["After"].split())
    assert settings["ExecStart"].endswith(" metrics-collect")
    assert settings["WantedBy"] == "multi-user.target"
    assert layout.COLLECTOR_UNIT in units.ENABLED_UNITS
    assert "metrics-collect" in cli.COMMANDS
    tmpfiles = units.render(units.Templates.TMPFILES,
                            units.UnitContext.from_settings(BuildSettings()))  # fmt: skip
    assert f"d {layout.METRICS_RUN_DIR} 0755 root root -\n" in tmpfiles
    assert f"d {layout.PODMAN_STATS_DIR} 0755 podman podman -\n" in tmpfiles
