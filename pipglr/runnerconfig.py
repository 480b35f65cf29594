"""Check a GitLab Runner ``config.toml`` for what pipglr relies on.

Used in the image before the runner starts (``pipglr.guest check-config``,
``prepare-runner``) so a missing or malformed secret produces one clear journal line
instead of a runner that loops or runs with no runners, and on the host by ``pipglr
config set/edit/register`` before a new secret is stored. Besides what the runner
needs, it refuses what would take jobs out of their confinement, each in one line
naming the key, the value and the fix: an executor other than docker or
pipglr's custom executor driver (a ``[runners.custom]`` other than
:func:`pipglr.customsection.section`: :func:`check_custom`);
``[runners.docker] volumes`` whose host path, resolved as the image walks it
(:func:`image_path`), exposes a protected path (:data:`PROTECTED_DIRS`) or the whole
cache volume; a ``cache_dir`` in or above a protected path; ``ipcmode`` or
``network_mode`` ``host``; devices; capabilities that lift the seccomp profile
(:data:`REFUSED_CAPS`); security options that switch confinement off
(:func:`unconfining`). ``privileged`` stays the documented opt-in. gitlab-runner has
no ``pid_mode`` key (common/config.go ``DockerConfig``): a TOML key it does not know
is ignored, so there is none to refuse. Standard library only: this module runs in
the image.
"""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from pipglr import customsection, layout
from pipglr.errors import ConfigError

#: How to replace the secret once the file is fixed; appended to config errors.
FIX_SECRET = (
    "fix it (`podman container runlabel dumpconfig IMAGE > config.toml` shows the "
    "current one), then `podman secret rm config.toml && podman secret create "
    "config.toml ./config.toml` and recreate the container with the run label"
)


#: Paths no job may mount, wholly or in part, and why: whoever holds the nested API
#: socket controls every job's containers; the config secret and the runner's state
#: hold its tokens; the nested storage and the podman user's runtime directory hold
#: every job's images, containers and the podman user's own API socket; /proc, /sys
#: and /dev are the outer container's kernel interfaces. A ``volumes`` entry is
#: refused when its host path is one of these, lies inside one, or lies above one.
PROTECTED_DIRS = (
    (layout.SOCKET_DIR, "the nested podman API socket"),
    (layout.SECRET_DIR, "the runner's config.toml secret and the other secrets"),
    (layout.RUNNER_STATE_DIR, "the runner's state and tokens"),
    (layout.STORAGE_MOUNT, "the nested storage (every job's images and containers)"),
    (layout.PODMAN_RUNTIME_DIR, "the podman user's runtime directory (its API socket)"),
    (PurePosixPath("/proc"), "the outer container's /proc"),
    (PurePosixPath("/sys"), "the outer container's /sys"),
    (PurePosixPath("/dev"), "the outer container's devices"),
)
#: The cache volume: a ``volumes`` entry of it as a whole (or of a directory above it)
#: hands every job every project's cache; a subdirectory is the operator's choice
#: (say a shared read-only tool cache), as the executor's own per-project binds of
#: ``<cache_dir>/<project>`` are.
CACHE_WHOLE = (layout.CACHE_MOUNT, "every project's cache (the whole cache volume)")

#: The image's symbolic links on the way to a protected path (Debian's /var/run and
#: /var/lock, pipglr's own links): a host path is resolved through them, component by
#: component as the kernel does, before it is compared.
IMAGE_LINKS: dict[PurePosixPath, PurePosixPath] = {
    PurePosixPath("/var/run"): PurePosixPath("/run"),
    PurePosixPath("/var/lock"): PurePosixPath("/run/lock"),
    **{link: target for _, link, target in layout.IMAGE_SYMLINKS},
}
#: How many links one path may pass (the kernel's limit).
MAX_LINKS = 40

#: ``cap_add`` entries refused: each lifts the nested podman's seccomp profile's limits
#: (SYS_ADMIN: mount, unshare, ...; BPF, PERFMON: bpf, perf_event_open), reaches past
#: the job's own namespaces (SYS_MODULE, SYS_RAWIO, SYS_BOOT, SYS_TIME, SYSLOG,
#: MAC_ADMIN, MAC_OVERRIDE) or opens files by handle around the mount tree
#: (DAC_READ_SEARCH: open_by_handle_at). Capabilities that act inside the job's own
#: user and network namespace (NET_ADMIN, NET_RAW, SYS_PTRACE, SYS_NICE, IPC_LOCK, ...)
#: stay an operator's choice.
REFUSED_CAPS = frozenset({
    "ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_BOOT", "SYS_TIME", "SYSLOG",
    "BPF", "PERFMON", "MAC_ADMIN", "MAC_OVERRIDE", "DAC_READ_SEARCH",
})  # fmt: skip


