"""What ``pipglr status`` and ``pipglr storage`` report about the running container."""

from __future__ import annotations

import json
import subprocess

from pipglr import layout
from pipglr.errors import EngineError, PipglrError
from pipglr.ops import configedit, metricsport, netops, privilege
from pipglr.ops.imageobjects import ImageObjects

#: How long the exporter's facts may take (they ask the nested API and read the storage).
FACTS_TIMEOUT = 60


def metrics_line(report: dict[str, object]) -> str:
    """The one line of ``pipglr status`` about monitoring: where the exporter is
    published (or how to publish it) and, when the facts could not be read, why."""
    where = report.get("metrics_published")
    if where:
        line = f"published on {where}: http://{where}/metrics, http://{where}/runner/metrics"
    else:
        line = (f"not published (pipglr up --metrics {layout.METRICS_PORT}, or quadlet "
                f"--metrics {layout.METRICS_PORT}; README: Monitoring)")  # fmt: skip
    error = report.get("metrics_error")
    return f"{line}; no facts: {error}" if error else line


class StatusReport(ImageObjects):
    """The container's state, inner units, runners, limits, storage and network rows."""

    def status(self) -> dict[str, object]:
        """Container state, inner units, runner count, limits and nested storage use."""
        inspect = self.outer.run("container", "inspect", layout.CONTAINER_NAME, check=False)
        if inspect.returncode != 0:
            return {"container": "absent"}
        info = json.loads(inspect.stdout)[0]
        host = info.get("HostConfig", {})
        report: dict[str, object] = {
            "container": info["State"]["Status"],
            "started": info["State"].get("StartedAt", ""),
            "image": info.get("ImageName", ""),
            **privilege.status_fields(privilege.outer_privileged(info), None),
            "limits": {
                "cpus": (host.get("NanoCpus") or 0) / 1e9 or None,
                "memory": host.get("Memory") or None,
                "pids": host.get("PidsLimit") or None,
            },
            "metrics_published": metricsport.published(info),
        }
        if info["State"]["Status"] != "running":
            return report
        units = {}
        for unit in layout.ALL_UNITS:
            state = self.outer.exec(layout.CONTAINER_NAME, "systemctl", "is-active", unit,
                                    check=False)  # fmt: skip
            units[unit] = state.stdout.strip() or "unknown"
        report["units"] = units
        config = self.outer.exec(layout.CONTAINER_NAME, "cat", str(layout.CONFIG_PATH),
                                 check=False)  # fmt: skip
        try:
            report["runners"] = configedit.runner_count(config.stdout)
            report |= privilege.status_fields(privilege.outer_privileged(info), config.stdout)
        except PipglrError:
            report["runners"] = None
        usage = self.outer.exec(layout.CONTAINER_NAME, "du", "-sb", str(layout.STORAGE_MOUNT),
                                check=False)  # fmt: skip
        report["storage_bytes"] = int(usage.stdout.split()[0]) if usage.returncode == 0 else None

        opened = self.outer.exec(layout.CONTAINER_NAME, "cat", str(layout.EGRESS_OPENED),
                                 check=False)  # fmt: skip
        report |= netops.status_fields(info, opened.stdout if opened.returncode == 0 else None)
        facts, error = self.metrics_facts()
        report["metrics"] = facts
        if error is not None:
            report["metrics_error"] = error
        return report

    def metrics_facts(self) -> tuple[dict[str, object] | None, str | None]:
        """The exporter's facts (``metrics-facts --json`` as user podman: the same
        ``facts()`` ``/metrics`` is made of), or None and the one-line reason."""
        try:
            done = self.outer.exec(
                layout.CONTAINER_NAME, str(layout.PYTHON), "-m", layout.GUEST_MODULE,
                "metrics-facts", "--json", user=layout.PODMAN.name, check=False,
                timeout=FACTS_TIMEOUT,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None, f"metrics-facts did not answer within {FACTS_TIMEOUT} s"
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"metrics-facts exited {done.returncode}: {last}"
        try:
            facts = json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            return None, f"metrics-facts printed no JSON ({exc})"
        if not isinstance(facts, dict):
            return None, f"metrics-facts printed a JSON {type(facts).__name__}, not an object"
        return facts, None

    def storage_report(self, as_json: bool) -> str:
        """The evictor's view of the nested storage (``storage-report`` as user podman)."""
        done = self.outer.exec(
            layout.CONTAINER_NAME, str(layout.PYTHON), "-m", layout.GUEST_MODULE,
            "storage-report", *(["--json"] if as_json else []),
            user=layout.PODMAN.name, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise EngineError(
                f"no storage report from {layout.CONTAINER_NAME} ({last}): is it running? "
                "`pipglr status` shows its state"
            )
        return done.stdout.rstrip("\n")
