"""The two GitLab calls of the artifacts commands (network/gitlab.go ``UploadRawArtifacts``
with ``createArtifactsContentProvider``/``uploadRawArtifactsQuery``/
``determineUploadState``, and ``DownloadArtifacts``/``downloadArtifactFile``), with
network/client.go's URL (``fixCIURL`` + ``/api/v4/``), headers (``JOB-TOKEN``,
``X-Request-Id``, ``User-Agent``) and error messages (``getMessageFromJSONResponse``,
``ErrorResponse.Error``).

The upload streams ``multipart/form-data`` with one ``file`` part (``application/
octet-stream``, the artifact's file name) with chunked transfer encoding, as Go's client
sends a body of unknown length. Simplified: ``https`` uses the system's CA bundle (the
helper's entrypoint installs a mounted ``ca.crt`` there); no client certificates.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import secrets
import ssl
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from . import VERSION, log

UPLOAD_SUCCEEDED, UPLOAD_REDIRECTED, UPLOAD_FORBIDDEN = "succeeded", "redirected", "forbidden"
UPLOAD_TOO_LARGE, UPLOAD_FAILED = "too-large", "failed"
UPLOAD_SERVICE_UNAVAILABLE = "service-unavailable"
DOWNLOAD_SUCCEEDED, DOWNLOAD_NOT_FOUND, DOWNLOAD_FORBIDDEN = "succeeded", "not-found", "forbidden"
DOWNLOAD_UNAUTHORIZED, DOWNLOAD_FAILED = "unauthorized", "failed"
CHUNK = 1 << 16


def short_token(token: str) -> str:
    """helpers/shorten_token.go ``ShortenToken``."""
    for prefix in ("glrt-t1_", "glrt-t2_", "glrt-t3_", "glrt-", "glrtr-", "glcbt-"):
        if token.startswith(prefix):
            token = token[len(prefix) :]
            break
    return token[:9]


def user_agent() -> str:
    """``AppVersion.UserAgent`` of the stand-in helper."""
    return f"gitlab-runner {VERSION} (standin; python; linux/{platform.machine()})"


@dataclass
class Credentials:
    """``common.JobCredentials``: where and as which job to talk to GitLab."""

    url: str
    token: str
    job_id: int


@dataclass
class Answer:
    """A response: status line, headers (lower-case names) and body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    url: str

    def status_text(self) -> str:
        """Go's ``Response.Status``: ``201 Created``."""
        return f"{self.status} {self.reason}"

    def message(self, method: str) -> str:
        """``getMessageFromJSONResponse``: the status for 2xx, else ``ErrorResponse``'s
        ``METHOD URL: 403 Forbidden (message)`` for a JSON body."""
        if 200 <= self.status < 300:
            return self.status_text()
        if self.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return self.status_text()
        try:
            decoded: Any = json.loads(self.body)
        except ValueError:
            return self.status_text()
        message = decoded.get("message", "") if isinstance(decoded, dict) else ""
        if isinstance(message, dict):
            message = ", ".join(f"{k}: {'; '.join(map(str, v))}" for k, v in message.items())
        status = f"{self.status} {http.client.responses.get(self.status, '')}"
        parts = urllib.parse.urlsplit(self.url)  # url_helpers.CleanURL: no user, query
        host = parts.netloc.rpartition("@")[2]
        clean = urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
        text = f"{method} {clean}: {status}"
        return text if message == status else f"{text} ({message})"


