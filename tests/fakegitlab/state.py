"""The fake coordinator's memory: runners, the job queue, job records, a request log.

:class:`State` holds it all; jobs are guarded by one condition variable (long-polling
job requests wait on it), runners and the log by their own locks, so the threaded HTTP
server and the test-control API always see a consistent picture. Runner bookkeeping
mirrors GitLab ``lib/api/ci/runner.rb`` (verify, legacy registration, unregister, token
reset); job hand-out mirrors ``lib/api/ci/runner.rb`` ``POST /jobs/request`` (204 with
``X-GitLab-Last-Update`` when the runner's ``last_update`` is current or nothing fits),
with Workhorse's long poll in front when ``long_poll`` is set and the two-phase job
commit of :mod:`.ack` for runners that advertise it.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import ack, artifacts, payloads
from .artifactstore import ArtifactStore, StoredArtifact, Upload
from .records import CANCELED, FINAL_STATES, PENDING, JobRecord, Reply, stamp

#: How many requests the log keeps (a runner polls every few seconds; this is hours).
REQUEST_LOG_SIZE = 20000


def _tags(value: Any) -> list[str]:
    """``tag_list`` as the runner sends it (comma string) or as a list."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(tag).strip() for tag in items if str(tag).strip()]


@dataclass
class Runner:
    """A runner GitLab knows: its token, how it came to be, what it last said."""

    id: int
    token: str
    source: str  # "token" (given with --token) or "registration" (legacy register)
    description: str = ""
    tags: list[str] = field(default_factory=list)
    run_untagged: bool = True
    system_ids: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    contacted: dict[str, Any] | None = None

    def contact(self, body: Mapping[str, Any]) -> None:
        """Remember the runner's system id, metadata and the time (a heartbeat)."""
        system_id = body.get("system_id")
        if isinstance(system_id, str) and system_id not in self.system_ids:
            self.system_ids.append(system_id)
        if isinstance(body.get("info"), Mapping):
            self.info = dict(body["info"])
        self.contacted = stamp()

    def cancels_gracefully(self) -> bool:
        """Whether GitLab would move its jobs to ``canceling`` (``cancel_gracefully``)."""
        features = self.info.get("features") or {}
        return bool(features.get("cancel_gracefully"))

    def accepts(self, spec: Mapping[str, Any]) -> bool:
        """Tag and runner matching as GitLab's queue does it (plus the ``runner`` pin)."""
        if spec.get("runner") and spec["runner"] != self.token:
            return False
        if not spec.get("tags"):
            return self.run_untagged
        return set(spec["tags"]) <= set(self.tags)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "id": self.id,
            "token": self.token,
            "source": self.source,
            "description": self.description,
            "tags": self.tags,
            "run_untagged": self.run_untagged,
            "system_ids": self.system_ids,
            "info": self.info,
            "contacted": self.contacted,
        }


