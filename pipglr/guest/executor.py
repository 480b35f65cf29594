"""``python3 -m pipglr.guest executor config|prepare|run|cleanup``: the driver of
gitlab-runner's custom executor, run by the runner (user runner) against the inner
podman socket. The runner's ``[runners.custom]`` section that runs it is
:mod:`pipglr.customsection`'s (``pipglr executor toml`` prints it).

The contract (GitLab docs "Custom executor"; gitlab-runner v18.11.4
executors/custom/custom.go, command/command.go, api/config.go, api/const.go):

- ``config`` prints :class:`api.ConfigExecOutput` JSON (``custom.go dynamicConfig``,
  ``ConfigExecOutput.InjectInto``): builds and cache dirs, not shared, the job's
  hostname, the driver's name and version, shell ``bash``.
- ``prepare`` (``Prepare``) makes the job's network, volumes, helper, job and
  service containers (:mod:`pipglr.guest.jobcontainer`, :mod:`pipglr.guest.jobimages`,
  :mod:`pipglr.guest.jobservices`), after removing a stale job of the same name.
- ``run SCRIPT STAGE`` (``Run``: ``run_args + [script file, stage]``; ``step_script``
  arrives as ``build_script``) runs the stage in the container :func:`container_for`
  names (:mod:`pipglr.guest.jobexec`).
- ``cleanup`` (``Cleanup``) removes what prepare made; it also runs after a failed or
  killed prepare, and again is harmless.

Exit codes (command.go ``New``, ``waitForCommand``, ``parseBuildFailure``): 0 for
success; a script's non-zero code is written to ``$BUILD_EXIT_CODE_FILE`` and the
driver exits ``$BUILD_FAILURE_EXIT_CODE``; anything the driver could not do (API
error, missing image, refused service) is one line on stderr and
``$SYSTEM_FAILURE_EXIT_CODE``. The runner ends a stage (job cancelled, timeout) with
SIGTERM (``process.KillAndWait``; SIGKILL after ``graceful_kill_timeout``): ``run``
then ends the stage's processes in the container and exits as for a failed script.

Stage routing — where each stage runs (:data:`HELPER_STAGES`): exactly where the
docker executor runs it, common/build.go ``getPredefinedEnv``: ``prepare_script``,
``get_sources``, ``clear_worktree``, ``restore_cache``, ``download_artifacts``,
``archive_cache``, ``archive_cache_on_failure``, ``upload_artifacts_on_success``,
``upload_artifacts_on_failure`` and ``cleanup_file_variables`` in the helper container
(they call git and the runner's helper commands, which the helper image has and a
job image need not); ``build_script``/``step_script``, every ``step_*``
(common/build.go ``StepToBuildStage``), ``after_script`` and any stage not known in
the job container. Both share ``/builds`` and ``/cache``, so nothing is installed
into the job image.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from pipglr import __version__, layout
from pipglr.guest import jobcontainer, jobexec, jobimages, jobservices
from pipglr.guest.jobcontainer import Job, SystemFailure

#: common/build.go ``getPredefinedEnv`` (true entries): run in the helper container.
HELPER_STAGES = frozenset({
    "prepare_script", "get_sources", "clear_worktree", "restore_cache",
    "download_artifacts", "archive_cache", "archive_cache_on_failure",
    "upload_artifacts_on_success", "upload_artifacts_on_failure",
    "cleanup_file_variables",
})  # fmt: skip
VERBS = ("config", "prepare", "run", "cleanup")
#: Seconds a stopped stage's processes get between TERM and KILL.
STOP_GRACE = 5


class Terminated(Exception):
    """SIGTERM (or SIGINT) arrived during ``run``."""


def container_for(job: Job, stage: str) -> str:
    """The container a stage runs in (see the module docstring)."""
    return job.helper if stage in HELPER_STAGES else job.name


def exit_codes(env: Mapping[str, str]) -> tuple[int, int]:
    """(build failure, system failure) codes the runner set (command.go defaults)."""

    def code(key: str, default: int) -> int:
        try:
            return int(env.get(key, default))
        except ValueError:
            return default

    return code("BUILD_FAILURE_EXIT_CODE", 1), code("SYSTEM_FAILURE_EXIT_CODE", 2)


def config_output(job: Job) -> dict[str, Any]:
    """api/config.go ``ConfigExecOutput``."""
    return {
        "builds_dir": jobcontainer.BUILDS_DIR,
        "cache_dir": jobcontainer.CACHE_DIR,
        "builds_dir_is_shared": False,
        "hostname": job.hostname,
        "driver": {"name": "pipglr", "version": __version__},
        "shell": "bash",
    }


def _client() -> Any:
    from podman import PodmanClient

    return PodmanClient(base_url=f"unix://{layout.SOCKET_PATH}")


def _say(line: str) -> None:
    print(line, flush=True)


def prepare(client: Any, env: Mapping[str, str], default_image: str | None,
            helper_override: str | None, say: Callable[[str], None] = _say) -> None:  # fmt: skip
    """``prepare``: see the module docstring."""
    from pipglr.guest import netconfig

    job = jobcontainer.job_from_env(env)
    image = env.get("CUSTOM_ENV_CI_JOB_IMAGE", "").strip() or (default_image or "")
    if not image:
        raise SystemFailure(
            "the job names no image and the runner has no default: add `image:` to the "
            "job or register with --default-image IMAGE"
        )
    services = jobservices.parse(env)
    if stale := jobcontainer.remove_job(client, job):
        say(f"Removed a stale job of the same name: {', '.join(stale)}")
    if maintained := jobimages.maintained_image(client, image):
        say(f"Using the maintained image {maintained} for {image}")
        image = maintained
    else:
        jobimages.ensure_job_image(client, image, env, say)
    helper = jobimages.ensure_helper_image(client, env, helper_override, say)
    for service in services:
        jobimages.ensure_job_image(client, service.image, env, say)
    settings = netconfig.read_job_settings()
    binds = list(settings.volumes) if settings else []
    service_env = (
        dict(e.split("=", 1) for e in settings.environment if "=" in e) if settings else {}
    )
    jobcontainer.create_shared(client, job)
    for index, service in enumerate(services):
        jobcontainer.start(
            client, jobservices.service_spec(job, index, service, binds, service_env)
        )
        say(f"Started service {service.image} as {', '.join(service.aliases)}")
    jobcontainer.start(client, jobcontainer.container_spec(job, "helper", helper, binds))
    jobcontainer.start(client, jobcontainer.container_spec(job, "job", image, binds))
    say(f"Job container {job.name} from {image} (helper {helper}), unprivileged")


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


def run(client: Any, env: Mapping[str, str], script: Path, stage: str) -> int:
    """``run SCRIPT STAGE``: the driver's exit code."""
    build_failure, _ = exit_codes(env)
    job = jobcontainer.job_from_env(env)
    container = container_for(job, stage)
    body = script.read_bytes()
    started: list[str] = []

    def write(stream: int, data: bytes) -> None:
        out = sys.stderr.buffer if stream == jobexec.STDERR else sys.stdout.buffer
        out.write(data)
        out.flush()

    previous = {s: signal.signal(s, _raise_terminated) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = jobexec.run_stage(
            client, container, stage, body, stage in HELPER_STAGES, write, started.append
        )
    except Terminated as why:
        print(
            f"pipglr: {why}: ending the {stage} stage in {container}", file=sys.stderr, flush=True
        )
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_IGN if s == signal.SIGTERM else handler)
        jobexec.stop_stage(client, container, STOP_GRACE)
        ended = jobexec.exec_exit_code(client, started[0], STOP_GRACE + 5) if started else None
        code = ended if ended is not None else 128 + signal.SIGTERM
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code == 0:
        return 0
    if path := env.get("BUILD_EXIT_CODE_FILE"):
        Path(path).write_text(f"{code}\n")
    return build_failure


