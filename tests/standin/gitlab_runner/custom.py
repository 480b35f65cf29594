"""The custom executor: config_exec, prepare_exec, one run_exec per stage, cleanup_exec
(executors/custom/custom.go ``executor``: ``Prepare``, ``prepareConfig``,
``createJobResponseFile``, ``dynamicConfig``, ``ConfigExecOutput.InjectInto``,
``logStartupMessage``, ``prepareCommand``, ``getCIJobServicesEnv``, ``Run``, ``Cleanup``,
``NewProvider``; executors/abstract.go ``PrepareConfiguration``,
``PrepareBuildAndShell``, ``startBuild``, ``Cleanup``; common/build.go ``StartBuild``,
``getCustomBuildDir``). One program run: :mod:`.customcommand`; the config and its
timeouts: :mod:`.customconfig`; the JSON: :mod:`.customjson`.

The stage scripts are the ones every executor gets (:mod:`.stages`), with the custom
provider's options (:data:`.executoropts.CUSTOM`: helper command ``gitlab-runner``, the
config_exec's builds/cache dirs, hostname and shell). Each is written to
``<tmp>/custom-executor*/script*/script`` (mode 0700) and run as
``run_exec [run_args...] <script> <stage>``, ``step_script`` passed as ``build_script``.

Not mirrored: the job response file holds the payload as GitLab sent it (upstream
re-encodes its ``spec.Job`` struct: Go field order, zero-valued fields present); the
Windows process strategies; the interactive web terminal (custom/terminal.go).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

from . import customconfig, customjson, log
from .buildinfo import BuildInfo
from .buildlog import STREAM_EXECUTOR_LEVEL, STREAM_WORK_LEVEL, BuildLogger, LogStream
from .context import Context
from .customcommand import Command, LineLog, Output
from .customconfig import CustomConfig
from .errors import BuildError, ExecutorFailure
from .executoropts import CUSTOM, start_build
from .timestamper import STDERR, STDOUT

STEP_SCRIPT_WARNING = (
    "Starting with version 17.0 the 'build_script' stage will be replaced with "
    "'step_script': https://gitlab.com/groups/gitlab-org/-/epics/6112"
)


class CustomExecutor:
    """One job's driver programs."""

    def __init__(self, info: BuildInfo, logger: BuildLogger, ctx: Context) -> None:
        self.info, self.logger, self.ctx = info, logger, ctx
        # NewProvider's ExecutorOptions (ShowHostname false: the hostname comes from
        # config_exec only)
        info.options = dataclasses.replace(CUSTOM)
        info.hostname = ""
        self.config: CustomConfig | None = None
        self.temp_dir = ""
        self.job_response_file = ""
        self.build_exit_code_file = ""
        self.job_env: dict[str, str] = {}
        self.driver: customjson.ConfigExecOutput | None = None
        # the creator leaves AbstractExecutor.currentStage at its zero value
        self.current_stage = ""

    @property
    def custom(self) -> CustomConfig:
        """``e.config`` (after ``prepareConfig``)."""
        if self.config is None:
            raise BuildError("custom executor not configured")
        return self.config

    # --- Prepare ---------------------------------------------------------------------
    def prepare(self) -> None:
        """``Prepare``."""
        self.current_stage = "prepare"  # PrepareConfiguration
        customconfig.check(self.info.runner.raw)  # the stand-in's key guard
        self.config = customconfig.load(self.info.runner.raw)  # prepareConfig
        self.temp_dir = tempfile.mkdtemp(prefix="custom-executor")
        self.job_response_file = self._job_response_file()
        self.build_exit_code_file = os.path.join(self.temp_dir, "build_exit_code")
        self._dynamic_config()
        self._startup_message()
        self._start_build()
        if not self.custom.prepare_exec:
            return
        ctx = Context(self.ctx, self.custom.prepare_timeout())
        out, err = self._streams(STREAM_EXECUTOR_LEVEL)
        try:
            self._command(
                self.custom.prepare_exec, self.custom.prepare_args, out.write, err.write
            ).run(ctx)
        finally:
            ctx.release()
            out.close()
            err.close()

    def _job_response_file(self) -> str:
        """``createJobResponseFile``: ``response.json``, mode 0600."""
        path = os.path.join(self.temp_dir, "response.json")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(customjson.job_response(self.info.job.raw))
        return path

    def _dynamic_config(self) -> None:
        """``dynamicConfig``: config_exec's stdout as JSON (stderr into the trace)."""
        if not self.custom.config_exec:
            return
        ctx = Context(self.ctx, self.custom.config_timeout())
        buffer = bytearray()
        err = self.logger.stream(STREAM_EXECUTOR_LEVEL, STDERR)
        try:
            self._command(
                self.custom.config_exec, self.custom.config_args, buffer.extend, err.write
            ).run(ctx)
        finally:
            ctx.release()
            err.close()
        if not buffer:
            return
        try:
            output = customjson.parse_config_output(bytes(buffer))
        except customjson.ConfigJSONError as exc:
            raise ExecutorFailure(f"error while parsing JSON output: {exc}") from exc
        self._inject(output)

    def _inject(self, output: customjson.ConfigExecOutput) -> None:
        """``ConfigExecOutput.InjectInto``."""
        options = self.info.options
        if output.hostname is not None:
            self.info.hostname = output.hostname
        if output.builds_dir is not None:
            options.builds_dir = output.builds_dir
        if output.cache_dir is not None:
            options.cache_dir = output.cache_dir
        if output.builds_dir_is_shared is not None:
            options.shared_builds_dir = output.builds_dir_is_shared
        self.driver = output
        if output.job_env is not None:
            self.job_env = output.job_env
        if output.shell is not None:
            options.config_shell = output.shell

    def _startup_message(self) -> None:
        """``logStartupMessage``."""
        usage = "Using Custom executor"
        driver = self.driver
        if driver is None or driver.driver_name is None:
            self.logger.println(f"{usage}...")
        elif driver.driver_version is None:
            self.logger.println(f"{usage} with driver {driver.driver_name}...")
        else:
            self.logger.println(
                f"{usage} with driver {driver.driver_name} {driver.driver_version}..."
            )

    def _start_build(self) -> None:
        """``PrepareBuildAndShell``."""
        start_build(self.info)

    # --- the programs --------------------------------------------------------------------
    def _streams(self, level: int) -> tuple[LogStream, LogStream]:
        return self.logger.stream(level, STDOUT), self.logger.stream(level, STDERR)

    def _environment(self) -> list[tuple[str, str]]:
        """``prepareCommand``: job_env first, then ``CUSTOM_ENV_`` + every variable of
        ``GetAllVariables`` and ``CI_JOB_SERVICES``."""
        env = list(self.job_env.items())
        for variable in self.info.all_variables():
            env.append((f"CUSTOM_ENV_{variable.key}", variable.value))
        services = customjson.job_services(list(self.info.job.raw.get("services") or []))
        env.append(("CUSTOM_ENV_CI_JOB_SERVICES", services))
        return env

    def _command(self, executable: str, args: list[str], out: Output, err: Output) -> Command:
        """``prepareCommand``: in the temp dir, with the kill timeouts."""
        return Command(
            executable=executable,
            args=list(args),
            cwd=self.temp_dir,
            stdout=out,
            stderr=err,
            job_response_file=self.job_response_file,
            build_exit_code_file=self.build_exit_code_file,
            graceful_kill=self.custom.graceful_kill(),
            force_kill=self.custom.force_kill(),
            env=self._environment(),
            warn=lambda message: self.logger.warningln(message),
        )

    # --- Run -------------------------------------------------------------------------------
    def run(self, stage_ctx: Context, script: str, predefined: bool, stage: str = "") -> None:
        """``Run``: the script into a fresh ``script*`` dir, then ``run_exec``."""
        script_dir = tempfile.mkdtemp(prefix="script", dir=self.temp_dir)
        path = os.path.join(script_dir, "script")  # bash/sh: no Extension
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, "w") as handle:
            handle.write(script)
        if stage == "step_script":
            self.logger.warningln(STEP_SCRIPT_WARNING)
            stage = "build_script"
        out, err = self._streams(STREAM_WORK_LEVEL)
        try:
            self._command(
                self.custom.run_exec, [*self.custom.run_args, path, stage], out.write, err.write
            ).run(stage_ctx)
        finally:
            out.close()
            err.close()

    # --- Cleanup ---------------------------------------------------------------------------
    def cleanup(self) -> None:
        """``Cleanup``: cleanup_exec on a fresh context; its output into the runner's log
        only (stdout debug, stderr warning, ``cleanup_std``); the temp dir removed."""
        self.current_stage = "cleanup"
        try:
            config = customconfig.load(self.info.runner.raw)
        except BuildError as exc:
            self.logger.warningln(exc)
            return
        self.config = config
        try:
            if not config.cleanup_exec:
                return
            ctx = Context(None, config.cleanup_timeout())
            out = LineLog(lambda line: log.debug(line, cleanup_std="out", job=self.info.job.id))
            err = LineLog(lambda line: log.warning(line, cleanup_std="err", job=self.info.job.id))
            try:
                self._command(config.cleanup_exec, config.cleanup_args, out.write, err.write).run(
                    ctx
                )
            except (BuildError, ExecutorFailure) as exc:
                self.logger.warningln("Cleanup script failed:", exc)
            finally:
                ctx.release()
                out.close()
                err.close()
        finally:
            if self.temp_dir:
                shutil.rmtree(self.temp_dir, ignore_errors=True)
