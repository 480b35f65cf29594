"""The ``[runners.custom]`` section that runs pipglr's custom executor driver.

One source for three readers: ``pipglr executor toml`` prints it (:func:`render`), the
image's ``register`` label passes it to ``gitlab-runner register`` as flags
(:func:`register_flags`), and the config check accepts a custom runner only when its
section is this one (:func:`driver_problem`). The keys and flag names are
gitlab-runner's (common/config.go ``CustomConfig``: the ``toml:`` names, and the
``long:`` names under the ``custom`` namespace of ``RunnerSettings.Custom``, which
``commands/register.go`` ``askExecutorOptions`` keeps for ``--executor custom``).

Each stage runs ``python3 -m pipglr.guest executor STAGE`` as the runner's user; the
prepare stage takes ``--default-image IMG``, the image of jobs that name none. Standard
library only at import (this module runs in the image); :func:`render` uses tomlkit
(Debian's python3-tomlkit there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipglr import layout
from pipglr.errors import UsageError

#: The custom executor's stages with a program (executors/custom/custom.go: ``config``
#: before the job, ``prepare``, ``run`` per stage script, ``cleanup`` always).
STAGES = ("config", "prepare", "run", "cleanup")
#: The driver's argv after the interpreter; the stage name follows.
DRIVER_ARGS = ("-m", layout.GUEST_MODULE, "executor")
#: The prepare stage's option naming the image of jobs without ``image:``.
DEFAULT_IMAGE_OPTION = "--default-image"
#: Seconds gitlab-runner waits after SIGTERM to a stage's program before SIGKILL
#: (``graceful_kill_timeout``; upstream's default is helpers/process/killer.go
#: ``GracefulTimeout``, 10 minutes, as executors/custom/config.go
#: ``GetGracefulKillTimeout`` falls back to it). The driver ends a stage promptly on
#: SIGTERM (it stops the stage's process in the job container, podman's own stop
#: timeout being 10 s), so half a minute is plenty; a cancelled job then does not hold
#: its concurrency slot for ten minutes when something hangs.
GRACEFUL_KILL_TIMEOUT = 30
#: Seconds gitlab-runner waits after SIGKILL before it gives the program up
#: (``force_kill_timeout``): upstream's default, helpers/process/killer.go
#: ``KillTimeout`` (10 s), written out so the section says what applies.
FORCE_KILL_TIMEOUT = 10
#: The timeout keys an operator may change (common/config.go ``CustomConfig``, each a
#: ``*int`` of seconds).
TIMEOUT_KEYS = (
    "config_exec_timeout",
    "prepare_exec_timeout",
    "cleanup_exec_timeout",
    "graceful_kill_timeout",
    "force_kill_timeout",
)

# An image reference as podman and docker parse it (the grammar of
# github.com/distribution/reference, regexp.go: [domain/]path[:tag][@digest]).
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")
#: distribution/reference ``NameTotalLengthMax``.
NAME_MAX = 255


def image_problem(image: str) -> str | None:
    """Why ``image`` is not an image reference (None when it is one)."""
    match = _REFERENCE.fullmatch(image)
    if match is None:
        return (
            f"{image!r} is not an image reference: use e.g. "
            "docker.io/library/debian:trixie-slim (lowercase name, optional registry, "
            "tag and digest, no spaces)"
        )
    if len(match["name"]) > NAME_MAX:
        return f"{image!r} is not an image reference: its name is longer than {NAME_MAX}"
    return None


def check_image(image: str) -> str:
    """``image`` when it is an image reference; :class:`UsageError` in one line else."""
    if problem := image_problem(image):
        raise UsageError(f"--default-image {problem}")
    return image


def stage_args(stage: str, default_image: str | None = None) -> list[str]:
    """The ``<stage>_args`` of the driver (``--default-image`` for prepare only)."""
    args = [*DRIVER_ARGS, stage]
    if stage == "prepare" and default_image is not None:
        args += [DEFAULT_IMAGE_OPTION, check_image(default_image)]
    return args


def section(default_image: str | None = None) -> dict[str, Any]:
    """The ``[runners.custom]`` keys, in common/config.go ``CustomConfig``'s order."""
    keys: dict[str, Any] = {}
    for stage in STAGES:
        keys[f"{stage}_exec"] = str(layout.PYTHON)
        keys[f"{stage}_args"] = stage_args(stage, default_image)
    keys["graceful_kill_timeout"] = GRACEFUL_KILL_TIMEOUT
    keys["force_kill_timeout"] = FORCE_KILL_TIMEOUT
    return keys


def render(default_image: str | None = None) -> str:
    """:func:`section` as the TOML of a ``[[runners]]`` entry's ``[runners.custom]``
    table, indented as gitlab-runner writes it."""
    import tomlkit

    table = tomlkit.table()
    for key, value in section(default_image).items():
        table.add(key, tomlkit.item(value).indent(4))
    # The header's own indent, set last: Table.indent and Table.add would also prefix it
    # to every key.
    table.trivia.indent = "  "
    runners = tomlkit.table(is_super_table=True)
    runners.add("custom", table)
    document = tomlkit.document()
    document.add("runners", runners)
    return tomlkit.dumps(document)


def register_flags(default_image: str | None = None) -> list[str]:
    """:func:`section` as ``gitlab-runner register`` flags (``--custom-<long name>``
    of common/config.go ``CustomConfig``). ``--flag=value`` throughout: the argument
    values start with ``-``, and the ``[]string`` options take one element per flag
    (repeated flags append, as ``--docker-volumes`` does)."""
    flags = []
    for key, value in section(default_image).items():
        name = "--custom-" + key.replace("_", "-")
        for item in value if isinstance(value, list) else [value]:
            flags.append(f"{name}={item}")
    return flags


def default_image_of(custom: Mapping[str, Any]) -> str | None:
    """The ``--default-image`` of a section's ``prepare_args`` (None without one)."""
    args = custom.get("prepare_args")
    if not isinstance(args, list):
        return None
    tail = args[len(DRIVER_ARGS) + 1 :]
    if len(tail) == 2 and tail[0] == DEFAULT_IMAGE_OPTION and isinstance(tail[1], str):
        return tail[1]
    return None


def driver_problem(custom: Any) -> str | None:
    """What keeps ``custom`` (a runner's ``[runners.custom]`` table) from running
    pipglr's driver, in a phrase; None when every stage is :func:`section`'s.
    The timeouts (:data:`TIMEOUT_KEYS`) are the operator's, but must be whole seconds
    (gitlab-runner reads them as ``*int`` and would not load the file otherwise)."""
    if not isinstance(custom, dict):
        return "it has no [runners.custom] section"
    image = default_image_of(custom)
    if image is not None and (problem := image_problem(image)):
        return f"its prepare_args {DEFAULT_IMAGE_OPTION} {problem}"
    expected = section(image)
    for stage in STAGES:
        for key in (f"{stage}_exec", f"{stage}_args"):
            if custom.get(key) != expected[key]:
                return f"[runners.custom] {key} = {custom.get(key)!r} is not pipglr's driver"
    for key in TIMEOUT_KEYS:
        value = custom.get(key)
        if key in custom and (isinstance(value, bool) or not isinstance(value, int)):
            return f"[runners.custom] {key} = {value!r} is not a whole number of seconds"
    return None
