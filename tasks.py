"""Invoke tasks: build and test the pipglr image (`invoke --list`)."""

from __future__ import annotations

import datetime
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from pipglr import chain as chain_mod
from pipglr import layout
from pipglr.bench import command as bench_command
from pipglr.bench.taskhelp import BENCH_HELP
from pipglr.build import base as base_image
from pipglr.build import imagebuild, labels, units
from pipglr.build.taskhelp import BUILD_HELP
from pipglr.errors import PipglrError
from pipglr.ops import outer as outer_mod
from pipglr.release import downstream, registry
from pipglr.release import rebuild as release
from pipglr.release.taskhelp import CHAIN_HELP, PUBLISH_HELP, REBUILD_HELP, TRIGGER_HELP
from pipglr.settings import BuildSettings

REPO = Path(__file__).resolve().parent


class HelpKeepingTask(Task[Any]):
    """A task whose ``help`` survives :meth:`get_arguments`.

    invoke's ``Task.get_arguments`` pops each flag's text out of ``self.help``, so
    every call after the first (a second ``Program.run``, a test that inspects
    the flags, ``--help`` after ``--list``) sees flags without help.
    """

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Any]:
        kept = dict(self.help)
        try:
            return list(super().get_arguments(ignore_unknown_help))
        finally:
            self.help = kept


def task(**kwargs: Any) -> Callable[[Callable[..., None]], HelpKeepingTask]:
    """``invoke.task`` making :class:`HelpKeepingTask` objects.

    Tasks with many flags pass ``auto_shortflags=False``: invoke picks a short
    flag from the letters of each name in turn, and once those are taken it picks
    the ``-`` of a dashed name, which ``--help`` prints as ``--=STRING``
    (``test_help_names_every_flag`` catches that).
    """
    made: Callable[[Callable[..., None]], HelpKeepingTask] = invoke_task(
        klass=HelpKeepingTask, **kwargs
    )
    return made


def _cfg(c: Context, key: str) -> Any:
    return c.config.pipglr[key]


def _settings(c: Context, **flags: Any) -> BuildSettings:
    """Build settings: flag → invoke config (``pipglr.build_args``) → default."""
    values = dict(_cfg(c, "build_args"))
    values.update({k: v for k, v in flags.items() if v is not None})
    return BuildSettings.from_mapping(values)


def _runner_binary(standin: bool, runner_binary: str | None) -> Path | None:
    """The local gitlab-runner to build with: the stand-in only when asked for."""
    if standin:
        from tests.standin import build_standin

        return build_standin(REPO / "build" / "standin")
    return Path(runner_binary) if runner_binary else None


def _fail(exc: PipglrError) -> Exit:
    return Exit(f"error: {exc}", code=exc.exit_code)


@task(help=BUILD_HELP, auto_shortflags=False)
def build(
    c: Context,
    tag: str | None = None,
    base_image: str | None = None,
    base: str = "auto",
    build_type: str | None = None,
    prune_interval: str | None = None,
    runner_version: str | None = None,
    arch: str | None = None,
    gitlab_url: str | None = None,
    nested_privileged: str | None = None,
    gitlab_allow_http: str | None = None,
    storage_threshold: str | None = None,
    runner_binary: str | None = None,
    runner_sha256: str | None = None,
    helper_archive: str | None = None,
    standin: bool = False,
) -> None:
    """Render units, assemble the context and build the image (streams progress)."""
    try:
        settings = _settings(
            c,
            BASE_IMAGE=base_image,
            BUILD_TYPE=build_type,
            PRUNE_INTERVAL=prune_interval,
            RUNNER_VERSION=runner_version,
            TARGETARCH=arch,
            GITLAB_URL=gitlab_url,
            NESTED_PRIVILEGED=nested_privileged,
            GITLAB_ALLOW_HTTP=gitlab_allow_http,
            STORAGE_THRESHOLD=storage_threshold,
        )
        binary = _runner_binary(standin, runner_binary)
        from tests.harness.taskstandins import standin_helper

        archive = (
            Path(helper_archive) if helper_archive else standin_helper(standin, settings, base)
        )
        result = imagebuild.build_image(
            settings,
            tag or _cfg(c, "image"),
            REPO / "build",
            runner_binary=binary,
            runner_sha256=runner_sha256,
            allow_standin=standin,
            base_mode=base,
            helper_archive=archive,
        )
    except PipglrError as exc:
        raise _fail(exc) from exc
    print(
        f"built {result.tag} ({result.image_id[:12]}), gitlab-runner sha256 {result.runner_sha256}"
    )


