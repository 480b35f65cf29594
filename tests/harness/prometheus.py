"""A real Prometheus for tests: Debian's ``prometheus`` on a free loopback port.

The monitoring tests start one per outer mode, scraping a running pipglr's published
metrics port every second (both jobs of ``examples/monitoring/prometheus.yml``: pipglr's
own facts and the runner's relayed metrics) and evaluating the shipped alert rules
every second. Queries go through the HTTP API (``/api/v1/query``), as a dashboard's
would. The rules may be given with their ``for:`` durations shortened
(:func:`hurried_rules`): the tests force a condition and watch the alert fire within
seconds; the expressions are the shipped ones.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: What to install when Prometheus is missing.
MISSING = "prometheus is not installed (apt-get install prometheus)"
#: Scrape and rule evaluation interval of the test's Prometheus.
INTERVAL = "1s"


def available() -> bool:
    """Whether Debian's ``prometheus`` and ``promtool`` are on PATH."""
    return shutil.which("prometheus") is not None and shutil.which("promtool") is not None


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def hurried_rules(text: str, duration: str = "2s") -> str:
    """The rule file with every ``for:`` set to ``duration`` (expressions untouched)."""
    return re.sub(r"(?m)^(\s+for:\s*)\S+\s*$", rf"\g<1>{duration}", text)


def scrape_config(target: str, rule_files: Sequence[Path]) -> str:
    """The test's prometheus.yml: the two jobs of the shipped scrape config, every
    second, against ``target`` (``HOST:PORT``)."""
    rules = "".join(f"  - {path}\n" for path in rule_files) or "  []\n"
    return (
        f"global:\n  scrape_interval: {INTERVAL}\n  evaluation_interval: {INTERVAL}\n"
        f"rule_files:\n{rules}"
        "scrape_configs:\n"
        f"  - job_name: pipglr\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
        f"  - job_name: gitlab-runner\n    metrics_path: /runner/metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )


@dataclass
class Prometheus:
    """A running Prometheus and its HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data`` (raises on an error status)."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as reply:
            body = json.load(reply)
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` now (None: no series)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} gave {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        """Poll ``check`` every half second until it returns something true."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            assert self.process.poll() is None, f"prometheus exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.5)

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Prometheus holds now (pending and firing)."""
        return list(self.api("alerts")["alerts"])

    def targets_up(self) -> dict[str, str]:
        """Each scrape job's health (``up``, ``down``, ``unknown``) and last error."""
        data = self.api("targets")
        return {
            t["labels"]["job"]: f"{t['health']} {t.get('lastError', '')}".strip()
            for t in data["activeTargets"]
        }


@contextmanager
def serve(workdir: Path, target: str, rules: Sequence[Path] = ()) -> Iterator[Prometheus]:
    """Prometheus on a free loopback port scraping ``target`` with ``rules`` loaded."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(scrape_config(target, rules))
    checked = subprocess.run(["promtool", "check", "config", str(config)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        server.wait("prometheus to be ready", lambda: _ready(server.url), timeout=60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as reply:
            return int(reply.status) == 200
    except OSError:
        return False
