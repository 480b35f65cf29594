"""Host-side operations behind the ``pipglr`` command.

Everything goes through an :class:`~pipglr.ops.outer.Outer` (the user's podman, or a
command that runs podman as that user) and through the runlabels *read from the
image*, so the CLI never types a label's command line itself. Secrets and volumes
are only replaced after the new content has been checked, with a backup first.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipglr import layout, runnerconfig
from pipglr.build import labels
from pipglr.errors import ConfigError, EngineError, PipglrError, UsageError
from pipglr.ops import configedit, doctor, privilege
from pipglr.ops.outer import Outer

STAGING_SECRET = "pipglr-config-staging"
#: podman 4.7 added ``secret create --replace``: the new text takes the old one's place
#: in one step, so a container starting meanwhile never finds the secret missing.
SECRET_REPLACE_PODMAN = (4, 7)


def backup_dir() -> Path:
    """Where replaced secrets are kept (``$XDG_DATA_HOME/pipglr/backups``)."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
    return Path(data) / "pipglr" / "backups"


def write_backup(directory: Path, text: str, name: str = layout.CONFIG_SECRET) -> Path:
    """Keep ``text`` as a new backup file (0600) named for the secret ``name`` and the
    time; never overwrite one: replacements within the same second get ``.1``, ``.2``..."""
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
        return backup


def resource_args(
    cpus: str | None = None,
    memory: str | None = None,
    pids: int | None = None,
    volumes: Sequence[str] = (),
    env: Sequence[str] = (),
) -> list[str]:
    """``podman run`` options for limits and extras (``pipglr up`` and ``quadlet``)."""
    extra: list[str] = []
    if cpus:
        extra += ["--cpus", cpus]
    if memory:
        extra += ["--memory", memory]
    if pids:
        extra += ["--pids-limit", str(pids)]
    for volume in volumes:
        extra += ["--volume", volume]
    for item in env:
        extra += ["--env", item]
    return extra


def with_extra(args: Sequence[str], image: str, extra: Sequence[str]) -> list[str]:
    """``run`` label arguments with ``extra`` options inserted before the image."""
    at = list(args).index(image)
    return [*args[:at], *extra, *args[at:]]


