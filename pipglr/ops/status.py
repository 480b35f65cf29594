"""What ``pipglr status`` and ``pipglr storage`` report about the running container."""

from __future__ import annotations

import json

from pipglr import layout
from pipglr.errors import EngineError, PipglrError
from pipglr.ops import configedit, netops, privilege
from pipglr.ops.imageobjects import ImageObjects


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
        return report

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
