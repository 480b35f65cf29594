"""Quadlet units so systemd starts pipglr at boot and restarts it on failure.

The ``.container`` unit is derived from the image's ``run`` label (plus the same
extra options ``pipglr up`` takes), so the label stays the one source of the
container's options. Named volumes become ``.volume`` units keeping their names.
Needs podman 4.4 or newer on the host (quadlet); ``VolumeName=`` needs 4.6.

With ``auto_update`` the unit also takes the weekly image without a hand on it:
``AutoUpdate=registry`` lets ``podman auto-update`` (its timer) pull a newer image and
restart the unit. Stopping lets running jobs finish (the runner's graceful stop);
``Notify=healthy`` makes the restart succeed only once the container's health check
(:data:`HEALTH_CMD`: the runner running, the nested API answering) passes, so an image
that does not come up fails the restart and ``podman auto-update`` rolls back to the
previous one. ``Notify=healthy`` needs podman 5.0 or newer.

Values from the user (``--env``, ``--volume``, ...) are written per systemd.syntax(7):
every ``%`` is doubled (systemd would expand ``%h`` and the other specifiers), keys that
systemd splits into words (``Environment=``, ``PodmanArgs=``) are double-quoted with
backslash escapes, and a control character (a newline would start a new directive) is
refused, as are names that would not make a file name of their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipglr import layout
from pipglr.errors import UsageError

#: The health check the auto-updating unit waits for: pipglr has come up when its
#: runner has been running for a few seconds and the nested API answers
#: (:func:`pipglr.guest.health.health`). ``systemctl is-active`` of the units was not
#: enough: it passes when any one of them is active, and a runner that cannot start
#: is briefly "active" between its restarts.
HEALTH_CMD = f"{layout.PYTHON} -m {layout.GUEST_MODULE} health"
#: Oldest podman whose quadlet knows ``Notify=healthy``.
AUTO_UPDATE_PODMAN = (5, 0)

#: Options quadlet handles itself: detached is its job, the name is a key.
_DROPPED = {"--detach", "-d"}
_WITH_VALUE = {"--name", "--volume", "-v", "--secret", "--device", "--systemd",
               "--security-opt", "--env", "-e", "--cpus", "--memory", "--pids-limit",
               "--stop-timeout", "--cap-add", "--tmpfs", "--publish", "-p"}  # fmt: skip
#: What no unit line may carry: a newline (or carriage return, form feed...) ends the
#: line early and the rest becomes a directive of its own.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What a word of a split key needs quotes for (whitespace separates words).
_NEEDS_QUOTES = re.compile(r"[\s\"'\\]")
#: podman's names of containers and volumes; they also name the unit files.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _checked(what: str, value: str) -> str:
    """``value`` unless it would break the unit's line: refused with ``what`` named."""
    bad = _CONTROL.search(value)
    if bad:
        raise UsageError(
            f"{what} contains the control character {bad.group()!r}, which would break "
            "the quadlet unit (a newline starts a directive of its own): pass it without one"
        )
    return value


def verbatim(what: str, value: str) -> str:
    """``value`` for a key systemd takes as one string (``Volume=``, ``Secret=``...):
    ``%`` doubled so no specifier expands; a trailing backslash (which would continue
    the line) refused."""
    if _checked(what, value).endswith("\\"):
        raise UsageError(
            f"{what} ends in a backslash, which would join the next line of the quadlet "
            "unit: pass it without"
        )
    return value.replace("%", "%%")


def word(what: str, value: str, always: bool = False) -> str:
    r"""``value`` as one word of a key systemd splits into words (``Environment=``,
    ``PodmanArgs=``): double-quoted with ``\\`` and ``\"`` escapes when it holds
    whitespace, quotes or backslashes (or ``always``), ``%`` doubled."""
    _checked(what, value)
    if not always and not _NEEDS_QUOTES.search(value):
        return value.replace("%", "%%")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def _name(what: str, value: str) -> str:
    """A container or volume name, which also names a unit file."""
    if not _NAME.fullmatch(value):
        raise UsageError(
            f"{what} {value!r} is not a podman name (letters, digits, _ . -, starting "
            "with a letter or digit): pick one of those"
        )
    return value


@dataclass(frozen=True)
class QuadletFiles:
    """Rendered quadlet files, keyed by file name."""

    files: dict[str, str]

    def write(self, directory: Path) -> list[Path]:
        """Write the files into ``directory``; return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in self.files.items():
            path = directory / name
            path.write_text(text)
            written.append(path)
        return written


def default_directory() -> Path:
    """The user's quadlet directory (``~/.config/containers/systemd``)."""
    return Path.home() / ".config/containers/systemd"


