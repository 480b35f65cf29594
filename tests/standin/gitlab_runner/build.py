"""One job from payload to final update (common/build.go ``Build.Run``, ``run``,
``printRunningWithHeader``, ``executeBuildSection``, ``retryCreateExecutor``,
``handleError``/``runtimeStateAndError``, ``setTraceStatus``; what the metrics read:
``CurrentState``, ``CurrentStage``/``setCurrentStage``, ``CurrentExecutorStage`` through
``setExecutorStageResolver``, ``CurrentDuration`` since ``startedAt``); the stages
themselves: :mod:`.jobscript`."""

from __future__ import annotations

import time

from .buildinfo import FEATURE_FLAGS, BuildInfo, go_duration
from .buildlog import BuildLogger, Section
from .context import CANCELED, DEADLINE_EXCEEDED, Context, ContextError
from .errors import (
    JOB_CANCELED,
    JOB_EXECUTION_TIMEOUT,
    RUNNER_SYSTEM_FAILURE,
    BuildError,
)
from .executors import Executor, ExecutorFactory, factory_for
from .jobscript import JobScript
from .trace import JobTrace

PREPARATION_RETRIES = 3
PREPARATION_RETRY_INTERVAL = 3.0


class Build:
    """``common.Build``: runs the stages through the runner's executor (the provider
    named by ``[[runners]] executor`` unless a factory is given)."""

    def __init__(
        self,
        info: BuildInfo,
        trace: JobTrace,
        executor_factory: ExecutorFactory | None = None,
    ) -> None:
        self.info, self.trace = info, trace
        self.factory = executor_factory or factory_for(info.runner.executor)
        self.logger = BuildLogger.for_build(info, trace)
        self.ctx = Context(timeout=float(info.timeout()))
        self.interrupted: str | None = None
        self.state = "pending"
        #: ``CurrentStage``: the build stage running (set by ``executeStage``)
        self.stage = ""
        #: ``startedAt`` (NewBuild), for ``CurrentDuration``
        self.started_at = time.monotonic()
        self._executor: Executor | None = None

    @property
    def executor_stage(self) -> str:
        """``CurrentExecutorStage``: the stage of the executor last created, "" before."""
        return str(getattr(self._executor, "current_stage", ""))

    def duration(self) -> float:
        """``CurrentDuration`` in seconds."""
        return time.monotonic() - self.started_at

    def interrupt(self, signal_name: str) -> None:
        """``SystemInterrupt``: the runner aborts the job (SIGTERM/SIGINT)."""
        self.interrupted = signal_name
        self.ctx.cancel(CANCELED)

    def run(self) -> None:
        """``Run``: header, executor, stages, cleanup, final status."""
        self.trace.supported_failure_reasons = list(self.info.job.failure_reasons)
        self._header()
        # configureTrace: both cancel and abort stop the whole job until the user
        # scripts replace the cancel func with their own context's
        self.trace.set_cancel_func(lambda: self.ctx.cancel(CANCELED))
        self.trace.set_abort_func(lambda: self.ctx.cancel(CANCELED))
        error: Exception | None = None
        try:
            executor = self._prepare_executor()
            try:
                error = self._run(executor)
            finally:
                executor.cleanup()
        except Exception as exc:  # noqa: BLE001 - every failure becomes the job's status
            error = exc
        finally:
            self.ctx.release()
            # Run's deferred b.logger.Close (after executor.Cleanup): a held-back partial
            # line is flushed before the final status
            self.logger.close()
        self._set_trace_status(error)

    def _header(self) -> None:
        """``printRunningWithHeader``: its own logger, closed after the header."""
        info = self.info
        logger = BuildLogger.for_build(info, self.trace)
        logger.println("Running with", info.app_line())
        logger.println(f"  on {info.runner.name} {info.short_token}, system ID: {info.system_id}")
        flags = info.feature_flags()
        changed = [f"{k}:{str(v).lower()}" for k, v in flags.items() if v != FEATURE_FLAGS[k]]
        if changed:
            logger.println("  feature flags:", ", ".join(changed))
        logger.close()

    def _prepare_executor(self) -> Executor:
        """``executeBuildSection`` → ``retryCreateExecutor``: up to 3 tries, 3 s apart,
        unless the error is a BuildError or the job is done."""
        with Section(self.logger, "prepare_executor", self.info.job.trace_sections):
            self.logger.println(
                f'\033[36;1mPreparing the "{self.info.runner.executor}" executor\033[0;m'
            )
            error: Exception | None = None
            for _ in range(PREPARATION_RETRIES):
                executor = self.factory(self.info, self.logger, self.ctx)
                self._executor = executor  # setExecutorStageResolver
                try:
                    executor.prepare()
                    return executor
                except Exception as exc:  # noqa: BLE001 - retried unless BuildError
                    error = exc
                    executor.cleanup()
                    if isinstance(exc, BuildError):
                        raise
                    if self.ctx.done():
                        raise self._context_error() from exc
                    self.logger.errorln("Preparation failed:", exc)
                    self.logger.infoln(
                        f"Will be retried in {go_duration(PREPARATION_RETRY_INTERVAL)} ..."
                    )
                    self.ctx.wait(PREPARATION_RETRY_INTERVAL)
            assert error is not None
            raise error

    def _context_error(self) -> BuildError:
        """``runtimeStateAndError`` for a done job context."""
        if self.interrupted:
            self.state = "terminated"
            return BuildError(f"aborted: {self.interrupted}", RUNNER_SYSTEM_FAILURE)
        if self.ctx.err() == DEADLINE_EXCEEDED:
            self.state = "timedout"
            return BuildError(
                f"execution took longer than {go_duration(self.info.timeout())} seconds",
                JOB_EXECUTION_TIMEOUT,
            )
        self.state = "canceled"
        return BuildError("canceled", JOB_CANCELED)

    def _run(self, executor: Executor) -> Exception | None:
        """``run``: the script, then the job context decides (abort, timeout)."""
        self.state = "running"
        error = JobScript(
            self.info, self.logger, self.trace, self.ctx, executor, on_stage=self._set_stage
        ).run()
        if self.ctx.done():
            return self._context_error()
        self.state = "failed" if error else "success"
        return error

    def _set_stage(self, stage: str) -> None:
        """``setCurrentStage``."""
        self.stage = stage

    def _set_trace_status(self, error: Exception | None) -> None:
        """``setTraceStatus``: the last trace line (its own logger, closed after the
        final update) and the final update."""
        logger = BuildLogger.for_build(self.info, self.trace)
        try:
            self._final_status(logger, error)
        finally:
            logger.close()

    def _final_status(self, logger: BuildLogger, error: Exception | None) -> None:
        if error is None:
            logger.infoln("Job succeeded")
            self.trace.success()
            return
        if isinstance(error, ContextError):
            error = self._context_error()
        if isinstance(error, BuildError):
            system = error.failure_reason == RUNNER_SYSTEM_FAILURE
            logger.errorln(f"Job failed{' (system failure)' if system else ''}: {error}")
            self.trace.fail(error.failure_reason, error.exit_code)
            return
        logger.errorln("Job failed (system failure):", error)
        self.trace.fail(RUNNER_SYSTEM_FAILURE)
