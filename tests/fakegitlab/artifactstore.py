"""Job artifacts as GitLab takes them from a runner, keeps them and hands them out.

``POST /api/v4/jobs/:id/artifacts`` (upload) and ``GET /api/v4/jobs/:id/artifacts``
(download) of GitLab ``lib/api/ci/runner.rb``, with Workhorse in front as GitLab runs
it (``workhorse/internal/artifacts``: Workhorse first asks ``/artifacts/authorize``
with the same job token and enforces its maximum size while the body streams in, so a
bad token is 403 and an oversized file 413 before Rails validates any parameter):

- upload: ``authenticate_job!`` (lib/api/ci/helpers/runner.rb: the job's own token, job
  processing on the runner, else 403 with ``Job-Status``), the size limit (application
  setting ``max_artifacts_size``, 100 MB by default → 413), the Grape parameters (``file``
  required, ``artifact_type`` default ``archive``, ``artifact_format`` default ``zip``,
  both from ``Ci::JobArtifact``'s enums → 400 ``{"error": ...}``), then
  ``app/services/ci/job_artifacts/create_service.rb``: the type/format pair must match
  (``Enums::Ci::JobArtifact.type_and_format_pairs``, ``validate_file_format!``), a second
  upload of the same type is 201 when its SHA-256 equals the stored one, else 400;
  success is ``201`` with body ``201``.
- download: ``authenticate_job_via_dependent_job!`` — the token is the *downloading*
  job's (401 unless it belongs to a job processing on a runner, as
  ``Ci::AuthJobFinder``), the requested job must exist (403) and be readable with that
  job token (same project; GitLab's job token scope allow-lists are not modelled, 403),
  then 404 without an archive, else the file (``present_artifacts_file!``:
  ``application/octet-stream``, ``Content-Disposition: attachment``). GitLab does not
  check that the downloading job lists the other one in ``dependencies``: the payload
  only tells the runner which archives to fetch, and so does the fake.

Simplified: artifacts live in memory, ``expire_in`` is recorded but never enforced,
and ``direct_download`` is accepted but always answered from here (no object storage).
"""

from __future__ import annotations

import hashlib
import io
import stat
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Protocol

from .records import Reply, stamp

#: ``max_artifacts_size`` (ApplicationSetting, megabytes) default: 100 MB.
MAX_ARTIFACTS_SIZE = 100 * 1024 * 1024
#: ``Enums::Ci::JobArtifact.type_and_format_pairs`` (app/models/concerns/enums/ci/job_artifact.rb).
TYPE_FORMATS = {
    "archive": "zip", "metadata": "gzip", "trace": "raw", "junit": "gzip", "metrics": "gzip",
    "metrics_referee": "gzip", "network_referee": "gzip", "dotenv": "gzip", "cobertura": "gzip",
    "jacoco": "gzip", "cluster_applications": "gzip", "lsif": "zip", "scip": "zip",
    "cyclonedx": "gzip", "annotations": "gzip", "repository_xray": "gzip", "sast": "raw",
    "secret_detection": "raw", "dependency_scanning": "raw", "container_scanning": "raw",
    "cluster_image_scanning": "raw", "dast": "raw", "license_scanning": "raw",
    "accessibility": "raw", "codequality": "raw", "performance": "raw",
    "browser_performance": "raw", "load_performance": "raw", "terraform": "raw",
    "requirements": "raw", "requirements_v2": "raw", "coverage_fuzzing": "raw",
    "api_fuzzing": "raw", "sarif": "raw",
}  # fmt: skip
#: ``Ci::JobArtifact#validate_file_format!`` (app/models/ci/job_artifact.rb).
INVALID_FORMAT = "Invalid file format with specified file type"
#: ``Ci::JobArtifact.file_formats``.
FILE_FORMATS = ("raw", "zip", "gzip")
#: Regular files up to this size show their text in the control API's listing.
TEXT_LIMIT = 4096


class JobLike(Protocol):
    """What the artifact rules read of a job record."""

    id: int
    spec: dict[str, Any]
    state: str
    token: str

    def processing_on_runner(self) -> bool:
        """Running, canceling or waiting for the runner's acceptance."""
        ...


class BadUpload(ValueError):
    """The multipart body is not what Workhorse would accept (400)."""


def _entry(info: zipfile.ZipInfo, archive: zipfile.ZipFile) -> dict[str, Any]:
    """One archive member: name, kind, size, permission bits (and small files' text)."""
    mode = info.external_attr >> 16
    kind = "file"
    if stat.S_ISDIR(mode) or info.filename.endswith("/"):
        kind = "dir"
    elif stat.S_ISLNK(mode):
        kind = "symlink"
    entry: dict[str, Any] = {
        "name": info.filename,
        "type": kind,
        "size": info.file_size,
        "mode": f"{stat.S_IMODE(mode):04o}",
    }
    if kind == "symlink":
        entry["target"] = archive.read(info).decode("utf-8", "replace")
    elif kind == "file" and info.file_size <= TEXT_LIMIT:
        entry["text"] = archive.read(info).decode("utf-8", "replace")
    return entry


