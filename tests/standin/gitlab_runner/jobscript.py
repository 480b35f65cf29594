"""The stages of one job, in gitlab-runner's order and with its error rules
(common/build.go ``executeScript``, ``executePrepareScripts``, ``executeUserScripts``,
``executeAfterScript``, ``executeArchiveCache``, ``executeUploadArtifacts``,
``removeFileBasedVariables``, ``attemptExecuteStage``, ``executeStage``,
``pickPriorityError``)."""

from __future__ import annotations

import re
from collections.abc import Callable

from . import stages
from .buildinfo import BuildInfo
from .buildlog import BuildLogger, Section
from .context import CANCELED, DEADLINE_EXCEEDED, Context, ContextError
from .dockerapi import DockerError
from .errors import JOB_CANCELED, JOB_EXECUTION_TIMEOUT, BuildError, ExecutorFailure, SkipStage
from .executors import Executor
from .scripts import BashWriter
from .trace import JobTrace

AFTER_SCRIPT_TIMEOUT = 5 * 60.0


def parse_go_duration(text: str) -> float | None:
    """``time.ParseDuration`` for h/m/s/ms values (RUNNER_SCRIPT_TIMEOUT and friends)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


class JobScript:
    """``executeScript`` for one job on one executor."""

    def __init__(
        self,
        info: BuildInfo,
        logger: BuildLogger,
        trace: JobTrace,
        ctx: Context,
        executor: Executor,
        on_stage: Callable[[str], None] | None = None,
    ) -> None:
        self.info, self.logger, self.trace, self.ctx = info, logger, trace, ctx
        self.executor = executor
        self.on_stage = on_stage

    def run(self) -> Exception | None:
        """``executeScript``."""
        error = self._stage(self.ctx, stages.PREPARE)
        if error is not None:
            message = (
                f"prepare environment: {error}. Check https://docs.gitlab.com/runner/"
                "shells/#shell-profile-loading for more information"
            )
            if isinstance(error, BuildError):
                return BuildError(message, error.failure_reason, error.exit_code)
            return RuntimeError(message)
        variables = self.info.job_variables()
        for stage, attempts in (
            (stages.GET_SOURCES, "GET_SOURCES_ATTEMPTS"),
            (stages.RESTORE_CACHE, "RESTORE_CACHE_ATTEMPTS"),
            (stages.DOWNLOAD_ARTIFACTS, "ARTIFACT_DOWNLOAD_ATTEMPTS"),
        ):
            error = self._attempts(stage, variables.get(attempts))
            if error is not None:
                break
        if error is None:
            error = self._user_scripts()
        archive = stages.ARCHIVE_CACHE if error is None else stages.ARCHIVE_CACHE_ON_FAILURE
        upload = stages.UPLOAD_ON_SUCCESS if error is None else stages.UPLOAD_ON_FAILURE
        archive_error = self._stage(self.ctx, archive)
        upload_error = self._stage(self.ctx, upload)
        error = error or archive_error or upload_error
        self._stage(self.ctx, stages.CLEANUP)
        return error

    def _attempts(self, stage: str, raw: str) -> Exception | None:
        """``attemptExecuteStage``: 1..10 attempts (default 1)."""
        attempts = int(raw) if raw.isdigit() and 1 <= int(raw) <= 10 else 1
        error: Exception | None = None
        for _ in range(attempts):
            error = self._stage(self.ctx, stage)
            if error is None:
                return None
        return error

    def _user_scripts(self) -> Exception | None:
        """``executeUserScripts``: steps in a cancellable script context; after_script
        always (5 min by default), its errors ignored unless AFTER_SCRIPT_IGNORE_ERRORS=false."""
        variables = self.info.job_variables()
        script_ctx = Context(self.ctx, parse_go_duration(variables.get("RUNNER_SCRIPT_TIMEOUT")))
        self.trace.set_cancel_func(lambda: script_ctx.cancel(CANCELED))
        error: Exception | None = None
        for step in self.info.job.steps:
            if step.name == "after_script":
                continue
            error = self._stage(script_ctx, stages.step_stage(step.name))
            if error is not None:
                break
        if self.ctx.err() is None and script_ctx.err() == CANCELED:
            error = BuildError("canceled", JOB_CANCELED)
            self.logger.warningln("script canceled externally (UI, API)")
        elif self.ctx.err() != DEADLINE_EXCEEDED and script_ctx.err() == DEADLINE_EXCEEDED:
            error = BuildError("script timeout: context deadline exceeded", JOB_EXECUTION_TIMEOUT)
        script_ctx.release()
        after_timeout = parse_go_duration(variables.get("RUNNER_AFTER_SCRIPT_TIMEOUT"))
        after_ctx = Context(self.ctx, after_timeout or AFTER_SCRIPT_TIMEOUT)
        self.info.job_status = _runtime_state(error)
        after_error = self._stage(after_ctx, stages.AFTER_SCRIPT)
        after_ctx.release()
        if after_error is not None and self.ctx.err() != DEADLINE_EXCEEDED:
            if variables.get("AFTER_SCRIPT_IGNORE_ERRORS").lower() not in ("false", "0", "f"):
                self.logger.warningln(
                    "after_script failed, but job will continue unaffected:", after_error
                )
            elif error is None:
                error = after_error
        return error

    def _stage(self, ctx: Context, stage: str) -> Exception | None:
        """``executeStage``: skip when done or nothing to do, else section + header + run."""
        if ctx.err() is not None:
            return ContextError(ctx.err() or CANCELED)
        if self.on_stage is not None:
            self.on_stage(stage)  # setCurrentStage, before the script is generated
        try:
            script = stages.generate(self.info, stage)
        except SkipStage:
            if self.info.flag("FF_SKIP_NOOP_BUILD_STAGES"):
                return None
            script = BashWriter(self.info).finish()
        with Section(self.logger, stage, self.info.job.trace_sections):
            self.logger.stage_header(stages.description(stage))
            try:
                self.executor.run(ctx, script, predefined=stage in stages.PREDEFINED, stage=stage)
            except (BuildError, DockerError, ContextError, ExecutorFailure, OSError) as exc:
                return exc
        return None


def _runtime_state(error: Exception | None) -> str:
    """``runtimeStateAndError`` state names, for CI_JOB_STATUS in after_script."""
    if error is None:
        return "success"
    if isinstance(error, BuildError) and error.failure_reason == JOB_CANCELED:
        return "canceled"
    if isinstance(error, BuildError) and error.failure_reason == JOB_EXECUTION_TIMEOUT:
        return "timedout"
    return "failed"
