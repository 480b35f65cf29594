"""The GitLab runner API client (network/gitlab.go ``GitLabClient``, network/client.go,
network/patch_response.go, network/remote_job_state_response.go, common/network.go).

Every call goes to ``<runner url>/api/v4/<uri>`` with the token in the JSON body and in
``RUNNER-TOKEN``/``JOB-TOKEN`` headers, and an ``X-Request-Id``. Connection failures are
the "client error" (-100) of the Go client. Job requests carry the ``last_update`` of
the runner's previous answers (network/client.go ``setLastUpdate``/``getLastUpdate``,
network/gitlab.go ``PrepareJobRequest``), may be held by a long-polling GitLab (up to
the transport's ``ResponseHeaderTimeout``) and are cancelled when the runner stops
(commands/multi.go ``doJobRequest``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import NAME, REVISION, VERSION, log
from .transport import CLIENT_ERROR, RESPONSE_HEADER_TIMEOUT, Answer, Canceller, Transport, goarch

__all__ = ["CLIENT_ERROR", "Answer", "Canceller", "GitLabClient", "JobState", "runner_info"]

#: common/network.go FeaturesInfo as the docker executor + bash shell report them
#: (network/gitlab.go getFeatures, executors/docker/docker_command.go
#: dockerFeaturesUpdater, shells/abstract.go GetFeatures). NativeStepsIntegration
#: is not claimed: the stand-in has no step-runner.
FEATURES = {
    "variables": True,
    "image": True,
    "services": True,
    "artifacts": True,
    "cache": True,
    "fallback_cache_keys": True,
    "shared": False,
    "upload_multiple_artifacts": True,
    "upload_raw_artifacts": True,
    "session": True,
    "terminal": True,
    "refspecs": True,
    "masking": True,
    "proxy": False,
    "raw_variables": True,
    "artifacts_exclude": True,
    "multi_build_steps": True,
    "trace_reset": True,
    "trace_checksum": True,
    "trace_size": True,
    "vault_secrets": True,
    "cancelable": True,
    "return_exit_code": True,
    "service_variables": True,
    "service_multiple_aliases": True,
    "image_executor_opts": True,
    "service_executor_opts": True,
    "cancel_gracefully": True,
    "native_steps_integration": False,
    "two_phase_job_commit": True,
    "job_inputs": True,
}


def runner_info(executor: str = "", shell: str = "bash") -> dict[str, Any]:
    """``getRunnerInfo``: the ``info`` object of job requests and updates."""
    return {
        "name": NAME,
        "version": VERSION,
        "revision": REVISION,
        "platform": "linux",
        "architecture": goarch(),
        "executor": executor,
        "shell": shell,
        "features": dict(FEATURES),
        "config": {"gpus": ""},
    }


@dataclass
class JobState:
    """``RemoteJobStateResponse`` + ``TracePatchResponse``: what GitLab said about the job."""

    status: int
    remote_state: str
    update_interval: float
    remote_range: str = ""

    @property
    def failed(self) -> bool:
        """``IsFailed``: canceled/failed remotely, or 403."""
        return self.remote_state in ("canceled", "failed") or self.status == 403

    @property
    def cancel_requested(self) -> bool:
        """``IsCanceled``: GitLab asks for a graceful cancel ("canceling")."""
        return self.remote_state == "canceling"


class RunnersAPI(Transport):
    """Runner (manager) calls: verify, register, unregister, reset token."""

    def verify_runner(self, url: str, token: str, system_id: str) -> dict[str, Any] | None:
        """``VerifyRunner``: ``POST runners/verify`` → 200 ``{id, token, token_expires_at}``."""
        answer = self.request(
            url,
            "POST",
            "runners/verify",
            {"token": token, "system_id": system_id},
            headers={"RUNNER-TOKEN": token},
        )
        glrt = token.startswith("glrt-")
        if answer.status == 200:
            log.info("Verifying runner... " + ("is valid" if glrt else "is alive"))
            found = answer.json()
            return found if isinstance(found, dict) else {}
        if answer.status == 403:
            if glrt:
                log.info("Verifying runner... is not valid")
            else:
                log.error("Verifying runner... is removed", status=answer.status)
            return None
        what = "client error" if answer.status == CLIENT_ERROR else "failed"
        log.error(f"Verifying runner... {what}", status=answer.status)
        return None

    def register_runner(
        self, url: str, token: str, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``RegisterRunner`` (legacy registration token): ``POST runners`` → 201."""
        body = {**params, "info": runner_info(), "token": token}
        answer = self.request(url, "POST", "runners", body, headers={"RUNNER-TOKEN": token})
        if answer.status == 201:
            log.info("Registering runner... succeeded")
            found = answer.json()
            return found if isinstance(found, dict) else None
        if answer.status == 403:
            log.error("Registering runner... forbidden (check registration token)")
        else:
            what = "client error" if answer.status == CLIENT_ERROR else "failed"
            log.error(f"Registering runner... {what}", status=answer.status)
        return None

    def unregister_runner(self, url: str, token: str, system_id: str) -> bool:
        """``UnregisterRunnerManager`` (``glrt-``) or ``UnregisterRunner`` (legacy)."""
        if token.startswith("glrt-"):
            body, uri, what = (
                {"token": token, "system_id": system_id},
                "runners/managers",
                " manager",
            )
        else:
            body, uri, what = {"token": token}, "runners", ""
        answer = self.request(url, "DELETE", uri, body, headers={"RUNNER-TOKEN": token})
        ok = answer.status == 204
        text = f"Unregistering runner{what} from GitLab " + ("succeeded" if ok else "failed")
        (log.info if ok else log.error)(text, status=answer.status)
        return ok

    def reset_token(self, url: str, token: str, system_id: str) -> dict[str, Any] | None:
        """``ResetToken``: ``POST runners/reset_authentication_token`` → 201."""
        answer = self.request(url, "POST", "runners/reset_authentication_token", {"token": token})
        if answer.status == 201:
            log.info("Resetting runner authentication token... succeeded")
            found = answer.json()
            return found if isinstance(found, dict) else None
        log.error("Resetting runner authentication token... failed", status=answer.status)
        return None


