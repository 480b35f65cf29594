"""``gitlab-runner run`` (commands/multi.go ``RunCommand``: ``Start``, ``run``,
``feedRunners``, ``processRunners``, ``processRunner``, ``processBuildOnRunner``,
``requestJob``, ``requeueRunner``, ``traceOutcome``, ``Stop``,
``handleGracefulShutdown``, ``handleForcefulShutdown``, ``abortAllBuilds``;
commands/builds_helper.go ``buildsHelper``; commands/multi.go health checks); the
metrics and debug server (``setupMetricsAndDebugServer``): :mod:`.metrics`.

Signals: SIGQUIT stops taking jobs and waits for running ones (exit 0); SIGTERM/SIGINT
abort running jobs (each fails with ``aborted: <signal>``, cleans up and reports), then
exit; a second signal exits at once. Every stop signal cancels the job requests in
flight (``Stop`` → ``interruptRun`` → ``doJobRequest``'s context), so a request held by
a long-polling GitLab does not hold the shutdown up.
"""

from __future__ import annotations

import contextlib
import math
import queue
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from . import config, log, metrics
from .build import Build
from .buildinfo import BuildInfo
from .config import Config, RunnerConfig
from .executors import PROVIDERS, ExecutorFactory
from .jobspec import Job
from .network import Canceller, GitLabClient
from .reload import ConfigReloader
from .systemid import load_or_create
from .trace import JobTrace

SIGNAL_NAMES = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupt", signal.SIGQUIT: "quit"}
UNHEALTHY_REQUESTS_LIMIT = 3
UNHEALTHY_INTERVAL = 60 * 60.0


#: helpers/featureflags/flags.go ``UseAdaptiveRequestConcurrency`` (default on).
ADAPTIVE_FLAG = "FF_USE_ADAPTIVE_REQUEST_CONCURRENCY"
#: commands/builds_helper.go: a request that got a job +10 %, one that did not -5 %.
CONCURRENCY_INCREASE_FACTOR = 1.1
CONCURRENCY_DECREASE_FACTOR = 0.95


def adaptive(runner: RunnerConfig) -> bool:
    """``IsFeatureFlagOn(UseAdaptiveRequestConcurrency)`` (common/config.go
    ``RunnerSettings.IsFeatureFlagOn``: the runner's own setting, else the default)."""
    return runner.feature_flags.get(ADAPTIVE_FLAG, True)


@dataclass
class RunnerCounter:
    """commands/builds_helper.go ``runnerCounter``."""

    system_id: str
    runner_name: str
    builds: int = 0
    requests: int = 0
    hard_limit: int = 0
    adaptive_limit: float = 0.0
    used_limit: int = 0
    exceeded: int = 0
    #: the ``gitlab_runner_jobs_total`` series of this runner (``jobsTotal``)
    jobs_total: int = 0


class BuildsHelper:
    """``buildsHelper``: per-runner counters (keyed by the runner's token, as
    ``getRunnerCounter`` keys them, so they outlive a config reload) for ``limit`` and
    ``request_concurrency``, and the concurrency ids of running builds."""

    def __init__(self, system_id: str = "") -> None:
        self._lock = threading.Lock()
        #: ``GetSystemID`` of every runner (the runner's one system id)
        self.system_id = system_id
        self.counters: dict[str, RunnerCounter] = {}
        self.running: list[tuple[BuildInfo, Build]] = []

    def _counter(self, runner: RunnerConfig) -> RunnerCounter:
        """``getRunnerCounter`` (lock held): created on first use."""
        counter = self.counters.get(runner.token)
        if counter is None:
            counter = self.counters[runner.token] = RunnerCounter(self.system_id, runner.name)
        return counter

    def acquire_build(self, runner: RunnerConfig) -> bool:
        """``acquireBuild``: refuse when ``limit`` (> 0) builds run."""
        with self._lock:
            counter = self._counter(runner)
            if runner.limit > 0 and counter.builds >= runner.limit:
                return False
            counter.builds += 1
            return True

    def release_build(self, runner: RunnerConfig) -> None:
        """``releaseBuild``."""
        with self._lock:
            counter = self._counter(runner)
            counter.builds = max(0, counter.builds - 1)

    def acquire_request(self, runner: RunnerConfig) -> bool:
        """``acquireRequest``: at most ``request_concurrency`` (default 1) requests, or,
        with adaptive request concurrency, the adaptive limit rounded up (1 at least,
        ``request_concurrency`` at most); a refusal counts as exceeded."""
        with self._lock:
            counter = self._counter(runner)
            concurrency = counter.hard_limit = runner.request_limit()
            if adaptive(runner):
                concurrency = min(max(1, math.ceil(counter.adaptive_limit)), concurrency)
            counter.used_limit = concurrency
            if counter.requests >= concurrency:
                counter.exceeded += 1
                return False
            counter.requests += 1
            return True

    def release_request(self, runner: RunnerConfig, has_job: bool = False) -> None:
        """``releaseRequest``: the adaptive limit grows after a request that got a job
        and shrinks after one that did not, within [1, ``request_concurrency``]."""
        with self._lock:
            counter = self._counter(runner)
            if adaptive(runner):
                factor = CONCURRENCY_INCREASE_FACTOR if has_job else CONCURRENCY_DECREASE_FACTOR
                counter.adaptive_limit = min(
                    max(1.0, counter.adaptive_limit * factor), float(runner.request_limit())
                )
            counter.requests = max(0, counter.requests - 1)

    def snapshot(self) -> tuple[dict[str, RunnerCounter], list[tuple[BuildInfo, Build]]]:
        """Copies of the counters and the running builds, for the metrics server."""
        with self._lock:
            counters = {token: replace(c) for token, c in self.counters.items()}
            return counters, list(self.running)

    def add(self, info: BuildInfo, build: Build) -> None:
        """``addBuild``: lowest free CI_CONCURRENT_ID / CI_CONCURRENT_PROJECT_ID."""
        with self._lock:
            same = [i for i, _ in self.running if i.runner is info.runner]
            ids = {i.runner_id for i in same}
            project_ids = {
                i.project_runner_id for i in same if i.job.project_id == info.job.project_id
            }
            while info.runner_id in ids:
                info.runner_id += 1
            while info.project_runner_id in project_ids:
                info.project_runner_id += 1
            self.running.append((info, build))
            self._counter(info.runner).jobs_total += 1  # jobsTotal.Inc

    def remove(self, build: Build) -> None:
        """``removeBuild``."""
        with self._lock:
            self.running = [(i, b) for i, b in self.running if b is not build]

    def builds(self) -> list[Build]:
        """The running builds."""
        with self._lock:
            return [b for _, b in self.running]


