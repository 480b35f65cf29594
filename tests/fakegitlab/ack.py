"""Two-phase job commit: a job handed to a runner that advertises
``features.two_phase_job_commit`` stays ``pending`` until the runner accepts it.

What GitLab does (doc/development/cicd/two_phase_job_commit.md), replayed here:

- ``POST /jobs/request`` (``app/services/ci/register_job_service.rb``,
  ``runner_supports_job_acknowledgment?``): the job leaves the queue and is assigned to
  the runner, but stays ``pending``; GitLab waits for the runner's acknowledgement
  (``lib/gitlab/ci/build/runner_ack_queue.rb``: a key that expires after
  ``RUNNER_ACK_QUEUE_EXPIRY_TIME`` = 2 minutes) and schedules
  ``Ci::RetryStuckWaitingJobWorker`` for that time. Only with the feature flag
  ``allow_runner_job_acknowledgement`` (``config/feature_flags/gitlab_com_derisk/``,
  ``default_enabled: false`` since 18.5: a self-managed GitLab hands out the legacy way
  unless an admin enables it); :class:`State` takes it as ``runner_ack``.
- ``PUT /jobs/:id`` while waiting (``app/services/ci/update_build_state_service.rb``
  ``handle_runner_ack_workflow``): ``pending`` is a keep-alive (the 2 minutes start
  again, 200), ``running`` accepts (the job runs from now: ``started_at``, then the usual
  ``running`` touch, 200), anything else, ``success`` and ``failed`` included, is 400
  and the job stays pending. Trace patches are authorized while waiting
  (``app/finders/ci/auth_job_finder.rb`` ``validate_executing_job!``).
- Not accepted in time: the worker (``app/workers/ci/retry_stuck_waiting_job_worker.rb``)
  runs at 2 minutes and again every ``RETRY_TIMEOUT`` (30 s) while keep-alives arrive;
  once the key has expired, ``Ci::RetryWaitingJobService`` drops the job with
  ``runner_provisioning_timeout`` and GitLab retries it as a new pending job
  (``lib/gitlab/ci/build/auto_retry.rb``: at most 2 retries for that reason). Between
  expiry and the worker's run the job is neither waiting nor running: the runner's
  requests are refused (403 "Job is not processing on runner").
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import JobRecord, Reply

#: ``Gitlab::Ci::Build::RunnerAckQueue::RUNNER_ACK_QUEUE_EXPIRY_TIME``.
ACK_TIMEOUT = 120.0
#: ``Ci::RetryStuckWaitingJobWorker::RETRY_TIMEOUT``: the next check while still waiting.
RECHECK_INTERVAL = 30.0
#: ``AutoRetry::DEFAULT_RETRIES[:runner_provisioning_timeout]``.
PROVISIONING_RETRIES = 2
PROVISIONING_TIMEOUT = "runner_provisioning_timeout"
NOT_WAITING, WAITING, WAIT_EXPIRED = "not_waiting", "waiting", "wait_expired"


def advertised(body: Mapping[str, Any]) -> bool:
    """``runner_supports_job_acknowledgment?``: the job request's ``info.features``."""
    info = body.get("info")
    features = info.get("features") if isinstance(info, Mapping) else None
    return isinstance(features, Mapping) and features.get("two_phase_job_commit") is True


def status(job: JobRecord, now: float | None = None) -> str:
    """``runner_ack_wait_status``: waiting while pending with a live key."""
    if job.state != "pending" or job.ack_deadline is None:
        return NOT_WAITING
    moment = time.monotonic() if now is None else now
    return WAITING if moment < job.ack_deadline else WAIT_EXPIRED


def wait_for_ack(job: JobRecord, window: float) -> None:
    """``set_waiting_for_runner_ack`` + ``RetryStuckWaitingJobWorker.perform_in``."""
    now = time.monotonic()
    job.ack_window = window
    job.ack_deadline = job.ack_check_at = now + window


def acknowledge(job: JobRecord, body: Mapping[str, Any]) -> Reply | None:
    """``handle_runner_ack_workflow`` for a waiting job: a reply, or None when the
    runner accepted and the update goes on as a ``running`` touch."""
    from .records import Reply

    state = body.get("state")
    if state == "pending":
        job.ack_deadline = time.monotonic() + job.ack_window  # heartbeat_runner_ack_wait
        return Reply(200, job_status=job.state, body="200")
    if state == "running":
        job.ack_deadline = None
        job.start()  # build.run!: started_at
        return None
    return Reply(400, job_status=job.state, body="400")


def due(job: JobRecord, now: float, recheck: float) -> bool:
    """The worker's run for ``job`` at ``now``: True when it drops the job (the key
    expired); a job still waiting gets its next check ``recheck`` seconds later."""
    if job.ack_check_at is None or job.ack_check_at > now:
        return False
    if status(job, now) == WAITING:
        job.ack_check_at += recheck
        return False
    job.ack_check_at = None
    return status(job, now) == WAIT_EXPIRED
