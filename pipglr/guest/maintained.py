"""Maintained job images (``pipglr images``): named job environments the image builds
from the operator's definitions and keeps current, the way nspawn-runner kept its chroots.

The definitions live in :data:`pipglr.layout.MAINTAINED_DIR` (the storage volume, user
podman) in the format ``invoke chain`` reads (:mod:`pipglr.chain`): ``NAME/Containerfile``
and its build context, an optional ``NAME/depends``. Only those: a ``build`` file (a
command run on the host's side of ``invoke chain``), an ``image`` file (another name)
or a ``sources`` file (paths outside the definition) is refused. Each definition is
built as ``localhost/NAME`` (:data:`pipglr.layout.MAINTAINED_PREFIX`) with
:data:`pipglr.layout.MAINTAINED_LABEL` = NAME beside the chain's labels, which the
evictor never removes (:func:`pipglr.guest.inventory.maintained`).

What is built, and in which order, is what ``invoke chain`` decides
(:func:`pipglr.chain.plan`, images looked up through podman-py on the API socket):
parents first; an image that does not exist, whose definition changed, whose parent
is rebuilt or is no longer the image it was built on. Names given are rebuilt
whatever their state, with ``--no-cache`` (a rebuild by name is for inputs outside the
definition, e.g. a distribution's package updates, which a layer cache would hide).
``--pull`` pulls each external base first, so a base updated upstream makes its images
due: the weekly timer (``pipglr-images.timer``) runs ``images-build --all-due --pull``.
A failed build is reported and fails the run; the images built on it are skipped,
the others are built.

A rebuild never disturbs a running job: ``podman build --tag`` moves the tag to the
new image, and the previous one stays, untagged, for as long as a container uses it
(podman refuses to remove an image in use). Nothing here removes it: the job-aware
prune (dangling images, :mod:`pipglr.guest.prune`) or the evictor removes it once no
job uses it. Builds run the podman CLI as the podman user (output streams through);
one build runs at a time (a lock in the podman user's runtime directory).
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from podman.errors import ImageNotFound, NotFound

from pipglr import chain, layout
from pipglr.errors import EngineError, UsageError

#: What podman accepts as a repository name (lower case; docker's reference grammar).
NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
#: Files of a chain definition a maintained one may not have (see the module docstring).
REFUSED_FILES = ("build", "image", "sources")
LOCK_PATH = Path(str(layout.PODMAN_RUNTIME_DIR)) / "pipglr-images.lock"
ASKED = "asked for by name"
#: Runs argv with the environment, output streaming through; its exit status.
Runner = Callable[[Sequence[str], Mapping[str, str]], int]
Say = Callable[[str], None]


def image_of(name: str) -> str:
    """The image a maintained definition is built as (``localhost/NAME:latest``)."""
    return chain.normalize(f"{layout.MAINTAINED_PREFIX}{name}")


def check(directory: Path) -> None:
    """Refuse what a maintained definition may not be (one line)."""
    if not NAME_RE.match(directory.name):
        raise UsageError(
            f"{directory.name!r} is no image name: name the directory in lower case "
            "letters and digits, separated by . _ or -"
        )
    for refused in REFUSED_FILES:
        if (directory / refused).exists():
            raise UsageError(
                f"{directory.name}/{refused}: maintained images are built in the image from "
                f"NAME/Containerfile (and NAME/depends) only: remove {directory.name}/{refused}"
            )


def load(directory: Path | None = None) -> chain.Chain | None:
    """The maintained definitions in ``directory`` (default
    :data:`pipglr.layout.MAINTAINED_DIR`), checked; None when there are none."""
    directory = directory or Path(str(layout.MAINTAINED_DIR))
    entries = sorted(directory.iterdir()) if directory.is_dir() else []
    found = [p for p in entries if (p / "Containerfile").is_file() or (p / "build").is_file()]
    if not found:
        return None
    for path in found:
        check(path)
    return chain.Chain.load(directory, layout.MAINTAINED_PREFIX)


def lookup_in(client: Any) -> chain.Lookup:
    """:data:`pipglr.chain.Lookup` through podman-py: the image's id and labels."""

    def lookup(image: str) -> chain.Image | None:
        try:
            found = client.images.get(image)
        except (NotFound, ImageNotFound):  # podman-py: not a NotFound
            return None
        return chain.Image(str(found.id), dict(found.labels or {}))

    return lookup


def podman_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the podman CLI as the podman user (also under ``podman exec``)."""
    env = dict(os.environ if base is None else base)
    env |= {"XDG_RUNTIME_DIR": str(layout.PODMAN_RUNTIME_DIR), "HOME": str(layout.PODMAN.home)}
    return env


def stream(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """:data:`Runner`: the command's output goes straight to ours."""
    return subprocess.run(list(argv), env=dict(env), check=False).returncode


