"""The command lines of ``pipglr images`` (:mod:`pipglr.ops.jobimages`): what runs in
pipglr as user podman, and the small scripts that handle the definitions there.

Each is a function of its inputs only, so the tests compare them without a container
(and without the terminal ``shell`` needs).
"""

from __future__ import annotations

import json

from pipglr import layout

ENV = f"XDG_RUNTIME_DIR={layout.PODMAN_RUNTIME_DIR}"
#: The nested podman: the API service the runner and the evictor talk to.
NESTED = ("podman", f"--url={layout.DOCKER_HOST}")
SHELL_PREFIX = "pipglr-shell-"
#: The definitions' files the host needs to check a change against them (``$1`` the
#: definitions directory; hidden entries, such as an unfinished copy, left out).
FETCH_SCRIPT = r"""# pipglr images: copy out the definitions
set -e
mkdir -p "$1"
cd "$1"
find . -mindepth 2 -maxdepth 2 ! -path './.*' -type f \( -name Containerfile -o -name depends \) \
    -print0 | tar -c --null -T - -f -
"""
#: Extract the tar on stdin beside the definitions, then move each (``$2``...) into
#: place: a build sees a definition whole, old or new.
ADD_SCRIPT = r"""# pipglr images: copy in definitions
set -e
dir=$1; shift
mkdir -p "$dir"
staging=$(mktemp -d "$dir/.staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT
tar -x -f - -C "$staging"
for name in "$@"; do
    if [ -e "$dir/$name" ]; then mv "$dir/$name" "$staging/$name.old"; fi
    mv "$staging/$name" "$dir/$name"
done
"""
#: Move the definition ``$2`` out of ``$1`` in one step, then delete it.
REMOVE_SCRIPT = r"""# pipglr images: delete a definition
set -e
staging=$(mktemp -d "$1/.staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT
mv "$1/$2" "$staging/"
"""


def image_of(name: str) -> str:
    """The nested image a definition is built as."""
    return f"{layout.MAINTAINED_PREFIX}{name}"


def shell_container(name: str) -> str:
    return f"{SHELL_PREFIX}{name}"


def exec_args(*command: str, tty: bool = False) -> list[str]:
    """The outer podman's arguments running ``command`` in pipglr as user podman."""
    return [
        "exec",
        "-it" if tty else "-i",
        "--user",
        layout.PODMAN.name,
        "--env",
        ENV,
        layout.CONTAINER_NAME,
        *command,
    ]


def guest_args(verb: str, *args: str) -> list[str]:
    """``exec_args`` of a guest verb (``images-list``, ``images-build``)."""
    return exec_args(str(layout.PYTHON), "-m", layout.GUEST_MODULE, verb, *args)


def shell_args(name: str, commit: bool) -> list[str]:
    """The interactive maintenance container of ``localhost/NAME`` (kept after its
    shell exits only to be committed)."""
    keep = [] if commit else ["--rm"]
    return exec_args(
        *NESTED,
        "run",
        "-it",
        *keep,
        "--name",
        shell_container(name),
        "--pull=never",
        "--entrypoint",
        "/bin/sh",
        image_of(name),
        tty=True,
    )


def commit_command(name: str, entrypoint: list[str] | None, cmd: list[str] | None) -> list[str]:
    """The nested podman's commit of the maintenance container as ``localhost/NAME``:
    with the maintained label, and the image's own entrypoint and command (podman's
    commit takes the container's, here the shell: libpod/container_commit.go,
    ``Container.Commit``)."""
    changes = [
        f"LABEL {layout.MAINTAINED_LABEL}={name}",
        f"ENTRYPOINT {json.dumps(entrypoint or [])}",
        f"CMD {json.dumps(cmd or [])}",
    ]
    flags = [arg for change in changes for arg in ("--change", change)]
    return [*NESTED, "commit", *flags, shell_container(name), image_of(name)]
