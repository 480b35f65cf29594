"""The config.toml secret: read, checked and replaced with a backup first, and
``register`` adding runners to it.

Secrets are only replaced after the new content has been checked, with a backup first.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from pipglr import customsection, layout, runnerconfig
from pipglr.errors import ConfigError, EngineError, UsageError
from pipglr.ops import configedit, doctor
from pipglr.ops.imageobjects import ImageObjects
from pipglr.ops.outer import Outer

STAGING_SECRET = "pipglr-config-staging"
#: podman 4.7 added ``secret create --replace``: the new text takes the old one's place
#: in one step, so a container starting meanwhile never finds the secret missing.
SECRET_REPLACE_PODMAN = (4, 7)
#: How many backups of each secret are kept: each holds every token of its time, so
#: older ones are deleted when a new one is written.
BACKUPS_KEPT = 10
#: A backup's name after the secret's: ``.YYYYmmdd-HHMMSS`` and, within one second,
#: ``.1``, ``.2``...
_STAMP = r"\.(\d{8}-\d{6})(?:\.(\d+))?"


def backup_dir() -> Path:
    """Where replaced secrets are kept (``$XDG_DATA_HOME/pipglr/backups``)."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
    return Path(data) / "pipglr" / "backups"


def write_backup(
    directory: Path, text: str, name: str = layout.CONFIG_SECRET, keep: int = BACKUPS_KEPT
) -> Path:
    """Keep ``text`` as a new backup file (0600) named for the secret ``name`` and the
    time; never overwrite one: replacements within the same second get ``.1``, ``.2``...
    Then only the newest ``keep`` backups of ``name`` stay (:func:`prune_backups`)."""
    stem = f"{name}.{time.strftime('%Y%m%d-%H%M%S')}"
    attempt = 0
    while True:
        backup = directory / (f"{stem}.{attempt}" if attempt else stem)
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            attempt += 1
            continue
        with os.fdopen(fd, "w") as out:
            out.write(text)
        prune_backups(directory, name, keep, spare=backup)
        return backup


def backups_of(directory: Path, name: str) -> list[Path]:
    """The backups of the secret ``name`` in ``directory``, oldest first."""
    pattern = re.compile(re.escape(name) + _STAMP)
    found = []
    for path in directory.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_file():
            found.append(((match[1], int(match[2] or 0)), path))
    return [path for _, path in sorted(found)]


def prune_backups(
    directory: Path, name: str, keep: int = BACKUPS_KEPT, spare: Path | None = None
) -> list[Path]:
    """Delete all but the newest ``keep`` (at least 1) backups of ``name``, never
    ``spare`` (the one just written, even if a clock set back sorts it older); return
    the deleted ones."""
    found = backups_of(directory, name)
    old = [path for path in found[: -max(keep, 1)] if path != spare]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def backup(text: str, name: str = layout.CONFIG_SECRET) -> Path:
    """Keep ``text`` of the secret ``name`` in :func:`backup_dir` (created 0700)."""
    directory = backup_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return write_backup(directory, text, name)


def last_line(text: str) -> str:
    """The last line of a command's output (what an error line quotes)."""
    return (text.strip().splitlines() or ["no output"])[-1]


def stage_secret(outer: Outer, staging: str, name: str, text: str) -> None:
    """Let podman accept ``text`` under the name ``staging`` before the secret ``name``
    is touched (then drop it)."""
    outer.run("secret", "rm", staging, check=False)
    staged = outer.run("secret", "create", staging, "-", input=text, check=False)
    outer.run("secret", "rm", staging, check=False)
    if staged.returncode != 0:
        raise EngineError(f"podman refused the new {name} secret: {last_line(staged.stderr)}")