@dataclass
class Operator:
    """The operator's podman and the pipglr image it works with."""

    outer: Outer
    image: str

    # -- labels ---------------------------------------------------------------------
    def label_args(self, name: str, extra: Sequence[str] = ()) -> list[str]:
        """Label ``name`` as stored in the image: the arguments after ``podman``."""
        result = self.outer.run("image", "inspect", "--format", "{{json .Labels}}", self.image,
                                check=False)  # fmt: skip
        if result.returncode != 0:
            raise EngineError(f"no image {self.image}: build it (invoke build) or pull it")
        stored = json.loads(result.stdout or "{}") or {}
        if name not in stored:
            raise UsageError(f"{self.image} has no {name!r} label: is it a pipglr image?")
        argv = labels.argv_from_text(stored[name], self.image)
        if argv[0] != "podman":
            raise UsageError(f"the {name} label of {self.image} does not run podman")
        return [*argv[1:], *extra]

    def run_label(self, name: str, extra: Sequence[str] = (), cwd: Path | None = None) -> str:
        """Execute a label; return its stdout, raise with its stderr on failure."""
        args = self.label_args(name, extra)
        result = self.outer.run(*args, cwd=cwd, check=False, timeout=900)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["failed"])[-1]
            raise EngineError(f"the {name} label failed: {last}")
        return result.stdout

    # -- secrets --------------------------------------------------------------------
    def secrets(self) -> list[str]:
        return self.outer.run("secret", "ls", "--format", "{{.Name}}").stdout.split()

    def volumes(self) -> list[str]:
        return self.outer.run("volume", "ls", "--format", "{{.Name}}").stdout.split()

    def read_config(self) -> str:
        """The config.toml secret's text (through the dumpconfig label)."""
        if layout.CONFIG_SECRET not in self.secrets():
            raise ConfigError(
                "there is no config.toml secret yet: create it with `pipglr register`"
            )
        return self.run_label("dumpconfig")

    def replace_config(self, text: str) -> Path | None:
        """Check ``text`` and make it the config.toml secret; return the backup file.

        The old secret stays until podman has accepted the new text under a staging
        name. With podman 4.7 or later the secret is then replaced in one step;
        older podman has no ``--replace``, so the old secret is removed and the new
        one created (a moment without the secret), and if creating the new secret
        fails, the old one is put back.
        """
        runnerconfig.check(runnerconfig.parse(text))
        self.outer.run("secret", "rm", STAGING_SECRET, check=False)
        staged = self.outer.run("secret", "create", STAGING_SECRET, "-", input=text, check=False)
        self.outer.run("secret", "rm", STAGING_SECRET, check=False)
        if staged.returncode != 0:
            raise EngineError(f"podman refused the new secret: {staged.stderr.strip()}")
        backup = None
        old = self.read_config() if layout.CONFIG_SECRET in self.secrets() else None
        if old is not None:
            directory = backup_dir()
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            backup = write_backup(directory, old)
            if doctor.podman_version(self.outer.podman) >= SECRET_REPLACE_PODMAN:
                self._swap_secret(text)
                return backup
            self.outer.run("secret", "rm", layout.CONFIG_SECRET)
        created = self.outer.run("secret", "create", layout.CONFIG_SECRET, "-", input=text,
                                 check=False)  # fmt: skip
        if created.returncode != 0:
            if old is not None:
                self.outer.run("secret", "create", layout.CONFIG_SECRET, "-", input=old)
            raise EngineError(
                f"writing the config.toml secret failed ({created.stderr.strip()}); "
                "the previous secret is back in place"
            )
        return backup

    def _swap_secret(self, text: str) -> None:
        """``secret create --replace``: the old secret until the new one is there."""
        swapped = self.outer.run("secret", "create", "--replace", layout.CONFIG_SECRET, "-",
                                 input=text, check=False)  # fmt: skip
        if swapped.returncode != 0:
            raise EngineError(
                f"writing the config.toml secret failed ({swapped.stderr.strip()}); "
                "the previous secret is unchanged"
            )

    # -- register ---------------------------------------------------------------------
    def register(
        self,
        token: str,
        url: str | None = None,
        description: str | None = None,
        tags: str | None = None,
        run_untagged: bool = False,
        count: int = 1,
        concurrency: int | None = None,
    ) -> tuple[int, Path | None]:
        """Register ``count`` runners into the config.toml secret; return (runners, backup)."""
        if not token.strip():
            raise UsageError("empty token: pass it on stdin or with --token-file")
        if count < 1:
            raise UsageError("--count must be 1 or more")
        extra: list[str] = []
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
            backup = self.replace_config(text)
            return configedit.runner_count(text), backup
        finally:
            self._remove_private(workdir)

    def _remove_private(self, directory: Path) -> None:
        if self.outer.mode == "rootless":
            self.outer.run("unshare", "rm", "-rf", str(directory), check=False)
        else:
            shutil.rmtree(directory, ignore_errors=True)

    # -- container --------------------------------------------------------------------
    def up(
        self,
        cpus: str | None = None,
        memory: str | None = None,
        pids: int | None = None,
        volumes: Sequence[str] = (),
        env: Sequence[str] = (),
        outer: privilege.OuterChoice | None = None,
    ) -> str:
        """Start pipglr from the image's run label with resource/extra options added
        and its nesting options as ``outer`` chose (``None``: as the label has them)."""
        secrets = self.secrets()
        if layout.CONFIG_SECRET not in secrets:
            raise ConfigError("there is no config.toml secret: create it with `pipglr register`")
        have = self.volumes()
        for volume, label in ((layout.STORAGE_VOLUME, "setupstorage"),
                              (layout.CACHE_VOLUME, "setupcache")):  # fmt: skip
            if volume not in have:
                self.run_label(label)
        # The network and registry-login secrets, when stored (pipglr.ops.netops).
        extra = [
            *labels.optional_secret_args(secrets),
            *resource_args(cpus, memory, pids, volumes, env),
        ]
        args = with_extra(privilege.fit(self.label_args("run"), outer), self.image, extra)
        result = self.outer.run(*args, check=False)
        if result.returncode != 0:
            # A failed start leaves a created container behind; it would block the next up.
            self.outer.run("rm", "--force", "--ignore", layout.CONTAINER_NAME, check=False)
            error = (result.stderr.strip().splitlines() or ["no output"])[-1]
            limited = bool(cpus or memory or pids)
            if limited and any(word in error for word in ("cgroup", ".max", "controller")):
                raise EngineError(
                    "podman could not apply --cpus/--memory/--pids: the cgroup controllers "
                    "are not delegated to this user (`pipglr doctor` shows which); start "
                    "without limits, or delegate them: `systemctl edit user@.service` "
                    "(as root) with [Service] Delegate=cpu cpuset io memory pids"
                )
            raise EngineError(f"starting pipglr failed: {error}")
        return result.stdout.strip()

    def down(self, timeout: int = layout.OUTER_STOP_TIMEOUT) -> bool:
        """Stop and remove the pipglr container; secrets and volumes stay.

        The stop lets the runner finish running jobs (its graceful stop) for up to
        ``timeout`` seconds, then podman kills what is left.
        """
        exists = self.outer.run("container", "exists", layout.CONTAINER_NAME, check=False)
        if exists.returncode != 0:
            return False
        self.outer.run(
            "stop", "--time", str(timeout), layout.CONTAINER_NAME, check=False,
            timeout=timeout + 60,
        )  # fmt: skip
        self.outer.run("rm", "--force", layout.CONTAINER_NAME)
        return True

    def status(self) -> dict[str, object]:
        """Container state, inner units, runner count, limits and nested storage use."""
        inspect = self.outer.run("container", "inspect", layout.CONTAINER_NAME, check=False)
        if inspect.returncode != 0:
            return {"container": "absent"}
        info = json.loads(inspect.stdout)[0]
        host = info.get("HostConfig", {})
        report: dict[str, object] = {
            "container": info["State"]["Status"],
            "started": info["State"].get("StartedAt", ""),
            "image": info.get("ImageName", ""),
            **privilege.status_fields(privilege.outer_privileged(info), None),
            "limits": {
                "cpus": (host.get("NanoCpus") or 0) / 1e9 or None,
                "memory": host.get("Memory") or None,
                "pids": host.get("PidsLimit") or None,
            },
        }
        if info["State"]["Status"] != "running":
            return report
        units = {}
        for unit in layout.ALL_UNITS:
            state = self.outer.exec(layout.CONTAINER_NAME, "systemctl", "is-active", unit,
                                    check=False)  # fmt: skip
            units[unit] = state.stdout.strip() or "unknown"
        report["units"] = units
        config = self.outer.exec(layout.CONTAINER_NAME, "cat", str(layout.CONFIG_PATH),
                                 check=False)  # fmt: skip
        try:
            report["runners"] = configedit.runner_count(config.stdout)
            report |= privilege.status_fields(privilege.outer_privileged(info), config.stdout)
        except PipglrError:
            report["runners"] = None
        usage = self.outer.exec(layout.CONTAINER_NAME, "du", "-sb", str(layout.STORAGE_MOUNT),
                                check=False)  # fmt: skip
        report["storage_bytes"] = int(usage.stdout.split()[0]) if usage.returncode == 0 else None
        from pipglr.ops import netops

        opened = self.outer.exec(layout.CONTAINER_NAME, "cat", str(layout.EGRESS_OPENED),
                                 check=False)  # fmt: skip
        report |= netops.status_fields(info, opened.stdout if opened.returncode == 0 else None)
        return report

    def storage_report(self, as_json: bool) -> str:
        """The evictor's view of the nested storage (``storage-report`` as user podman)."""
        done = self.outer.exec(
            layout.CONTAINER_NAME, str(layout.PYTHON), "-m", layout.GUEST_MODULE,
            "storage-report", *(["--json"] if as_json else []),
            user=layout.PODMAN.name, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise EngineError(
                f"no storage report from {layout.CONTAINER_NAME} ({last}): is it running? "
                "`pipglr status` shows its state"
            )
        return done.stdout.rstrip("\n")

    def logs_argv(self, follow: bool) -> list[str]:
        """The command showing pipglr's logs."""
        return [*self.outer.podman, "logs", *(["--follow"] if follow else []),
                layout.CONTAINER_NAME]  # fmt: skip
