"""Which runners ask for privileged jobs, and whether this outer container can start them.

A privileged nested container mounts a read-write sysfs. The kernel allows that only
where the sysfs already mounted in the outer container is read-write and wholly
visible, i.e. in a ``--privileged`` outer container; elsewhere crun stops with
:data:`REFUSAL` and the job's script never runs (measured, ``test_variants.py``).
``prepare-runner`` prints :func:`boot_line` at every start of the runner (its journal
and ``systemctl status``), the host side (``pipglr up``, ``status``, ``doctor``:
:mod:`pipglr.ops.privilege`) reads the same :func:`privileged_runners`. Standard library
only: this module runs in the image.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: ``[runners.docker]`` keys that make a runner start privileged containers: its jobs'
#: (``privileged``) and its services' (``services_privileged``, which gitlab-runner
#: uses for services instead of ``privileged`` when set).
KEYS = ("privileged", "services_privileged")
#: What a privileged job holds that an unprivileged one does not.
COST = (
    "no seccomp filter, every capability of their user namespace (made of the host "
    "user's sub-ids, never the host's root), a read-write /sys, and the outer container "
    "started --privileged"
)
#: crun's words when a privileged job starts in an outer container that is not.
REFUSAL = "mount `sysfs` to `sys`: Operation not permitted"


@dataclass(frozen=True)
class PrivilegedRunner:
    """One ``[[runners]]`` entry asking for privileged containers."""

    index: int
    name: str
    keys: tuple[str, ...]

    def key(self, name: str) -> str:
        """The dotted key of ``[runners.docker] name`` for ``pipglr config``."""
        return f"runners.{self.index}.docker.{name}"

    def describe(self) -> str:
        """``runner 'x' (runners.0.docker.privileged = true)``."""
        settings = ", ".join(f"{self.key(k)} = true" for k in self.keys)
        return f"runner {self.name!r} ({settings})"


def privileged_runners(config: Mapping[str, Any]) -> list[PrivilegedRunner]:
    """The docker runners of parsed config.toml whose ``[runners.docker]`` asks for
    privilege. A runner of another executor never counts, whatever ``[runners.docker]``
    it keeps: gitlab-runner reads that table for the docker executors only, and
    pipglr's custom executor driver (the only other one the config check accepts)
    starts every job container unprivileged."""
    runners = config.get("runners")
    found = []
    for index, runner in enumerate(runners if isinstance(runners, list) else []):
        if not isinstance(runner, dict) or runner.get("executor", "docker") != "docker":
            continue
        docker = runner.get("docker")
        keys = tuple(k for k in KEYS if isinstance(docker, dict) and docker.get(k) is True)
        if keys:
            found.append(PrivilegedRunner(index, str(runner.get("name") or f"#{index + 1}"), keys))
    return found


def describe(runners: Sequence[PrivilegedRunner]) -> str:
    """The runners in one phrase: ``runner 'a' (...) and runner 'b' (...)``."""
    return " and ".join(r.describe() for r in runners)


def asking(runners: Sequence[PrivilegedRunner]) -> str:
    """``runner 'a' (...) asks for privileged jobs`` (``ask`` for several)."""
    return f"{describe(runners)} {'asks' if len(runners) == 1 else 'ask'} for privileged jobs"


def drop_command(runners: Sequence[PrivilegedRunner]) -> str:
    """The ``pipglr config set`` that drops the privilege of ``runners``."""
    return "pipglr config set " + " ".join(f"{r.key(k)}=false" for r in runners for k in r.keys)


def advice(runners: Sequence[PrivilegedRunner], outer_privileged: bool, how: str = "") -> str:
    """One line when the outer container does not fit the runners (empty when it does):
    privileged runners in an unprivileged container (their jobs fail), or a privileged
    container no runner needs. ``how``: how the outer mode was found, for the line."""
    if runners and not outer_privileged:
        return (
            f"{asking(runners)}, but this container is not privileged{how}: those jobs "
            f"fail at their first container ({REFUSAL}), the other runners work; fix: "
            "restart with `pipglr down && pipglr up` (it picks the privileged options), "
            "or run an image built with NESTED_PRIVILEGED=true, "
            f"or drop the privilege: `{drop_command(runners)}`"
        )
    if outer_privileged and not runners:
        return (
            f"this container is privileged{how}, but no runner asks for privileged jobs: "
            "`pipglr down && pipglr up` (or the run label of a NESTED_PRIVILEGED=false "
            "build) starts it with the nesting options only"
        )
    return ""


def sys_read_only(path: Path = Path("/sys")) -> bool:
    """Whether ``path`` is on a read-only mount.

    podman mounts /sys read-only in every container it does not start ``--privileged``
    (rootful or rootless), and that read-only flag is what the kernel holds against a
    nested read-write sysfs, so it is the test: the capability sets would mislead
    (``--cap-add SYS_ADMIN`` leaves /sys read-only; the runner user's are empty).
    """
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def boot_line(config: Mapping[str, Any], sys_path: Path = Path("/sys")) -> str:
    """:func:`advice` for this container (read from its /sys); empty when it fits or
    cannot be told (no /sys to look at: nothing is said rather than the runner kept)."""
    try:
        read_only = sys_read_only(sys_path)
    except OSError:
        return ""
    how = " (/sys is read-only)" if read_only else " (/sys is read-write)"
    return advice(privileged_runners(config), not read_only, how)