class HealthHelper:
    """commands/health_helper.go: a runner whose job requests failed 3 times in a row is
    skipped for an hour (``unhealthy_requests_limit``, ``unhealthy_interval``)."""

    def __init__(self) -> None:
        self._state: dict[int, tuple[int, float]] = {}

    def is_healthy(self, runner: RunnerConfig) -> bool:
        """``isHealthy``."""
        failures, since = self._state.get(id(runner), (0, 0.0))
        if failures < UNHEALTHY_REQUESTS_LIMIT:
            return True
        if time.monotonic() - since > UNHEALTHY_INTERVAL:
            self._state[id(runner)] = (0, 0.0)
            return True
        return False

    def mark(self, runner: RunnerConfig, healthy: bool) -> None:
        """``markHealth``."""
        failures, _ = self._state.get(id(runner), (0, 0.0))
        self._state[id(runner)] = (0, 0.0) if healthy else (failures + 1, time.monotonic())


class RunCommand:
    """The multi-runner: feeder, ``concurrent`` workers, signals, token rotation."""

    def __init__(
        self,
        config_path: Path,
        client: GitLabClient | None = None,
        executor_factory: ExecutorFactory | None = None,
        listen_address: str = "",
    ) -> None:
        self.config_path = config_path
        #: ``--listen-address`` (over config.toml's ``listen_address``)
        self.listen_address = listen_address
        self.client = client or GitLabClient()
        self.factory = executor_factory
        self.helper = BuildsHelper()
        self.runners: queue.Queue[RunnerConfig] = queue.Queue(maxsize=1)
        self.stop_signal: str | None = None
        self.stopping = threading.Event()
        self.config = Config(raw={})
        self.system_id = ""
        self.health = HealthHelper()
        self.job_requests = Canceller()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = SIGNAL_NAMES.get(signal.Signals(signum), str(signum))
        log.warning("received stop signal", **{"stop-signal": name})
        self.job_requests.cancel()
        if self.stop_signal is not None and self.stop_signal != "quit":
            log.warning("forced exit with stop signal", **{"stop-signal": name})
            raise SystemExit(1)
        if self.stop_signal == "quit" and name != "quit":
            self.abort_all(name)
        self.stop_signal = name
        self.stopping.set()

    def abort_all(self, name: str) -> None:
        """``abortAllBuilds``: every running build gets the system interrupt."""
        for build in self.helper.builds():
            build.interrupt(name)

    def run(self) -> int:
        """``Execute``/``Start``/``run``/``Stop``."""
        log.info(f"Starting multi-runner from {self.config_path}...", builds=0)
        self._load()
        if self.config.concurrent < 1:
            log.fatal(
                f"Current configuration 'concurrent = {self.config.concurrent}' means that no "
                "jobs will be processed"
            )
            return 1
        try:
            server = metrics.setup(self, self.listen_address)
        except metrics.ListenError:
            return 1  # logrus Fatal: the process exits 1
        try:
            for signum in SIGNAL_NAMES:
                signal.signal(signum, self._on_signal)
            workers: list[threading.Thread] = []
            reloader = ConfigReloader(self, workers, self._start_worker)
            signal.signal(signal.SIGHUP, lambda *_: reloader.request())
            reloader.start()
            self._feed()
            return shutdown(self, workers)
        finally:
            if server is not None:
                server.stop()

    def _load(self) -> None:
        self.config = config.load(self.config_path)
        if self.config.log_level:
            with contextlib.suppress(ValueError):
                log.set_level(self.config.log_level)
        self.system_id = self.helper.system_id = load_or_create(self.config_path)
        # One client per credentials upstream (network/client.go); each runner's
        # tls-ca-file is its client's addTLSCA.
        self.client.ca_files = {r.url.rstrip("/"): r.tls_ca_file for r in self.config.runners}
        log.info("Configuration loaded", builds=0, max_builds=self.config.concurrent)

    def reload_config(self) -> None:
        """``reloadConfig`` (:mod:`.reload`): load again, every runner healthy again."""
        self._load()
        self.health = HealthHelper()

    def _start_worker(self, index: int) -> threading.Thread:
        thread = threading.Thread(
            target=self._worker, args=(index,), daemon=True, name=f"worker-{index}"
        )
        thread.start()
        return thread

    def _feed(self) -> None:
        """``feedRunners``: each runner in turn, ``check_interval / len(runners)`` apart."""
        while not self.stopping.is_set():
            runners = self.config.runners
            if not runners:
                self.stopping.wait(self.config.check_interval_seconds())
                continue
            interval = self.config.check_interval_seconds() / len(runners)
            for runner in runners:
                if self.health.is_healthy(runner):
                    while not self.stopping.is_set():
                        try:
                            self.runners.put(runner, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                if self.stopping.wait(interval):
                    return

    def _worker(self, index: int) -> None:
        """``processRunners``: take a runner, process it, until stopping (or until a
        reload lowered ``concurrent`` below this worker's slot: ``stopWorker``)."""
        while not self.stopping.is_set() and index < self.config.concurrent:
            try:
                runner = self.runners.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._process(runner)
            except Exception as exc:  # noqa: BLE001 - a worker survives one bad job
                log.warning("Failed to process runner", runner=runner.name, error=exc)

    def _process(self, runner: RunnerConfig) -> None:
        """``processRunner`` + ``processBuildOnRunner``."""
        if runner.executor not in PROVIDERS:
            log.error(f'Executor "{runner.executor}" is not known; marking Runner as unhealthy')
            self.health.mark(runner, False)
            return
        if not self.helper.acquire_build(runner):
            return
        try:
            if self.stopping.is_set() or not self.helper.acquire_request(runner):
                return
            payload: dict[str, object] | None = None
            try:
                payload, healthy = self.client.request_job(
                    runner.url, runner.token, self.system_id, runner.executor, self.job_requests
                )
            finally:
                self.helper.release_request(runner, payload is not None)
            self.health.mark(runner, healthy)
            if payload is not None:
                self._run_job(runner, payload)
        finally:
            self.helper.release_build(runner)

    def _run_job(self, runner: RunnerConfig, payload: dict[str, object]) -> None:
        """``requestJob`` (trace, the "running" update) then ``build.Run``."""
        job_id, token = int(str(payload.get("id", 0))), str(payload.get("token", ""))
        trace = JobTrace(self.client, runner.url, job_id, token, runner.output_limit)
        trace.start()
        try:
            job = Job.from_dict(dict(payload))
        except (KeyError, TypeError, ValueError) as exc:
            trace.write(f"{exc}\n".encode())
            trace.fail("runner_system_failure")
            return
        result, remote = self.client.update_job(runner.url, job_id, token, "running")
        if result == "abort" or remote.cancel_requested:
            trace.finish()
            return
        info = BuildInfo(runner, job, self.system_id)
        build = Build(info, trace, self.factory)
        self.helper.add(info, build)
        log.info("Added job to processing list", job=job_id, project=job.project_id)
        try:
            if self.stop_signal not in (None, "quit"):
                build.interrupt(self.stop_signal)
            if runner.raw.get("strict_check_interval") is not True:
                with contextlib.suppress(queue.Full):
                    self.runners.put_nowait(runner)  # requeueRunner
            build.run()
        finally:
            self.helper.remove(build)
            log.info("Removed job from processing list", job=job_id, project=job.project_id)


def shutdown(command: RunCommand, workers: list[threading.Thread]) -> int:
    """``Stop``: graceful (SIGQUIT) waits; forceful aborts, then waits up to
    ``shutdown_timeout``."""
    if command.stop_signal == "quit":
        log.warning("Starting graceful shutdown, waiting for builds to finish")
        for worker in workers:
            while worker.is_alive():
                worker.join(0.5)
                if command.stop_signal != "quit":
                    break
        if command.stop_signal == "quit":
            log.info("All workers stopped.")
            log.info("Can exit now!")
            return 0
    log.warning("Starting forceful shutdown", **{"StopSignal": command.stop_signal})
    command.abort_all(command.stop_signal or "interrupt")
    deadline = time.monotonic() + command.config.shutdown_timeout_seconds()
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    if any(worker.is_alive() for worker in workers):
        log.warning("Forceful shutdown not finished properly", error="shutdown timed out")
        return 1
    log.info("All workers stopped.")
    log.info("Can exit now!")
    return 0