def image_path(text: str) -> PurePosixPath:
    """``text`` (an absolute path) as the image resolves it: ``.``, ``..``, repeated and
    trailing slashes and the :data:`IMAGE_LINKS` taken component by component, as the
    kernel walks a path (``/var/run/../x`` is ``/x``, not ``/var/x``)."""
    parts = [part for part in text.split("/") if part not in ("", ".")]
    resolved, hops = PurePosixPath("/"), 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            resolved = resolved.parent
            continue
        target = IMAGE_LINKS.get(resolved / part)
        if target is None:
            resolved = resolved / part
            continue
        hops += 1
        if hops > MAX_LINKS:  # the table has no loop; a guard all the same
            raise ConfigError(f"{text!r} passes more than {MAX_LINKS} links: {FIX_SECRET}")
        parts[:0] = [p for p in target.parts[1:] if p not in ("", ".")]
        resolved = PurePosixPath("/")
    return resolved


def exposed(path: PurePosixPath, cache_whole: bool = True) -> tuple[PurePosixPath, str] | None:
    """The protected path (and what it holds) a mount of ``path`` (resolved) would hand a
    job, or None. ``cache_whole``: the cache volume itself and what lies above it count."""
    for protected, what in PROTECTED_DIRS:
        if protected.is_relative_to(path) or path.is_relative_to(protected):
            return protected, what
    cache, what = CACHE_WHOLE
    if cache_whole and cache.is_relative_to(path):
        return cache, what
    return None


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
        if runner["executor"] == "custom":
            check_custom(name, runner.get("custom"))
            names.append(name)
            continue
        if runner["executor"] != "docker":
            raise ConfigError(
                f"runner {name}: executor = {runner['executor']!r}: pipglr runs jobs only as "
                "nested containers of the docker executor or of its own custom executor "
                "driver (jobs of a shell executor would run as user runner next to the "
                "token, which the egress guard exempts): set "
                f'executor = "docker" with [runners.docker] host = "{docker_host}" '
                '(or executor = "custom" with the section `pipglr executor toml` prints), '
                f"then {FIX_SECRET}"
            )
        docker = runner.get("docker")
        docker = docker if isinstance(docker, dict) else {}
        host = docker.get("host")
        if host != docker_host:
            raise ConfigError(
                f"runner {name}: [runners.docker] host is {host!r}, but jobs run on "
                f"pipglr's podman socket {docker_host!r}: set host = "
                f'"{docker_host}", then {FIX_SECRET}'
            )
        check_volumes(name, docker.get("volumes"))
        check_cache_dir(name, docker.get("cache_dir"))
        check_job_settings(name, docker)
        names.append(name)
    return names


def check_custom(name: str, custom: Any) -> None:
    """Refuse an ``executor = "custom"`` runner whose ``[runners.custom]`` does not run
    pipglr's driver (:func:`pipglr.customsection.driver_problem`): nesting, no
    privilege and the egress guard hold for the driver's job containers only; any other
    program would run jobs as user runner beside the token."""
    if problem := customsection.driver_problem(custom):
        raise ConfigError(
            f'runner {name}: executor = "custom", but {problem}: pipglr\'s guarantees '
            "(nested, unprivileged, behind the egress guard) hold only for its own driver: "
            "replace the section with the one `pipglr executor toml` prints, "
            f"then {FIX_SECRET}"
        )


def _as_resolved(text: str, resolved: PurePosixPath) -> str:
    """`` (/run/x as the image resolves it)`` where the text spells it otherwise."""
    return "" if text == str(resolved) else f"; the image resolves it to {resolved}"


