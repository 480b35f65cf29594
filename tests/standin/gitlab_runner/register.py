"""``gitlab-runner register`` (commands/register.go ``RegisterCommand``: ``Execute``,
``askRunner``, ``verifyRunner``, ``doLegacyRegisterRunner``,
``ensureServerConfigArgsEmpty``, ``askDocker``, ``askExecutorOptions``; common/config.go
field names)."""

from __future__ import annotations

import argparse
import datetime
import socket
from pathlib import Path
from typing import Any

from . import config, log
from .buildinfo import parse_bool
from .errors import StandinError
from .network import GitLabClient
from .systemid import load_or_create

RESERVED_MESSAGE = (
    "Runner configuration other than name and executor configuration is reserved "
    "(specifically --locked, --access-level, --run-untagged, --maximum-timeout, --paused, "
    "--tag-list, and --maintenance-note) and cannot be specified when registering with a "
    "runner authentication token. This configuration is specified on the GitLab server. "
    "Please try again without specifying any of those arguments. For more information, see "
    "https://docs.gitlab.com/ci/runners/new_creation_workflow/#changes-to-the-gitlab-runner-register-command-syntax"
)
LEGACY_COMPATIBLE_WARNING = (
    "You have specified an authentication token in the legacy parameter --registration-token. "
    "This has triggered the 'legacy-compatible registration process' which has resulted in the "
    "following command line parameters being ignored: --locked, --access-level, --run-untagged, "
    "--maximum-timeout, --paused, --tag-list, and --maintenance-note. For more information, see "
    "https://docs.gitlab.com/ci/runners/new_creation_workflow/#changes-to-the-gitlab-runner-register-command-syntax"
    "These parameters and the legacy-compatible registration process will be removed in a "
    "future GitLab Runner release. "
)
DEFAULT_HEADER: dict[str, Any] = {
    "concurrent": 1,
    "check_interval": 0,
    "connection_max_age": "15m0s",
    "shutdown_timeout": 0,
    "session_server": {"session_timeout": 1800},
}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _server_args_given(args: argparse.Namespace) -> bool:
    """``ensureServerConfigArgsEmpty``'s test (``--locked`` defaults to true)."""
    return bool(
        not args.locked
        or args.access_level
        or args.run_untagged
        or args.maximum_timeout
        or args.paused
        or args.tag_list
        or args.maintenance_note
    )


def _docker_section(args: argparse.Namespace) -> dict[str, Any]:
    """``[runners.docker]`` as the real register writes it (``askDocker`` adds /cache)."""
    volumes = list(args.docker_volumes)
    if not args.docker_disable_cache and not any(v.split(":")[-1] == "/cache" for v in volumes):
        volumes.append("/cache")
    docker: dict[str, Any] = {}
    if args.docker_host:
        docker["host"] = args.docker_host
    docker.update(
        {
            "tls_verify": False,
            "image": args.docker_image,
            "privileged": bool(args.docker_privileged),
            "disable_entrypoint_overwrite": False,
            "oom_kill_disable": False,
            "disable_cache": bool(args.docker_disable_cache),
        }
    )
    if args.docker_cache_dir:
        docker["cache_dir"] = args.docker_cache_dir
    if args.docker_helper_image:
        docker["helper_image"] = args.docker_helper_image
    if args.docker_network_mode:
        docker["network_mode"] = args.docker_network_mode
    docker["volumes"] = volumes
    if args.docker_pull_policy:
        docker["pull_policy"] = list(args.docker_pull_policy)
    docker.update({"shm_size": 0, "network_mtu": 0})
    return docker


def _runner_entry(
    args: argparse.Namespace, runner_id: int, token: str, expires: object
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": args.name or socket.gethostname(),
        "url": args.url,
        "id": runner_id,
        "token": token,
        "token_obtained_at": _now(),
        "token_expires_at": config.parse_time(expires),
        "executor": args.executor,
    }
    if args.limit:
        entry["limit"] = args.limit
    if args.request_concurrency:
        entry["request_concurrency"] = args.request_concurrency
    if args.env:
        entry["environment"] = list(args.env)
    entry["cache"] = {"MaxUploadedArchiveSize": 0}
    if args.feature_flags:
        entry["feature_flags"] = _feature_flags(args.feature_flags)
    if args.executor in ("docker", "docker+machine", "docker-autoscaler"):
        entry["docker"] = _docker_section(args)
    if args.executor == "custom":
        entry["custom"] = _custom_section(args)
    return entry


