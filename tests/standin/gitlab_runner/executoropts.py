"""What the executor running a job decides about the build's directories, hostname and
shell (executors/abstract.go ``ExecutorOptions``, ``RootDir``, ``CacheDir``,
``CustomBuildEnabled``, ``startBuild``, ``updateShell``; common/build.go ``StartBuild``,
``getCustomBuildDir``, ``ProjectUniqueDir``, ``GetSharedEnvVariable``/``IsSharedEnv``).

The defaults are the docker executor's (executors/docker/docker_command.go
``newDockerOptions``; its features leave ``Shared`` false). The custom executor's are
:data:`CUSTOM` (executors/custom/custom.go ``NewProvider``: no default builds or cache
directory, no custom build dir by default, RunnerCommand ``gitlab-runner``, the default
shell, ``ShowHostname: false``; ``featuresUpdater``: ``Shared = true``), and its
config_exec may replace the builds/cache dirs, the shared flag, the hostname and the
shell (custom.go ``ConfigExecOutput.InjectInto``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The docker executor's RunnerCommand as the stand-in has always written it (upstream:
#: ``/usr/bin/gitlab-runner-helper``, on PATH in the helper image either way).
RUNNER_COMMAND = "gitlab-runner-helper"


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
