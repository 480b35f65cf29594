"""``setup-podman``: prepare the nested podman before its API service starts.

Runs as user podman at every boot (``pipglr-podman-setup.service``): checks that the
baked subuid/subgid ranges fit the outer container's id maps and that the storage
volume is writable, takes the storage reserve (:mod:`pipglr.guest.storagereserve`),
then writes the podman user's ``storage.conf`` (native rootless
overlay when the kernel allows it on the volume, fuse-overlayfs otherwise; a
transient store: see :mod:`pipglr.guest.carryover`) and
``containers.conf`` (cgroups only where cgroup v2 is mounted; nested subnets that
do not collide with the outer container's, see :mod:`pipglr.guest.netplan`), and
links in what the network unit derived from the company-network settings
(:func:`link_network_files`: the mirrors' ``registries.conf.d`` drop-in, the private
CAs' ``certs.d/HOST/ca.crt``). Standard library only: this module runs in the image.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipglr import layout, subids
from pipglr.errors import IdLayoutError, PipglrError
from pipglr.guest import netconfig, netplan, storagereserve

#: ``log_size_max`` of every nested container (bytes). The docker executor asks for
#: the ``json-file`` log driver (gitlab-runner common/config.go ``GetLogConfig``),
#: which podman runs as ``k8s-file``: conmon writes the container's output to
#: ``ctr.log`` in the container's directory on the storage volume, and without a
#: limit a job printing without end fills the volume every job pulls to. With it,
#: conmon truncates and reopens the file at the limit (containers.conf(5); the runner
#: reads a job's output from the attach stream, not from this file, so the job's log
#: in GitLab is not shortened). Not a limit of a job's trace (the runner's
#: ``output_limit``).
LOG_SIZE_MAX = 64 * 2**20

#: The mirrors' drop-in in the podman user's ``registries.conf.d``: a drop-in keeps the
#: system ``registries.conf`` (search registries, short names) in force.
MIRRORS_DROPIN = "registries.conf.d/pipglr-mirrors.conf"


@dataclass(frozen=True)
class StorageChoice:
    """The nested storage configuration picked at runtime."""

    driver: str
    mount_program: str | None
    reason: str


def check_id_maps(
    subuid: Path = Path("/etc/subuid"),
    subgid: Path = Path("/etc/subgid"),
    uid_map: Path = Path("/proc/self/uid_map"),
    gid_map: Path = Path("/proc/self/gid_map"),
    user: str = layout.PODMAN.name,
) -> None:
    """Raise :class:`IdLayoutError` when the baked ranges do not fit the id maps."""
    for kind, subfile, idmap in (("uid", subuid, uid_map), ("gid", subgid, gid_map)):
        ranges = subids.parse_subid_file(subfile.read_text(), user)
        extents = subids.read_id_map(idmap)
        bad = subids.misfits(ranges, extents)
        if bad or sum(r.count for r in ranges) < layout.NESTED_IDS:
            # compute_ranges raises the explanatory error when too few ids exist.
            needed = subids.compute_ranges(extents)
            raise IdLayoutError(
                f"{subfile} gives {user} {kind}s {', '.join(f'{r.start}+{r.count}' for r in bad)}"
                f" outside the outer container's {kind} map; this container maps "
                f"{sum(e.count for e in extents)} ids, which would need "
                f"{', '.join(f'{r.start}+{r.count}' for r in needed)}: give the host "
                f"user one subuid and subgid range of {layout.HOST_SUBIDS_REQUIRED} ids"
            )


def _native_overlay_works(workdir: Path) -> bool:
    """Try a native overlay mount in a user namespace on ``workdir``'s filesystem."""
    with tempfile.TemporaryDirectory(prefix=".pipglr-probe-", dir=workdir) as tmp:
        for sub in ("lower", "upper", "work", "merged"):
            (Path(tmp) / sub).mkdir()
        options = f"lowerdir={tmp}/lower,upperdir={tmp}/upper,workdir={tmp}/work"
        probe = [
            "unshare", "--user", "--map-root-user", "--mount",
            "mount", "-t", "overlay", "overlay", "-o", options, f"{tmp}/merged",
        ]  # fmt: skip
        result = subprocess.run(probe, capture_output=True, text=True, check=False)
        return result.returncode == 0


def _fuse_usable(device: Path = Path("/dev/fuse")) -> bool:
    try:
        with device.open("rb"):
            return True
    except OSError:
        return False


def choose_storage(storage_dir: Path) -> StorageChoice:
    """Pick native overlay, fuse-overlayfs or (last resort) vfs for ``storage_dir``."""
    if _native_overlay_works(storage_dir):
        return StorageChoice("overlay", None, "native rootless overlay works on the volume")
    fuse = Path("/usr/bin/fuse-overlayfs")
    if fuse.exists() and _fuse_usable():
        return StorageChoice("overlay", str(fuse), "native overlay refused; /dev/fuse usable")
    return StorageChoice(
        "vfs",
        None,
        "neither native overlay nor /dev/fuse work: nested storage is slow and large; "
        "start the container with `--device /dev/fuse` (the run label does)",
    )