@dataclass
class StoredArtifact:
    """One ``Ci::JobArtifact``: the file and the parameters it came with."""

    job_id: int
    artifact_type: str
    artifact_format: str
    filename: str
    data: bytes
    expire_in: str | None
    sha256: str = ""
    uploaded: dict[str, Any] = field(default_factory=stamp)

    def __post_init__(self) -> None:
        self.sha256 = self.sha256 or hashlib.sha256(self.data).hexdigest()

    def entries(self) -> list[dict[str, Any]]:
        """The zip's members in archive order (empty for a file that is no zip)."""
        try:
            with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
                return [_entry(info, archive) for info in archive.infolist()]
        except zipfile.BadZipFile:
            return []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view without the bytes."""
        return {
            "job_id": self.job_id,
            "artifact_type": self.artifact_type,
            "artifact_format": self.artifact_format,
            "filename": self.filename,
            "size": len(self.data),
            "sha256": self.sha256,
            "expire_in": self.expire_in,
            "uploaded": self.uploaded,
            "entries": self.entries(),
        }


@dataclass
class Upload:
    """What Workhorse passes on: the ``file`` part and the query parameters."""

    filename: str | None
    data: bytes | None
    artifact_type: str
    artifact_format: str
    expire_in: str | None

    @classmethod
    def parse(cls, content_type: str | None, body: bytes, query: dict[str, list[str]]) -> Upload:
        """A ``multipart/form-data`` body (BadUpload when it is none)."""
        header = Message()
        header["Content-Type"] = content_type or ""
        boundary = header.get_param("boundary")
        if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
            raise BadUpload("the body must be multipart/form-data with a boundary")
        filename, data = None, None
        for name, part_filename, content in _parts(body, boundary.encode()):
            if name == "file":
                filename, data = part_filename, content

        def param(key: str, default: str | None) -> str | None:
            return query.get(key, [default])[0]

        return cls(
            filename=filename,
            data=data,
            artifact_type=param("artifact_type", "archive") or "archive",
            artifact_format=param("artifact_format", "zip") or "zip",
            expire_in=param("expire_in", None),
        )

    def errors(self) -> list[str]:
        """Grape's parameter validation messages (``requires :file``, enum ``values``)."""
        found = []
        if self.data is None:
            found.append("file is missing")
        if self.artifact_type not in TYPE_FORMATS:
            found.append("artifact_type does not have a valid value")
        if self.artifact_format not in FILE_FORMATS:
            found.append("artifact_format does not have a valid value")
        return found


def _parts(body: bytes, boundary: bytes) -> list[tuple[str | None, str | None, bytes]]:
    """``(name, filename, content)`` of each part (RFC 7578)."""
    parts = []
    for section in body.split(b"--" + boundary)[1:]:
        if section.startswith(b"--"):
            break
        head, _, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = BytesParser(policy=HTTP).parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        filename = headers.get_filename()
        parts.append((name if isinstance(name, str) else None, filename, content[:-2]))
    return parts


def _forbidden(message: str = "403 Forbidden", job_status: str | None = None) -> Reply:
    return Reply(403, job_status=job_status, body=message)


class ArtifactStore:
    """Every job's artifacts by type, on its own lock (callers hold the job lock)."""

    def __init__(self, max_size: int = MAX_ARTIFACTS_SIZE) -> None:
        self.max_size = max_size
        self._lock = threading.Lock()
        self._by_job: dict[int, dict[str, StoredArtifact]] = {}

    def upload(self, job: JobLike | None, token: str | None, body: Callable[[], Upload]) -> Reply:
        """``POST /jobs/:id/artifacts`` for ``job`` (None: no such job); ``body`` parses
        the request body, once the token has passed."""
        if job is None or token != job.token:
            return _forbidden()
        if not job.processing_on_runner():
            return _forbidden("403 Forbidden - Job is not processing on runner", job.state)
        try:
            upload = body()
        except BadUpload as exc:
            return Reply(400, body=f"400 Bad request - {exc}")
        if upload.data is not None and len(upload.data) > self.max_size:
            return Reply(413, body="file size has reached maximum size limit")
        errors = upload.errors()
        if errors or upload.data is None:
            return Reply(400, body={"error": ", ".join(errors)})
        if TYPE_FORMATS[upload.artifact_type] != upload.artifact_format:
            return Reply(400, body=f"Validation failed: {INVALID_FORMAT}")
        artifact = StoredArtifact(
            job.id,
            upload.artifact_type,
            upload.artifact_format,
            upload.filename or upload.artifact_type,
            upload.data,
            upload.expire_in,
        )
        with self._lock:
            stored = self._by_job.setdefault(job.id, {})
            existing = stored.get(artifact.artifact_type)
            if existing is not None and existing.sha256 != artifact.sha256:
                return Reply(400, body="another artifact of the same type already exists")
            stored.setdefault(artifact.artifact_type, artifact)
        return Reply(201, body="201")

    def archive(self, job_id: int) -> StoredArtifact | None:
        """The job's ``archive`` artifact (``artifacts_file``), if any."""
        with self._lock:
            return self._by_job.get(job_id, {}).get("archive")

    def archive_file(self, job_id: int) -> tuple[str, int] | None:
        """``(filename, size)`` of the archive, as a dependency entry shows it."""
        archive = self.archive(job_id)
        return None if archive is None else (archive.filename, len(archive.data))

    def download(self, job: JobLike | None, consumer: JobLike | None) -> Reply | StoredArtifact:
        """``GET /jobs/:id/artifacts``: the archive, or the refusal GitLab answers.

        ``consumer`` is the job whose token came with the request (None: no job has it).
        """
        if consumer is None or not consumer.processing_on_runner():
            return Reply(401, body="401 Unauthorized")
        if job is None or job.spec["project_id"] != consumer.spec["project_id"]:
            return _forbidden()
        archive = self.archive(job.id)
        return archive if archive is not None else Reply(404, body="404 Not Found")

    def of_job(self, job_id: int) -> list[dict[str, Any]]:
        """Everything stored for a job, JSON-ready (control API)."""
        with self._lock:
            stored = list(self._by_job.get(job_id, {}).values())
        return [artifact.to_dict() for artifact in stored]
