"""In-image entry points: ``python3 -m pipglr.guest COMMAND``.

Run by the systemd units and the ``register`` runlabel inside the image:

``setup-podman``
    (user podman, before the API service) checks that the baked subuid/subgid
    ranges fit the outer container's id maps, that the storage volume is writable,
    and writes the podman user's ``storage.conf``/``containers.conf``: native
    rootless overlay when the kernel allows it on the volume, fuse-overlayfs
    otherwise; cgroups only where cgroup v2 is mounted.
``check-config PATH [COMMAND...]``
    (user runner) validates the config.toml secret, then execs COMMAND (the
    runner) when one is given.
``register [ARGS...]``
    (register label) runs ``gitlab-runner register`` into ./config.toml.
``ping``
    (any user allowed on the socket) asks the API service ``GET /_ping``; exit 0
    when it answers OK — a readiness/health probe.

Errors print one ``pipglr: ...`` line and exit non-zero (78 for config errors).
Standard library only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipglr import layout, runnerconfig, subids
from pipglr.errors import ConfigError, IdLayoutError, PipglrError, UsageError
from pipglr.settings import DEFAULT_JOB_IMAGE, IMAGE_FACTS_PATH, load_image_facts


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
    ]
    if choice.mount_program:
        lines += ["", "[storage.options.overlay]", f'mount_program = "{choice.mount_program}"']
    return "\n".join(lines) + "\n"


def containers_conf(cgroups: bool) -> str:
    """The podman user's ``containers.conf``: no systemd user session in here."""
    lines = ["# written by pipglr.guest setup-podman at boot", "[containers]"]
    if not cgroups:
        lines.append('cgroups = "disabled"')
    lines += ["", "[engine]", 'cgroup_manager = "cgroupfs"', 'events_logger = "file"']
    return "\n".join(lines) + "\n"


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
    cgroups = cgroup2_mounted()
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "storage.conf").write_text(storage_conf(choice))
    (config_dir / "containers.conf").write_text(containers_conf(cgroups))
    program = f" via {choice.mount_program}" if choice.mount_program else ""
    return (
        f"nested storage: {choice.driver}{program} ({choice.reason}); "
        f"nested cgroups: {'enabled (cgroup v2)' if cgroups else 'disabled (no cgroup v2)'}"
    )


def register_command(
    workdir: Path,
    token: str,
    facts_text: str,
    extra: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """The ``gitlab-runner register`` argv and environment for the register label.

    ``glrt-`` authentication tokens go in ``CI_SERVER_TOKEN`` (``--token``), legacy
    registration tokens in ``REGISTRATION_TOKEN``; neither appears in the argv.
    """
    facts = load_image_facts(facts_text)
    config = workdir / layout.CONFIG_SECRET
    args = [
        str(layout.RUNNER_BINARY), "register", "--non-interactive",
        "--config", str(config),
        "--url", facts.gitlab_url,
        "--executor", "docker",
        "--docker-image", DEFAULT_JOB_IMAGE,
        "--docker-host", layout.DOCKER_HOST,
        "--docker-volumes", f"{layout.CACHE_MOUNT}:{layout.CACHE_MOUNT}",
        "--env", "FF_NETWORK_PER_BUILD=true",
    ]  # fmt: skip
    if facts.nested_privileged:
        args.append("--docker-privileged")
    args += list(extra)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root"}
    env["CI_SERVER_TOKEN" if token.startswith("glrt-") else "REGISTRATION_TOKEN"] = token
    return args, env


def register(extra: Sequence[str]) -> None:
    """Exec ``gitlab-runner register`` for the register label."""
    workdir = Path(str(layout.REGISTER_WORKDIR))
    if not (workdir / layout.CONFIG_SECRET).is_file():
        raise UsageError(
            "./config.toml not found: run `touch ./config.toml` in this directory, "
            "then repeat `podman container runlabel register IMAGE`"
        )
    try:
        token = Path(str(layout.TOKEN_PATH)).read_text().strip()
    except FileNotFoundError as exc:
        raise UsageError(
            f"no {layout.TOKEN_SECRET} secret: `echo TOKEN | podman secret create "
            f"{layout.TOKEN_SECRET} -`, then repeat the register label"
        ) from exc
    if not token:
        raise UsageError(
            f"the {layout.TOKEN_SECRET} secret is empty: `podman secret rm {layout.TOKEN_SECRET}"
            f" && echo TOKEN | podman secret create {layout.TOKEN_SECRET} -`"
        )
    args, env = register_command(workdir, token, Path(IMAGE_FACTS_PATH).read_text(), extra)
    sys.stdout.flush()
    os.execve(args[0], args, env)


def ping(socket_path: Path = Path(str(layout.SOCKET_PATH)), timeout: float = 10) -> None:
    """Raise :class:`PipglrError` unless the API socket answers ``GET /_ping``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: pipglr\r\n\r\n")
            reply = sock.recv(4096)
    except OSError as exc:
        raise PipglrError(f"podman API socket {socket_path}: {exc.strerror or exc}") from exc
    status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in status:
        raise PipglrError(f"podman API socket {socket_path} answered {status!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a guest command; print errors as one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    command, rest = (args[0], args[1:]) if args else ("", [])
    try:
        if command == "setup-podman":
            print(f"pipglr: {setup_podman()}", flush=True)
        elif command == "check-config":
            path = Path(rest[0]) if rest else Path(str(layout.CONFIG_PATH))
            names = runnerconfig.check_file(path)
            print(f"pipglr: config.toml has runners: {', '.join(names)}", flush=True)
            if rest[1:]:
                os.execv(rest[1], rest[1:])
        elif command == "register":
            register(rest)
        elif command == "ping":
            ping()
        else:
            raise UsageError(
                f"unknown command {command!r}: use setup-podman, check-config, register or ping"
            )
    except ConfigError as exc:
        print(f"pipglr: {exc}", file=sys.stderr, flush=True)
        return layout.CONFIG_ERROR_STATUS
    except PipglrError as exc:
        print(f"pipglr: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