def build_argv(definition: chain.Definition, labels: Mapping[str, str], fresh: bool) -> list[str]:
    """``podman build`` of one definition (:func:`pipglr.chain.build_command`) with the
    maintained label; ``fresh``: without the layer cache."""
    argv = chain.build_command(definition, {**labels, layout.MAINTAINED_LABEL: definition.name})
    return [*argv[:2], "--no-cache", *argv[2:]] if fresh else argv


def external_bases(loaded: chain.Chain, name: str) -> tuple[str, ...]:
    """The external images (``FROM`` outside the definitions) ``name``'s chain stands on."""
    found: dict[str, None] = {}

    def walk(current: str) -> None:
        for parent in loaded.parents[current]:
            walk(parent)
        found.update(dict.fromkeys(loaded.external[current]))

    walk(name)
    return tuple(found)


def pull_bases(loaded: chain.Chain, run: Runner, say: Say) -> list[str]:
    """Pull every external base from its registry (not ``localhost/`` ones); the bases
    that could not be pulled (said, not fatal: the build then says what is missing)."""
    bases = sorted({b for d in loaded.order for b in loaded.external[d]})
    failed = []
    for base in bases:
        if base.startswith(layout.MAINTAINED_PREFIX):
            continue
        say(f"+ podman pull {base}")
        if run(["podman", "pull", base], podman_env()) != 0:
            say(f"pulling {base} failed: its images are planned with the copy there is")
            failed.append(base)
    return failed


@contextmanager
def locked(path: Path, say: Say) -> Iterator[None]:
    """One ``images-build`` at a time: wait for a running one to finish."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another images-build is running: waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(
    loaded: chain.Chain, lookup: chain.Lookup, names: Iterable[str] = (), pull: bool = False,
    run: Runner = stream, say: Say = print,
) -> tuple[list[chain.Step], list[str]]:  # fmt: skip
    """Build what is due (and ``names``), parents first; the plan and the names whose
    build failed or was skipped because a parent's failed."""
    if pull:
        pull_bases(loaded, run, say)
    steps = chain.plan(loaded, lookup, names)
    say(chain.describe(steps))
    failed: list[str] = []
    for step in steps:
        if not step.rebuild:
            continue
        broken = [p for p in loaded.parents[step.name] if p in failed]
        if broken:
            say(f"skipping {step.name}: its parent {broken[0]} failed to build")
            failed.append(step.name)
            continue
        definition = loaded.definitions[step.name]
        labels = chain.build_labels(loaded, step.name, lookup)
        argv = build_argv(definition, labels, ASKED in step.reasons)
        say(f"+ {shlex.join(argv)}")
        if run(argv, podman_env()) != 0:
            say(f"building {step.name} failed: see the output above")
            failed.append(step.name)
    return steps, failed


def summary(steps: Sequence[chain.Step], failed: Sequence[str]) -> str:
    """The last line of ``images-build``."""
    built = [s.name for s in steps if s.rebuild and s.name not in failed]
    current = [s.name for s in steps if not s.rebuild]
    parts = [f"built {', '.join(built) or 'nothing'}"]
    if current:
        parts.append(f"up to date {', '.join(current)}")
    if failed:
        parts.append(f"failed {', '.join(failed)}")
    return "maintained images: " + "; ".join(parts)


def main_build(args: Sequence[str], client: Any = None, run: Runner = stream,
               say: Say = print, lock: Path = LOCK_PATH) -> str:  # fmt: skip
    """``images-build [--all-due] [--pull] [NAME...]``: the summary line; raises when a
    build failed (after building what it could)."""
    flags = {a for a in args if a.startswith("-")}
    names = [a for a in args if not a.startswith("-")]
    unknown = flags - {"--all-due", "--pull"}
    if unknown:
        raise UsageError(f"images-build: unknown option {sorted(unknown)[0]}: "
                         "use images-build [--all-due] [--pull] [NAME...]")  # fmt: skip
    if names and "--all-due" in flags:
        raise UsageError("images-build: name images or give --all-due, not both")
    loaded = load()
    if loaded is None:
        if names:
            raise UsageError(f"no maintained image {names[0]}: add it with `pipglr images add DIR`")
        return "maintained images: none defined (`pipglr images add DIR`)"
    with locked(lock, say), connected(client) as podman:
        steps, failed = build(loaded, lookup_in(podman), names, "--pull" in flags, run, say)
    line = summary(steps, failed)
    if failed:
        raise EngineError(line)
    return line


@contextmanager
def connected(client: Any = None) -> Iterator[Any]:
    """``client``, else a podman-py client of the API socket (closed after)."""
    if client is not None:
        yield client
        return
    from podman import PodmanClient

    with PodmanClient(base_url=f"unix://{layout.SOCKET_PATH}") as made:
        yield made