@task(help={"tag": "name of the imported base image", "mirror": "Debian mirror URL"})
def base(
    c: Context, tag: str = base_image.DEFAULT_TAG, mirror: str = base_image.DEFAULT_MIRROR
) -> None:
    """Bootstrap the Debian trixie base image locally (no registry needed)."""
    try:
        base_image.bootstrap(tag, mirror=mirror)
    except PipglrError as exc:
        raise _fail(exc) from exc


@task(help={"out": "directory to write the rendered files into (default build/rendered)"})
def render(c: Context, out: str | None = None) -> None:
    """Write the rendered systemd units to a directory for inspection."""
    target = Path(out) if out else REPO / "build" / "rendered"
    context = units.UnitContext.from_settings(_settings(c))
    for path in units.write_tree(context, target):
        print(path)


@task(help={"name": "one label (default: all)", "image": "image to substitute for $IMAGE"})
def runlabels(c: Context, name: str | None = None, image: str | None = None) -> None:
    """Print the runlabel command lines (as written into the image)."""
    names = [name] if name else list(labels.LABELS)
    try:
        for label in names:
            argv = labels.argv(label, image or _cfg(c, "image"))
            print(f"{label}: {shlex.join(argv)}")
    except PipglrError as exc:
        raise _fail(exc) from exc


@task(help=REBUILD_HELP, auto_shortflags=False)
def rebuild_needed(
    c: Context,
    published: str,
    candidate: str | None = None,
    base_image: str | None = None,
    runner_version: str | None = None,
    runner_binary: str | None = None,
    runner_sha256: str | None = None,
    tls_verify: bool = True,
) -> None:
    """Say why a build must be published or not: exit 0 needed, 1 not, 2 cannot tell.

    Compares the base image digest, runner version and sha256, package list digest
    and commit recorded in the labels of --published with --candidate's labels (or,
    before a build, with the facts gathered now; the package list is then unknown).
    Prints one line per fact. Exit status: 0 rebuild needed (publish), 1 nothing
    changed (skip the push), 2 the decision could not be made (an error).
    """
    try:
        settings = (
            None
            if candidate
            else _settings(c, BASE_IMAGE=base_image, RUNNER_VERSION=runner_version)
        )
        binary = Path(runner_binary) if runner_binary else None
        decision = release.compare(
            published, candidate, settings, binary, runner_sha256, tls_verify
        )
    except PipglrError as exc:
        raise Exit(f"error: {exc}", code=2) from exc
    for reason in decision.reasons:
        print(reason)
    if not decision.needed:
        print(f"nothing changed since {published}: no rebuild needed")
        raise Exit(code=1)
    print(f"rebuild needed: publish (compared with {published})")


@task(help=PUBLISH_HELP, auto_shortflags=False)
def publish(
    c: Context,
    to: str,
    tags: str = "latest,{runner_version},{date}",
    image: str | None = None,
    arch_images: str | None = None,
    retries: int = 3,
    tls_verify: bool = True,
) -> None:
    """Push the image (or a multi-arch list) under each tag, retrying; verify digests.

    After each push the registry is asked for the tag's digest (skopeo inspect, or
    podman pull + inspect), which must be the one podman pushed.
    """
    sources = [s for s in (arch_images or "").split(",") if s] or [image or _cfg(c, "image")]
    try:
        pushed = registry.publish_image(
            sources, to, tags.split(","), tls_verify, retries, datetime.date.today()
        )
    except PipglrError as exc:
        raise _fail(exc) from exc
    for reference, digest in pushed.items():
        print(f"pushed {reference}@{digest} (verified)")


@task(help=TRIGGER_HELP)
def trigger_downstream(
    c: Context,
    image: str,
    projects: str = "ci/downstream.toml",
    api_url: str | None = None,
    dry_run: bool = False,
) -> None:
    """Start the pipelines of projects built on pipglr (GitLab pipeline triggers)."""
    url = api_url or os.environ.get("CI_API_V4_URL", "")
    try:
        count = downstream.trigger(REPO / projects, url, image, dry_run)
    except PipglrError as exc:
        raise _fail(exc) from exc
    if not count:
        print(f"no downstream projects in {projects}")


