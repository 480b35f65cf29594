"""``systemd-run`` for the podman user, who has no systemd user manager in pipglr.

netavark starts aardvark-dns (the DNS server of user-defined networks — the per-build
networks of the docker executor, where services answer by alias) through
``systemd-run -q --scope --user COMMAND`` whenever systemd is PID 1. In pipglr the
podman user has no user manager and no session bus, so that fails with "Failed to
connect to user scope bus via local transport" and no container on such a network
starts. The API service finds this module first on its PATH (as ``systemd-run``,
see :data:`pipglr.layout.SHIM_DIR`): with a user bus it hands over to the real
``systemd-run``; without one it runs COMMAND directly, as netavark itself does on
hosts without systemd. Standard library only: this module runs in the image.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REAL_SYSTEMD_RUN = "/usr/bin/systemd-run"
#: systemd-run options without a value that only concern the scope unit.
FLAGS = frozenset(
    {"-q", "--quiet", "--scope", "--user", "--collect", "-G", "--no-block", "--no-ask-password"}
)
#: Options that take a value (``--opt VALUE`` or ``--opt=VALUE``).
VALUED = frozenset(
    {"-p", "--property", "-u", "--unit", "--description", "--slice", "-E", "--setenv"}
)


class ShimError(Exception):
    """An option this stand-in does not understand."""


def command_of(argv: Sequence[str]) -> list[str]:
    """The command after systemd-run's options."""
    args = list(argv)
    while args:
        head = args[0]
        if head == "--":
            return args[1:]
        if head in FLAGS:
            args.pop(0)
        elif head in VALUED:
            del args[:2]
        elif head.startswith("--") and head.split("=", 1)[0] in VALUED:
            args.pop(0)
        elif head.startswith("-"):
            raise ShimError(f"unsupported systemd-run option {head!r}")
        else:
            return args
    raise ShimError("no command given")


def user_bus_available(env: Mapping[str, str]) -> bool:
    """Whether a session bus exists that ``systemd-run --user`` could use."""
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return True
    runtime = env.get("XDG_RUNTIME_DIR", "")
    return bool(runtime) and (Path(runtime) / "bus").exists()


def main(argv: Sequence[str] | None = None) -> int:
    """Exec the real systemd-run when it can work, else the command itself."""
    args = list(sys.argv[1:] if argv is None else argv)
    if user_bus_available(os.environ):
        os.execv(REAL_SYSTEMD_RUN, [REAL_SYSTEMD_RUN, *args])
    try:
        command = command_of(args)
    except ShimError as exc:
        print(f"pipglr systemd-run: {exc}", file=sys.stderr)
        return 2
    os.execvp(command[0], command)
