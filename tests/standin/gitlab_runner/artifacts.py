"""Artifacts in the job scripts: the ``download_artifacts`` and
``upload_artifacts_on_success``/``upload_artifacts_on_failure`` stage bodies.

Payload entries: common/spec/spec.go ``Artifact`` (``ArtifactWhen.OnSuccess``/
``OnFailure``), ``Dependency`` and ``DependencyArtifactsFile``. Script bodies:
shells/abstract.go ``downloadAllArtifacts``/``jobArtifacts``/``downloadArtifacts``,
``writeUploadArtifacts``/``writeUploadArtifact``, ``guardRunnerCommand`` and
``changeFilesOwnership``; the helper gets exactly upstream's argument lists. The
caller (:mod:`.stages`) writes the exports and the ``cd`` before, as
``writeDownloadArtifactsScript``/``writeUploadArtifacts`` do.

Simplified: ``RUNNER_GENERATE_ARTIFACTS_METADATA`` (the SLSA statement arguments of
``generateArtifactsMetadataArgs``) is not replayed, and ``[runners.artifact]``
timeouts are not read (upstream's defaults are passed: 1h0m0s, 10m0s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .buildinfo import BuildInfo, go_duration
from .errors import SkipStage
from .scripts import BashWriter

#: common/consts.go ``DefaultArtifactUploadTimeout``, ``DefaultArtifactResponseHeaderTimeout``.
UPLOAD_TIMEOUT = go_duration(3600)
RESPONSE_HEADER_TIMEOUT = go_duration(600)
#: shells/abstract.go ``BuildUidGidFile``.
BUILD_UID_GID_FILE = ".gitlab-build-uid-gid"


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value or []]


@dataclass
class Artifact:
    """common/spec/spec.go ``Artifact``."""

    name: str = ""
    untracked: bool = False
    paths: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    when: str = ""
    type: str = ""
    format: str = ""
    expire_in: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Artifact:
        """One entry of the payload's ``artifacts`` (JSON null reads as "")."""
        return cls(
            name=str(raw.get("name") or ""),
            untracked=bool(raw.get("untracked") or False),
            paths=_strings(raw.get("paths")),
            exclude=_strings(raw.get("exclude")),
            when=str(raw.get("when") or ""),
            type=str(raw.get("artifact_type") or ""),
            format=str(raw.get("artifact_format") or ""),
            expire_in=str(raw.get("expire_in") or ""),
        )

    def on_success(self) -> bool:
        """``ArtifactWhen.OnSuccess``: unset, ``on_success`` or ``always``."""
        return self.when in ("", "on_success", "always")

    def on_failure(self) -> bool:
        """``ArtifactWhen.OnFailure``: ``on_failure`` or ``always``."""
        return self.when in ("on_failure", "always")


@dataclass
class Dependency:
    """common/spec/spec.go ``Dependency`` with its ``DependencyArtifactsFile``."""

    id: int
    token: str
    name: str
    filename: str = ""
    size: int = 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Dependency:
        """One entry of the payload's ``dependencies``."""
        artifacts_file = raw.get("artifacts_file") or {}
        return cls(
            id=int(raw.get("id") or 0),
            token=str(raw.get("token") or ""),
            name=str(raw.get("name") or ""),
            filename=str(artifacts_file.get("filename") or ""),
            size=int(artifacts_file.get("size") or 0),
        )


def guard_runner_command(w: BashWriter, action: str, body: Callable[[], None]) -> None:
    """``guardRunnerCommand``: run ``body`` only when the helper binary answers."""
    w.if_cmd(w.info.options.runner_command, "--version")
    body()
    w.else_()
    w.warning(f"Missing {w.info.options.runner_command}. {action} is disabled.")
    w.end_if()


