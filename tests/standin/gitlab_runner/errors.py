"""Error kinds with gitlab-runner's meaning (common/executor.go ``BuildError``,
common/network.go failure reasons)."""

from __future__ import annotations

SCRIPT_FAILURE = "script_failure"
RUNNER_SYSTEM_FAILURE = "runner_system_failure"
JOB_EXECUTION_TIMEOUT = "job_execution_timeout"
IMAGE_PULL_FAILURE = "image_pull_failure"
UNKNOWN_FAILURE = "unknown_failure"
CONFIGURATION_ERROR = "configuration_error"
JOB_CANCELED = "job_canceled"

#: common/network.go ``alwaysSupportedFailureReasons``.
ALWAYS_SUPPORTED = (SCRIPT_FAILURE, RUNNER_SYSTEM_FAILURE, JOB_EXECUTION_TIMEOUT)
#: common/network.go ``failureReasonsCompatibilityMap``.
COMPATIBILITY = {IMAGE_PULL_FAILURE: RUNNER_SYSTEM_FAILURE, CONFIGURATION_ERROR: SCRIPT_FAILURE}


class BuildError(Exception):
    """A job failure with a reason and exit code (common/executor.go ``BuildError``).

    Anything else raised while running a job is a system failure (common/build.go
    ``setTraceStatus``).
    """

    def __init__(self, message: str, failure_reason: str = "", exit_code: int = 0) -> None:
        super().__init__(message)
        self.failure_reason = failure_reason
        self.exit_code = exit_code


class ExecutorFailure(Exception):
    """An executor error that is not a BuildError (a custom executor program's exit
    error, a failure to start it): retried in preparation, a system failure when it
    ends the job (common/build.go ``retryCreateExecutor``, ``setTraceStatus``)."""


class SkipStage(Exception):
    """The stage has nothing to do (common/build.go ``ErrSkipBuildStage``)."""


class StandinError(Exception):
    """A usage or configuration error reported on one line."""


def map_failure_reason(reason: str, supported: list[str]) -> str:
    """common/failure_reason_mapper.go ``Map``: fall back to what GitLab understands."""
    if not reason:
        return SCRIPT_FAILURE
    known = [*supported, *ALWAYS_SUPPORTED]
    for _ in range(10):
        if reason in known:
            return reason
        if reason not in COMPATIBILITY:
            break
        reason = COMPATIBILITY[reason]
    return UNKNOWN_FAILURE