def cleanup(client: Any, env: Mapping[str, str], say: Callable[[str], None] = _say) -> None:
    """``cleanup``: remove the job's objects (see :func:`jobcontainer.remove_job`)."""
    job = jobcontainer.job_from_env(env)
    gone = jobcontainer.remove_job(client, job)
    say(f"Removed {', '.join(gone)}" if gone else f"Nothing left of {job.name}")


def main(argv: Sequence[str], env: Mapping[str, str] | None = None, client: Any = None) -> int:
    """``executor VERB ...``; the exit code of the contract."""
    env = dict(os.environ) if env is None else env
    _, system_failure = exit_codes(env)
    parser = argparse.ArgumentParser(prog="python3 -m pipglr.guest executor")
    parser.add_argument("verb", choices=VERBS)
    parser.add_argument("--default-image")
    parser.add_argument("--helper-image")
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args(list(argv))
    try:
        if args.verb == "config":
            print(json.dumps(config_output(jobcontainer.job_from_env(env))), flush=True)
        elif args.verb == "run":
            if len(args.rest) != 2:
                raise SystemFailure("run needs SCRIPT STAGE (the runner passes them)")
            return run(client or _client(), env, Path(args.rest[0]), args.rest[1])
        elif args.verb == "prepare":
            prepare(client or _client(), env, args.default_image, args.helper_image)
        else:
            cleanup(client or _client(), env)
    except SystemFailure as exc:
        print(f"pipglr: {exc}", file=sys.stderr, flush=True)
        return system_failure
    except Exception as exc:  # noqa: BLE001 - every other failure is the system's
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        print(
            f"pipglr: executor {args.verb}: {type(exc).__name__}: {first}",
            file=sys.stderr,
            flush=True,
        )
        return system_failure
    return 0
