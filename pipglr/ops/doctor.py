"""Host preflight: can this user run pipglr here, and if not, what fixes it.

Every check is a pure function over text or paths passed in (defaults are the real
system locations), returning :class:`Finding` rows; :func:`gather` collects the real
inputs and runs them all. ``pipglr doctor`` prints the rows and exits non-zero when
one of them blocks running.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipglr import layout, subids

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_PODMAN = (4, 3)
#: Kernel from which unprivileged (rootless) overlay mounts work.
NATIVE_OVERLAY_KERNEL = (5, 13)


@dataclass(frozen=True)
class Finding:
    """One row of the doctor's report."""

    check: str
    status: str
    detail: str
    fix: str = ""

    @property
    def blocks(self) -> bool:
        """Whether this finding prevents running pipglr."""
        return self.status == FAIL


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check_podman(version: str | None) -> Finding:
    """podman present, and at least 4.3 (the oldest release the runlabels support)."""
    if not version:
        return Finding("podman", FAIL, "podman not found", "apt-get install podman (as root)")
    if _version(version)[:2] < MIN_PODMAN:
        return Finding(
            "podman", FAIL, f"podman {version} is older than 4.3", "upgrade podman to 4.3 or newer"
        )
    return Finding("podman", OK, f"podman {version}")


def _ranges(text: str) -> dict[str, list[subids.IdRange]]:
    owners: dict[str, list[subids.IdRange]] = {}
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            owners.setdefault(fields[0], []).append(subids.IdRange(int(fields[1]), int(fields[2])))
    return owners


def check_subids(user: str, uid: int, kind: str, text: str) -> Finding:
    """One contiguous sub{kind} range of 65539+ ids, overlapping nobody else's."""
    name = f"sub{kind}"
    need = layout.HOST_SUBIDS_REQUIRED
    start = 524288
    fix = (
        f"usermod --add-sub{kind}s {start}-{start + need - 1} {user} (as root; remove the "
        f"user's other /etc/sub{kind} lines first), then `podman system migrate`"
    )
    if uid == 0:
        return Finding(
            name,
            WARN,
            "root runs pipglr rootful with the host's own ids: a job's uids/gids 1-999 are "
            "the host's system users and groups (e.g. group disk)",
            "run pipglr as an unprivileged user with one range of "
            f"{need} subordinate ids (README: Host prerequisites)",
        )
    owners = _ranges(text)
    mine = [r for key, ranges in owners.items() if key in (user, str(uid)) for r in ranges]
    if not mine:
        return Finding(name, FAIL, f"{user} has no /etc/{name} range", fix)
    others = [
        (key, r) for key, ranges in owners.items() if key not in (user, str(uid)) for r in ranges
    ]
    for mine_range in mine:
        for other, theirs in others:
            if mine_range.start < theirs.end and theirs.start < mine_range.end:
                return Finding(
                    name,
                    FAIL,
                    f"{user}'s range {mine_range.start}+{mine_range.count} overlaps {other}'s "
                    f"{theirs.start}+{theirs.count}",
                    fix,
                )
    best = max(mine, key=lambda r: r.count)
    total = sum(r.count for r in mine)
    if best.count >= need:
        return Finding(name, OK, f"{best.count} ids from {best.start} (one range)")
    if total >= need:
        return Finding(
            name,
            FAIL,
            f"{total} ids, but split into {len(mine)} ranges (largest {best.count}): nested "
            "id ranges cannot straddle two host ranges, so nesting fails",
            fix,
        )
    return Finding(name, FAIL, f"{total} ids; pipglr needs one range of {need}", fix)


def check_linger(user: str, linger_dir: Path = Path("/var/lib/systemd/linger")) -> Finding:
    """Lingering keeps the user's podman (and pipglr) running after logout."""
    if user == "root":
        return Finding("linger", OK, "root needs no lingering")
    if (linger_dir / user).exists():
        return Finding("linger", OK, f"enabled for {user}")
    return Finding(
        "linger",
        WARN,
        f"not enabled for {user}: pipglr stops when {user} logs out",
        f"loginctl enable-linger {user} (as root)",
    )