def change_files_ownership(w: BashWriter, info: BuildInfo, *dirs: str) -> None:
    """``changeFilesOwnership``: hand extracted files to the build container's user when
    the uid/gid file exists (written only with FF_DISABLE_UMASK_FOR_KUBERNETES_EXECUTOR)."""
    quoted = f"'{info.root_dir}/{BUILD_UID_GID_FILE}'"
    w.if_file(f"{info.root_dir}/{BUILD_UID_GID_FILE}")
    for directory in dirs:
        if not directory.strip():
            continue
        w.if_directory(directory)
        w.line(f"chown -R \"$(stat -c '%u:%g' {quoted})\" '{directory}'")
        if info.all_variables().bool("CI_DEBUG_TRACE"):
            w.line(f"echo \"Setting ownership for {directory} to $(stat -c '%u:%g' {quoted})\"")
        w.end_if()
    w.end_if()


def dependencies_with_artifacts(info: BuildInfo) -> list[Dependency]:
    """``jobArtifacts``: dependencies that have an artifacts file."""
    dependencies = [Dependency.from_dict(raw) for raw in info.job.dependencies]
    return [dependency for dependency in dependencies if dependency.filename]


def download_all(w: BashWriter, info: BuildInfo) -> None:
    """``downloadAllArtifacts`` (SkipStage when no dependency has artifacts)."""
    dependencies = dependencies_with_artifacts(info)
    if not dependencies:
        raise SkipStage("download_artifacts")

    def download() -> None:
        for dependency in dependencies:  # downloadArtifacts
            w.notice(f"Downloading artifacts for {dependency.name} ({dependency.id})...")
            w.command(info.options.runner_command, *download_args(info, dependency))

    guard_runner_command(w, "Artifacts downloading", download)
    change_files_ownership(w, info, info.cache_dir, info.root_dir)


def download_args(info: BuildInfo, dependency: Dependency) -> list[str]:
    """``downloadArtifacts``: the helper's arguments for one dependency."""
    return [
        "artifacts-downloader",
        "--url",
        info.runner.url,
        "--token",
        dependency.token,
        "--id",
        str(dependency.id),
    ]


def upload_args(info: BuildInfo, artifact: Artifact) -> list[str] | None:
    """``writeUploadArtifact``'s argument list; None when there is nothing to archive
    (no ``--path``, ``--exclude`` or ``--untracked``)."""
    args = [
        "artifacts-uploader",
        "--url",
        info.runner.url,
        "--token",
        info.job.token,
        "--id",
        str(info.job.id),
        "--timeout",
        UPLOAD_TIMEOUT,
        "--response-header-timeout",
        RESPONSE_HEADER_TIMEOUT,
    ]
    archiver = [arg for path in artifact.paths for arg in ("--path", path)]
    archiver += [arg for path in artifact.exclude for arg in ("--exclude", path)]
    if artifact.untracked:
        archiver.append("--untracked")
    if not archiver:
        return None
    args += archiver
    for flag, value in (
        ("--name", artifact.name),
        ("--expire-in", artifact.expire_in),
        ("--artifact-format", artifact.format),
        ("--artifact-type", artifact.type),
    ):
        if value:
            args += [flag, value]
    return args


def upload_all(w: BashWriter, info: BuildInfo, on_success: bool) -> None:
    """``writeUploadArtifacts``' loop: the artifacts whose ``when`` fits the job's
    outcome (SkipStage when none has anything to archive)."""
    uploaded = False
    for raw in info.job.artifacts:
        artifact = Artifact.from_dict(raw)
        if not (artifact.on_success() if on_success else artifact.on_failure()):
            continue
        args = upload_args(info, artifact)
        if args is None:
            continue
        uploaded = True

        def upload(args: list[str] = args) -> None:
            w.notice("Uploading artifacts...")
            w.command(info.options.runner_command, *args)

        guard_runner_command(w, "Uploading artifacts", upload)
    if not uploaded:
        raise SkipStage(f"upload_artifacts_on_{'success' if on_success else 'failure'}")