@task(help=CHAIN_HELP, auto_shortflags=False)
def chain(
    c: Context,
    directory: str,
    dry_run: bool = False,
    prefix: str = chain_mod.DEFAULT_PREFIX,
    rebuild: str = "",
) -> None:
    """Build a directory of image definitions parents first, rebuilding dependents.

    An image is rebuilt when it is missing, its directory (or sources) changed, a
    parent is rebuilt, a parent image (a base outside the chain too) is not the one
    it was built on, or --rebuild names it (see pipglr/chain.py). A dependency
    cycle is refused.
    """
    names = [name.strip() for name in rebuild.split(",") if name.strip()]
    try:
        print(chain_mod.build_directory(Path(directory), prefix, names, dry_run))
    except PipglrError as exc:
        raise _fail(exc) from exc


TEST_HELP = {
    "unit_only": "lint, types and unit tests only (no engine)",
    "pytest_args": "extra arguments for pytest",
    "sets": "engine sets to run side by side, comma-separated: rootful,rootless,none (default all)",
}


@task(help=TEST_HELP)
def test(c: Context, unit_only: bool = False, pytest_args: str = "", sets: str = "") -> None:
    """Run the whole suite: ruff, mypy, unit tests, image tests (rootful and rootless)."""
    from tests.harness import sets as engine_sets

    py = shlex.quote(sys.executable)
    # The engine suite's images build meanwhile (root only: the sets need root).
    build = None if unit_only or os.geteuid() != 0 else engine_sets.start_build()
    if build is not None:
        print(f"== building the test images in the background ({build[1]})", flush=True)
    try:
        c.run(f"{py} -m ruff check pipglr tests tasks.py", echo=True, pty=False)
        c.run(f"{py} -m ruff format --check pipglr tests tasks.py", echo=True, pty=False)
        c.run(f"{py} -m mypy", echo=True, pty=False)
        c.run(f"{py} -m pytest tests/unit {pytest_args}", echo=True, pty=False)
    except BaseException:
        if build is not None:
            build[0].terminate()
        raise
    if unit_only:
        return
    built = "" if build is None else "--no-build "
    if build is not None and engine_sets.finish_build(*build) != 0:
        raise Exit(f"error: building the test images failed: see {build[1]}")
    # The engine suite's three sets run side by side (tests/harness/sets.py).
    chosen = f"--sets {shlex.quote(sets)} " if sets else ""
    c.run(f"{py} -m tests.harness.sets {built}{chosen}{pytest_args}", echo=True, pty=False)


@task(help=BENCH_HELP)
def bench(
    c: Context,
    image: str | None = None,
    quick: bool = False,
    modes: str = "rootful,rootless",
    rootless_podman: str = outer_mod.ROOTLESS_PODMAN,
    out: str | None = None,
    standin: bool = False,
    runner_binary: str | None = None,
    jobs: bool = True,
    job_base: str = base_image.DEFAULT_TAG,
) -> None:
    """Measure nesting against host podman (both outer modes) and print ratios."""
    from tests.harness.taskstandins import job_driver

    tag = image or _cfg(c, "image")
    binary = _runner_binary(standin, runner_binary)
    try:
        report, json_path, md_path = bench_command.bench(
            tag, quick, modes.split(","), rootless_podman,
            Path(out) if out else REPO / "results", REPO / "build" / "bench",
            binary, standin, job_base, lambda: job_driver(jobs, tag, binary, REPO),
        )  # fmt: skip
    except PipglrError as exc:
        raise _fail(exc) from exc
    print(report.to_markdown())
    print(f"written: {json_path} {md_path}")


@task()
def clean(c: Context) -> None:
    """Remove build outputs (build/, results/) and test containers and images."""
    for directory in ("build", "results"):
        shutil.rmtree(REPO / directory, ignore_errors=True)
    c.run(f"podman rm --force --ignore {layout.CONTAINER_NAME}", warn=True, hide=True)
    c.run(f"podman rmi --force {shlex.quote(_cfg(c, 'test_image'))}", warn=True, hide=True)


ns = Collection(
    build,
    base,
    render,
    runlabels,
    rebuild_needed,
    publish,
    trigger_downstream,
    chain,
    test,
    bench,
    clean,
)
ns.configure(
    {
        "pipglr": {
            "image": "localhost/pipglr:latest",
            "test_image": "localhost/pipglr:test",
            "build_args": {},
        }
    }
)