def cgroup2_mounted(mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """Whether ``/sys/fs/cgroup`` is a cgroup v2 mount."""
    for line in mountinfo.read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        if len(fields) > 4 and fields[4] == "/sys/fs/cgroup":
            return post.split()[0] == "cgroup2"
    return False


def storage_conf(choice: StorageChoice) -> str:
    """The podman user's ``storage.conf``."""
    lines = [
        "# written by pipglr.guest setup-podman at boot",
        "[storage]",
        f'driver = "{choice.driver}"',
        "# container records on the run root's tmpfs: a full volume cannot stop podman",
        "# from recording a job's exit code (pipglr/guest/carryover.py)",
        "transient_store = true",
    ]
    if choice.mount_program:
        lines += ["", "[storage.options.overlay]", f'mount_program = "{choice.mount_program}"']
    return "\n".join(lines) + "\n"


def containers_conf(
    cgroups: bool, subnets: netplan.SubnetPlan, log_size_max: int = LOG_SIZE_MAX
) -> str:
    """The podman user's ``containers.conf``: no systemd user session in here, nested
    subnets apart from the outer container's, and container logs bounded
    (:data:`LOG_SIZE_MAX`)."""
    if log_size_max < 8192:
        raise ValueError(f"log_size_max {log_size_max} is below conmon's 8192-byte buffer")
    lines = ["# written by pipglr.guest setup-podman at boot", "[containers]"]
    if not cgroups:
        lines.append('cgroups = "disabled"')
    lines += [
        "# a job's output file (k8s-file, on the storage volume) is truncated at this size",
        f"log_size_max = {log_size_max}",
    ]
    lines += ["", "[engine]", 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', ""]
    return "\n".join(lines) + "\n" + subnets.containers_conf()


def _link(link: Path, target: Path) -> None:
    """Make ``link`` a symbolic link to ``target`` (replacing what is there)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def link_network_files(config_dir: Path, run_dir: Path = Path(str(layout.NET_RUN_DIR))) -> str:
    """Link the network unit's files of ``run_dir`` into the podman user's
    ``config_dir``; return what was linked (for the summary). ``certs.d`` and its
    host directories stay real directories the podman user owns (more certificates may
    be added at run time); only ``ca.crt`` in them is a link."""
    dropin = run_dir / layout.REGISTRIES_DROPIN.relative_to(layout.NET_RUN_DIR)
    link = config_dir / MIRRORS_DROPIN
    if dropin.is_file():
        _link(link, dropin)
    elif link.is_symlink():
        link.unlink()
    source = run_dir / netconfig.CERTS_D_DIR.relative_to(layout.NET_RUN_DIR)
    hosts = sorted(p.name for p in source.iterdir() if p.is_dir()) if source.is_dir() else []
    for host in hosts:
        _link(config_dir / "certs.d" / host / netconfig.CERTS_D_FILE,
              source / host / netconfig.CERTS_D_FILE)  # fmt: skip
    parts = (["mirrors drop-in"] if dropin.is_file() else []) + [
        f"certs.d for {', '.join(hosts)}" if hosts else ""
    ]
    return ", ".join(p for p in parts if p) or "none"


def setup_podman(
    storage_dir: Path = Path(str(layout.STORAGE_MOUNT)),
    config_dir: Path = Path(str(layout.PODMAN_CONFIG_DIR)),
) -> str:
    """Check ids and storage, write the podman user's configuration; return a summary."""
    check_id_maps()
    if not storage_dir.is_dir() or not os.access(storage_dir, os.W_OK | os.X_OK):
        raise PipglrError(
            f"nested storage {storage_dir} is not writable by {layout.PODMAN.name}: run "
            "`podman container runlabel setupstorage IMAGE`, then restart the container"
        )
    choice = choose_storage(storage_dir)
    # Before any job can fill the volume (storagereserve: what a full one needs).
    reserve = "kept" if storagereserve.take_reserve(storage_dir) else "not taken (too little room)"
    cgroups = cgroup2_mounted()
    subnets = netplan.plan_for_this_container()
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "storage.conf").write_text(storage_conf(choice))
    (config_dir / "containers.conf").write_text(containers_conf(cgroups, subnets))
    network = link_network_files(config_dir)
    program = f" via {choice.mount_program}" if choice.mount_program else ""
    return (
        f"nested storage: {choice.driver}{program} ({choice.reason}); "
        f"nested cgroups: {'enabled (cgroup v2)' if cgroups else 'disabled (no cgroup v2)'}; "
        f"nested networks: default {subnets.default}, per-build from {subnets.pool}; "
        f"storage reserve {reserve}; network settings linked: {network}"
    )