def check_device(path: Path, purpose: str, module: str, uid: int | None = None) -> Finding:
    """A character device that must exist and be readable and writable by the user.

    ``uid`` None means the calling user (``os.access``); for another user the mode
    bits decide (owner, or read-write for others).
    """
    name = str(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return Finding(name, FAIL, f"missing ({purpose})", f"modprobe {module} (as root)")
    if not stat.S_ISCHR(mode):
        return Finding(name, FAIL, "not a character device", f"modprobe {module} (as root)")
    if uid is None or uid == os.geteuid():
        usable = os.access(path, os.R_OK | os.W_OK)
    else:
        info = path.stat()
        usable = (
            uid == 0 or (mode & 0o006) == 0o006 or (info.st_uid == uid and mode & 0o600 == 0o600)
        )
    if not usable:
        return Finding(
            name,
            FAIL,
            f"not usable by this user (mode {stat.S_IMODE(mode):04o}; {purpose})",
            f"chmod 0666 {path} (as root; the usual mode on common distributions)",
        )
    return Finding(name, OK, f"usable ({purpose})")


def check_cgroups(cgroup2: bool, delegated: Iterable[str], user: str) -> Finding:
    """cgroup v2 with cpu and memory delegated: only then are --cpus/--memory enforced."""
    if not cgroup2:
        return Finding(
            "cgroups",
            WARN,
            "no cgroup v2: cpu/memory limits on pipglr will not be enforced",
            "boot with systemd.unified_cgroup_hierarchy=1",
        )
    have = set(delegated)
    missing = sorted({"cpu", "memory", "pids"} - have)
    if missing:
        return Finding(
            "cgroups",
            WARN,
            f"cgroup v2, but {', '.join(missing)} not delegated to {user}: those limits "
            "will not be enforced",
            "add Delegate=cpu cpuset io memory pids to user@.service (systemctl edit "
            "user@.service, as root)",
        )
    return Finding("cgroups", OK, f"cgroup v2; delegated: {' '.join(sorted(have))}")


#: Where the kernel says whether unprivileged users may create user namespaces.
USERNS_SYSCTLS = {
    "user.max_user_namespaces": Path("/proc/sys/user/max_user_namespaces"),
    "kernel.unprivileged_userns_clone": Path("/proc/sys/kernel/unprivileged_userns_clone"),
    "kernel.apparmor_restrict_unprivileged_userns": Path(
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
    ),
}


def check_userns(values: dict[str, str | None]) -> Finding:
    """Unprivileged user namespaces: rootless podman needs them on the host, and every
    nested job needs them again inside. ``values``: sysctl name → value (None: absent)."""
    if (values.get("user.max_user_namespaces") or "").strip() == "0":
        return Finding(
            "user namespaces", FAIL, "user.max_user_namespaces=0: no user namespaces at all",
            "sysctl -w user.max_user_namespaces=28633 and persist it in /etc/sysctl.d/ (as root)",
        )  # fmt: skip
    if (values.get("kernel.unprivileged_userns_clone") or "").strip() == "0":
        return Finding(
            "user namespaces", FAIL,
            "kernel.unprivileged_userns_clone=0: unprivileged users cannot create them",
            "sysctl -w kernel.unprivileged_userns_clone=1 and persist it in /etc/sysctl.d/ "
            "(as root)",
        )  # fmt: skip
    if (values.get("kernel.apparmor_restrict_unprivileged_userns") or "").strip() == "1":
        return Finding(
            "user namespaces", WARN,
            "kernel.apparmor_restrict_unprivileged_userns=1 (Ubuntu 23.10+): only programs "
            "with an AppArmor profile allowing `userns` may create them; rootless podman "
            "and nested jobs fail without one",
            "give podman's programs such a profile (Ubuntu's podman package does), or "
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 persisted in "
            "/etc/sysctl.d/ (as root)",
        )  # fmt: skip
    return Finding("user namespaces", OK, "unprivileged user namespaces allowed")


def _sysctls(paths: dict[str, Path]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name, path in paths.items():
        try:
            found[name] = path.read_text()
        except OSError:
            found[name] = None
    return found


def check_overlay(kernel: str) -> Finding:
    """Native rootless overlay (fast nested storage) needs kernel 5.13+."""
    if _version(kernel)[:2] >= NATIVE_OVERLAY_KERNEL:
        return Finding("overlay", OK, f"kernel {kernel}: native rootless overlay")
    return Finding(
        "overlay",
        WARN,
        f"kernel {kernel}: nested storage falls back to fuse-overlayfs (slower)",
        "a kernel of 5.13 or newer",
    )


def check_disk(path: Path, free_bytes: int) -> Finding:
    """Free space where podman keeps volumes (nested images live there)."""
    gib = free_bytes / 2**30
    detail = f"{gib:.1f} GiB free at {path}"
    if gib < 2:
        return Finding("disk", FAIL, detail, "free space, or remove pipglr-storage (rebuildable)")
    if gib < 10:
        return Finding("disk", WARN, detail + " (job images need room)", "free more space")
    return Finding("disk", OK, detail)


def check_pipglr_objects(secrets: Sequence[str], volumes: Sequence[str]) -> list[Finding]:
    """The secrets and volumes the runlabels expect (absence is fine before setup)."""
    findings = []
    if layout.CONFIG_SECRET in secrets:
        findings.append(Finding("secret config.toml", OK, "present"))
    else:
        findings.append(
            Finding(
                "secret config.toml",
                WARN,
                "missing: the runner will not start",
                "pipglr register < TOKEN_FILE (or the register label, then "
                "podman secret create config.toml ./config.toml)",
            )
        )
    for volume, label in (
        (layout.STORAGE_VOLUME, "setupstorage"),
        (layout.CACHE_VOLUME, "setupcache"),
    ):
        if volume in volumes:
            findings.append(Finding(f"volume {volume}", OK, "present"))
        else:
            findings.append(
                Finding(
                    f"volume {volume}",
                    WARN,
                    "missing",
                    f"pipglr up creates it (or podman container runlabel {label} IMAGE)",
                )
            )
    return findings


def _run(args: Sequence[str]) -> str | None:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def podman_version(podman: Sequence[str]) -> tuple[int, ...]:
    """The client version of ``podman`` as numbers (empty when it does not answer)."""
    return _version(_run([*podman, "version", "--format", "{{.Client.Version}}"]) or "")


def _delegated(uid: int, root: Path = Path("/sys/fs/cgroup")) -> list[str]:
    path = root / f"user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
    try:
        return path.read_text().split()
    except OSError:
        return []


def gather(user: str | None = None, podman: Sequence[str] = ("podman",)) -> list[Finding]:
    """Run every check against this host for ``user`` (default: the current user)."""
    entry = pwd.getpwnam(user) if user else pwd.getpwuid(os.geteuid())
    findings = [check_podman(_run([*podman, "version", "--format", "{{.Client.Version}}"]))]
    for kind in ("uid", "gid"):
        path = Path(f"/etc/sub{kind}")
        text = path.read_text() if path.exists() else ""
        findings.append(check_subids(entry.pw_name, entry.pw_uid, kind, text))
    findings.append(check_linger(entry.pw_name))
    findings.append(check_userns(_sysctls(USERNS_SYSCTLS)))
    for device, purpose, module in (
        ("/dev/fuse", "fuse-overlayfs, builds in jobs", "fuse"),
        ("/dev/net/tun", "pasta/slirp4netns networking", "tun"),
    ):
        findings.append(check_device(Path(device), purpose, module, entry.pw_uid))
    cgroup2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    findings.append(check_cgroups(cgroup2, _delegated(entry.pw_uid), entry.pw_name))
    findings.append(check_overlay(platform.release()))
    volume_path = _run([*podman, "info", "--format", "{{.Store.VolumePath}}"])
    store = volume_path or entry.pw_dir
    probe = Path(store)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    findings.append(check_disk(Path(store), shutil.disk_usage(probe).free))
    # Imported here: diskdoctor builds its row from this module's Finding.
    from pipglr.ops import diskdoctor

    graph_root = _run([*podman, "info", "--format", "{{.Store.GraphRoot}}"])
    default_root = Path(entry.pw_dir) / ".local/share/containers/storage"
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        mounts = ""
    # Symbolic links resolved (as far as the paths exist): mounts name real paths.
    root = Path(graph_root or default_root).resolve()
    volume_dir = Path(volume_path or root / "volumes").resolve()
    findings.append(diskdoctor.check_disk_bounds(str(volume_dir), str(root), mounts))
    secrets = (_run([*podman, "secret", "ls", "--format", "{{.Name}}"]) or "").split()
    volumes = (_run([*podman, "volume", "ls", "--format", "{{.Name}}"]) or "").split()
    findings += check_pipglr_objects(secrets, volumes)
    return findings


SYMBOLS = {OK: "✓", WARN: "!", FAIL: "✗"}


COLOURS = {OK: "\033[32m", WARN: "\033[33m", FAIL: "\033[31m"}


def render(findings: Sequence[Finding], colour: bool = False) -> str:
    """Human-readable rows: symbol, check, detail, and the fix on its own line."""
    width = max(len(f.check) for f in findings)
    lines = []
    for f in findings:
        symbol = SYMBOLS[f.status]
        if colour:
            symbol = f"{COLOURS[f.status]}{symbol}\033[0m"
        lines.append(f"{symbol} {f.check:<{width}}  {f.detail}")
        if f.fix and f.status != OK:
            lines.append(f"  {'':<{width}}  fix: {f.fix}")
    return "\n".join(lines) + "\n"


def as_dicts(findings: Sequence[Finding]) -> list[dict[str, object]]:
    """JSON-ready findings (with ``blocks``)."""
    return [dataclasses.asdict(f) | {"blocks": f.blocks} for f in findings]
