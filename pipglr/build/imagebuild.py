"""Build the pipglr image: settings → context → podman build, with progress.

Shared by ``invoke build`` and the image-test fixtures so both build the same way.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from podman import PodmanClient
from podman.errors import APIError

from pipglr.build import base
from pipglr.build import context
from pipglr.build import engine
from pipglr.build import provenance
from pipglr.build import runnerbin
from pipglr.errors import EngineError
from pipglr.settings import BuildSettings

log = logging.getLogger(__name__)

#: How the base image is obtained: present locally or pulled, bootstrapped, or auto.
BASE_MODES = ("auto", "pull", "offline")


@dataclass(frozen=True)
class BuildResult:
    """What a build produced."""

    tag: str
    image_id: str
    settings: BuildSettings
    runner_sha256: str
    provenance: provenance.Provenance | None = None


def _have_image(podman: PodmanClient, name: str) -> bool:
    try:
        return bool(podman.images.exists(name))
    except APIError:
        return False


def ensure_base(podman: PodmanClient, settings: BuildSettings, mode: str) -> BuildSettings:
    """Make the base image available; return settings naming the base actually used."""
    if mode not in BASE_MODES:
        raise EngineError(f"unknown base mode {mode!r}: use one of {', '.join(BASE_MODES)}")
    if mode == "offline":
        if not _have_image(podman, base.DEFAULT_TAG):
            base.bootstrap(base.DEFAULT_TAG)
        return replace(settings, base_image=base.DEFAULT_TAG)
    if _have_image(podman, settings.base_image):
        return settings
    print(f"pulling {settings.base_image}", file=sys.stderr, flush=True)
    reason = "not found after pull"
    try:
        podman.images.pull(settings.base_image)
    except APIError as exc:
        reason = str(exc.explanation or exc)
    if _have_image(podman, settings.base_image):
        return settings
    if mode == "pull":
        raise EngineError(
            f"cannot pull {settings.base_image} ({reason}): build offline with "
            "`invoke build --base offline`"
        )
    print(
        f"cannot pull {settings.base_image} ({reason}); bootstrapping {base.DEFAULT_TAG} locally",
        file=sys.stderr,
        flush=True,
    )
    return ensure_base(podman, settings, "offline")


def build_image(
    settings: BuildSettings,
    tag: str,
    workdir: Path,
    runner_binary: Path | None = None,
    runner_sha256: str | None = None,
    allow_standin: bool = False,
    base_mode: str = "auto",
    helper_archive: Path | None = None,
    url: str | None = None,
    out: IO[str] = sys.stdout,
) -> BuildResult:
    """Assemble the context under ``workdir`` and build ``tag``."""
    with engine.client(url) as podman:
        settings = ensure_base(podman, settings, base_mode)
        source = runnerbin.choose_source(settings, runner_binary, runner_sha256)
        helper = runnerbin.choose_helper_source(settings, source, helper_archive)
        if helper is None:
            print(
                "no helper image archive (--helper-archive): the first job pulls the "
                "helper image from registry.gitlab.com",
                file=sys.stderr,
                flush=True,
            )
        ctx = context.assemble(settings, workdir / "context", source, allow_standin, helper)
        facts = provenance.Provenance(
            base_digest=engine.image_digest(podman, settings.base_image),
            runner_version=settings.runner_version,
            runner_sha256=ctx.runner_sha256,
            commit=provenance.git_commit(context.REPO),
        )
        labels = {**ctx.labels, **facts.to_labels()}
        image_id = engine.build(podman, ctx.path, tag, ctx.build_args, labels, out)
        image_id, facts = stamp_packages(podman, image_id, tag, facts, out)
    return BuildResult(tag, image_id, settings, ctx.runner_sha256, facts)


def stamp_packages(
    podman: PodmanClient,
    image_id: str,
    tag: str,
    facts: provenance.Provenance,
    out: IO[str] = sys.stdout,
) -> tuple[str, provenance.Provenance]:
    """Label ``image_id`` with the digest of the package list the build wrote into it
    (see :mod:`pipglr.build.provenance`); tag the result ``tag``; return its id and facts."""
    listing = engine.read_file(podman, image_id, provenance.PACKAGE_LIST_PATH)
    facts = replace(facts, packages_digest=provenance.package_list_digest(listing))
    label = {provenance.LABEL_PACKAGES_DIGEST: str(facts.packages_digest)}
    return engine.add_labels(podman, image_id, tag, label, out), facts
