"""What the executor running a job decides about the build's directories, hostname and
shell (executors/abstract.go ``ExecutorOptions``, ``RootDir``, ``CacheDir``,
``CustomBuildEnabled``, ``startBuild``, ``updateShell``; common/build.go ``StartBuild``,
``getCustomBuildDir``, ``ProjectUniqueDir``, ``GetSharedEnvVariable``/``IsSharedEnv``;
common/shell.go ``GetShellConfiguration``).

The defaults are the docker executor's (executors/docker/docker_command.go
``newDockerOptions``; its features leave ``Shared`` false). The custom executor's are
:data:`CUSTOM` (executors/custom/custom.go ``NewProvider``: no default builds or cache
directory, no custom build dir by default, RunnerCommand ``gitlab-runner``, the default
shell, ``ShowHostname: false``; ``featuresUpdater``: ``Shared = true``), and its
config_exec may replace the builds/cache dirs, the shared flag, the hostname and the
shell (custom.go ``ConfigExecOutput.InjectInto``).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import BuildError, ExecutorFailure

if TYPE_CHECKING:
    from .buildinfo import BuildInfo

#: The docker executor's RunnerCommand as the stand-in has always written it (upstream:
#: ``/usr/bin/gitlab-runner-helper``, on PATH in the helper image either way).
RUNNER_COMMAND = "gitlab-runner-helper"
#: the shells whose scripts the stand-in writes (shells/bash.go registers both)
SHELLS = ("bash", "sh")


@dataclass
class ExecutorOptions:
    """``ExecutorOptions`` plus the executor's copy of the runner config's ``builds_dir``,
    ``cache_dir`` and ``shell`` when the executor replaced them (``None``: the
    ``[[runners]]`` value), and whether ``StartBuild`` ran."""

    default_builds_dir: str = "/builds"
    default_cache_dir: str = "/cache"
    shared_builds_dir: bool = False
    default_custom_build_dir_enabled: bool = True
    #: ``Shell.RunnerCommand``: what the generated scripts call for caches/artifacts
    runner_command: str = RUNNER_COMMAND
    #: ``Shell.Shell`` (``[[runners]] shell`` overrides it: ``updateShell``)
    shell: str = "bash"
    #: ``FeaturesInfo.Shared``: CI_SHARED_ENVIRONMENT instead of CI_DISPOSABLE_ENVIRONMENT
    shared_env: bool = False
    #: ``executor.Config.BuildsDir``/``CacheDir``/``Shell`` as config_exec set them
    builds_dir: str | None = None
    cache_dir: str | None = None
    config_shell: str | None = None
    #: before ``StartBuild``, ``Build.RootDir`` and ``BuildDir`` are empty
    started: bool = True


#: executors/custom/custom.go ``NewProvider``.
CUSTOM = ExecutorOptions(
    default_builds_dir="",
    default_cache_dir="",
    default_custom_build_dir_enabled=False,
    runner_command="gitlab-runner",
    shared_env=True,
    started=False,
)


def start_build(info: BuildInfo) -> None:
    """``PrepareBuildAndShell``: ``startBuild`` → ``StartBuild`` (builds/cache dir
    required, GIT_CLONE_PATH only with ``custom_build_dir``), then the shell."""
    options = info.options
    options.started = True
    root = info.root_dir
    if not root:
        options.started = False
        raise BuildError("the builds_dir is not configured")
    if not info.cache_root:
        options.started = False
        raise BuildError("the cache_dir is not configured")
    clone_path = info.job_variables().get("GIT_CLONE_PATH")
    if clone_path:
        section = info.runner.raw.get("custom_build_dir") or {}
        enabled = section.get("enabled", options.default_custom_build_dir_enabled)
        if not enabled:
            raise BuildError(
                "setting GIT_CLONE_PATH is not allowed, enable `custom_build_dir` feature"
            )
        if posixpath.relpath(clone_path, root).startswith(".."):
            raise BuildError(f'the GIT_CLONE_PATH="{clone_path}" has to be within "{root}"')
    if info.shell not in SHELLS:  # GetShellConfiguration
        raise ExecutorFailure(f"shell {info.shell} not found")