class GitLabClient(RunnersAPI):
    """The whole client: runner calls plus job request, job updates and trace patches."""

    def __init__(self, timeout: float = 60.0) -> None:
        super().__init__(timeout)
        #: network/client.go ``client.lastUpdate``, one per client (GitLab URL + token):
        #: the last non-empty ``X-GitLab-Last-Update`` answered (only job requests get one).
        self.last_updates: dict[tuple[str, str], str] = {}

    def request_job(
        self, url: str, token: str, system_id: str, executor: str, cancel: Canceller | None = None
    ) -> tuple[dict[str, Any] | None, bool]:
        """``RequestJob``: ``POST jobs/request`` → (job or None, runner healthy); the body
        is ``PrepareJobRequest``'s (``last_update`` left out while empty, ``omitempty``)."""
        body = {"info": runner_info(executor), "token": token, "system_id": system_id}
        last_update = self.last_updates.get((url, token), "")
        if last_update:
            body["last_update"] = last_update
        answer = self.request(
            url,
            "POST",
            "jobs/request",
            body,
            headers={"RUNNER-TOKEN": token},
            cancel=cancel,
            timeout=RESPONSE_HEADER_TIMEOUT,
        )
        if answer.headers.get("x-gitlab-last-update"):  # setLastUpdate
            self.last_updates[(url, token)] = answer.headers["x-gitlab-last-update"]
        if answer.status == 201:
            job = answer.json()
            if isinstance(job, dict):
                log.info("Checking for jobs... received", job=job.get("id"))
                return job, True
            return None, True
        if answer.status == 204:
            log.debug("Checking for jobs... no content")
            return None, True
        if answer.status == 403:
            log.error("Checking for jobs... forbidden", status=answer.status)
            return None, False
        if answer.status == 503:
            log.warning("Checking for jobs... GitLab instance currently unavailable")
            return None, True
        if answer.status == CLIENT_ERROR:
            log.error(
                "Checking for jobs... client error", status=answer.body.decode(errors="replace")
            )
            return None, False
        log.warning("Checking for jobs... failed", status=answer.status)
        return None, True

    def update_job(
        self,
        url: str,
        job_id: int,
        job_token: str,
        state: str,
        *,
        checksum: str = "",
        bytesize: int = 0,
        failure_reason: str = "",
        exit_code: int = 0,
        executor: str = "docker",
    ) -> tuple[str, JobState]:
        """``UpdateJob``: ``PUT jobs/:id``; returns ``createUpdateJobResult``'s state
        (succeeded, accepted, trace_validation_failed, abort, failed) and the remote state."""
        output: dict[str, Any] = {}
        if checksum:
            output["checksum"] = checksum
        if bytesize:
            output["bytesize"] = bytesize
        body: dict[str, Any] = {"info": runner_info(executor), "token": job_token, "state": state}
        if failure_reason:
            body["failure_reason"] = failure_reason
        if checksum:
            body["checksum"] = checksum
        body["output"] = output
        if exit_code:
            body["exit_code"] = exit_code
        answer = self.request(url, "PUT", f"jobs/{job_id}", body, headers={"JOB-TOKEN": job_token})
        remote = _job_state(answer)
        if remote.failed:
            result = "abort"
        elif answer.status == 200:
            result = "succeeded"
        elif answer.status == 202:
            result = "accepted"
        elif answer.status == 412:
            result = "trace_validation_failed"
        elif answer.status in (403, 404, CLIENT_ERROR):
            result = "abort"
        else:
            result = "failed"
        log.debug("Submitting job to coordinator...", job=job_id, code=answer.status, result=result)
        return result, remote

    def patch_trace(
        self, url: str, job_id: int, job_token: str, content: bytes, offset: int
    ) -> tuple[str, int, JobState]:
        """``PatchTrace``: ``PATCH jobs/:id/trace`` with ``Content-Range: start-end``;
        returns (succeeded|not_found|abort|range_mismatch|failed, new sent offset, remote)."""
        end = offset + len(content)
        headers = {
            "JOB-TOKEN": job_token,
            "Content-Range": f"{offset}-{end - 1}",
            "Content-Type": "text/plain",
        }
        answer = self.request(
            url, "PATCH", f"jobs/{job_id}/trace?debug_trace=false", data=content, headers=headers
        )
        remote = _job_state(answer)
        if remote.failed:
            return "abort", offset, remote
        if answer.status == 202:
            return "succeeded", end, remote
        if answer.status == 404:
            return "not_found", offset, remote
        if answer.status == 416:
            _, _, last = remote.remote_range.partition("-")
            return "range_mismatch", int(last) if last.isdigit() else 0, remote
        return "failed", offset, remote


def _job_state(answer: Answer) -> JobState:
    raw = answer.headers.get("x-gitlab-trace-update-interval", "")
    return JobState(
        status=answer.status,
        remote_state=answer.headers.get("job-status", ""),
        update_interval=float(raw) if raw.isdigit() else 0.0,
        remote_range=answer.headers.get("range", ""),
    )
