"""The facts a build would start from now, for ``invoke rebuild-needed``.

Either read from a freshly built candidate image's labels (all five facts, the
scheduled pipeline's way: build, then decide whether to publish), or gathered before
any build: the base image's digest in local podman, the runner's sha256 from a local
binary, a given checksum or the release's ``release.sha256``, and the checked-out
commit. The package list is known only after a build, so it is then left unknown
(reported, not compared).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipglr.build import engine, provenance, runnerbin
from pipglr.build.provenance import Provenance
from pipglr.errors import UsageError
from pipglr.release import registry
from pipglr.settings import BuildSettings

REPO = Path(__file__).resolve().parents[2]


def local_base_digest(image: str) -> str:
    """The digest of ``image`` in local podman storage."""
    with engine.client() as podman:
        return engine.image_digest(podman, image)


def candidate_facts(
    candidate: str, tls_verify: bool = True, run: registry.Run = registry.run_command
) -> Provenance:
    """The facts recorded in a built image's labels (local, or ``docker://``)."""
    info = registry.inspect(candidate, tls_verify, run)
    facts = Provenance.from_labels(info.labels if info else None)
    if facts is None:
        raise UsageError(
            f"{candidate} has no provenance labels: build it with `invoke build` first"
        )
    return facts


def gathered_facts(
    settings: BuildSettings,
    runner_binary: Path | None = None,
    runner_sha256: str | None = None,
    base_digest: Callable[[str], str] = local_base_digest,
    release_sha256: Callable[[BuildSettings], str] = runnerbin.release_sha256,
    repo: Path = REPO,
) -> Provenance:
    """The facts of a build started now with ``settings`` (package list unknown)."""
    if runner_sha256:
        sha = runner_sha256.lower()
    elif runner_binary is not None:
        sha = runnerbin.sha256_of(runner_binary)
    else:
        sha = release_sha256(settings)
    return Provenance(
        base_digest=base_digest(settings.base_image),
        runner_version=settings.runner_version,
        runner_sha256=sha,
        commit=provenance.git_commit(repo),
    )


def compare(
    published: str,
    candidate: str | None,
    settings: BuildSettings | None,
    runner_binary: Path | None,
    runner_sha256: str | None,
    tls_verify: bool = True,
) -> provenance.Decision:
    """``invoke rebuild-needed``: the labels of ``published`` against ``candidate``'s
    labels, or (without a candidate) against the facts gathered now for ``settings``."""
    info = registry.inspect(published, tls_verify)
    previous = Provenance.from_labels(info.labels if info else None)
    if candidate:
        current = candidate_facts(candidate, tls_verify)
    elif settings is not None:
        current = gathered_facts(settings, runner_binary, runner_sha256)
    else:
        raise UsageError("without --candidate, the next build's settings are needed")
    return provenance.decide(previous, current)
