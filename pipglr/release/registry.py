"""Read a published image's labels and digest; push with retries and check the digest.

Command lines are built by pure functions and run through an injectable ``run``
(``subprocess.run`` by default), so the unit tests check the exact commands and the
retry and verification logic without a registry.

References: ``docker://HOST/NAME:TAG`` is a registry; anything else is an image in
local podman storage. ``skopeo inspect`` reads a registry's image metadata without
pulling it; without skopeo, podman pulls the image (layers already present are not
downloaded again) and inspects it.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pipglr import layout
from pipglr.errors import EngineError

log = logging.getLogger(__name__)

Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
TRANSPORT = "docker://"
#: What a registry or podman says when the image simply does not exist (yet).
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_NOT_FOUND = ("manifest unknown", "image not known", "no such image", "not found")


class RegistryError(EngineError):
    """A registry operation failed (push, inspect, digest mismatch)."""


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, capturing its output as text."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def is_remote(ref: str) -> bool:
    """Whether ``ref`` names a registry image (``docker://...``)."""
    return ref.startswith(TRANSPORT)


def inspect_commands(ref: str, skopeo: bool, tls_verify: bool = True) -> list[list[str]]:
    """The commands whose last one prints ``ref``'s metadata as JSON."""
    tls = [] if tls_verify else ["--tls-verify=false"]
    if not is_remote(ref):
        return [["podman", "image", "inspect", ref]]
    if skopeo:
        return [["skopeo", "inspect", "--no-tags", *tls, ref]]
    name = ref.removeprefix(TRANSPORT)
    return [["podman", "pull", "--quiet", *tls, name], ["podman", "image", "inspect", name]]


@dataclass(frozen=True)
class ImageInfo:
    """An image's labels, manifest digest, and every digest it is known by (a pulled
    multi-arch image is known by its list's digest and its own)."""

    labels: dict[str, str]
    digest: str
    digests: frozenset[str]


def repository(ref: str) -> str:
    """``HOST/NAME`` of ``[docker://]HOST/NAME[:TAG][@DIGEST]``."""
    name = ref.removeprefix(TRANSPORT).partition("@")[0]
    head, _, tail = name.rpartition("/")
    return f"{head}/{tail.partition(':')[0]}" if head else tail.partition(":")[0]


def _parse_inspect(text: str, ref: str) -> ImageInfo:
    data = json.loads(text)
    if isinstance(data, list):  # podman image inspect prints a list
        data = data[0]
    digest = str(data.get("Digest") or "")
    known = {
        d.rpartition("@")[2]
        for d in data.get("RepoDigests") or []
        if d.rpartition("@")[0] == repository(ref)
    }
    return ImageInfo(dict(data.get("Labels") or {}), digest, frozenset({digest} | known))


def inspect(
    ref: str, tls_verify: bool = True, run: Run = run_command, skopeo: bool | None = None
) -> ImageInfo | None:
    """``ref``'s labels and digest; ``None`` when it does not exist."""
    use_skopeo = shutil.which("skopeo") is not None if skopeo is None else skopeo
    result = None
    for argv in inspect_commands(ref, use_skopeo, tls_verify):
        result = run(argv)
        if result.returncode != 0:
            output = (result.stderr or result.stdout or "").strip()
            if any(marker in output.lower() for marker in _NOT_FOUND):
                return None
            raise RegistryError(f"`{shlex.join(argv)}` failed: {_last_line(output)}")
    assert result is not None
    return _parse_inspect(result.stdout, ref)


def push_command(
    source: str, destination: str, digestfile: Path, manifest: bool, tls_verify: bool
) -> list[str]:
    """``podman push`` (or ``manifest push`` of a list) writing the pushed digest."""
    verb = ["manifest", "push", "--all"] if manifest else ["push"]
    tls = [] if tls_verify else ["--tls-verify=false"]
    return ["podman", *verb, *tls, "--digestfile", str(digestfile), source, destination]


def manifest_commands(name: str, sources: Sequence[str]) -> list[list[str]]:
    """Commands making local manifest list ``name`` of ``sources`` (one per arch; local
    images or ``docker://`` references)."""
    return [
        ["podman", "manifest", "rm", name],
        ["podman", "manifest", "create", name],
        *(["podman", "manifest", "add", name, _transported(source)] for source in sources),
    ]


def _transported(source: str) -> str:
    """``source`` with a transport: ``podman manifest add`` assumes a registry."""
    if "://" in source or source.startswith("containers-storage:"):
        return source
    return f"containers-storage:{source}"


def push(
    source: str,
    destination: str,
    manifest: bool = False,
    tls_verify: bool = True,
    retries: int = 3,
    delay: float = 5.0,
    run: Run = run_command,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Push ``source`` to ``destination`` (``docker://...``), retrying with a growing
    pause; return the digest podman reports."""
    last = ""
    with tempfile.TemporaryDirectory(prefix="pipglr-push-") as tmp:
        digestfile = Path(tmp) / "digest"
        argv = push_command(source, destination, digestfile, manifest, tls_verify)
        for attempt in range(1, retries + 1):
            result = run(argv)
            if result.returncode == 0 and digestfile.is_file():
                return digestfile.read_text().strip()
            last = _last_line(result.stderr or result.stdout or "no output")
            log.warning("push attempt %d/%d failed: %s", attempt, retries, last)
            if attempt < retries:
                sleep(delay * attempt)
    raise RegistryError(f"`{shlex.join(argv)}` failed {retries} times, last: {last}")


def verify(
    destination: str,
    digest: str,
    tls_verify: bool = True,
    run: Run = run_command,
    skopeo: bool | None = None,
) -> None:
    """Check the registry now serves ``digest`` under ``destination``.

    With skopeo that is the tag's manifest digest. Without it, podman pulls the tag
    and the check is that the pulled image is known by ``digest`` in that
    repository (podman keeps every digest of a repository an image was pulled or
    pushed under, so this is weaker: it proves the tag serves that image)."""
    info = inspect(destination, tls_verify, run, skopeo)
    served = info.digest if info else "nothing"
    if info is None or digest not in info.digests:
        raise RegistryError(
            f"{destination} serves {served} after pushing {digest}: "
            "something else pushed meanwhile, or the registry rewrote the manifest"
        )


def expand_tags(tags: Sequence[str], labels: Mapping[str, str], today: date) -> list[str]:
    """Tags with ``{date}`` (``YYYY-MM-DD``) and ``{runner_version}`` (the image's
    runner version label) filled in; duplicates dropped, order kept."""
    version = labels.get(layout.LABEL_RUNNER_VERSION, "")
    expanded = []
    for tag in tags:
        if "{runner_version}" in tag and not version:
            raise RegistryError(
                f"tag {tag!r} needs the image's {layout.LABEL_RUNNER_VERSION} label: "
                "build it with `invoke build` (RUNNER_VERSION pinned)"
            )
        value = tag.format(date=today.isoformat(), runner_version=version)
        if not _TAG_RE.fullmatch(value):
            raise RegistryError(f"{value!r} is not a valid image tag")
        expanded.append(value)
    return list(dict.fromkeys(expanded))


def publish(
    sources: Sequence[str],
    repository: str,
    tags: Sequence[str],
    tls_verify: bool = True,
    retries: int = 3,
    run: Run = run_command,
    sleep: Callable[[float], None] = time.sleep,
    skopeo: bool | None = None,
) -> dict[str, str]:
    """Push ``sources`` (one image, or one per architecture as a manifest list) to
    ``repository`` under each tag, verify each; return the digest per reference."""
    if not is_remote(repository):
        raise RegistryError(f"{repository!r} is no registry: use docker://HOST/NAME")
    source, manifest = sources[0], len(sources) > 1
    if manifest:
        source = f"localhost/{repository.rpartition('/')[2]}-publish-list"
        for argv in manifest_commands(source, sources):
            result = run(argv)
            if result.returncode != 0 and argv[2] != "rm":
                raise RegistryError(f"`{shlex.join(argv)}` failed: {_last_line(result.stderr)}")
    digests = {}
    for tag in tags:
        destination = f"{repository}:{tag}"
        digest = push(source, destination, manifest, tls_verify, retries, run=run, sleep=sleep)
        verify(destination, digest, tls_verify, run, skopeo)
        digests[destination] = digest
    return digests


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def publish_image(
    sources: Sequence[str], to: str, tags: Sequence[str], tls_verify: bool, retries: int,
    today: date,
) -> dict[str, str]:  # fmt: skip
    """``invoke publish``: push ``sources`` (one image, or per-arch images as a manifest
    list) under ``tags`` filled from the first source's labels; reference → digest."""
    info = inspect(sources[0], tls_verify)
    if info is None:
        raise RegistryError(f"no image {sources[0]}: build it first")
    wanted = expand_tags(tags, info.labels, today)
    return publish(sources, to, wanted, tls_verify, retries)
