"""One job's life as GitLab keeps it: state, trace, updates and timestamps.

The transitions mirror GitLab ``app/models/commit_status.rb`` (``cancel`` goes to
``canceling`` for runners that cancel gracefully, a final success/failed from the runner
turns ``canceling`` into ``canceled``), a job handed out for a two-phase commit waits
for the runner's acceptance as :mod:`.ack` describes, trace appends mirror
``app/services/ci/append_build_trace_service.rb`` with ``lib/gitlab/ci/trace.rb#append``,
and updates mirror ``app/services/ci/update_build_state_service.rb``. A :class:`Reply`
says what the HTTP layer answers; this module knows no HTTP.
"""

from __future__ import annotations

import datetime
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from . import ack

PENDING, RUNNING, CANCELING = "pending", "running", "canceling"
SUCCESS, FAILED, CANCELED = "success", "failed", "canceled"
#: States in which GitLab still lets the runner patch the trace and update the job
#: ("processing on runner", lib/api/ci/helpers/runner.rb).
ACTIVE_STATES = (RUNNING, CANCELING)
FINAL_STATES = (SUCCESS, FAILED, CANCELED)
STAMPS = (
    "created",
    "picked",
    "started",
    "accepted",
    "first_trace",
    "last_trace",
    "cancel_requested",
    "final_update",
    "finished",
)


def stamp() -> dict[str, Any]:
    """A monotonic time (for durations) and a wall-clock time (for people)."""
    wall = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    return {"mono": time.monotonic(), "wall": wall}


def checksum(data: bytes) -> str:
    """The runner's trace checksum: CRC-32 IEEE as ``crc32:%08x`` (helpers/trace/buffer.go)."""
    return f"crc32:{zlib.crc32(data):08x}"


@dataclass
class Reply:
    """What GitLab answers: status plus the headers the runner reads."""

    status: int
    job_status: str | None = None  # ``Job-Status``
    range_end: int | None = None  # ``Range: 0-N``
    interval: int | None = None  # ``X-GitLab-Trace-Update-Interval``
    last_update: str | None = None  # ``X-GitLab-Last-Update``
    body: Any = None