#: common/config.go ``CustomConfig`` keys in its field order, and the options they
#: come from (the ``*_args`` ``[]string`` and the ``*int`` timeouts are ``omitempty``).
_CUSTOM_KEYS = (
    "config_exec", "config_args", "config_exec_timeout",
    "prepare_exec", "prepare_args", "prepare_exec_timeout",
    "run_exec", "run_args",
    "cleanup_exec", "cleanup_args", "cleanup_exec_timeout",
    "graceful_kill_timeout", "force_kill_timeout",
)  # fmt: skip


def _custom_section(args: argparse.Namespace) -> dict[str, Any]:
    """``[runners.custom]`` as the real register writes it: ``askExecutorOptions``
    keeps ``RunnerSettings.Custom`` for ``custom`` (asking nothing more); the TOML
    encoder leaves out the ``omitempty`` keys at their zero value (every key but
    ``run_exec``) and nil ``*int`` timeouts."""
    section: dict[str, Any] = {}
    for key in _CUSTOM_KEYS:
        value = getattr(args, "custom_" + key)
        if key == "run_exec" or (value is not None and value not in ("", [])):
            section[key] = list(value) if isinstance(value, list) else value
    return section


def _feature_flags(values: list[str]) -> dict[str, bool]:
    """``--feature-flags NAME:VALUE`` (go-flags map option: ``:`` between key and
    value, the value a Go bool) as ``[runners.feature_flags]``."""
    flags: dict[str, bool] = {}
    for value in values:
        name, sep, raw = value.partition(":")
        parsed = parse_bool(raw)
        if not sep or not name or parsed is None:
            raise StandinError(f"invalid argument for flag '--feature-flags': {value!r}")
        flags[name] = parsed
    return flags


def register(args: argparse.Namespace, client: GitLabClient | None = None) -> int:
    """``RegisterCommand.Execute`` for ``--non-interactive`` use."""
    client = client or GitLabClient()
    if not args.non_interactive:
        raise StandinError("the stand-in only supports --non-interactive registration")
    path = Path(args.config)
    current = config.load(path)
    system_id = load_or_create(path)
    token = args.token or args.registration_token
    for flag, value in (
        ("url", args.url),
        ("registration-token", token),
        ("executor", args.executor),
    ):
        if not value:
            raise StandinError(f"The {flag} needs to be entered")
    if args.token and not args.token.startswith("glrt-"):
        # askRunner: a non-authentication --token is only verified
        log.info("Token specified trying to verify runner...")
        log.warning("If you want to register use the '-r' instead of '-t'.")
        if client.verify_runner(args.url, token, system_id) is None:
            raise StandinError("Failed to verify the runner. You may be having network problems.")
        return 0
    if token.startswith("glrt-"):
        if _server_args_given(args):
            if args.registration_token == token:
                log.warning(LEGACY_COMPATIBLE_WARNING)
            else:
                log.fatal(RESERVED_MESSAGE)
                return 1
        found = client.verify_runner(args.url, token, system_id)
        if not found or not found.get("id"):
            raise StandinError("Failed to verify the runner.")
        runner_id, expires = int(found["id"]), found.get("token_expires_at")
    else:
        run_untagged = args.run_untagged or not args.tag_list
        params = {
            "description": args.name or socket.gethostname(),
            "run_untagged": run_untagged,
            "locked": bool(args.locked),
            "paused": bool(args.paused),
        }
        for key, value in (
            ("maintenance_note", args.maintenance_note),
            ("tag_list", args.tag_list),
            ("access_level", args.access_level),
            ("maximum_timeout", args.maximum_timeout),
        ):
            if value:
                params[key] = value
        log.warning(
            "Support for registration tokens and runner parameters in the 'register' command has "
            "been deprecated in GitLab Runner 15.6 and will be replaced with support for "
            "authentication tokens. For more information, see "
            "https://docs.gitlab.com/ci/runners/new_creation_workflow/"
        )
        found = client.register_runner(args.url, token, params)
        if not found:
            raise StandinError("Failed to register the runner.")
        runner_id, token, expires = (
            int(found.get("id", 0)),
            str(found["token"]),
            found.get("token_expires_at"),
        )
    document = dict(current.raw) if current.raw else dict(DEFAULT_HEADER)
    runners = list(document.get("runners", []))
    runners.append(_runner_entry(args, runner_id, token, expires))
    document["runners"] = runners
    config.save(path, document)
    log.info(
        "Runner registered successfully. Feel free to start it, but if it's running already the "
        "config should be automatically reloaded!"
    )
    log.info(f'Configuration (with the authentication token) was saved in "{args.config}"')
    return 0