def check_auto_update(image: str, podman_version: tuple[int, ...]) -> None:
    """Refuse ``--auto-update`` where it cannot work, with the way out."""
    domain = image.split("/", 1)[0] if "/" in image else ""
    # "localhost/..." names podman's local images; "localhost:5000/..." is a registry.
    if not ("." in domain or ":" in domain) or domain == "localhost":
        raise UsageError(
            f"--auto-update needs the image as published in a registry, not {image!r}: "
            "pass --image REGISTRY/NAME:TAG (e.g. registry.example.com/ci/pipglr:latest)"
        )
    if podman_version < AUTO_UPDATE_PODMAN:
        have = ".".join(map(str, podman_version)) or "no answering podman"
        raise UsageError(
            f"--auto-update needs podman {'.'.join(map(str, AUTO_UPDATE_PODMAN))} or newer "
            f"(quadlet's Notify=healthy), this host has {have}: upgrade podman or leave "
            "--auto-update out"
        )


def auto_update_keys() -> list[str]:
    """The ``[Container]`` keys of an auto-updating unit."""
    return [
        "AutoUpdate=registry",
        "Notify=healthy",
        f"HealthCmd={HEALTH_CMD}",
        # Checked every 10 s (also what a start waits at most once pipglr is up);
        # failures in the first minute (boot) do not count as unhealthy.
        "HealthInterval=10s",
        "HealthStartPeriod=60s",
        "HealthRetries=3",
    ]


def from_run_args(
    args: Sequence[str], image: str, auto_update: bool = False, note: str = ""
) -> QuadletFiles:
    """Quadlet files for the ``run`` label's arguments (those after ``podman``);
    ``auto_update``: see the module documentation; ``note``: a comment line saying how
    the options were chosen (:mod:`pipglr.ops.privilege`)."""
    if list(args[:1]) != ["run"] or image not in args:
        raise UsageError("the run label does not look like `podman run ... IMAGE`")
    options = list(args[1 : list(args).index(image)])
    keys: list[str] = []
    podman_args: list[str] = []
    volumes: list[str] = []
    name = layout.CONTAINER_NAME
    i = 0
    while i < len(options):
        option = options[i]
        flag, eq, inline = option.partition("=")
        value = inline if eq else (options[i + 1] if flag in _WITH_VALUE else "")
        i += 1 if eq or flag not in _WITH_VALUE else 2
        if flag in _DROPPED:
            continue
        what = f"{flag} {value.partition('=')[0]!r}" if flag in ("--env", "-e") else flag
        if flag == "--name":
            name = _name("--name", value)
        elif flag in ("--volume", "-v"):
            source, _, rest = value.partition(":")
            if not source.startswith(("/", ".")):
                volumes.append(_name("--volume", source))
                keys.append(f"Volume={source}.volume:{verbatim(what, rest)}")
            else:
                keys.append(f"Volume={verbatim(what, value)}")
        elif flag == "--secret":
            keys.append(f"Secret={verbatim(what, value)}")
        elif flag == "--device":
            keys.append(f"AddDevice={verbatim(what, value)}")
        elif flag == "--cap-add":
            keys.append(f"AddCapability={verbatim(what, value)}")
        elif flag == "--tmpfs":
            keys.append(f"Tmpfs={verbatim(what, value)}")
        elif flag in ("--publish", "-p"):
            keys.append(f"PublishPort={verbatim(what, value)}")
        elif flag == "--read-only":
            keys.append("ReadOnly=true")
        elif flag in ("--env", "-e"):
            keys.append(f"Environment={word(what, value, always=True)}")
        else:
            podman_args.append(word(flag, f"{flag}={value}" if value else flag))
    lines = [
        "# generated by pipglr quadlet from the image's run label",
        *([f"# {' '.join(note.split())}"] if note else []),
        "[Unit]",
        "Description=pipglr: rootless podman-in-podman GitLab Runner",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Container]",
        f"Image={verbatim('--image', image)}",
        f"ContainerName={name}",
        *keys,
        *(auto_update_keys() if auto_update else []),
        *(f"PodmanArgs={arg}" for arg in podman_args),
        "",
        "[Service]",
        "Restart=always",
        "TimeoutStartSec=300",
        # A start that times out (an image that never becomes healthy) is killed at
        # once: the default SIGTERM goes to conmon, which ignores it, and systemd would
        # then wait TimeoutStopSec (an hour) before podman auto-update can roll back.
        "TimeoutStartFailureMode=kill",
        # podman stop waits --stop-timeout for the runner's graceful stop (jobs finish).
        f"TimeoutStopSec={layout.OUTER_STOP_TIMEOUT + 30}",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    files = {f"{name}.container": "\n".join(lines)}
    for volume in volumes:
        files[f"{volume}.volume"] = (
            f"# generated by pipglr quadlet\n[Volume]\nVolumeName={volume}\n"
        )
    return QuadletFiles(files)
