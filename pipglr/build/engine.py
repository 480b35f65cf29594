"""Talk to podman through podman-py.

:func:`client` yields a connected :class:`podman.PodmanClient`: the URL given, the
caller's running API service, or a private ``podman system service`` on a temporary
socket for the duration (as podman-py's own integration tests do). :func:`build`
streams a build's output live (podman-py's ``images.build`` only returns the log
after the build ends).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from podman import PodmanClient
from podman import api as podman_api
from podman.errors import APIError

from pipglr.errors import EngineError

log = logging.getLogger(__name__)


def default_socket() -> Path:
    """Where the caller's podman API service listens when it runs."""
    if os.geteuid() == 0:
        return Path("/run/podman/podman.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.geteuid()}")
    return Path(runtime) / "podman/podman.sock"


def _answers(url: str) -> bool:
    try:
        with PodmanClient(base_url=url, timeout=5) as probe:
            return bool(probe.ping())
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


@contextmanager
def private_service(podman: str = "podman") -> Iterator[str]:
    """Run ``podman system service`` on a temporary socket; yield its URL."""
    if shutil.which(podman) is None:
        raise EngineError("podman is not installed: install it (e.g. `apt-get install podman`)")
    with tempfile.TemporaryDirectory(prefix="pipglr-api-") as tmp:
        url = f"unix://{tmp}/podman.sock"
        process = subprocess.Popen(
            [podman, "system", "service", "--time=0", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while not _answers(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    raise EngineError(f"private podman API service did not start: {err.strip()}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def client(url: str | None = None) -> Iterator[PodmanClient]:
    """A podman-py client for ``url``, the running service, or a private one."""
    url = url or os.environ.get("CONTAINER_HOST")
    if not url:
        running = default_socket()
        if running.exists() and _answers(f"unix://{running}"):
            url = f"unix://{running}"
    if url:
        with PodmanClient(base_url=url, timeout=3600) as connected:
            yield connected
        return
    with (
        private_service() as private_url,
        PodmanClient(base_url=private_url, timeout=3600) as connected,
    ):
        yield connected


def build(
    podman: PodmanClient,
    context: Path,
    tag: str,
    build_args: Mapping[str, str],
    labels: Mapping[str, str],
    out: IO[str] = sys.stdout,
) -> str:
    """Build ``context`` (with its ``Containerfile``) as ``tag``; stream output; return id."""
    params = {
        "t": tag,
        "dockerfile": "Containerfile",
        "buildargs": json.dumps(dict(build_args)),
        "labels": json.dumps(dict(labels)),
        "layers": True,
        "rm": True,
        "outputformat": "application/vnd.oci.image.manifest.v1+json",
    }
    body = podman_api.create_tar(str(context), gzip=False)
    image_id = ""
    try:
        with body:
            response = podman.api.post(
                "/build",
                params=params,
                data=body,
                headers={"Content-type": "application/x-tar"},
                stream=True,
            )
            response.raise_for_status()
            for raw in response.iter_lines():
                if not raw:
                    continue
                frame = json.loads(raw)
                if "error" in frame:
                    raise EngineError(f"image build failed: {frame['error'].strip()}")
                text = frame.get("stream", "")
                out.write(text)
                out.flush()
                if text.strip() and all(c in "0123456789abcdef" for c in text.strip()):
                    image_id = text.strip()
    except APIError as exc:
        raise EngineError(f"image build failed: {exc.explanation or exc}") from exc
    if not image_id:
        raise EngineError("image build ended without an image id: see the output above")
    return image_id


def image_labels(podman: PodmanClient, image: str) -> dict[str, str]:
    """The labels of a local image."""
    try:
        return dict(podman.images.get(image).labels)
    except APIError as exc:
        raise EngineError(f"no image {image!r}: build it with `invoke build`") from exc


def image_digest(podman: PodmanClient, image: str) -> str:
    """A local image's manifest digest (``sha256:...``), else its id."""
    try:
        attrs = podman.images.get(image).attrs
    except APIError as exc:
        raise EngineError(f"no image {image!r}: pull or build it first") from exc
    return str(attrs.get("Digest") or f"sha256:{attrs['Id']}")


def read_file(podman: PodmanClient, image: str, path: str) -> str:
    """A text file of ``image``, read from a created (never started) container."""
    try:
        container = podman.containers.create(image, command=["true"])
    except APIError as exc:
        raise EngineError(f"cannot create a container of {image!r}: {exc}") from exc
    try:
        chunks, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            member = archive.extractfile(os.path.basename(path))
            if member is None:
                raise EngineError(f"{path} in {image!r} is not a file")
            return member.read().decode()
    except (APIError, KeyError) as exc:
        raise EngineError(f"{image!r} has no {path}: was it built by pipglr?") from exc
    finally:
        container.remove(force=True)


def add_labels(
    podman: PodmanClient,
    image_id: str,
    tag: str,
    labels: Mapping[str, str],
    out: IO[str] = sys.stdout,
) -> str:
    """Build ``tag`` as ``FROM image_id`` plus ``labels`` (no new layer); return its id."""
    with tempfile.TemporaryDirectory(prefix="pipglr-labels-") as tmp:
        (Path(tmp) / "Containerfile").write_text(f"FROM {image_id}\n")
        return build(podman, Path(tmp), tag, {}, labels, out)
