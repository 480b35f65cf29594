"""``artifacts-uploader`` and ``artifacts-downloader`` (commands/helpers/
artifacts_uploader.go, artifacts_downloader.go, retry_helper.go; helpers/retry).

Uploader: credentials checked (``normalizeArgs``: fatal without URL/token/id), ``$VAR``
expanded in ``--name``/``--path``/``--exclude``, files enumerated; none → ``ERROR: No
files to upload`` and success; else a zip named ``<base of --name>.zip`` (``artifacts``
by default, ``default`` for an empty name) is uploaded, retried on a failed upload or a
redirect (3 tries) and on 503 (6 tries) with a 1 s → 5 s doubling backoff; 403 and 413
are final. Downloader: the archive goes to a temporary file (``--archiver-staging-dir``),
two retries 1 s apart on a failed download (not on 401/403/404), ``direct_download=true``
on the first try when ``--direct-download``/``FF_USE_DIRECT_DOWNLOAD`` says so, then it
is extracted into the working directory. Fatal errors exit 1 with ``FATAL: <error>``.

Simplified: variables expand only in the ``$VAR``/``${VAR}`` forms (upstream uses
mvdan.cc/sh's full shell expansion), no transfer meter, no artifacts metadata
(``--generate-artifacts-metadata``), zip only.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence

from . import archive, log, network

DEFAULT_TRIES, SERVICE_UNAVAILABLE_TRIES = 3, 6
#: Go's errors as ``logrus.Fatalln(err)`` prints them.
PERMISSION_DENIED, INVALID = "permission denied", "invalid argument"
NOT_EXIST, TOO_LARGE = "file does not exist", "too large"
SERVICE_UNAVAILABLE = "service unavailable"
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
#: What the commands sleep with (tests replace it).
sleep: Callable[[float], None] = time.sleep


class Failure(Exception):
    """An error of one try; ``retryable`` as gitlab-runner's ``retryableErr``."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def go_duration(text: str) -> float:
    """``time.ParseDuration`` (``1h0m0s``, ``10m0s``, ``1.5s``)."""
    if text in ("0", ""):
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"time: invalid duration {text!r}")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def expand(text: str) -> str:
    """``shell.Expand(text, nil)`` for ``$VAR`` and ``${VAR}`` (unset: empty)."""
    pattern = r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))"
    return re.sub(pattern, lambda m: os.environ.get(m.group(1) or m.group(2), ""), text)


def _credentials(parser: argparse.ArgumentParser) -> None:
    """``common.JobCredentials`` flags with their environment fallbacks."""
    env = os.environ.get
    parser.add_argument("--url", default=env("CI_SERVER_URL", ""))
    parser.add_argument("--token", default=env("CI_JOB_TOKEN", ""))
    parser.add_argument("--id", type=int, default=int(env("CI_JOB_ID", "0") or 0))
    for name in ("--tls-ca-file", "--tls-cert-file", "--tls-key-file"):
        parser.add_argument(name, default="")
    parser.add_argument("--transfer-meter-frequency", type=go_duration, default=0.0)


def uploader_parser() -> argparse.ArgumentParser:
    """``ArtifactsUploaderCommand``'s flags."""
    parser = argparse.ArgumentParser(prog="gitlab-runner-helper artifacts-uploader")
    _credentials(parser)
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--untracked", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--name", default="artifacts")
    parser.add_argument("--expire-in", default="")
    parser.add_argument("--artifact-format", default="")
    parser.add_argument("--artifact-type", default="")
    level = os.environ.get("ARTIFACT_COMPRESSION_LEVEL", "")
    parser.add_argument("--compression-level", default=level)
    parser.add_argument("--timeout", type=go_duration, default=3600.0)
    parser.add_argument("--response-header-timeout", type=go_duration, default=600.0)
    debug = network.environ_bool("CI_DEBUG_TRACE")
    parser.add_argument("--ci-debug-trace", action="store_true", default=debug)
    return parser


def downloader_parser() -> argparse.ArgumentParser:
    """``ArtifactsDownloaderCommand``'s flags."""
    parser = argparse.ArgumentParser(prog="gitlab-runner-helper artifacts-downloader")
    _credentials(parser)
    direct = network.environ_bool("FF_USE_DIRECT_DOWNLOAD")
    parser.add_argument("--direct-download", action="store_true", default=direct)
    staging = os.environ.get("ARCHIVER_STAGING_DIR", "")
    parser.add_argument("--archiver-staging-dir", default=staging)
    parser.add_argument("--retry", type=int, default=2)
    parser.add_argument("--retry-time", type=go_duration, default=1.0)
    return parser


def artifact_filename(name: str, artifact_format: str) -> str:
    """``artifactFilename``: the base name (``default`` when empty) plus the extension."""
    base = os.path.basename(name.rstrip("/")) if name.strip("/") else ""
    base = base if base not in ("", ".") else "default"
    extension = {"zip": ".zip", "zipzstd": ".zip", "gzip": ".gz", "tarzstd": ".tar.zst"}
    return base + extension.get(artifact_format, "")


def _backoff(tries: int) -> float:
    """jpillora/backoff with Min 1 s, Max 5 s, factor 2: 1, 2, 4, 5, 5... seconds."""
    return float(min(5, 2 ** (tries - 1)))