class Client:
    """``GitLabClient`` for one job's credentials."""

    def __init__(self, credentials: Credentials, timeout: float) -> None:
        self.credentials = credentials
        self.timeout = timeout

    def _url(self, uri: str) -> str:
        base = self.credentials.url.rstrip("/").removesuffix("/ci")
        return f"{base}/api/v4/{uri}"

    def _request(
        self, method: str, uri: str, body: Iterator[bytes] | None, content_type: str = ""
    ) -> tuple[Answer | None, str, str]:
        """One call; ``(answer or None, correlation id, error)``."""
        url = self._url(uri)
        parts = urllib.parse.urlsplit(url)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context()
            connection = http.client.HTTPSConnection(
                parts.netloc, timeout=self.timeout, context=context
            )
        else:
            connection = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
        correlation = uuid.uuid4().hex
        headers = {
            "JOB-TOKEN": self.credentials.token,
            "X-Request-Id": correlation,
            "User-Agent": user_agent(),
        }
        if content_type:
            headers["Content-Type"] = content_type
        # the path as written: "jobs/1/artifacts?" keeps its "?" (Go's ForceQuery)
        target = "/" + url.split("://", 1)[1].split("/", 1)[1]
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            found = {name.lower(): value for name, value in response.getheaders()}
            answer = Answer(response.status, response.reason, found, data, url)
            return answer, found.get("x-request-id") or correlation, ""
        except (OSError, http.client.HTTPException) as exc:
            return None, correlation, str(exc)
        finally:
            connection.close()

    def upload_raw_artifacts(
        self, archive: BinaryIO, base_name: str, options: dict[str, str]
    ) -> tuple[str, str]:
        """``UploadRawArtifacts``: ``(state, redirect location)``."""
        boundary = secrets.token_hex(30)
        query = {key: options[key] for key in ("expire_in", "artifact_format", "artifact_type")}
        encoded = urllib.parse.urlencode(sorted((k, v) for k, v in query.items() if v))
        quoted = base_name.replace("\\", "\\\\").replace('"', '\\"')
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()

        def body() -> Iterator[bytes]:
            yield head
            archive.seek(0)
            while chunk := archive.read(CHUNK):
                yield chunk
            yield f"\r\n--{boundary}--\r\n".encode()

        answer, correlation, error = self._request(
            "POST",
            f"jobs/{self.credentials.job_id}/artifacts?{encoded}",
            body(),
            f"multipart/form-data; boundary={boundary}",
        )
        fields: dict[str, object] = {
            "id": self.credentials.job_id,
            "token": short_token(self.credentials.token),
            "correlation_id": correlation,
        }
        prefix = "Uploading artifacts to coordinator..."
        if options.get("artifact_type"):
            prefix = (
                f"Uploading artifacts as {json.dumps(options['artifact_type'])} to coordinator..."
            )
        if answer is None:
            log.error(f"{prefix} error", error=error, **fields)
            return UPLOAD_FAILED, ""
        return _upload_state(answer, prefix, fields | {"responseStatus": answer.status_text()})

    def download_artifacts(self, target: str, direct_download: bool | None) -> str:
        """``DownloadArtifacts`` into the file ``target``."""
        query = "" if direct_download is None else f"direct_download={str(direct_download).lower()}"
        answer, correlation, error = self._request(
            "GET", f"jobs/{self.credentials.job_id}/artifacts?{query}", None
        )
        fields: dict[str, object] = {
            "id": self.credentials.job_id,
            "token": short_token(self.credentials.token),
            "correlation_id": correlation,
        }
        prefix = "Downloading artifacts from coordinator..."
        if answer is None:
            log.error(f"{prefix} error {error}", **fields)
            return DOWNLOAD_FAILED
        fields |= {
            "responseStatus": answer.status_text(),
            "host": urllib.parse.urlsplit(answer.url).netloc,
        }
        if answer.status == 200:
            try:
                with open(target, "wb") as out:
                    out.write(answer.body)
            except OSError as exc:
                log.error(f"{prefix} error", error=exc, **fields)
                return DOWNLOAD_FAILED
            log.info(f"{prefix} ok", **fields)
            return DOWNLOAD_SUCCEEDED
        if answer.status == 403:
            log.error(f"{prefix} forbidden", status=answer.message("GET"), **fields)
            return DOWNLOAD_FORBIDDEN
        if answer.status == 401:
            log.error(f"{prefix} unauthorized", status=answer.status_text(), **fields)
            return DOWNLOAD_UNAUTHORIZED
        if answer.status == 404:
            log.error(f"{prefix} not found", **fields)
            return DOWNLOAD_NOT_FOUND
        log.warning(f"{prefix} failed", status=answer.status_text(), **fields)
        return DOWNLOAD_FAILED


def _upload_state(answer: Answer, prefix: str, fields: dict[str, object]) -> tuple[str, str]:
    """``determineUploadState``."""
    text = answer.message("POST")
    if answer.status == 201:
        log.info(f"{prefix} {text}", **fields)
        return UPLOAD_SUCCEEDED, ""
    if answer.status == 307:
        location = answer.headers.get("location", "")
        if not location:
            log.error(f"{prefix} {text} empty location", status=answer.status, **fields)
            return UPLOAD_FAILED, ""
        return UPLOAD_REDIRECTED, location
    states = {403: UPLOAD_FORBIDDEN, 413: UPLOAD_TOO_LARGE, 503: UPLOAD_SERVICE_UNAVAILABLE}
    if answer.status in states:
        log.error(f"{prefix} {text}", status=answer.status, **fields)
        return states[answer.status], ""
    log.warning(f"{prefix} {text}", status=answer.status, **fields)
    return UPLOAD_FAILED, ""


def environ_bool(name: str, default: bool = False) -> bool:
    """A boolean flag's ``env`` fallback (``strconv.ParseBool``)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("1", "t", "true"):
        return True
    if raw in ("0", "f", "false"):
        return False
    return default
