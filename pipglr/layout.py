"""Fixed facts about the pipglr image: users, ids, paths, names.

Every other module (host or guest side) takes these values from here, so a path or
a name is written exactly once. Standard library only: this module runs in the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class User:
    """An account created in the image."""

    name: str
    uid: int
    gid: int
    home: PurePosixPath


#: Runs ``gitlab-runner run``; owns the config.toml secret inside the container.
RUNNER = User("runner", 1000, 1000, PurePosixPath("/home/runner"))
#: Runs the rootless podman API service; its nested containers are the CI jobs.
PODMAN = User("podman", 1001, 1001, PurePosixPath("/home/podman"))

#: Ids a nested container gets (root of the job maps to PODMAN.uid, these are the rest).
NESTED_IDS = 65536
#: Size of the single subuid/subgid range a host user needs: the nested ids plus the
#: three accounts inside the outer container (root, runner, podman) that must stay out.
HOST_SUBIDS_REQUIRED = NESTED_IDS + 3

#: The Docker-compatible API socket of the inner podman service.
SOCKET_DIR = PurePosixPath("/run/pipglr")
SOCKET_PATH = SOCKET_DIR / "podman.sock"
DOCKER_HOST = f"unix://{SOCKET_PATH}"
#: XDG_RUNTIME_DIR shared by every process that acts as the podman user.
PODMAN_RUNTIME_DIR = PurePosixPath(f"/run/user/{PODMAN.uid}")

#: Directory put first on the API service's PATH: holds pipglr's ``systemd-run`` for
#: the podman user (see :mod:`pipglr.guest.systemdrun`).
SHIM_DIR = PurePosixPath("/usr/lib/pipglr/bin")
SHIM_PATH = f"{SHIM_DIR}:/usr/local/bin:/usr/bin:/bin"
#: How long stopping the runner may take: gitlab-runner stops gracefully on SIGQUIT
#: (finishes running jobs, takes no new ones); GitLab's default job timeout is 1 h.
GRACEFUL_STOP_SECONDS = 3600
#: ``podman stop`` timeout of the outer container: the runner's graceful stop plus
#: time for systemd to stop the rest.
OUTER_STOP_TIMEOUT = GRACEFUL_STOP_SECONDS + 60

#: Podman secrets and volumes the runlabels use.
TOKEN_SECRET = "REGISTRATION_TOKEN"
CONFIG_SECRET = "config.toml"
STORAGE_VOLUME = "pipglr-storage"
#: The runner's own state: its working copy of config.toml (rotated tokens) and
#: .runner_system_id; owned by runner, 0700 (see pipglr.guest.runnerstate).
RUNNER_VOLUME = "pipglr-runner"
CACHE_VOLUME = "pipglr-cache"
CONTAINER_NAME = "pipglr"
#: Company-network settings (mirrors, private CAs, proxy: pipglr/netsettings.py), a
#: TOML document mounted for root only; and registry logins for job images (a docker
#: ``config.json``), mounted for the runner only. Both optional: ``pipglr up`` mounts
#: the ones that exist.
NETWORK_SECRET = "pipglr-network"
REGISTRY_AUTH_SECRET = "pipglr-registry-auth"

#: Where volumes and secrets appear inside the outer container.
STORAGE_MOUNT = PODMAN.home / ".local/share/containers"
CACHE_MOUNT = PurePosixPath("/cache")
RUNNER_STATE_DIR = PurePosixPath("/var/lib/pipglr/runner")
RUNNER_STATE_CONFIG = RUNNER_STATE_DIR / "config.toml"
SECRET_DIR = PurePosixPath("/run/secrets")
CONFIG_PATH = SECRET_DIR / CONFIG_SECRET
TOKEN_PATH = SECRET_DIR / TOKEN_SECRET
NETWORK_PATH = SECRET_DIR / NETWORK_SECRET
REGISTRY_AUTH_PATH = SECRET_DIR / REGISTRY_AUTH_SECRET
#: gitlab-runner reads registry credentials from its user's ``$HOME/.docker/config.json``
#: (helpers/docker/auth/auth.go); the image links it to the login secret.
RUNNER_DOCKER_CONFIG = RUNNER.home / ".docker/config.json"
#: What the network unit derives at boot (tmpfs, root-owned, world-readable except
#: the proxy environment): trust bundle, registries.conf drop-in, certs.d, proxy.
NET_RUN_DIR = PurePosixPath("/run/pipglr-net")
#: The trust bundle: the image's system roots plus the private CAs. The image's
#: ``/etc/ssl/certs/ca-certificates.crt`` is a link to it (the root stays read-only);
#: the roots as Debian shipped them are kept at SYSTEM_CA_BUNDLE.
CA_BUNDLE = NET_RUN_DIR / "ca-certificates.crt"
TRUST_STORE_LINK = PurePosixPath("/etc/ssl/certs/ca-certificates.crt")
SYSTEM_CA_BUNDLE = PurePosixPath("/usr/share/pipglr/ca-certificates.crt")
REGISTRIES_DROPIN = NET_RUN_DIR / "registries.conf"
#: ``Environment`` file (root 0600: systemd reads it) of the runner and API units.
PROXY_ENV_FILE = NET_RUN_DIR / "proxy.env"
#: What the egress guard opened for the network settings, and why (JSON list).
EGRESS_OPENED = NET_RUN_DIR / "egress-opened.json"
#: The private CAs' expiry for the metrics exporter (JSON list, 0644: name, subject,
#: not_after in epoch seconds, SHA-256 fingerprint; see pipglr/guest/netconfig.py).
CA_FACTS = NET_RUN_DIR / "cas.json"
#: Where jobs find the trust bundle (mounted read-only; CA variables point at it).
JOB_CA_BUNDLE = PurePosixPath("/etc/pipglr/ca-certificates.crt")
#: Monitoring (pipglr/guest/metrics.py, pipglr/guest/collector.py; README "Monitoring").
#: The exporter's port inside the container (``pipglr up --metrics`` publishes it):
#: ``/metrics`` (pipglr's own facts) and ``/runner/metrics`` (the runner's, relayed).
METRICS_PORT = 9253
#: The runner's own Prometheus endpoint (config.toml ``listen_address``): loopback of
#: the container only; the runner unit's working copy sets it unless the operator did.
RUNNER_LISTEN_ADDRESS = "127.0.0.1:9252"
#: What root's collector gathers for the exporter (tmpfs, root 0755, files 0644): the
#: units' states, the egress guard's drop counters, a copy of the runner's metrics.
METRICS_RUN_DIR = PurePosixPath("/run/pipglr-metrics")
COLLECTED_FACTS = METRICS_RUN_DIR / "collected.json"
RUNNER_METRICS_COPY = METRICS_RUN_DIR / "runner.prom"
#: Counters the podman user's services keep (podman 0755, files 0644).
PODMAN_STATS_DIR = METRICS_RUN_DIR / "podman"
EVICTOR_STATS = PODMAN_STATS_DIR / "evictor.json"
PRUNE_STATS = PODMAN_STATS_DIR / "prune.json"
#: Maintained job images (``pipglr images``; pipglr/guest/maintained.py): their
#: definitions (``NAME/Containerfile`` [+ ``depends``], the format ``invoke chain``
#: reads) live on the storage volume, podman's; each is built as ``localhost/NAME``
#: with MAINTAINED_LABEL = NAME, which the evictor never removes.
MAINTAINED_DIR = STORAGE_MOUNT / "pipglr-maintained"
MAINTAINED_LABEL = "io.pipglr.maintained"
MAINTAINED_PREFIX = "localhost/"
#: The register label mounts the caller's working directory here.
REGISTER_WORKDIR = PurePosixPath("/run/pipglr-register")

#: Installed locations of things the build puts into the image.
RUNNER_BINARY = PurePosixPath("/usr/local/bin/gitlab-runner")
#: Where gitlab-runner looks for prebuilt helper images relative to its binary
#: (``../lib/gitlab-runner/helper-images``, executors/docker/internal/prebuilt).
HELPER_IMAGES_DIR = PurePosixPath("/usr/local/lib/gitlab-runner/helper-images")
PYTHON = PurePosixPath("/usr/bin/python3")
GUEST_MODULE = "pipglr.guest"
UNIT_DIR = PurePosixPath("/etc/systemd/system")
PODMAN_CONFIG_DIR = PODMAN.home / ".config/containers"
#: Where PODMAN_CONFIG_DIR points (a symlink in the image): the setup unit writes the
#: podman user's storage.conf and containers.conf there at every boot, so the outer
#: root file system can stay read-only.
PODMAN_CONFIG_TARGET = PODMAN_RUNTIME_DIR / "pipglr-config"

#: systemd unit names (the templates are ``systemd/<name>.j2``).
PODMAN_SOCKET_UNIT = "pipglr-podman.socket"
PODMAN_SERVICE_UNIT = "pipglr-podman.service"
PODMAN_SETUP_UNIT = "pipglr-podman-setup.service"
EGRESS_UNIT = "pipglr-egress.service"
NETWORK_UNIT = "pipglr-network.service"
HOST_IDS_UNIT = "pipglr-hostids.service"
RUNNER_SERVICE_UNIT = "pipglr-runner.service"
PRUNE_SERVICE_UNIT = "pipglr-prune.service"
PRUNE_TIMER_UNIT = "pipglr-prune.timer"
STORAGE_CHECK_UNIT = "pipglr-storage-check.service"
STORAGE_CHECK_TIMER = "pipglr-storage-check.timer"
EVICTOR_UNIT = "pipglr-evictor.service"
METRICS_UNIT = "pipglr-metrics.service"
IMAGES_SERVICE_UNIT = "pipglr-images.service"
IMAGES_TIMER_UNIT = "pipglr-images.timer"
COLLECTOR_UNIT = "pipglr-metrics-collect.service"
ALL_UNITS = (
    HOST_IDS_UNIT,
    NETWORK_UNIT,
    EGRESS_UNIT,
    PODMAN_SETUP_UNIT,
    PODMAN_SOCKET_UNIT,
    PODMAN_SERVICE_UNIT,
    RUNNER_SERVICE_UNIT,
    PRUNE_SERVICE_UNIT,
    PRUNE_TIMER_UNIT,
    STORAGE_CHECK_UNIT,
    STORAGE_CHECK_TIMER,
    EVICTOR_UNIT,
    COLLECTOR_UNIT,
    METRICS_UNIT,
    IMAGES_SERVICE_UNIT,
    IMAGES_TIMER_UNIT,
)

#: The outer container's environment variable by which root accepts running jobs on
#: the host's own ids (``pipglr up --allow-host-ids``; see pipglr/guest/hostids.py).
ALLOW_HOST_IDS_ENV = "PIPGLR_ALLOW_HOST_IDS"
#: That consent as one ``--env`` value.
HOST_IDS_CONSENT = f"{ALLOW_HOST_IDS_ENV}=true"

#: Exit status of ``pipglr.guest check-config`` for a missing or malformed config
#: (sysexits EX_CONFIG); the runner unit does not restart on it.
CONFIG_ERROR_STATUS = 78

#: Image label keys pipglr writes besides the runlabels.
LABEL_RUNNER_VERSION = "io.pipglr.runner.version"
LABEL_RUNNER_SOURCE = "io.pipglr.runner.source"
LABEL_RUNNER_SHA256 = "io.pipglr.runner.sha256"
LABEL_HELPER_SHA256 = "io.pipglr.helper-archive.sha256"
LABEL_BUILD_ARG_PREFIX = "io.pipglr.build-arg."

#: The links the build makes (owner, link, target): writable places of a read-only root
#: live under /run. The image's contents as the config check resolves paths
#: (pipglr/runnerconfig.py) and as the build writes them (pipglr/build/context.py).
IMAGE_SYMLINKS: tuple[tuple[str, PurePosixPath, PurePosixPath], ...] = (
    (PODMAN.name, PODMAN_CONFIG_DIR, PODMAN_CONFIG_TARGET),
    ("root", TRUST_STORE_LINK, CA_BUNDLE),
    (RUNNER.name, RUNNER_DOCKER_CONFIG, REGISTRY_AUTH_PATH),
)
