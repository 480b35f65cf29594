"""Render the systemd units (``systemd/*.j2``) installed in the image.

Python computes every value; the templates only place them. Rendering uses
``StrictUndefined``, so a template naming a value the context lacks fails the build
instead of producing a unit with a hole in it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from pipglr import layout
from pipglr.guest import storagereserve
from pipglr.settings import BuildSettings

#: Repository directory holding the templates.
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "systemd"


class Templates(enum.Enum):
    """Known templates and where their rendered text is installed in the image."""

    HOST_IDS = (layout.HOST_IDS_UNIT, layout.UNIT_DIR)
    NETWORK = (layout.NETWORK_UNIT, layout.UNIT_DIR)
    EGRESS = (layout.EGRESS_UNIT, layout.UNIT_DIR)
    PODMAN_SETUP = (layout.PODMAN_SETUP_UNIT, layout.UNIT_DIR)
    PODMAN_SOCKET = (layout.PODMAN_SOCKET_UNIT, layout.UNIT_DIR)
    PODMAN_SERVICE = (layout.PODMAN_SERVICE_UNIT, layout.UNIT_DIR)
    RUNNER_SERVICE = (layout.RUNNER_SERVICE_UNIT, layout.UNIT_DIR)
    PRUNE_SERVICE = (layout.PRUNE_SERVICE_UNIT, layout.UNIT_DIR)
    PRUNE_TIMER = (layout.PRUNE_TIMER_UNIT, layout.UNIT_DIR)
    STORAGE_CHECK = (layout.STORAGE_CHECK_UNIT, layout.UNIT_DIR)
    STORAGE_CHECK_TIMER = (layout.STORAGE_CHECK_TIMER, layout.UNIT_DIR)
    EVICTOR = (layout.EVICTOR_UNIT, layout.UNIT_DIR)
    METRICS_COLLECT = (layout.COLLECTOR_UNIT, layout.UNIT_DIR)
    METRICS = (layout.METRICS_UNIT, layout.UNIT_DIR)
    IMAGES_SERVICE = (layout.IMAGES_SERVICE_UNIT, layout.UNIT_DIR)
    IMAGES_TIMER = (layout.IMAGES_TIMER_UNIT, layout.UNIT_DIR)
    TMPFILES = ("pipglr.conf", PurePosixPath("/usr/lib/tmpfiles.d"))

    @property
    def filename(self) -> str:
        """Name of the installed file."""
        return self.value[0]

    @property
    def template(self) -> str:
        """Name of the template under ``systemd/``."""
        if self is Templates.TMPFILES:
            return "pipglr-tmpfiles.conf.j2"
        return f"{self.filename}.j2"

    @property
    def install_path(self) -> PurePosixPath:
        """Absolute path of the rendered file in the image."""
        return self.value[1] / self.filename


@dataclass(frozen=True)
class UnitContext:
    """Values the templates may use; derived from the build settings."""

    prune_interval: str
    podman_log_level: str = "info"
    runner_log_level: str = "info"

    @classmethod
    def from_settings(cls, settings: BuildSettings) -> UnitContext:
        """The unit context for an image built with ``settings``."""
        return cls(prune_interval=settings.prune_interval)

    def as_mapping(self) -> dict[str, Any]:
        """Template variables: these values plus the image layout."""
        return {
            "prune_interval": self.prune_interval,
            "podman_log_level": self.podman_log_level,
            "runner_log_level": self.runner_log_level,
            "runner": layout.RUNNER,
            "podman": layout.PODMAN,
            "python": layout.PYTHON,
            "guest_module": layout.GUEST_MODULE,
            "socket_path": layout.SOCKET_PATH,
            "podman_runtime_dir": layout.PODMAN_RUNTIME_DIR,
            "podman_config_target": layout.PODMAN_CONFIG_TARGET,
            "storage_check_interval": storagereserve.CHECK_INTERVAL,
            "config_path": layout.CONFIG_PATH,
            "runner_binary": layout.RUNNER_BINARY,
            "config_error_status": layout.CONFIG_ERROR_STATUS,
            "podman_socket": layout.PODMAN_SOCKET_UNIT,
            "podman_service": layout.PODMAN_SERVICE_UNIT,
            "podman_setup": layout.PODMAN_SETUP_UNIT,
            "egress": layout.EGRESS_UNIT,
            "host_ids": layout.HOST_IDS_UNIT,
            "network": layout.NETWORK_UNIT,
            "net_run_dir": layout.NET_RUN_DIR,
            "ca_bundle": layout.CA_BUNDLE,
            "system_ca_bundle": layout.SYSTEM_CA_BUNDLE,
            "proxy_env_file": layout.PROXY_ENV_FILE,
            "runner_service": layout.RUNNER_SERVICE_UNIT,
            "shim_path": layout.SHIM_PATH,
            "state_config": layout.RUNNER_STATE_CONFIG,
            "state_dir": layout.RUNNER_STATE_DIR,
            "graceful_stop": layout.GRACEFUL_STOP_SECONDS,
            "metrics_run_dir": layout.METRICS_RUN_DIR,
            "podman_stats_dir": layout.PODMAN_STATS_DIR,
            "evictor": layout.EVICTOR_UNIT,
            "metrics_port": layout.METRICS_PORT,
            "maintained_dir": layout.MAINTAINED_DIR,
        }


def environment(template_dir: Path = TEMPLATE_DIR) -> jinja2.Environment:
    """The jinja2 environment all pipglr templates are rendered with."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(template: Templates, context: UnitContext) -> str:
    """Render one template."""
    variables: Mapping[str, Any] = {**context.as_mapping(), "template": template.template}
    return environment().get_template(template.template).render(variables)


def render_all(context: UnitContext) -> dict[PurePosixPath, str]:
    """Every rendered file, keyed by its absolute install path in the image."""
    return {t.install_path: render(t, context) for t in Templates}


def write_tree(context: UnitContext, root: Path) -> list[Path]:
    """Write every rendered file below ``root`` at its install path; return the files."""
    written = []
    for install_path, text in render_all(context).items():
        target = root / install_path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written


#: Units ``systemctl enable`` is run on at build time (the others are pulled in).
ENABLED_UNITS = (
    layout.EGRESS_UNIT,
    layout.PODMAN_SOCKET_UNIT,
    layout.RUNNER_SERVICE_UNIT,
    layout.PRUNE_TIMER_UNIT,
    layout.STORAGE_CHECK_TIMER,
    layout.EVICTOR_UNIT,
    layout.COLLECTOR_UNIT,
    layout.METRICS_UNIT,
    layout.IMAGES_TIMER_UNIT,
)