@dataclass
class JobRecord:
    """A queued or handed-out job and everything the runner sent for it."""

    id: int
    spec: dict[str, Any]
    token: str
    state: str = PENDING
    runner_token: str | None = None
    runner_id: int | None = None
    payload: dict[str, Any] | None = None
    trace: bytearray = field(default_factory=bytearray)
    rejected_trace: bytearray = field(default_factory=bytearray)
    patches: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    stamps: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    exit_code: int | None = None
    failure_reason: str | None = None
    reported_state: str | None = None
    reported_checksum: str | None = None
    accepts_left: int = 0
    ack_window: float = 0.0
    ack_deadline: float | None = None
    ack_check_at: float | None = None
    retry_of: int | None = None
    retried_by: int | None = None
    retries: int = 0

    def __post_init__(self) -> None:
        self.stamps = {name: None for name in STAMPS} | {"created": stamp()}
        self.accepts_left = int(self.spec.get("accept_final", 0))

    def mark(self, name: str, *, once: bool = True) -> None:
        """Record the time of an event (the first occurrence unless ``once`` is false)."""
        if not once or self.stamps.get(name) is None:
            self.stamps[name] = stamp()

    def start(self) -> None:
        """``run!``: the job runs from now (GitLab's ``started_at``)."""
        self.state = RUNNING
        self.mark("started")

    def processing_on_runner(self) -> bool:
        """Whether the runner may patch the trace and update the job (``AuthJobFinder``:
        running, canceling, or waiting for the runner's acceptance)."""
        return self.state in ACTIVE_STATES or ack.status(self) == ack.WAITING

    def append_trace(self, content_range: str | None, data: bytes, interval: int) -> Reply:
        """Append a trace patch if it starts exactly where the trace ends (else 416)."""
        if content_range is None:
            return Reply(400, body="400 Missing header Content-Range")
        head = content_range.split("-", 1)[0].strip()
        start = int(head) if head.isdigit() else 0
        entry = {"start": start, "length": len(data), "at": stamp()}
        self.patches.append(entry)
        if not self.processing_on_runner():
            self.rejected_trace += data
            entry["status"] = 403
            return Reply(403, job_status=self.state, body="403 Forbidden - Job is not running")
        if start != len(self.trace):
            entry["status"] = 416
            return Reply(416, range_end=len(self.trace), body="416 Range Not Satisfiable")
        self.trace += data
        entry["status"] = 202
        self.mark("first_trace")
        self.mark("last_trace", once=False)
        return Reply(202, job_status=self.state, range_end=len(self.trace), interval=interval)

    def update(self, body: dict[str, Any], interval: int) -> Reply:
        """Apply a ``PUT /jobs/:id`` body: touch, accept (202) or finish the job."""
        reply = self._update(body, interval)
        self.updates.append(
            {"at": stamp(), "body": body, "status": reply.status, "job_status": reply.job_status}
        )
        return reply

    def _update(self, body: dict[str, Any], interval: int) -> Reply:
        if ack.status(self) == ack.WAITING:
            answer = ack.acknowledge(self, body)
            if answer is not None:
                return answer
        if self.state not in ACTIVE_STATES:
            return Reply(
                403, job_status=self.state, body="403 Forbidden - Job is not processing on runner"
            )
        state = body.get("state")
        if state == RUNNING:  # update_build_state!: touch
            self.mark("accepted")
            return Reply(200, job_status=self.state, body="200")
        if state not in (SUCCESS, FAILED):
            return Reply(400, job_status=self.state, body="400")
        if self.accepts_left > 0:
            self.accepts_left -= 1
            return Reply(202, job_status=self.state, interval=interval, body="202")
        self._finish(state, body)
        return Reply(200, job_status=self.state, body="200")

    def drop(self, reason: str) -> None:
        """``drop!``: failed by GitLab itself with ``reason``."""
        self.state, self.failure_reason, self.ack_deadline = FAILED, reason, None
        self.mark("finished")

    def _finish(self, state: str, body: dict[str, Any]) -> None:
        output = body.get("output") or {}
        self.reported_state = state
        self.reported_checksum = output.get("checksum") or body.get("checksum")
        self.exit_code = body.get("exit_code", 0 if state == SUCCESS else None)
        if state == FAILED:
            self.failure_reason = body.get("failure_reason") or "unknown_failure"
        self.state = CANCELED if self.state == CANCELING else state
        self.mark("final_update")
        self.mark("finished")

    def cancel(self, *, graceful: bool, force: bool) -> None:
        """Cancel as GitLab does: pending → canceled, running → canceling or canceled."""
        if self.state in FINAL_STATES:
            return
        self.mark("cancel_requested")
        if self.state == RUNNING and graceful and not force:
            self.state = CANCELING
            return
        self.state = CANCELED
        self.mark("finished")

    def durations(self) -> dict[str, float | None]:
        """Seconds between lifecycle stamps (None while one end is missing)."""

        def between(first: str, last: str) -> float | None:
            a, b = self.stamps.get(first), self.stamps.get(last)
            return None if a is None or b is None else round(b["mono"] - a["mono"], 6)

        return {
            "queued": between("created", "picked"),
            "pick_to_start": between("picked", "started"),
            "pick_to_first_trace": between("picked", "first_trace"),
            "pick_to_final_update": between("picked", "final_update"),
            "total": between("created", "finished"),
        }

    def to_dict(self, *, full: bool = True) -> dict[str, Any]:
        """JSON-ready view; ``full`` adds trace, updates, patches and the payload."""
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.spec["name"],
            "state": self.state,
            "runner_id": self.runner_id,
            "runner_token": self.runner_token,
            "token": self.token,
            "exit_code": self.exit_code,
            "failure_reason": self.failure_reason,
            "reported_state": self.reported_state,
            "waiting_for_ack": ack.status(self) == ack.WAITING,
            "retry_of": self.retry_of,
            "retried_by": self.retried_by,
            "trace_bytes": len(self.trace),
            "stamps": self.stamps,
            "durations": self.durations(),
        }
        if full:
            mine, reported = checksum(bytes(self.trace)), self.reported_checksum
            data |= {
                "spec": self.spec,
                "trace": self.trace.decode("utf-8", "replace"),
                "rejected_trace": self.rejected_trace.decode("utf-8", "replace"),
                "checksum": mine,
                "reported_checksum": self.reported_checksum,
                "checksum_ok": None if reported is None else reported == mine,
                "patches": self.patches,
                "updates": self.updates,
                "payload": self.payload,
            }
        return data