class Runners:
    """The runners GitLab knows, by token (thread-safe on its own lock).

    Mirrors the runner endpoints of GitLab ``lib/api/ci/runner.rb``: verify, legacy
    registration, unregister and token reset.
    """

    def __init__(self, tokens: Iterable[str] = (), registration: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._by_token: dict[str, Runner] = {}
        self._registration = set(registration)
        for token in tokens:
            self._by_token[token] = Runner(next(self._ids), token, "token")

    def contact(self, body: Mapping[str, Any]) -> Runner | None:
        """The runner for ``body["token"]``, with the contact recorded; None if unknown."""
        with self._lock:
            runner = self._by_token.get(str(body.get("token")))
            if runner:
                runner.contact(body)
            return runner

    def by_id(self, runner_id: int | None) -> Runner | None:
        """The runner with this id, if it is still registered."""
        with self._lock:
            return next((r for r in self._by_token.values() if r.id == runner_id), None)

    def register(self, body: Mapping[str, Any]) -> Runner | None:
        """``POST /runners`` with a registration token: a new runner with a new token."""
        with self._lock:
            if body.get("token") not in self._registration:
                return None
            tags = _tags(body.get("tag_list"))
            runner = Runner(
                next(self._ids),
                "glrt-" + secrets.token_urlsafe(15),
                "registration",
                description=str(body.get("description") or ""),
                tags=tags,
                run_untagged=bool(body.get("run_untagged", not tags)),
            )
            runner.contact(body)
            self._by_token[runner.token] = runner
            return runner

    def unregister(self, token: str) -> bool:
        """``DELETE /runners``: forget the runner; False if the token is unknown."""
        with self._lock:
            return self._by_token.pop(token, None) is not None

    def reset_token(self, token: str) -> Runner | None:
        """``POST /runners/reset_authentication_token``: the old token stops working."""
        with self._lock:
            runner = self._by_token.pop(token, None)
            if runner:
                runner.token = "glrt-" + secrets.token_urlsafe(15)
                self._by_token[runner.token] = runner
            return runner

    def to_list(self) -> list[dict[str, Any]]:
        """Every runner, JSON-ready."""
        with self._lock:
            return [runner.to_dict() for runner in self._by_token.values()]


class RequestLog:
    """Every runner request (method, path, headers, body, status); nothing redacted."""

    def __init__(self, size: int = REQUEST_LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = itertools.count(1)

    def add(self, entry: dict[str, Any]) -> None:
        """Append one request, numbered."""
        with self._lock:
            self._entries.append({"seq": next(self._seq)} | entry)

    def since(self, seq: int = 0, path: str | None = None) -> list[dict[str, Any]]:
        """Requests after sequence number ``seq``, optionally under a path prefix."""
        with self._lock:
            return [
                entry
                for entry in self._entries
                if entry["seq"] > seq and (path is None or entry["path"].startswith(path))
            ]


class State:
    """The coordinator: runners, the job queue and job records, and the request log.

    Jobs are guarded by one condition variable (long-polling requests wait on it).
    """

    def __init__(
        self,
        tokens: Iterable[str] = (),
        registration_tokens: Iterable[str] = (),
        *,
        update_interval: int = 1,
        long_poll: float = 0.0,
        external_url: str | None = None,
        runner_ack: bool = True,
        ack_timeout: float = ack.ACK_TIMEOUT,
        ack_recheck: float = ack.RECHECK_INTERVAL,
    ) -> None:
        self.update_interval = update_interval
        self.long_poll = long_poll
        self.external_url = external_url
        self.runner_ack = runner_ack  # feature flag allow_runner_job_acknowledgement
        self.ack_timeout = ack_timeout
        self.ack_recheck = ack_recheck
        self.runners = Runners(tokens, registration_tokens)
        self.request_log = RequestLog()
        self.artifact_store = ArtifactStore()
        self._cond = threading.Condition()
        self._jobs: dict[int, JobRecord] = {}
        self._queue: list[int] = []
        self._job_ids = itertools.count(1)
        self._version = 1

    # -- jobs ------------------------------------------------------------------------
    def add_job(self, spec: Any) -> JobRecord:
        """Queue a job from a spec (raises payloads.SpecError for a bad one)."""
        normalized = payloads.normalize_spec(spec) | artifacts.normalize_spec(spec)
        with self._cond:
            artifacts.check_dependencies(normalized, self._jobs.values())
            return self._queue_job(self._new_job(normalized))

    def _new_job(self, spec: dict[str, Any]) -> JobRecord:
        job_id = next(self._job_ids)
        return JobRecord(job_id, spec, f"glcbt-{job_id}_{secrets.token_urlsafe(15)}")

    def _queue_job(self, job: JobRecord) -> JobRecord:
        self._jobs[job.id] = job
        self._queue.append(job.id)
        self._changed()
        return job

    def request_job(self, body: Mapping[str, Any], server_url: str) -> Reply:
        """``POST /jobs/request``: 201 with a payload, 204, 403 for an unknown runner.

        With ``long_poll``, Workhorse first (workhorse/internal/builds/register.go
        ``RegisterHandler``): a request whose ``last_update`` is the current queue value
        is held until the value changes or the poll times out, and then answered 204
        *without* ``X-GitLab-Last-Update`` (it never reached Rails), so the runner asks
        again with the same value and Rails hands the job out; any other request goes
        to Rails at once. Rails (lib/api/ci/runner.rb): a current ``last_update`` is
        204 with that value (``runner_queue_value_latest?``); else a fitting job (201) or
        204 with the current value.
        """
        last_update = body.get("last_update")
        with self._cond:
            runner = self.runners.contact(body)
            if runner is None:
                return Reply(403, body="403 Forbidden")
            self._expire()
            if self.long_poll > 0 and last_update and last_update == str(self._version):
                self._hold(str(last_update), time.monotonic() + self.long_poll)
                return Reply(204)
            if last_update == str(self._version):
                return Reply(204, last_update=str(last_update))
            new_update = str(self._version)
            job = self._take(runner, ack.advertised(body))
            if job is None:
                return Reply(204, last_update=new_update)
            uploads, dependencies = self._artifacts_payload(job)
            job.payload = payloads.build_job(
                job.spec, job_id=job.id, token=job.token, server_url=server_url,
                artifacts=uploads, dependencies=dependencies,
            )  # fmt: skip
            return Reply(201, body=job.payload)

    def _hold(self, value: str, deadline: float) -> None:
        """Workhorse's ``WatchKey``: wait until the queue value is not ``value`` or the
        deadline passes (acknowledgement checks keep running meanwhile)."""
        while str(self._version) == value:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            checks = [j.ack_check_at for j in self._jobs.values() if j.ack_check_at is not None]
            self._cond.wait(min([remaining, *(c - time.monotonic() + 0.01 for c in checks)]))
            self._expire()

    def _take(self, runner: Runner, two_phase: bool) -> JobRecord | None:
        """``Ci::RegisterJobService``: the first queued job the runner fits, assigned;
        running at once, or waiting for the runner's acceptance (two-phase commit)."""
        for job_id in self._queue:
            job = self._jobs[job_id]
            if runner.accepts(job.spec) and not artifacts.waits_for_dependencies(
                job, self._jobs.values()
            ):
                self._queue.remove(job_id)
                job.runner_token, job.runner_id = runner.token, runner.id
                job.mark("picked")
                if two_phase and self.runner_ack:
                    ack.wait_for_ack(job, self.ack_timeout)
                else:
                    job.start()
                return job
        return None

    def _expire(self) -> None:
        """``Ci::RetryStuckWaitingJobWorker`` runs that are due: a job its runner did not
        accept in time is dropped (``runner_provisioning_timeout``) and retried."""
        now = time.monotonic()
        for job in list(self._jobs.values()):
            if not ack.due(job, now, self.ack_recheck):
                continue
            job.drop(ack.PROVISIONING_TIMEOUT)
            if job.retries < ack.PROVISIONING_RETRIES:  # AutoRetry: a new pending job
                retry = self._queue_job(self._new_job(job.spec))
                retry.retry_of, retry.retries, job.retried_by = job.id, job.retries + 1, retry.id

    def _changed(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def _job_for(self, job_id: int, token: str | None) -> JobRecord | None:
        job = self._jobs.get(job_id)
        return job if job is not None and token == job.token else None

    def patch_trace(
        self, job_id: int, token: str | None, content_range: str | None, data: bytes
    ) -> Reply:
        """``PATCH /jobs/:id/trace`` (403 for an unknown job or a wrong job token)."""
        with self._cond:
            self._expire()
            job = self._job_for(job_id, token)
            if job is None:
                return Reply(403, body="403 Forbidden")
            return job.append_trace(content_range, data, self.update_interval)

    def update_job(self, job_id: int, token: str | None, body: dict[str, Any]) -> Reply:
        """``PUT /jobs/:id`` (403 for an unknown job or a wrong job token)."""
        with self._cond:
            self._expire()
            job = self._job_for(job_id, token)
            if job is None:
                return Reply(403, body="403 Forbidden")
            active = job.state not in FINAL_STATES
            reply = job.update(body, self.update_interval)
            if active and job.state in FINAL_STATES:
                self._changed()  # jobs that waited for this one may go out now
            self._cond.notify_all()
            return reply

    def cancel(self, job_id: int, *, force: bool = False) -> dict[str, Any]:
        """Cancel like the GitLab UI; a second (or forced) cancel ends ``canceling``."""
        with self._cond:
            job = self._jobs[job_id]
            runner = self.runners.by_id(job.runner_id)
            if job.state == PENDING and job_id in self._queue:
                self._queue.remove(job_id)
            job.cancel(graceful=bool(runner and runner.cancels_gracefully()), force=force)
            if job.state == CANCELED:
                self._changed()
            return job.to_dict()

    # -- artifacts -------------------------------------------------------------------
    def _artifacts_payload(self, job: JobRecord) -> tuple[list[dict[str, Any]], ...]:
        """The payload's ``artifacts`` and ``dependencies`` (see :mod:`.artifacts`)."""
        store = self.artifact_store
        dependencies = [
            artifacts.payload_dependency(other, job.token, store.archive_file(other.id))
            for other in artifacts.dependency_jobs(job, self._jobs.values())
        ]
        return artifacts.payload_artifacts(job.spec), dependencies

    def upload_artifacts(self, job_id: int, token: str | None, body: Callable[[], Upload]) -> Reply:
        """``POST /jobs/:id/artifacts`` (see :mod:`.artifactstore`)."""
        with self._cond:
            return self.artifact_store.upload(self._jobs.get(job_id), token, body)

    def download_artifacts(self, job_id: int, token: str | None) -> Reply | StoredArtifact:
        """``GET /jobs/:id/artifacts`` with the downloading job's token."""
        with self._cond:
            consumer = next((j for j in self._jobs.values() if token and j.token == token), None)
            return self.artifact_store.download(self._jobs.get(job_id), consumer)

    def job_artifacts(self, job_id: int) -> list[dict[str, Any]]:
        """What a job uploaded (KeyError if the job is unknown)."""
        with self._cond:
            if job_id not in self._jobs:
                raise KeyError(job_id)
        return self.artifact_store.of_job(job_id)

    # -- queries ---------------------------------------------------------------------
    def job(self, job_id: int) -> dict[str, Any]:
        """One job record in full (KeyError if unknown)."""
        with self._cond:
            self._expire()
            return self._jobs[job_id].to_dict()

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, without traces and payloads."""
        with self._cond:
            self._expire()
            return [job.to_dict(full=False) for job in self._jobs.values()]
