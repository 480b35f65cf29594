"""``host-ids-guard``: refuse to run jobs on the host's own ids unless told to.

Started by root without a user namespace of its own, the outer container's uid map
is the identity (``0 0 4294967295``): the ids the image gives the podman user for
jobs (1-999 among them) are then the host's own system ids, and a job could act
as, say, group ``disk``. The same holds for a part of the map: root's ``--uidmap
0:0:65539`` maps every job id onto itself, and an identity *gid* map next to a uid
map of its own (``--gidmap 0:0:65539``) leaves jobs the host's groups. So the guard
reads both maps and refuses when any extent maps a container id a job can get (the
podman user's own id, a job's root, and its sub-id ranges in ``/etc/subuid`` and
``/etc/subgid``: :func:`job_ids`) onto the same host id. An identity extent that
holds no job id (say root alone, ``0 0 1``) passes: no job runs as it.

``pipglr up``/``quadlet``/``runlabel run`` already refuse the identity map on the
host (``--allow-host-ids``); this guard is the image's own refusal, so a plain
``podman container runlabel run`` by root is stopped too. It runs as root before
everything that can start a job (``pipglr-hostids.service``; the egress guard and the
podman setup require it) and, on refusal, exits with
:data:`~pipglr.layout.CONFIG_ERROR_STATUS`: the unit's ``FailureAction=exit`` then
stops the container with that status and the one-line cause in its log. Any map that
gives jobs ids of their own (rootless podman, or root with ``--userns``/``--uidmap``
onto other ids) passes. Standard library only: this module runs in the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipglr import layout, subids
from pipglr.errors import ConfigError
from pipglr.guest import netguard

#: The whole 32-bit id space mapped onto itself: no user namespace of its own.
IDENTITY = subids.Extent(0, 0, 2**32 - 1)
ALLOWED = ("true", "1", "yes")


def job_ids(subid_text: str) -> list[subids.IdRange]:
    """The outer container's ids a job can get, from ``/etc/subuid`` (or ``subgid``)
    text: the podman user's own id (a job's root) and the podman user's sub-ids."""
    ranges = subids.parse_subid_file(subid_text, layout.PODMAN.name)
    return sorted([subids.IdRange(layout.PODMAN.uid, 1), *ranges])


#: The job ids of the image as built (its /etc/subuid and /etc/subgid are this text).
IMAGE_JOB_IDS = job_ids(subids.image_subid_file())


def shared_ids(id_map: str, jobs: Sequence[subids.IdRange] = IMAGE_JOB_IDS) -> list[subids.IdRange]:
    """The ``jobs`` ids that ``id_map`` (``/proc/self/uid_map`` or ``gid_map`` text)
    maps onto the same host ids, merged into ranges, lowest first."""
    found: list[subids.IdRange] = []
    for extent in subids.parse_id_map(id_map):
        if extent.inside != extent.outside:
            continue  # an extent maps onto itself everywhere or nowhere
        for job in jobs:
            start, end = max(job.start, extent.inside), min(job.end, extent.end)
            if start < end:
                found.append(subids.IdRange(start, end - start))
    merged: list[subids.IdRange] = []
    for r in sorted(found):
        if merged and r.start <= merged[-1].end:
            last = merged.pop()
            r = subids.IdRange(last.start, max(last.end, r.end) - last.start)
        merged.append(r)
    return merged


def host_ids(id_map: str, jobs: Sequence[subids.IdRange] = IMAGE_JOB_IDS) -> bool:
    """Whether ``id_map`` gives any job id the host's same id."""
    return bool(shared_ids(id_map, jobs))


def _spans(ranges: Sequence[subids.IdRange]) -> str:
    return ", ".join(str(r.start) if r.count == 1 else f"{r.start}-{r.end - 1}" for r in ranges)


def _map_text(id_map: str) -> str:
    return "; ".join(f"{e.inside} {e.outside} {e.count}" for e in subids.parse_id_map(id_map))


def refusal(kind: str, id_map: str, shared: Sequence[subids.IdRange]) -> str:
    """The one-line refusal for a ``kind`` (uid or gid) map sharing ``shared``."""
    return (
        f"started by root with the host's own ids ({kind} map {_map_text(id_map)}): jobs' "
        f"{kind}s {_spans(shared)} would be the host's system ids and users (a job "
        f"could act as {'user bin' if kind == 'uid' else 'group disk'}); "
        "run pipglr as an unprivileged user (README: Host prerequisites), or accept it "
        f"with --env {layout.HOST_IDS_CONSENT} (what `pipglr up --allow-host-ids` passes)"
    )


#: What the guard says for root's plain identity map (the image as built).
REFUSAL = refusal("uid", "0 0 4294967295", shared_ids("0 0 4294967295"))


def check(
    uid_map: str,
    gid_map: str,
    environ: bytes,
    job_uids: Sequence[subids.IdRange] = IMAGE_JOB_IDS,
    job_gids: Sequence[subids.IdRange] = IMAGE_JOB_IDS,
) -> str:
    """Raise :class:`ConfigError` when either map gives jobs the host's own ids and the
    operator did not consent; else say why the ids are fine."""
    shared = [
        (kind, text, ids)
        for kind, text, jobs in (("uid", uid_map, job_uids), ("gid", gid_map, job_gids))
        if (ids := shared_ids(text, jobs))
    ]
    if not shared:
        return "host ids: the outer container has a user namespace of its own"
    env = netguard.container_environment(environ)
    if env.get(layout.ALLOW_HOST_IDS_ENV, "").strip().lower() not in ALLOWED:
        raise ConfigError(refusal(*shared[0]))
    kinds = " and ".join(f"{kind}s {_spans(ids)}" for kind, _, ids in shared)
    return (
        f"host ids: jobs' {kinds} are the host's own, accepted by "
        f"{layout.ALLOW_HOST_IDS_ENV} (run pipglr rootless to avoid that)"
    )


def guard(proc: Path = Path("/proc"), etc: Path = Path("/etc")) -> str:
    """:func:`check` on this container: its id maps, the podman user's sub-ids, and
    PID 1's environment (root's to read)."""
    return check(
        (proc / "self/uid_map").read_text(),
        (proc / "self/gid_map").read_text(),
        (proc / "1/environ").read_bytes(),
        job_ids((etc / "subuid").read_text()),
        job_ids((etc / "subgid").read_text()),
    )
