"""The image's runlabels: the one source of their command lines.

``podman container runlabel NAME IMAGE`` reads the label ``NAME`` of the image,
replaces ``$IMAGE`` and splits the text on whitespace *without honouring quotes*
(podman 4.3 and 5.x), so every argument here must be free of whitespace and quotes;
:func:`label_text` enforces that. The build writes :func:`all_labels` into the image;
:func:`argv` gives the same command with a concrete image for running it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from pipglr import layout
from pipglr.errors import UsageError
from pipglr.settings import BuildSettings

IMAGE_PLACEHOLDER = "$IMAGE"


def _chown_volume(volume: str, mount: PurePosixPath) -> list[str]:
    """A throw-away container that creates ``volume`` if needed and hands its top
    directory to the podman user (not recursive: nested layers keep their owners)."""
    owner = f"{layout.PODMAN.uid}:{layout.PODMAN.gid}"
    return [
        "podman", "run", "--rm",
        "--entrypoint", "/usr/bin/chown",
        "--volume", f"{volume}:{mount}",
        IMAGE_PLACEHOLDER, owner, str(mount),
    ]  # fmt: skip


def register(settings: BuildSettings) -> list[str]:
    """Register a runner into ``./config.toml`` with the REGISTRATION_TOKEN secret.

    The working directory is mounted without SELinux relabelling (a recursive
    relabel of the caller's directory would be a surprise), hence ``label=disable``
    for this short-lived container only.
    """
    del settings  # the guest reads GITLAB_URL and NESTED_PRIVILEGED from image.json
    return [
        "podman", "run", "--rm",
        "--secret", layout.TOKEN_SECRET,
        "--security-opt", "label=disable",
        "--volume", f".:{layout.REGISTER_WORKDIR}",
        "--entrypoint", str(layout.PYTHON),
        IMAGE_PLACEHOLDER, "-m", layout.GUEST_MODULE, "register",
    ]  # fmt: skip


def setupstorage(settings: BuildSettings) -> list[str]:
    """Create the nested-storage volume, owned by the podman user."""
    del settings
    return _chown_volume(layout.STORAGE_VOLUME, layout.STORAGE_MOUNT)


def setupcache(settings: BuildSettings) -> list[str]:
    """Create the job-cache volume, owned by the podman user."""
    del settings
    return _chown_volume(layout.CACHE_VOLUME, layout.CACHE_MOUNT)


#: What the outer container needs for rootless nesting of unprivileged jobs, and
#: nothing more: /dev/fuse for fuse-overlayfs (storage fallback, image builds in
#: jobs), /dev/net/tun for pasta (nested networks), no SELinux confinement of the
#: nested mounts, /proc unmasked so nested containers may mount their own, and no
#: seccomp filter on the outer container: podman's default profile refuses
#: sethostname() without CAP_SYS_ADMIN, and every nested container sets the
#: hostname of its own UTS namespace. Jobs still run under the inner podman's
#: default seccomp profile. CAP_NET_ADMIN (over the container's own network
#: namespace only) lets the egress guard install its nftables rules
#: (pipglr/guest/netguard.py); jobs never hold it there.
NESTING_OPTIONS = (
    "--device", "/dev/fuse",
    "--device", "/dev/net/tun",
    "--cap-add", "NET_ADMIN",
    "--security-opt", "label=disable",
    "--security-opt", "unmask=/proc/*",
    "--security-opt", "seccomp=unconfined",
)  # fmt: skip
#: With NESTED_PRIVILEGED=true jobs may be privileged nested containers, which mount a
#: read-write sysfs; the kernel allows that only where the outer /sys is read-write,
#: i.e. in a --privileged outer container. Run rootless (as the runlabel is meant to
#: be), that is still confined to the host user's user namespace.
PRIVILEGED_NESTING_OPTIONS = (
    "--privileged",
    "--device", "/dev/fuse",
    "--device", "/dev/net/tun",
)  # fmt: skip


def run(settings: BuildSettings) -> list[str]:
    """Start the long-running ``pipglr`` container (systemd as PID 1).

    ``--tty`` gives systemd a console, so unit output reaches ``podman logs``.
    ``--stop-timeout`` lets ``podman stop`` wait for the runner's graceful stop
    (running jobs finish) instead of killing systemd after podman's 10 s default.
    ``--read-only``: nothing in the image is written at runtime; what must be
    writable is tmpfs (podman mounts /run, /tmp, /var/tmp and the journal for a
    systemd container; the podman user's config links into /run) or a volume.
    """
    secret = f"{layout.CONFIG_SECRET},uid={layout.RUNNER.uid},gid={layout.RUNNER.gid},mode=0400"
    nesting = PRIVILEGED_NESTING_OPTIONS if settings.nested_privileged else NESTING_OPTIONS
    return [
        "podman", "run", "--detach", "--tty",
        "--name", layout.CONTAINER_NAME,
        "--systemd", "always",
        "--read-only",
        # podman 4.3 binds its own /run/secrets read-only under --read-only, and the
        # secret's mount point cannot be created in it: a tmpfs there instead.
        "--tmpfs", f"{layout.SECRET_DIR}:rw,mode=0755",
        "--stop-timeout", str(layout.OUTER_STOP_TIMEOUT),
        "--secret", secret,
        *nesting,
        "--volume", f"{layout.STORAGE_VOLUME}:{layout.STORAGE_MOUNT}",
        "--volume", f"{layout.CACHE_VOLUME}:{layout.CACHE_MOUNT}",
        "--volume", f"{layout.RUNNER_VOLUME}:{layout.RUNNER_STATE_DIR}",
        IMAGE_PLACEHOLDER,
    ]  # fmt: skip


def dumpconfig(settings: BuildSettings) -> list[str]:
    """Print the configuration the runner uses: the config.toml secret with the tokens
    the runner rotated since (kept on the runner volume) carried over."""
    del settings
    runner = f"{layout.RUNNER.uid}:{layout.RUNNER.gid}"
    return [
        "podman", "run", "--rm",
        "--secret", f"{layout.CONFIG_SECRET},uid={layout.RUNNER.uid},gid={layout.RUNNER.gid}",
        "--volume", f"{layout.RUNNER_VOLUME}:{layout.RUNNER_STATE_DIR}:ro",
        "--user", runner,
        "--entrypoint", str(layout.PYTHON),
        IMAGE_PLACEHOLDER, "-m", layout.GUEST_MODULE, "dump-config",
    ]  # fmt: skip


#: ``--secret`` options of the optional secrets, in the order ``pipglr up`` adds them:
#: the network settings for root only (the boot unit reads them; a proxy URL may hold a
#: password), the registry logins for the runner only (gitlab-runner reads them as its
#: ``$HOME/.docker/config.json``, a link in the image; no job or podman user can).
OPTIONAL_SECRETS = {
    layout.NETWORK_SECRET: f"{layout.NETWORK_SECRET},mode=0400",
    layout.REGISTRY_AUTH_SECRET: (
        f"{layout.REGISTRY_AUTH_SECRET},uid={layout.RUNNER.uid},gid={layout.RUNNER.gid},mode=0400"
    ),
}


def optional_secret_args(existing: Iterable[str], prefix: str = "") -> list[str]:
    """``--secret`` options for the optional secrets among ``existing`` (secret names);
    ``prefix``: a second instance's secrets are ``PREFIX-NAME``, mounted as ``NAME``."""
    names = set(existing)
    args: list[str] = []
    for name, option in OPTIONAL_SECRETS.items():
        stored = f"{prefix}-{name}" if prefix else name
        if stored in names:
            mount = (
                option if not prefix else option.replace(f"{name},", f"{stored},target={name},", 1)
            )
            args += ["--secret", mount]
    return args


LABELS: dict[str, Callable[[BuildSettings], list[str]]] = {
    "register": register,
    "setupstorage": setupstorage,
    "setupcache": setupcache,
    "run": run,
    "dumpconfig": dumpconfig,
}


def label_text(args: list[str]) -> str:
    """Join a label's arguments as podman's runlabel will split them again."""
    for arg in args:
        if not arg or any(c.isspace() or c in "'\"\\" for c in arg):
            raise UsageError(f"runlabel argument {arg!r} would not survive podman's split")
    return " ".join(args)


def all_labels(settings: BuildSettings) -> dict[str, str]:
    """Every runlabel as image-label text, keyed by label name."""
    return {name: label_text(make(settings)) for name, make in LABELS.items()}


def argv(name: str, image: str, settings: BuildSettings | None = None) -> list[str]:
    """The command of label ``name`` for ``image``, ready for ``subprocess``."""
    if name not in LABELS:
        raise UsageError(f"unknown runlabel {name!r}: use one of {', '.join(LABELS)}")
    args = LABELS[name](settings or BuildSettings())
    return [image if a == IMAGE_PLACEHOLDER else a for a in args]


def second_instance(
    settings: BuildSettings,
    image: str,
    name: str,
    config_secret: str | None,
    allow_host_ids: bool = False,
) -> list[str]:
    """The ``run`` label's command for another instance beside ``pipglr``.

    Only the container name, the volume names (``NAME-pipglr-storage``...) and the
    config secret (mounted as config.toml; ``None``: none at all) differ, so an
    existing pipglr container is left alone; ``allow_host_ids`` adds root's consent
    to the host's ids (``PIPGLR_ALLOW_HOST_IDS``, what ``pipglr up
    --allow-host-ids`` passes). Used by the tests and the benchmarks.
    """
    args = argv("run", image, settings)
    if allow_host_ids:
        at = args.index(image)
        args[at:at] = ["--env", layout.HOST_IDS_CONSENT]
    args[args.index("--name") + 1] = name
    for volume in (layout.STORAGE_VOLUME, layout.CACHE_VOLUME, layout.RUNNER_VOLUME):
        args = [a.replace(f"{volume}:", f"{name}-{volume}:", 1) for a in args]
    at = args.index("--secret")
    if config_secret is None:
        del args[at : at + 2]
    else:
        args[at + 1] = args[at + 1].replace(
            f"{layout.CONFIG_SECRET},", f"{config_secret},target={layout.CONFIG_SECRET},", 1
        )
    return args


def argv_from_text(text: str, image: str) -> list[str]:
    """Split label text read from an image the way podman's runlabel does."""
    return [image if a == IMAGE_PLACEHOLDER else a for a in text.split()]