def put_secret(outer: Outer, name: str, text: str, old: str | None) -> None:
    """Make ``text`` the secret ``name`` whose text is now ``old`` (None: absent).

    With podman 4.7 or later an existing secret is replaced in one step
    (``--replace``); older podman has none, so the old secret is removed and the new
    one created (a moment without the secret), and if creating fails, the old one is
    put back.
    """
    if old is not None and doctor.podman_version(outer.podman) >= SECRET_REPLACE_PODMAN:
        swapped = outer.run("secret", "create", "--replace", name, "-", input=text, check=False)
        if swapped.returncode != 0:
            raise EngineError(f"writing the {name} secret failed ({last_line(swapped.stderr)}); "
                              "the previous secret is unchanged")  # fmt: skip
        return
    if old is not None:
        outer.run("secret", "rm", name)
    created = outer.run("secret", "create", name, "-", input=text, check=False)
    if created.returncode != 0:
        if old is not None:
            outer.run("secret", "create", name, "-", input=old)
        again = "; the previous secret is back in place" if old is not None else ""
        raise EngineError(f"writing the {name} secret failed ({last_line(created.stderr)}){again}")


class ConfigSecret(ImageObjects):
    """The config.toml secret of the operator's podman, and registering runners into it."""

    def read_config(self) -> str:
        """The config.toml secret's text (through the dumpconfig label)."""
        if layout.CONFIG_SECRET not in self.secrets():
            raise ConfigError(
                "there is no config.toml secret yet: create it with `pipglr register`"
            )
        return self.run_label("dumpconfig")

    def replace_config(self, text: str) -> Path | None:
        """Check ``text`` and make it the config.toml secret; return the backup file
        (:func:`stage_secret`, then :func:`put_secret`)."""
        runnerconfig.check(runnerconfig.parse(text))
        stage_secret(self.outer, STAGING_SECRET, layout.CONFIG_SECRET, text)
        old = self.read_config() if layout.CONFIG_SECRET in self.secrets() else None
        kept = backup(old) if old is not None else None
        put_secret(self.outer, layout.CONFIG_SECRET, text, old)
        return kept

    def register(
        self,
        token: str,
        url: str | None = None,
        description: str | None = None,
        tags: str | None = None,
        run_untagged: bool = False,
        count: int = 1,
        concurrency: int | None = None,
        executor: str = "docker",
        default_image: str | None = None,
    ) -> tuple[int, Path | None]:
        """Register ``count`` runners into the config.toml secret; return (runners, backup).

        ``executor`` (docker or custom) and ``default_image`` go to the register label,
        whose :func:`pipglr.guest.register.pipglr_options` takes them (the docker
        executor without a default image passes neither, as before)."""
        if not token.strip():
            raise UsageError("empty token: pass it on stdin or with --token-file")
        if count < 1:
            raise UsageError("--count must be 1 or more")
        extra: list[str] = []
        if executor != "docker":
            extra += ["--executor", executor]
        if default_image is not None:
            extra += ["--default-image", customsection.check_image(default_image)]
        for flag, value in (("--url", url), ("--description", description),
                            ("--tag-list", tags)):  # fmt: skip
            if value:
                extra += [flag, value]
        if run_untagged:
            extra.append("--run-untagged")
        # Private to the user: config.toml in here holds every runner's token.
        workdir = self.outer.private_dir("pipglr-register-")
        try:
            config = workdir / layout.CONFIG_SECRET
            existing = self.read_config() if layout.CONFIG_SECRET in self.secrets() else ""
            self.outer.write_file(config, existing)
            self.outer.run("secret", "rm", layout.TOKEN_SECRET, check=False)
            self.outer.run("secret", "create", layout.TOKEN_SECRET, "-", input=token.strip())
            try:
                for _ in range(count):
                    self.run_label("register", extra, cwd=workdir)
            finally:
                self.outer.run("secret", "rm", layout.TOKEN_SECRET, check=False)
            text = config.read_text()
            if concurrency is not None:
                text = configedit.set_value(text, "concurrent", str(concurrency))
            kept = self.replace_config(text)
            return configedit.runner_count(text), kept
        finally:
            self._remove_private(workdir)

    def _remove_private(self, directory: Path) -> None:
        if self.outer.mode == "rootless":
            self.outer.run("unshare", "rm", "-rf", str(directory), check=False)
        else:
            shutil.rmtree(directory, ignore_errors=True)
