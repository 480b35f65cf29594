"""``pipglr images``: the maintained job images, from the host.

The definitions live in pipglr, on the storage volume (:data:`layout.MAINTAINED_DIR`,
the podman user's); the images in its nested podman as ``localhost/NAME``. Everything
here runs in the running container as user podman (``podman exec --user podman``):
``tar`` and ``find`` for the definitions, the guest's ``images-list`` and
``images-build`` for the images (:mod:`pipglr.guest`), and the nested podman through
the API service's socket (the podman the jobs' containers belong to) for ``shell``
and ``remove``. The command lines are built by :mod:`pipglr.ops.imagecmds`; this
module runs them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pipglr import layout
from pipglr.errors import CommandError, EngineError, PipglrError, UsageError
from pipglr.ops import imagedefs
from pipglr.ops.imagecmds import (
    ADD_SCRIPT,
    FETCH_SCRIPT,
    NESTED,
    REMOVE_SCRIPT,
    commit_command,
    exec_args,
    guest_args,
    image_of,
    shell_args,
    shell_container,
)
from pipglr.ops.imageobjects import ImageObjects


class MaintainedImages(ImageObjects):
    """``pipglr images add|list|build|shell|remove`` against the running pipglr."""

    def _in_pipglr(
        self, *command: str, data: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``command`` in pipglr as user podman, output captured (bytes)."""
        done = subprocess.run(
            [*self.outer.podman, *exec_args(*command)],
            input=data or b"",  # no data: an empty stdin, not the operator's
            capture_output=True,
            check=False,
            timeout=600,
        )
        if check and done.returncode != 0:
            # A script is named by its first line, a comment; stdout may be a tar.
            shown = command[2].splitlines()[0] if command[0] == "sh" else None
            raise CommandError(
                shown or shlex.join(command),
                done.returncode,
                done.stderr.decode(errors="replace"),
                f"in {layout.CONTAINER_NAME} as user {layout.PODMAN.name}",
            )
        return done

    def _require_running(self) -> None:
        inspect = self.outer.run("container", "inspect", layout.CONTAINER_NAME, check=False)
        state = json.loads(inspect.stdout)[0]["State"]["Status"] if inspect.returncode == 0 else ""
        if state != "running":
            raise EngineError(
                f"{layout.CONTAINER_NAME} is not running: the maintained images "
                "live in it, start it with `pipglr up`"
            )

    def _installed(self, target: Path) -> None:
        """Copy the definitions' Containerfile and depends files out of pipglr."""
        fetched = self._in_pipglr("sh", "-c", FETCH_SCRIPT, "sh", str(layout.MAINTAINED_DIR))
        imagedefs.unpack(fetched.stdout, target)

    def images_add(self, directory: Path) -> list[str]:
        """Check the definitions in ``directory`` (alone, then with those pipglr holds)
        and copy them into pipglr, replacing definitions of the same names; their
        names."""
        new = imagedefs.definition_dirs(directory)
        self._require_running()
        with tempfile.TemporaryDirectory(prefix="pipglr-images-") as tmp:
            installed = Path(tmp) / "installed"
            self._installed(installed)
            imagedefs.check_together(new, installed)
        names = [path.name for path in new]
        self._in_pipglr(
            "sh",
            "-c",
            ADD_SCRIPT,
            "sh",
            str(layout.MAINTAINED_DIR),
            *names,
            data=imagedefs.pack(new),
        )
        return names

    def images_list(self, as_json: bool) -> str:
        """The guest's table (or JSON) of the definitions and their images."""
        self._require_running()
        command = guest_args("images-list", *(["--json"] if as_json else []))
        done = self.outer.run(*command, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise EngineError(f"images-list failed in {layout.CONTAINER_NAME}: {last}")
        return done.stdout.rstrip("\n")

    def images_build(self, names: Sequence[str] = (), pull: bool = False) -> int:
        """Run the guest's ``images-build`` (what is due, or ``names`` again; ``pull``:
        the external bases pulled first), its output streaming; its exit status."""
        for name in names:
            imagedefs.check_name(name)
        self._require_running()
        command = [
            *self.outer.podman,
            *guest_args("images-build", *(["--pull"] if pull else []), *names),
        ]
        return subprocess.run(command, check=False).returncode

    def images_shell(self, name: str, commit: bool) -> int:
        """An interactive shell in a container of ``localhost/NAME``, removed after;
        with ``commit``, committed back as ``localhost/NAME`` first. Its exit status."""
        imagedefs.check_name(name)
        self._require_running()
        inspect = self._in_pipglr(
            *NESTED,
            "image",
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}}\t{{json .Config.Cmd}}",
            image_of(name),
            check=False,
        )
        if inspect.returncode != 0:
            raise UsageError(
                f"no image {image_of(name)} in {layout.CONTAINER_NAME}: "
                f"`pipglr images build {name}` builds it"
            )
        entrypoint, _, cmd = inspect.stdout.decode().strip().partition("\t")
        container = shell_container(name)
        if self._in_pipglr(*NESTED, "container", "exists", container, check=False).returncode == 0:
            remove = ["podman", *exec_args(*NESTED, "rm", "-f", container)]
            raise UsageError(
                f"{container} exists (a shell open elsewhere, or one left "
                f"behind): close it, or remove it: {shlex.join(remove)}"
            )
        status = subprocess.run(
            [*self.outer.podman, *shell_args(name, commit)], check=False
        ).returncode
        if not commit:
            return status
        try:
            if (
                self._in_pipglr(*NESTED, "container", "exists", container, check=False).returncode
                != 0
            ):
                raise EngineError(
                    f"the shell did not start (podman exited {status}): nothing to commit"
                )
            self._in_pipglr(*commit_command(name, json.loads(entrypoint), json.loads(cmd)))
        finally:
            self._in_pipglr(*NESTED, "rm", "-f", "--ignore", container, check=False)
        return status

    def images_remove(self, name: str) -> list[str]:
        """Delete the definition ``name`` and its image (only untagged when a container
        uses it); what was done, one line each."""
        imagedefs.check_name(name)
        self._require_running()
        with tempfile.TemporaryDirectory(prefix="pipglr-images-") as tmp:
            installed = Path(tmp) / "installed"
            self._installed(installed)
            if not (installed / name / "Containerfile").is_file():
                raise UsageError(f"no maintained image {name}: `pipglr images list` shows them")
            try:
                built_on = imagedefs.dependents(imagedefs.check_together([], installed), name)
            except PipglrError:
                built_on = []  # the others are broken already: removing this one is fine
        if built_on:
            raise UsageError(
                f"{', '.join(built_on)} {'is' if len(built_on) == 1 else 'are'} "
                f"built on {name}: remove or change them first"
            )
        self._in_pipglr("sh", "-c", REMOVE_SCRIPT, "sh", str(layout.MAINTAINED_DIR), name)
        said = [f"removed the definition {name}"]
        image = image_of(name)
        if self._in_pipglr(*NESTED, "image", "exists", image, check=False).returncode != 0:
            return [*said, f"{image} was never built"]
        removed = self._in_pipglr(*NESTED, "rmi", image, check=False)
        if removed.returncode == 0:
            return [*said, f"removed {image}"]
        why = (removed.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        self._in_pipglr(*NESTED, "untag", image)
        return [
            *said,
            f"{image} is still in use ({why}): untagged, the prune removes it once no job uses it",
        ]