def check_volumes(name: str, volumes: Any) -> None:
    """Refuse ``[runners.docker] volumes`` entries whose host path, as the image
    resolves it (:func:`image_path`), would hand jobs a protected path
    (:data:`PROTECTED_DIRS`: itself, a directory above it, or anything inside it) or the
    whole cache volume (:data:`CACHE_WHOLE`)."""
    for spec in volumes if isinstance(volumes, list) else []:
        source = str(spec).split(":", 1)[0] if ":" in str(spec) else ""
        if not source.startswith("/"):
            continue  # a named volume, or a destination only (an anonymous volume)
        mounted = image_path(source)
        if found := exposed(mounted):
            path, what = found
            raise ConfigError(
                f"runner {name}: [runners.docker] volumes entry {str(spec)!r} would give "
                f"every job {what} ({path}{_as_resolved(source, mounted)}): remove it, "
                f"then {FIX_SECRET}"
            )


def check_cache_dir(name: str, cache_dir: Any) -> None:
    """Refuse a ``[runners.docker] cache_dir`` in or above a protected path: the
    executor binds ``<cache_dir>/<project path>`` into the project's jobs, so a project
    named after a protected path (say ``run/secrets`` under ``cache_dir = "/"``) would
    get it. The cache volume itself is what cache_dir is for."""
    if not isinstance(cache_dir, str) or not cache_dir.startswith("/"):
        return
    resolved = image_path(cache_dir)
    if found := exposed(resolved, cache_whole=False):
        path, what = found
        raise ConfigError(
            f"runner {name}: [runners.docker] cache_dir = {cache_dir!r} would bind "
            f"{what} ({path}{_as_resolved(cache_dir, resolved)}) into the jobs of a "
            f'project of that path: set cache_dir = "{layout.CACHE_MOUNT}", then '
            f"{FIX_SECRET}"
        )


def _cap(entry: Any) -> str:
    """A ``cap_add`` entry as a capability name (``CAP_`` prefix and case dropped)."""
    return str(entry).strip().upper().removeprefix("CAP_")


def unconfining(option: str) -> bool:
    """Whether a ``security_opt`` entry takes a job out of its confinement: seccomp,
    AppArmor or SELinux switched off or to another type, /proc and /sys paths
    unmasked. ``no-new-privileges``, a seccomp profile file or a label level stay."""
    key, _, value = option.strip().replace(":", "=", 1).partition("=")
    key, value = key.strip().lower(), value.strip().lower()
    if key in ("seccomp", "apparmor", "systempaths"):
        return value == "unconfined"
    if key == "label":
        return value == "disable" or value.startswith(("type:", "type="))
    return key == "unmask"


def check_job_settings(name: str, docker: dict[str, Any]) -> None:
    """Refuse ``[runners.docker]`` keys that take jobs out of their confinement:
    the outer container's IPC or network namespace, devices, capabilities that lift
    the seccomp profile (:data:`REFUSED_CAPS`), security options that switch it off
    (:func:`unconfining`). ``privileged`` is not refused: it is the documented opt-in
    (README: Privileged runners)."""

    def refuse(key: str, value: Any, why: str, fix: str) -> None:
        raise ConfigError(
            f"runner {name}: [runners.docker] {key} = {value!r} {why}: {fix}, then {FIX_SECRET}"
        )

    for key, why in (
        ("ipcmode", "would share the outer container's IPC namespace (the runner's and "
                    "the podman services' shared memory) with every job"),
        ("network_mode", "would put every job in the outer container's network "
                         "namespace, beside the runner, off its per-build network"),
    ):  # fmt: skip
        if str(docker.get(key, "")).strip().lower() == "host":
            refuse(key, docker[key], why, f"remove {key}")
    for key in ("devices", "services_devices", "device_cgroup_rules"):
        if docker.get(key):
            refuse(key, docker[key], "would hand jobs devices of the outer container "
                   "(jobs need none, image builds included)", f"remove {key}")  # fmt: skip
    caps = docker.get("cap_add")
    refused = [c for c in caps if _cap(c) in REFUSED_CAPS] if isinstance(caps, list) else []
    if refused:
        refuse("cap_add", caps, f"gives jobs {', '.join(map(str, refused))}, which lifts "
               "their seccomp limits or reaches past their own namespaces",
               f"remove {', '.join(map(str, refused))}")  # fmt: skip
    for key in ("security_opt", "services_security_opt"):
        options = docker.get(key)
        bad = [o for o in options if unconfining(str(o))] if isinstance(options, list) else []
        if bad:
            refuse(key, options, f"switches confinement off ({', '.join(map(str, bad))})",
                   f"remove {', '.join(map(str, bad))}")  # fmt: skip


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