def upload(args: argparse.Namespace) -> int:
    """``ArtifactsUploaderCommand.Execute``."""
    if not args.url or not args.token:
        log.fatal("Missing runner credentials")
    if args.id <= 0:
        log.fatal("Missing build ID")
    files = archive.FileArchiver(
        [expand(p) for p in args.path], [expand(p) for p in args.exclude], args.untracked
    )
    files.enumerate()
    if not files.files:
        log.error("No files to upload")
        return 0
    artifact_format = args.artifact_format or "zip"
    if artifact_format != "zip":
        log.fatal(f"unsupported archive format: {artifact_format} (the stand-in writes zip only)")
    credentials = network.Credentials(args.url, args.token, args.id)
    options = {
        "expire_in": args.expire_in,
        "artifact_format": args.artifact_format,
        "artifact_type": args.artifact_type,
    }
    with tempfile.TemporaryFile() as body:
        archive.create_zip(body, files.sorted_files())
        tries = 0
        while True:
            tries += 1
            client = network.Client(credentials, args.response_header_timeout)
            state, location = client.upload_raw_artifacts(
                body, artifact_filename(expand(args.name), artifact_format), options
            )
            failure = _upload_failure(state, location, credentials)
            if failure is None:
                return 0
            unavailable = str(failure) == SERVICE_UNAVAILABLE
            limit = SERVICE_UNAVAILABLE_TRIES if unavailable else DEFAULT_TRIES
            if not failure.retryable or tries >= limit:
                log.fatal(str(failure))
            log.warning("Retrying...", context="artifacts-uploader", error=failure)
            sleep(_backoff(tries))


def _upload_failure(state: str, location: str, credentials: network.Credentials) -> Failure | None:
    """``Run``'s switch: the error of one upload (``handleRedirect`` moves the URL)."""
    if state == network.UPLOAD_SUCCEEDED:
        return None
    if state == network.UPLOAD_REDIRECTED:
        parts = location.split("://", 1)
        host = parts[1].split("/", 1)[0] if len(parts) == 2 else ""
        credentials.url = f"{parts[0]}://{host}"
        log.info("Upload request redirected", location=location, **{"new-url": credentials.url})
        return Failure("request redirected", retryable=True)
    messages = {
        network.UPLOAD_FORBIDDEN: Failure(PERMISSION_DENIED),
        network.UPLOAD_TOO_LARGE: Failure(TOO_LARGE),
        network.UPLOAD_FAILED: Failure(INVALID, retryable=True),
        network.UPLOAD_SERVICE_UNAVAILABLE: Failure(SERVICE_UNAVAILABLE, retryable=True),
    }
    return messages.get(state, Failure(INVALID))


def _download_once(client: network.Client, target: str, direct: bool | None) -> Failure | None:
    """``download``: one try, its error."""
    state = client.download_artifacts(target, direct)
    return {
        network.DOWNLOAD_SUCCEEDED: None,
        network.DOWNLOAD_NOT_FOUND: Failure(NOT_EXIST),
        network.DOWNLOAD_FORBIDDEN: Failure(PERMISSION_DENIED),
        network.DOWNLOAD_UNAUTHORIZED: Failure(PERMISSION_DENIED),
        network.DOWNLOAD_FAILED: Failure(INVALID, retryable=True),
    }.get(state, Failure(INVALID))


def download(args: argparse.Namespace) -> int:
    """``ArtifactsDownloaderCommand.Execute``."""
    if not args.url:
        log.warning("Missing URL (--url)")
    if not args.token:
        log.warning("Missing runner credentials (--token)")
    if args.id <= 0:
        log.warning("Missing build ID (--id)")
    if args.id <= 0 or not args.token or not args.url:
        log.fatal("Incomplete arguments")
    client = network.Client(network.Credentials(args.url, args.token, args.id), 600.0)
    handle, target = tempfile.mkstemp(prefix="artifacts", dir=args.archiver_staging_dir or None)
    os.close(handle)
    try:
        failure = _download_once(client, target, True if args.direct_download else None)
        for _ in range(args.retry):  # retryHelper.doRetry
            if failure is None or not failure.retryable:
                break
            sleep(args.retry_time)
            log.warning("Retrying...", error=failure)
            failure = _download_once(client, target, None)
        if failure is not None:
            log.fatal(str(failure))
        with open(target, "rb") as downloaded:
            magic = downloaded.read(4)
        if magic.startswith(b"\x28\xb5\x2f\xfd") or magic.startswith(b"\x1f\x8b"):
            log.fatal("unsupported archive format (the stand-in extracts zip only)")
        try:
            archive.extract_zip(target)
        except (zipfile.BadZipFile, OSError) as exc:
            log.fatal(str(exc))
    finally:
        os.remove(target)
    return 0


def main(argv: Sequence[str]) -> int:
    """Dispatch ``artifacts-uploader`` / ``artifacts-downloader``."""
    command, rest = (argv[0], list(argv[1:])) if argv else ("", [])
    if command == "artifacts-uploader":
        return upload(uploader_parser().parse_args(rest))
    if command == "artifacts-downloader":
        return download(downloader_parser().parse_args(rest))
    log.fatal(f"unknown command {command or '(none)'}")
