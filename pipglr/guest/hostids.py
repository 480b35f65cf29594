"""``host-ids-guard``: refuse to run jobs on the host's own ids unless told to.

Started by root without a user namespace of its own, the outer container's uid map
is the identity (``0 0 4294967295``): the ids the image gives the podman user for
jobs (1-999 among them) are then the host's own system ids, and a job could act
as, say, group ``disk``. ``pipglr up``/``quadlet``/``runlabel run`` already refuse
that on the host (``--allow-host-ids``); this guard is the image's own refusal, so a
plain ``podman container runlabel run`` by root is stopped too. It runs as root
before everything that can start a job (``pipglr-hostids.service``; the egress guard
and the podman setup require it) and, on refusal, exits with
:data:`~pipglr.layout.CONFIG_ERROR_STATUS`: the unit's ``FailureAction=exit`` then
stops the container with that status and the one-line cause in its log.
Any other map (rootless podman, or root with ``--userns``/``--uidmap``) passes.
Standard library only: this module runs in the image.
"""

from __future__ import annotations

from pathlib import Path

from pipglr import layout, subids
from pipglr.errors import ConfigError
from pipglr.guest import netguard

#: The whole 32-bit id space mapped onto itself: no user namespace of its own.
IDENTITY = subids.Extent(0, 0, 2**32 - 1)
ALLOWED = ("true", "1", "yes")

REFUSAL = (
    "started by root with the host's own ids (uid map 0 0 4294967295): jobs' ids 1-999 "
    "would be the host's system ids (a job could act as group disk); run pipglr as an "
    "unprivileged user (README: Host prerequisites), or accept it with --env "
    f"{layout.HOST_IDS_CONSENT} (what `pipglr up --allow-host-ids` passes)"
)


def host_ids(uid_map: str) -> bool:
    """Whether ``uid_map`` (``/proc/self/uid_map``'s text) is the identity map."""
    return subids.parse_id_map(uid_map) == [IDENTITY]


def check(uid_map: str, environ: bytes) -> str:
    """Raise :class:`ConfigError` for host ids without the operator's consent; else
    say why the ids are fine."""
    if not host_ids(uid_map):
        return "host ids: the outer container has a user namespace of its own"
    env = netguard.container_environment(environ)
    if env.get(layout.ALLOW_HOST_IDS_ENV, "").strip().lower() not in ALLOWED:
        raise ConfigError(REFUSAL)
    return (
        f"host ids: jobs' ids 1-999 are the host's own, accepted by "
        f"{layout.ALLOW_HOST_IDS_ENV} (run pipglr rootless to avoid that)"
    )


def guard(
    uid_map: Path = Path("/proc/self/uid_map"), environ: Path = Path("/proc/1/environ")
) -> str:
    """:func:`check` on this container (root: PID 1's environment is root's to read)."""
    return check(uid_map.read_text(), environ.read_bytes())
