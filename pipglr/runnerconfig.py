"""Check a GitLab Runner ``config.toml`` for what pipglr relies on.

Used in the image before the runner starts (``pipglr.guest check-config``) so a
missing or malformed secret produces one clear journal line instead of a runner
that loops or runs with no runners. Standard library only: this module runs in the
image.
"""

from __future__ import annotations

import posixpath
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from pipglr import layout
from pipglr.errors import ConfigError

#: How to replace the secret once the file is fixed; appended to config errors.
FIX_SECRET = (
    "fix it (`podman container runlabel dumpconfig IMAGE > config.toml` shows the "
    "current one), then `podman secret rm config.toml && podman secret create "
    "config.toml ./config.toml` and recreate the container with the run label"
)


#: Directories no job may mount, wholly or in part, and why: whoever holds the nested
#: API socket controls every job's containers; the config secret and the runner's
#: state hold its tokens.
PROTECTED_DIRS = (
    (layout.SOCKET_DIR, "the nested podman API socket"),
    (layout.SECRET_DIR, "the runner's config.toml secret"),
    (layout.RUNNER_STATE_DIR, "the runner's state and tokens"),
)


def parse(text: str) -> dict[str, Any]:
    """Parse config.toml text; raise :class:`ConfigError` naming the position."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"the config.toml secret is not valid TOML ({exc}): {FIX_SECRET}"
        ) from exc


def check(config: dict[str, Any], docker_host: str = layout.DOCKER_HOST) -> list[str]:
    """Check parsed config; return the runner names, raise :class:`ConfigError`."""
    runners = config.get("runners")
    if not isinstance(runners, list) or not runners:
        raise ConfigError(
            "the config.toml secret has no [[runners]] entry: register one with "
            "`podman container runlabel register IMAGE`, then " + FIX_SECRET
        )
    names = []
    for index, runner in enumerate(runners):
        if not isinstance(runner, dict):
            raise ConfigError(f"[[runners]] entry {index + 1} is not a table: {FIX_SECRET}")
        name = str(runner.get("name") or f"#{index + 1}")
        for key in ("url", "token", "executor"):
            if not isinstance(runner.get(key), str) or not runner[key]:
                raise ConfigError(f"runner {name} has no {key!r}: {FIX_SECRET}")
        if runner["executor"] == "docker":
            docker = runner.get("docker")
            host = docker.get("host") if isinstance(docker, dict) else None
            if host != docker_host:
                raise ConfigError(
                    f"runner {name}: [runners.docker] host is {host!r}, but jobs run on "
                    f"pipglr's podman socket {docker_host!r}: set host = "
                    f'"{docker_host}", then {FIX_SECRET}'
                )
            check_volumes(name, docker.get("volumes") if isinstance(docker, dict) else None)
        names.append(name)
    return names


def check_volumes(name: str, volumes: Any) -> None:
    """Refuse ``[runners.docker] volumes`` entries that would hand jobs a protected
    directory: itself, a directory above it, or anything inside it."""
    for spec in volumes if isinstance(volumes, list) else []:
        source = str(spec).split(":", 1)[0] if ":" in str(spec) else ""
        if not source.startswith("/"):
            continue  # a named volume, or a destination only (an anonymous volume)
        mounted = PurePosixPath(posixpath.normpath(source))
        for path, what in PROTECTED_DIRS:
            if path.is_relative_to(mounted) or mounted.is_relative_to(path):
                raise ConfigError(
                    f"runner {name}: [runners.docker] volumes entry {str(spec)!r} would "
                    f"give every job {what} ({path}): remove it, then {FIX_SECRET}"
                )


def check_file(path: Path) -> list[str]:
    """Read, parse and check the config file at ``path``; return runner names."""
    return check(parse(read_file(path)))


def read_file(path: Path) -> str:
    """The config secret's text; :class:`ConfigError` when missing or unreadable."""
    try:
        return path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no {path}: the config.toml secret is not mounted: create it with "
            "`podman secret create config.toml ./config.toml` and start the container "
            "with `podman container runlabel run IMAGE`"
        ) from exc
    except PermissionError as exc:
        raise ConfigError(
            f"{path} is not readable by this user: start the container with "
            "`podman container runlabel run IMAGE`, which mounts the secret for the "
            f"{layout.RUNNER.name} user only"
        ) from exc
