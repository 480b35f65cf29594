"""Per-stage script bodies (shells/abstract.go ``writeScript`` and the ``write*Script``
methods it dispatches to; shells/bash.go ``generateScript``).

Stage names and descriptions: common/build.go (``BuildStage*``, ``GetStageDescription``,
``getPredefinedEnv``). The artifacts stages' bodies are in :mod:`.artifacts`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from . import artifacts
from .buildinfo import BuildInfo
from .errors import SkipStage
from .jobspec import Variable
from .scripts import BashWriter, cache_archive

PREPARE = "prepare_script"
GET_SOURCES = "get_sources"
RESTORE_CACHE = "restore_cache"
DOWNLOAD_ARTIFACTS = "download_artifacts"
AFTER_SCRIPT = "after_script"
ARCHIVE_CACHE = "archive_cache"
ARCHIVE_CACHE_ON_FAILURE = "archive_cache_on_failure"
UPLOAD_ON_SUCCESS = "upload_artifacts_on_success"
UPLOAD_ON_FAILURE = "upload_artifacts_on_failure"
CLEANUP = "cleanup_file_variables"

DESCRIPTIONS = {
    PREPARE: "Preparing environment",
    GET_SOURCES: "Getting source from Git repository",
    RESTORE_CACHE: "Restoring cache",
    DOWNLOAD_ARTIFACTS: "Downloading artifacts",
    AFTER_SCRIPT: "Running after_script",
    ARCHIVE_CACHE: "Saving cache for successful job",
    ARCHIVE_CACHE_ON_FAILURE: "Saving cache for failed job",
    UPLOAD_ON_FAILURE: "Uploading artifacts for failed job",
    UPLOAD_ON_SUCCESS: "Uploading artifacts for successful job",
    CLEANUP: "Cleaning up project directory and file based variables",
}
#: ``getPredefinedEnv``: stages run in the helper ("predefined") container.
PREDEFINED = {
    PREPARE,
    GET_SOURCES,
    RESTORE_CACHE,
    DOWNLOAD_ARTIFACTS,
    ARCHIVE_CACHE,
    ARCHIVE_CACHE_ON_FAILURE,
    UPLOAD_ON_SUCCESS,
    UPLOAD_ON_FAILURE,
    CLEANUP,
}
GITLAB_ENV = "gitlab_runner_env"
Writer = Callable[[BashWriter, BuildInfo], None]
CACHE_ENV = "gitlab_runner_cache_env"


def description(stage: str) -> str:
    """``GetStageDescription``."""
    return DESCRIPTIONS.get(stage, f'Executing "{stage}" stage of the job script')


def step_stage(step_name: str) -> str:
    """``StepToBuildStage``: ``script`` → ``step_script``."""
    return f"step_{step_name.lower()}"


def generate(info: BuildInfo, stage: str) -> str:
    """The full script for ``stage``; raises :class:`SkipStage` when there is nothing to do."""
    w = BashWriter(info)
    if stage == PREPARE:
        # shells/bash.go ensurePrepareStageHostnameMessage
        via = f" via {info.hostname}" if info.hostname else ""
        w.line("echo " + json.dumps(f"Running on $(hostname){via}..."))
    writers: dict[str, Writer] = {
        PREPARE: _prepare,
        GET_SOURCES: _get_sources,
        RESTORE_CACHE: _restore_cache,
        DOWNLOAD_ARTIFACTS: _download_artifacts,
        AFTER_SCRIPT: _after_script,
        ARCHIVE_CACHE: lambda w, i: _archive_cache(w, i, True),
        ARCHIVE_CACHE_ON_FAILURE: lambda w, i: _archive_cache(w, i, False),
        UPLOAD_ON_SUCCESS: lambda w, i: _upload_artifacts(w, i, True),
        UPLOAD_ON_FAILURE: lambda w, i: _upload_artifacts(w, i, False),
        CLEANUP: _cleanup,
    }
    writers.get(stage, _user_script(stage))(w, info)
    return w.finish()


def _exports(w: BashWriter, info: BuildInfo) -> None:
    """``writeExports``: every variable, then ``GITLAB_ENV`` sourced."""
    for variable in info.all_variables():
        w.variable(variable)
    env_file = w.tmp_file(GITLAB_ENV)
    w.variable(Variable("GITLAB_ENV", env_file))
    w.source_env(env_file)


def _commands(w: BashWriter, commands: list[str]) -> None:
    """``writeCommands``: ``$ command`` in green, then the command."""
    for raw in commands:
        command = raw.strip()
        if not command:
            w.line("echo")
        elif "\n" in command:
            w.notice(f"$ {command.split(chr(10), 1)[0]} # collapsed multi-line command")
        else:
            w.notice(f"$ {command}")
        w.line(command)
        w.checked()


def _prepare(w: BashWriter, info: BuildInfo) -> None:
    """``writePrepareScript``."""
    w.rm_file(w.tmp_file(GITLAB_ENV))
    w.rm_file(w.tmp_file("masking.db"))


def _get_sources(w: BashWriter, info: BuildInfo) -> None:
    """``writeGetSourcesScript`` (git simplified: init/remote/fetch/checkout, no
    submodules, LFS or external credential config)."""
    _exports(w, info)
    w.variable(Variable("GIT_TERMINAL_PROMPT", "0"))
    w.variable(Variable("GCM_INTERACTIVE", "Never"))
    job, project = info.job, info.build_dir
    if not info.job_variables().bool("GIT_LFS_SKIP_SMUDGE"):
        w.variable(Variable("GIT_LFS_SKIP_SMUDGE", "1"))
    strategy = info.git_strategy()
    if strategy in ("fetch", "clone"):
        if strategy == "clone":
            w.rm_dir(project)
        template = w.tmp_file("git-template")
        w.mkdir(template)
        w.command("git", "config", "-f", f"{template}/config", "init.defaultBranch", "none")
        w.command("git", "config", "-f", f"{template}/config", "fetch.recurseSubmodules", "false")
        w.notice(
            f"Fetching changes with git depth set to {job.depth}..."
            if job.depth > 0
            else "Fetching changes..."
        )
        w.command("git", "init", project, "--template", template)
        w.cd(project)
        w.if_cmd("git", "remote", "add", "origin", job.repo_url)
        w.notice("Created fresh repository.")
        w.else_()
        w.command("git", "remote", "set-url", "origin", job.repo_url)
        w.end_if()
        depth = ["--depth", str(job.depth)] if job.depth > 0 else []
        w.command(
            "git",
            "fetch",
            "origin",
            "--no-recurse-submodules",
            *job.refspecs,
            *depth,
            "--prune",
            "--quiet",
        )
        w.notice(f"Checking out {job.sha[:8]} as detached HEAD (ref is {job.ref})...")
        w.command("git", "-c", "submodule.recurse=false", "checkout", "-f", "-q", job.sha)
        w.command("git", "clean", "-ffdx")
    elif strategy == "none":
        w.notice("Skipping Git repository setup")
        w.mkdir(project)
        w.notice("Skipping Git checkout")
    else:
        w.notice("Skipping Git repository setup and creating an empty build directory")
        w.rm_dir(project)
        w.mkdir(project)
        w.notice("Skipping Git checkout")
    w.notice("Skipping Git submodules setup")


def _guarded(w: BashWriter, action: str) -> None:
    """``guardRunnerCommand`` opening: run only when the helper binary answers."""
    w.if_cmd(w.info.options.runner_command, "--version")


def _guard_end(w: BashWriter, action: str) -> None:
    w.else_()
    w.warning(f"Missing {w.info.options.runner_command}. {action} is disabled.")
    w.end_if()


def _restore_cache(w: BashWriter, info: BuildInfo) -> None:
    """``writeRestoreCacheScript`` → ``cacheExtractor`` (local cache only)."""
    caches = [c for c in info.job.cache if c.paths or c.untracked]
    if not caches:
        raise SkipStage(RESTORE_CACHE)
    _exports(w, info)
    w.cd(info.build_dir)
    for cache in caches:
        key, archive, _ = cache_archive(info, cache)
        if cache.policy not in ("pull", "pull-push"):
            w.notice(f"Not downloading cache {key} due to policy")
            continue
        _guarded(w, "Extracting cache")
        w.notice(f"Checking cache for {key}...")
        w.if_cmd(
            info.options.runner_command,
            "cache-extractor",
            "--file",
            archive,
            "--timeout",
            str(_cache_timeout(info)),
            output=True,
        )
        w.notice("Successfully extracted cache")
        w.else_()
        w.warning("Failed to extract cache")
        w.end_if()
        _guard_end(w, "Extracting cache")


def _cache_timeout(info: BuildInfo) -> int:
    """CACHE_REQUEST_TIMEOUT (minutes), default 10 (common/consts.go)."""
    raw = info.job_variables().get("CACHE_REQUEST_TIMEOUT")
    return int(raw) if raw.isdigit() else 10


def _archive_cache(w: BashWriter, info: BuildInfo, on_success: bool) -> None:
    """``cacheArchiver``/``archiveCache``/``addCacheUploadCommand`` (local cache only)."""
    caches = [c for c in info.job.cache if c.should_cache(on_success) and (c.paths or c.untracked)]
    if not caches:
        raise SkipStage(ARCHIVE_CACHE)
    _exports(w, info)
    w.cd(info.build_dir)
    for cache in caches:
        key, archive, alternate = cache_archive(info, cache)
        if cache.policy not in ("push", "pull-push"):
            w.notice(f"Not uploading cache {key} due to policy")
            continue
        args = [
            "cache-archiver",
            "--file",
            archive,
            "--alternate-file",
            alternate,
            "--timeout",
            str(_cache_timeout(info)),
        ]
        for path in cache.paths:
            args += ["--path", path]
        if cache.untracked:
            args.append("--untracked")
        _guarded(w, "Creating cache")
        w.notice(f"Creating cache {key}...")
        env_file = w.tmp_file(CACHE_ENV)
        metadata = json.dumps({"cachekey": key}, separators=(",", ":"))
        # shells/bash.go DotEnvVariables + helpers/shell_escape.go DotEnvEscape
        escaped = metadata.replace("\\", "\\\\").replace('"', '\\"')
        w.line(f'cat << EOF > {env_file}\nCACHE_METADATA="{escaped}"\nEOF\n')
        w.if_cmd(info.options.runner_command, *args, "--env-file", env_file, output=True)
        w.notice("Created cache")
        w.else_()
        w.warning("Failed to create cache")
        w.end_if()
        w.rm_file(env_file)
        _guard_end(w, "Creating cache")


def _download_artifacts(w: BashWriter, info: BuildInfo) -> None:
    """``writeDownloadArtifactsScript``: exports, cd, ``downloadAllArtifacts``."""
    _exports(w, info)
    w.cd(info.build_dir)
    artifacts.download_all(w, info)


def _upload_artifacts(w: BashWriter, info: BuildInfo, on_success: bool) -> None:
    """``writeUploadArtifacts``: skipped without a coordinator URL, else exports, cd and
    one guarded ``artifacts-uploader`` per artifact whose ``when`` fits."""
    if not info.runner.url:
        raise SkipStage(UPLOAD_ON_SUCCESS if on_success else UPLOAD_ON_FAILURE)
    _exports(w, info)
    w.cd(info.build_dir)
    artifacts.upload_all(w, info, on_success)


def _after_script(w: BashWriter, info: BuildInfo) -> None:
    """``writeAfterScript``."""
    step = next((s for s in info.job.steps if s.name == "after_script"), None)
    if step is None or not step.script:
        raise SkipStage(AFTER_SCRIPT)
    _exports(w, info)
    w.cd(info.build_dir)
    w.notice("Running after script...")
    _commands(w, step.script)


def _user_script(stage: str) -> Writer:
    """``writeUserScript``: the step whose ``step_<name>`` is ``stage``."""

    def write(w: BashWriter, info: BuildInfo) -> None:
        step = next((s for s in info.job.steps if step_stage(s.name) == stage), None)
        if step is None:
            raise SkipStage(stage)
        _exports(w, info)
        w.cd(info.build_dir)
        _commands(w, step.script)

    return write


def _cleanup(w: BashWriter, info: BuildInfo) -> None:
    """``writeCleanupScript``."""
    w.rm_file(w.tmp_file(GITLAB_ENV))
    w.rm_file(w.tmp_file("masking.db"))
    w.rm_file(w.tmp_file(".gitlab-runner.ext.conf"))
    for variable in info.all_variables():
        if variable.file:
            w.rm_file(w.tmp_file(variable.key))
    if info.flag("FF_ENABLE_JOB_CLEANUP") and info.git_strategy() in ("clone", "empty"):
        w.rm_dir(info.build_dir)
    w.rm_file(f"{info.root_dir}/.gitlab-build-uid-gid")
